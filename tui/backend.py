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
    weight_format: str = "fp32"  # how the engine holds the weights: fp32, int8 …

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


def load_backend(checkpoint: str | None, *, in_process: bool = False, quantize: str | None = None,
                 progress=None) -> Backend:
    """Load a checkpoint directory (or the bundled default model); ``quantize="int8"`` runs it
    int8. ``progress(done_bytes, total_bytes)`` follows the load (e.g. a terminal line, or the
    status bar of an app that loads in the background).

    The chat runs the engine in its own process (``tui.engine_process``: a UI and an engine
    sharing one interpreter lock slow each other down); headless commands, where nothing else
    runs, use it in-process.
    """
    if not in_process:
        from tokenizer import Tokenizer
        from tui.engine_process import EngineProcess

        engine = EngineProcess(checkpoint, quantize=quantize, progress=progress)
        info = ModelInfo(model_name(engine.directory), engine.parameters, engine.sequence_len, engine.weight_format)
        return Backend(engine, Tokenizer.load(engine.tokenizer_directory), info)

    from model.checkpoint import load_engine, parameter_count, resolve_checkpoint_dir

    directory = resolve_checkpoint_dir(checkpoint)
    engine, tokenizer = load_engine(directory, quantize, progress=progress)
    info = ModelInfo(model_name(directory), parameter_count(engine.config), engine.config.sequence_len, engine.weight_format)
    return Backend(engine, tokenizer, info)


def model_name(directory) -> str:
    """``checkpoints/default``-style: the checkpoint directory with its parent."""
    path = Path(directory).resolve()
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
