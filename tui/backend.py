"""What the chat talks to: an engine with ``stream``, its tokenizer, and facts about the model.

Loading imports torch, so it happens only inside the commands that need a model. Tests build a
``Backend`` around a scripted engine with the same ``stream`` signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    name: str
    parameters: int
    sequence_len: int

    @property
    def size_label(self) -> str:
        """``4.2M``-style parameter count."""
        n = self.parameters
        for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
            if n >= scale:
                return f"{n / scale:.1f}{unit}"
        return str(n)


@dataclass(frozen=True)
class Backend:
    engine: Any  # ``stream(prompt_ids, params, cancel=None)`` yielding TokenEvent… then Stop
    tokenizer: Any  # tokenizer.Tokenizer
    info: ModelInfo


def load_backend(checkpoint: str | None, *, in_process: bool = False, server: str | None = None,
                 api_key: str | None = None) -> Backend:
    """Load a checkpoint directory (or the bundled default model), or connect to ``server``
    (``model.remote``; the checkpoint then only gives the tokenizer).

    The chat runs the engine in its own process (``tui.engine_process``: a UI and an engine
    sharing one interpreter lock slow each other down); headless commands, where nothing else
    runs, use it in-process.
    """
    if server:
        from model.remote import connect

        remote = connect(server, checkpoint, api_key)
        return Backend(remote, remote.tokenizer, remote.info)
    if not in_process:
        from tokenizer import Tokenizer
        from tui.engine_process import EngineProcess

        engine = EngineProcess(checkpoint)
        info = ModelInfo(model_name(engine.directory), engine.parameters, engine.sequence_len)
        return Backend(engine, Tokenizer.load(engine.tokenizer_directory), info)

    from model import load_model, resolve_checkpoint_dir
    from model.engine import Engine

    directory = resolve_checkpoint_dir(checkpoint)
    gpt, tokenizer = load_model(directory)
    parameters = sum(p.numel() for p in gpt.parameters())
    return Backend(Engine(gpt, tokenizer), tokenizer,
                   ModelInfo(model_name(directory), parameters, gpt.config.sequence_len))


def model_name(directory) -> str:
    """``checkpoints/default``-style: the checkpoint directory with its parent."""
    path = Path(directory).resolve()
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
