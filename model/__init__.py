"""The GPT, its checkpoints (safetensors + config.json), nanochat import and Hugging Face
export, the streaming KV-cache engine with its calculator tool. Knows nothing of Textual or of
training (``training/`` builds on this package, never the other way round).

``import model`` stays light: the event types load at once (the TUI needs only them), the
torch-backed names (``GPT``, ``load_model``, ``Engine`` …) on first use.
"""

import importlib

from model.events import GenerationStats, SamplingParams, Stop, TokenEvent

_LAZY = {
    "GPT": "model.gpt",
    "GPTConfig": "model.gpt",
    "load_model": "model.checkpoint",
    "save_checkpoint": "model.checkpoint",
    "resolve_checkpoint_dir": "model.checkpoint",
    "CheckpointError": "model.checkpoint",
    "Engine": "model.engine",
    "Completion": "model.engine",
    "calculate": "model.calculator",
}

__all__ = ["GenerationStats", "SamplingParams", "Stop", "TokenEvent", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'model' has no attribute {name!r}")
