"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a crash) sees either the old file or the new one, never half of one. Every file
glasschat writes for the user — tokenizers, checkpoints, saved chats, transcripts — goes
through here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    For writers that insist on a file name (``safetensors.torch.save_file``). On an exception
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    mode = tmp.stat().st_mode & 0o777
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            # a writer may replace the file rather than write into it (safetensors creates its
            # own, owner-only): give it back the mode it was made with
            if os.fstat(f.fileno()).st_mode & 0o777 != mode:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temporary(path: Path) -> Path:
    """An empty new file beside ``path``, created with mode 0666 less the umask — what a plain
    ``open(path, "w")`` gives — rather than ``mkstemp``'s owner-only 0600, so what glasschat
    writes is as readable as any other file the user makes."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
