"""nanochat's own package of one generation, for the tests that compare against it."""

import importlib
import sys
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "nanochat"


def nanochat_modules(generation: str, *names: str) -> tuple:
    """``nanochat.<name>`` for each of ``names``, freshly imported from one generation's folder
    (every generation is a package of the same name); skips where ../shared is absent."""
    folder = REFERENCE / generation
    if not (folder / "nanochat" / "gpt.py").is_file():
        pytest.skip(f"nanochat reference code not found at {folder} (../shared is absent)")
    for name in [name for name in sys.modules if name == "nanochat" or name.startswith("nanochat.")]:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        return tuple(importlib.import_module(f"nanochat.{name}") for name in names)
    finally:
        sys.path.remove(str(folder))
