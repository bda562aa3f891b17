"""Offline English text: what this machine has without a network, chosen to be reproducible.

Two sources ship with every CPython 3.11 installation, so the same text comes out on any
machine with the same Python:

- ``pydoc_data.topics`` — the language reference and library topics that ``help()`` shows
  (about 0.45 MB of prose);
- the docstrings of the standard library's modules, classes and functions (test packages
  excluded), about 1.8 MB.

Man pages and ``/usr/share/doc`` differ from machine to machine, so the recipe does not use
them. Documents come out in a fixed order (sorted paths, topics by name).
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

_SKIPPED_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def pydoc_topics() -> Iterator[str]:
    """The text of each ``help()`` topic, by topic name."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield topics[name]


def stdlib_docstrings(root: Path | None = None) -> Iterator[str]:
    """Every docstring of the standard library, file by file in sorted order."""
    root = root or stdlib_dir()
    paths = sorted(p for p in root.rglob("*.py") if not _SKIPPED_DIRS.intersection(p.relative_to(root).parts))
    for path in paths:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue  # a few stdlib files are templates or deliberately invalid
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40:
                    yield _prose(doc)


def _prose(doc: str) -> str:
    # interactive examples are code, not English
    lines = [line for line in doc.splitlines() if not line.lstrip().startswith((">>>", "..."))]
    return "\n".join(lines).strip()


def english_documents() -> Iterator[str]:
    """All offline English documents, in a fixed order."""
    yield from pydoc_topics()
    yield from stdlib_docstrings()
