"""Where glasschat finds its bundled files.

The default model ships in ``checkpoints/default/`` at the top of the source tree (the README
installs glasschat in editable mode, so the tree is where the code runs from).
"""

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def default_checkpoint_dir() -> Path:
    """The bundled default model's checkpoint directory (it may not exist in a bare tree)."""
    return SOURCE_ROOT / "checkpoints" / "default"


def default_tokenizer_dir() -> Path:
    return default_checkpoint_dir() / "tokenizer"
