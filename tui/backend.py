"""What the chat talks to: an engine with ``stream``, its tokenizer, and facts about the model.

Loading imports torch, so it happens only inside the commands that need a model. Tests build a
``Backend`` around a scripted engine with the same ``stream`` signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glasschat.errors import UserError


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


def checkpoint_dir(checkpoint: str | None) -> Path:
    """``checkpoint``, or the bundled default model's directory when none is given."""
    if checkpoint is not None:
        return Path(checkpoint)
    from glasschat.paths import default_checkpoint_dir

    directory = default_checkpoint_dir()
    if not directory.is_dir():
        raise UserError(f"no default model at {directory}; pass --checkpoint DIR")
    return directory


def load_backend(checkpoint: str | None) -> Backend:
    """Load a checkpoint directory (or the default model) into an engine."""
    import torch

    from model import Engine, load_model

    torch.set_num_threads(1)  # decode at batch 1 is overhead-bound; a second thread only contends
    directory = checkpoint_dir(checkpoint)
    gpt, tokenizer = load_model(directory)
    parameters = sum(p.numel() for p in gpt.parameters())
    name = directory.resolve().name
    return Backend(Engine(gpt, tokenizer), tokenizer, ModelInfo(name, parameters, gpt.config.sequence_len))
