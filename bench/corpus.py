"""Deterministic offline text corpora for benchmarks, built from what is installed here.

Three sources, mixed so that each contributes about a third of the bytes:

- man pages (``/usr/share/man``, every language present: English, CJK, Cyrillic, ...),
  decompressed from gzip — roff markup plus prose;
- Python sources of the standard library (``sysconfig`` stdlib path, ``*.py``);
- documentation: ``/usr/share/doc`` (changelogs, copyright files, READMEs; gzip or plain)
  and the ``*.md`` / ``*.rst`` / ``*.txt`` files of installed Python packages.

Files are taken in sorted path order, so the same machine always builds the same corpus.
Every 25th document goes to a held-out file (until it holds 1/20 of the target size) for
measuring bytes per token on text the tokenizer did not see. Both are JSONL (``{"text": ...}``
per line) and cached under ``.cache/bench-corpus/``.
"""

from __future__ import annotations

import gzip
import json
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from glasschat.atomic import atomic_path

CACHE_DIR = Path(".cache") / "bench-corpus"
HELDOUT_EVERY = 25
MAX_DOC_BYTES = 1 << 20  # skip the odd giant generated file so no single source dominates


@dataclass(frozen=True)
class Corpus:
    train: Path
    heldout: Path
    train_bytes: int


def describe_sources() -> str:
    return ("man pages (/usr/share/man, all languages), Python stdlib sources, "
            "/usr/share/doc and installed packages' .md/.rst/.txt")


def build_corpus(size_mb: float, cache_dir: Path = CACHE_DIR) -> Corpus:
    """Return the corpus of about ``size_mb`` MB (UTF-8 bytes), building and caching it once."""
    target = int(size_mb * 1e6)
    train = cache_dir / f"train-{size_mb:g}mb.jsonl"
    heldout = cache_dir / f"heldout-{size_mb:g}mb.jsonl"
    if not (train.is_file() and heldout.is_file()):
        _write_corpus(target, train, heldout)
    return Corpus(train, heldout, _text_bytes(train))


def iter_texts(path: Path) -> Iterator[str]:
    """The documents of a corpus JSONL file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def _text_bytes(path: Path) -> int:
    return sum(len(text.encode("utf-8")) for text in iter_texts(path))


def _write_corpus(target: int, train: Path, heldout: Path) -> None:
    sources = [_man_pages(), _python_sources(), _documentation()]
    written = [0] * len(sources)
    train_bytes = heldout_bytes = 0
    n_docs = 0
    with atomic_path(train) as train_tmp, atomic_path(heldout) as heldout_tmp:
        with open(train_tmp, "w", encoding="utf-8") as ft, open(heldout_tmp, "w", encoding="utf-8") as fh:
            while train_bytes < target and sources:
                # take from the source that has contributed least so far: an even mix by bytes
                i = min(range(len(sources)), key=written.__getitem__)
                text = next(sources[i], None)
                if text is None:
                    del sources[i], written[i]
                    continue
                size = len(text.encode("utf-8"))
                written[i] += size
                n_docs += 1
                line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                if n_docs % HELDOUT_EVERY == 0 and heldout_bytes < target // 20:
                    fh.write(line)
                    heldout_bytes += size
                else:
                    ft.write(line)
                    train_bytes += size
    if train_bytes < target:
        print(f"note: only {train_bytes / 1e6:.1f} MB of text found on this machine", flush=True)


def _files(root: str | Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(suffixes):
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink():
                    yield path


def _read(path: Path) -> str | None:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if not data.strip() or len(data) > MAX_DOC_BYTES or b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def _texts(paths: Iterator[Path]) -> Iterator[str]:
    for path in paths:
        text = _read(path)
        if text is not None:
            yield text


def _man_pages() -> Iterator[str]:
    return _texts(_files("/usr/share/man", (".gz",)))


def _python_sources() -> Iterator[str]:
    return _texts(_files(sysconfig.get_paths()["stdlib"], (".py",)))


def _documentation() -> Iterator[str]:
    def paths() -> Iterator[Path]:
        yield from _files("/usr/share/doc", (".gz", ".txt", ".md", ".rst", "copyright", "README"))
        yield from _files(sysconfig.get_paths()["purelib"], (".md", ".rst", ".txt"))

    return _texts(paths())
