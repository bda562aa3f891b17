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


# -- corpus shapes: the same text cut the ways people feed a trainer --------------------------

SHAPES = ("small-files", "large-files", "cjk", "code", "parquet", "largest")
LARGE_FILES = 4
PARQUET_SHARDS = 4
PARQUET_ROW_GROUP = 1024  # documents per row group, as in nanochat's shards


@dataclass(frozen=True)
class Shape:
    """A corpus of one shape: what the glasschat trainer is given, and how it was built."""

    name: str
    inputs: tuple[Path, ...]
    kind: str  # "files" (a directory, one document per file), "jsonl" or "parquet"
    text_bytes: int
    documents: int
    description: str


def build_shape(name: str, size_mb: float, cache_dir: Path = CACHE_DIR) -> Shape:
    """The corpus of shape ``name`` holding about ``size_mb`` MB of text (less when this machine
    has less of that kind), built once and cached."""
    root = cache_dir / "shapes" / f"{name}-{size_mb:g}mb"
    manifest = root / "manifest.json"
    if not manifest.is_file():
        if root.exists():
            import shutil

            shutil.rmtree(root)
        root.mkdir(parents=True)
        meta = _SHAPE_BUILDERS[name](root, int(size_mb * 1e6))
        meta["name"] = name
        manifest.write_text(json.dumps(meta))
    return build_shape_from_dir(root)


def build_shape_from_dir(root: Path) -> Shape:
    """A shape already built in ``root``."""
    meta = json.loads((root / "manifest.json").read_text())
    return Shape(meta["name"], tuple(root / p for p in meta["inputs"]), meta["kind"], meta["text_bytes"],
                 meta["documents"], meta["description"])


def shape_documents(shape: Shape) -> Iterator[str]:
    """The documents of a shape, in the order the glasschat trainer reads them."""
    if shape.kind == "files":
        for directory in shape.inputs:
            for name in sorted(os.listdir(directory)):
                with open(directory / name, encoding="utf-8", newline="") as f:  # "\r\n" stays as is
                    yield f.read()
    elif shape.kind == "jsonl":
        for path in shape.inputs:
            yield from iter_texts(path)
    else:
        import pyarrow.parquet as pq

        for path in shape.inputs:
            shard = pq.ParquetFile(path)
            for i in range(shard.num_row_groups):
                yield from shard.read_row_group(i, columns=["text"]).column(0).to_pylist()


def _take(sources: list[Iterator[str]], target: int) -> Iterator[str]:
    """Documents taken in turn from the source that has given the fewest bytes, up to ``target``."""
    given = [0] * len(sources)
    total = 0
    while total < target and sources:
        i = min(range(len(sources)), key=given.__getitem__)
        text = next(sources[i], None)
        if text is None:
            del sources[i], given[i]
            continue
        size = len(text.encode("utf-8"))
        given[i] += size
        total += size
        yield text


def _meta(kind: str, inputs: list[str], texts_bytes: int, documents: int, description: str) -> dict:
    return {"kind": kind, "inputs": inputs, "text_bytes": texts_bytes, "documents": documents,
            "description": description}


def _write_files(root: Path, texts: Iterator[str], description: str) -> dict:
    (root / "files").mkdir()
    total = count = 0
    for count, text in enumerate(texts, start=1):
        (root / "files" / f"{count:06d}.txt").write_text(text, encoding="utf-8", newline="")
        total += len(text.encode("utf-8"))
    return _meta("files", ["files"], total, count, description)


def _write_jsonl(root: Path, texts: Iterator[str], description: str) -> dict:
    total = count = 0
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for count, text in enumerate(texts, start=1):
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            total += len(text.encode("utf-8"))
    return _meta("jsonl", ["corpus.jsonl"], total, count, description)


SMALL_FILE_BYTES = 16_000


def _small_files(root: Path, target: int) -> dict:
    def small(texts: Iterator[str]) -> Iterator[str]:
        return (t for t in texts if len(t.encode("utf-8")) <= SMALL_FILE_BYTES)

    return _write_files(root, _take([small(_man_pages()), small(_python_sources())], target),
                        f"one file per man page (all languages) or Python stdlib module of at most "
                        f"{SMALL_FILE_BYTES // 1000} KB")


def _large_files(root: Path, target: int) -> dict:
    (root / "files").mkdir()
    texts = _take([_documentation(), _man_pages()], target)
    total = 0
    for n in range(LARGE_FILES):
        parts, size = [], 0
        for text in texts:
            parts.append(text)
            size += len(text.encode("utf-8"))
            if size >= target // LARGE_FILES:
                break
        (root / "files" / f"{n:02d}.txt").write_text("\n\n".join(parts), encoding="utf-8", newline="")
        total += len("\n\n".join(parts).encode("utf-8"))
    return _meta("files", ["files"], total, LARGE_FILES,
                 f"{LARGE_FILES} files, each one document: /usr/share/doc and man pages joined")


def _cjk(root: Path, target: int) -> dict:
    return _write_jsonl(root, _take([_cjk_catalogs(), _cjk_man_pages()], target),
                        "the zh/ja/ko translations of the installed message catalogs (.mo, one document "
                        "per catalog) and the zh/ja/ko man pages")


def _code(root: Path, target: int) -> dict:
    def sources() -> Iterator[str]:
        yield from _texts(_files(sysconfig.get_paths()["purelib"], (".py",)))
        yield from _python_sources()

    return _write_jsonl(root, _take([sources()], target), "Python sources of site-packages and the stdlib, "
                        "one document per module")


def _parquet(root: Path, target: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = list(_take([_man_pages(), _python_sources(), _documentation()], target))
    per_shard = -(-len(texts) // PARQUET_SHARDS)
    inputs = []
    for n in range(PARQUET_SHARDS):
        inputs.append(f"shard_{n:05d}.parquet")
        pq.write_table(pa.table({"text": texts[n * per_shard : (n + 1) * per_shard]}), root / inputs[-1],
                       row_group_size=PARQUET_ROW_GROUP)
    return _meta("parquet", inputs, sum(len(t.encode("utf-8")) for t in texts), len(texts),
                 f"{PARQUET_SHARDS} shards, a 'text' column in row groups of {PARQUET_ROW_GROUP}: "
                 "man pages, Python stdlib, documentation")


def _largest(root: Path, target: int) -> dict:
    def code() -> Iterator[str]:
        yield from _python_sources()
        yield from _texts(_files(sysconfig.get_paths()["purelib"], (".py",)))

    return _write_jsonl(root, _take([_man_pages(), code(), _documentation(), _cjk_catalogs()], target),
                        "every man page, Python source (stdlib, site-packages), documentation file and "
                        "message catalog translation here")


_SHAPE_BUILDERS = {"small-files": _small_files, "large-files": _large_files, "cjk": _cjk, "code": _code,
                   "parquet": _parquet, "largest": _largest}

CJK_LANGUAGES = ("zh", "ja", "ko")


def _cjk_man_pages() -> Iterator[str]:
    for language in sorted(os.listdir("/usr/share/man")) if os.path.isdir("/usr/share/man") else []:
        if language.startswith(CJK_LANGUAGES):
            yield from _texts(_files(Path("/usr/share/man") / language, (".gz",)))


def _cjk_catalogs() -> Iterator[str]:
    """The translated messages of each zh/ja/ko message catalog under /usr/share (one document)."""
    import gettext

    for path in _files("/usr/share", (".mo",)):
        if not any(part.startswith(CJK_LANGUAGES) for part in path.parts[-4:-1]):
            continue
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        messages = [m for m in catalog._catalog.values() if isinstance(m, str) and m]
        if messages:
            yield "\n".join(messages)
