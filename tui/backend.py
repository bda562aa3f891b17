"""What the chat talks to: an engine with ``stream``, its tokenizer, and facts about the model.

Loading imports torch, so it happens only inside the commands that need a model. Tests build a
``Backend`` around a scripted engine with the same ``stream`` signature.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def load_backend(checkpoint: str | None) -> Backend:
    """Load a checkpoint directory (or the bundled default model) into an engine."""
    from model import load_model, resolve_checkpoint_dir
    from model.engine import Engine

    directory = resolve_checkpoint_dir(checkpoint)
    gpt, tokenizer = load_model(directory)
    parameters = sum(p.numel() for p in gpt.parameters())
    name = directory.resolve().name
    return Backend(Engine(gpt, tokenizer), tokenizer, ModelInfo(name, parameters, gpt.config.sequence_len))
