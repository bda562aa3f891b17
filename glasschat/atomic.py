"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a crash) sees either the old file or the new one, never half of one. Every file
glasschat writes for the user — tokenizers, checkpoints, saved chats, transcripts — goes
through here, and so does every way such a write can fail on the user's side (the target is a
directory, its folder is a file, the disk is read-only or full): a ``WriteError`` naming the
path, one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from glasschat.errors import UserError
from glasschat.loading import scrub_text


class WriteError(UserError):
    """A file or directory that cannot be written where the user asked."""


def write_problem(path: str | os.PathLike, error: OSError) -> WriteError:
    """The one-line error for ``error`` while writing ``path``."""
    path = Path(path)
    if isinstance(error, (FileExistsError, NotADirectoryError)) and (blocker := _file_in_the_way(path)):
        reason = "it is a file, not a directory" if blocker == path else f"{blocker} is a file, not a directory"
    elif isinstance(error, IsADirectoryError):
        reason = "is a directory, not a file"
    else:
        reason = error.strerror or str(error) or type(error).__name__
    return WriteError(f"{path}: cannot write: {reason}")


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest of ``path``'s parents that exists and is not a directory."""
    for existing in path.parents:
        if existing.exists():
            return None if existing.is_dir() else existing
    return None


def make_dir(path: str | os.PathLike) -> Path:
    """Create directory ``path`` (and its parents) if needed; a ``WriteError`` if it cannot be
    one (it is a file, or lies below one, or the disk refuses)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        blocker = _file_in_the_way(path) or path
        reason = "it is a file" if blocker == path else f"{blocker} is a file"
        raise WriteError(f"{path}: cannot write: {reason}, not a directory") from None
    except OSError as error:
        raise write_problem(path, error) from None
    return path


def check_dir_target(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output directory that cannot be one: ``path`` is an existing
    file, or lies below one. Nothing is created."""
    path = Path(path)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "it" if existing == path else str(existing)
                raise WriteError(f"{path}: cannot write a directory there: {where} is a file, not a directory")
            break
    return path


def check_file_target(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output file that cannot be written: ``path`` is a directory,
    or lies below a file. Nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path}: cannot write: is a directory, not a file")
    if blocker := _file_in_the_way(path):
        raise WriteError(f"{path}: cannot write: {blocker} is a file, not a directory")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    For writers that insist on a file name (``safetensors.torch.save_file``). On an exception
    the temporary file is removed and ``path`` is left untouched; an ``OSError`` becomes a
    ``WriteError`` naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path}: cannot write: is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temporary(path)
    except OSError as error:
        raise write_problem(path, error) from None
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
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise write_problem(path, error) from None
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
    """Write ``text`` as UTF-8; a lone surrogate, which UTF-8 cannot hold, is stored as U+FFFD
    (``glasschat.loading.scrub_text``: what the tokenizer made of it too), never a failed save."""
    atomic_write_bytes(path, scrub_text(text).encode("utf-8"))
