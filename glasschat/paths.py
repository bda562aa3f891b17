"""Where glasschat finds its bundled files.

The default model ships as ``checkpoints/default/``, a directory beside the ``glasschat``
package in both layouts it runs from: the top of a source checkout (an editable install) and
``site-packages`` (a wheel, which carries the checkpoint as package data of ``checkpoints``).
"""

from pathlib import Path

# the directory holding the top-level packages: the source tree, or site-packages
PACKAGES_ROOT = Path(__file__).resolve().parent.parent


def default_checkpoint_dir() -> Path:
    """The bundled default model's checkpoint directory (it may not exist in a bare tree)."""
    return PACKAGES_ROOT / "checkpoints" / "default"


def default_tokenizer_dir() -> Path:
    return default_checkpoint_dir() / "tokenizer"
