"""``glasschat tokenizer stats DIR TEXT...``: how much text a tokenizer packs into each token.

For each TEXT (a file, or a directory whose files are grouped by their extension, so a source
tree shows ``*.py`` apart from ``*.md``): its UTF-8 bytes, its tokens (encoded as ordinary
text, as a user's message is) and bytes per token — the tokenizer's compression on that kind
of text; more is better, and a language or file type the tokenizer saw little of in training
shows up as a low figure. Then the token-length histogram: how many bytes the tokens hold,
over the vocabulary (each BPE token once) and as used on these inputs (each occurrence).

Lengths are raw bytes (``decode_single_token_bytes``), so a group's token lengths add up to
exactly its byte count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glasschat.charts import Bars
from glasschat.errors import UserError
from glasschat.loading import LoadError, read_bytes
from tokenizer.files import RANKS_FILE

MAX_FILE_BYTES = 256 * 2**20  # one input file; tiktoken holds its ids in memory
LONGEST_BUCKET = 16  # tokens of this many bytes or more share the histogram's last bar


@dataclass
class Group:
    """One row of the report: a file, or a directory's files of one extension."""

    label: str
    files: int = 0
    bytes: int = 0
    tokens: int = 0

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else 0.0

    def to_json(self) -> dict:
        return {"input": self.label, "files": self.files, "bytes": self.bytes, "tokens": self.tokens,
                "bytes_per_token": round(self.bytes_per_token, 4)}


@dataclass
class Stats:
    tokenizer: str
    vocab_size: int
    bpe_tokens: int
    groups: list[Group]
    total: Group
    vocab_lengths: list[int]  # [n] = BPE tokens of n bytes
    used_lengths: list[int]  # [n] = tokens of n bytes in the inputs
    skipped: list[str] = field(default_factory=list)  # files in directories that are not text

    def to_json(self) -> dict:
        def histogram(counts: list[int]) -> dict[str, int]:
            return {str(n): c for n, c in enumerate(counts) if c}

        return {"tokenizer": self.tokenizer, "vocab_size": self.vocab_size, "bpe_tokens": self.bpe_tokens,
                "inputs": [g.to_json() for g in self.groups], "all": self.total.to_json(),
                "token_lengths": {"vocabulary": histogram(self.vocab_lengths), "used": histogram(self.used_lengths)},
                "skipped_files": self.skipped}


def tokenizer_dir(directory: str | os.PathLike) -> Path:
    """The tokenizer directory ``directory`` names: itself, or a checkpoint's ``tokenizer/``."""
    path = Path(directory)
    if not path.exists():
        raise UserError(f"{path}: no such directory")
    if not path.is_dir():
        raise UserError(f"{path}: not a directory (a tokenizer or checkpoint directory)")
    if not (path / RANKS_FILE).exists() and (path / "tokenizer").is_dir():
        return path / "tokenizer"
    return path


# ---- reading the inputs


def _text_or_reason(path: Path) -> tuple[str | None, str]:
    """The file's text, or ``None`` and why it is not text to count."""
    try:
        data = read_bytes(path, MAX_FILE_BYTES)
    except LoadError as error:
        return None, str(error).removeprefix(f"{path}: ")
    if not data:
        return None, "empty file, nothing to count"
    if b"\0" in data:
        return None, "binary file (it holds NUL bytes), not text"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
    return text, ""


def _directory_files(directory: Path) -> list[Path]:
    """Every file below ``directory``, in a stable order, leaving out hidden folders and files
    (``.git``, ``.venv``) and caches, which are not the text a user means."""
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        files.extend(Path(root) / name for name in sorted(names) if not name.startswith("."))
    return files


def read_inputs(texts: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """``[(label, [text of each file])]`` for the TEXT arguments, and the directory files
    skipped as not text. A named file that cannot be counted is a ``UserError``; so is a
    directory with no text in it."""
    groups: list[tuple[str, list[str]]] = []
    skipped: list[str] = []
    for text_arg in texts:
        path = Path(text_arg)
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        if not path.is_dir():
            text, reason = _text_or_reason(path)
            if text is None:
                raise UserError(f"{path}: {reason}")
            groups.append((str(path), [text]))
            continue
        by_extension: dict[str, list[str]] = {}
        for file in _directory_files(path):
            text, reason = _text_or_reason(file)
            if text is None:
                skipped.append(f"{file}: {reason}")
                continue
            by_extension.setdefault(file.suffix.lower() or "(no extension)", []).append(text)
        if not by_extension:
            raise UserError(f"{path}: no text files in this directory")
        base = str(path).rstrip("/") or "/"
        for extension in sorted(by_extension):
            pattern = f"*{extension}" if extension.startswith(".") else extension
            groups.append((f"{base}/{pattern}", by_extension[extension]))
    return groups, skipped


# ---- counting


def token_lengths(tokenizer) -> np.ndarray:
    """Bytes per token id (0 for the special tokens)."""
    lengths = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for token, rank in tokenizer.ranks.items():
        lengths[rank] = len(token)
    return lengths


def measure(tokenizer, name: str, texts: list[str]) -> Stats:
    """Bytes per token of each TEXT argument and over all of them, and the length histograms."""
    inputs, skipped = read_inputs(texts)
    lengths = token_lengths(tokenizer)
    longest = int(lengths.max())
    used = np.zeros(longest + 1, dtype=np.int64)
    groups, total = [], Group("all")
    for label, documents in inputs:
        group = Group(label, files=len(documents))
        for ids in tokenizer.encode_batch(documents):
            counts = np.bincount(lengths[np.asarray(ids, dtype=np.int64)], minlength=longest + 1)
            used += counts
            group.tokens += len(ids)
        group.bytes = sum(len(d.encode("utf-8", "replace")) for d in documents)
        groups.append(group)
        total.files, total.bytes, total.tokens = total.files + group.files, total.bytes + group.bytes, \
            total.tokens + group.tokens
    vocab = np.bincount(lengths[: len(tokenizer.ranks)], minlength=longest + 1)
    return Stats(name, tokenizer.vocab_size, len(tokenizer.ranks), groups, total, vocab.tolist(), used.tolist(),
                 skipped)


# ---- showing


def format_table(stats: Stats) -> str:
    width = max(len("input"), *(len(g.label) for g in stats.groups))
    mean = sum(n * c for n, c in enumerate(stats.vocab_lengths)) / max(1, stats.bpe_tokens)
    lines = [f"tokenizer {stats.tokenizer}: {stats.vocab_size:,} tokens ({stats.bpe_tokens:,} BPE + "
             f"{stats.vocab_size - stats.bpe_tokens} special); a BPE token holds {mean:.2f} bytes on average",
             "",
             f"{'input':<{width}}  {'files':>6}  {'bytes':>12}  {'tokens':>11}  {'bytes/token':>11}"]
    for group in [*stats.groups, stats.total]:
        lines.append(f"{group.label:<{width}}  {group.files:>6,}  {group.bytes:>12,}  {group.tokens:>11,}  "
                     f"{group.bytes_per_token:>11.2f}")
    if stats.skipped:
        lines.append(f"({len(stats.skipped)} file{'s' * (len(stats.skipped) > 1)} in directories skipped, not text: "
                     f"{stats.skipped[0]}{' …' if len(stats.skipped) > 1 else ''})")
    return "\n".join(lines)


def bytes_per_token_chart(stats: Stats) -> Bars:
    groups = stats.groups + ([stats.total] if len(stats.groups) > 1 else [])
    return Bars(f"bytes per token, {stats.vocab_size:,}-token vocabulary", [_short(g.label) for g in groups],
                {"bytes/token": [round(g.bytes_per_token, 3) for g in groups]}, ylabel="bytes per token",
                horizontal=True)


CHART_LABEL = 28  # characters: a long path would leave the bars no room


def _short(label: str) -> str:
    """The end of a long path (the file and its type are the telling part), for the chart."""
    return label if len(label) <= CHART_LABEL else "…" + label[-(CHART_LABEL - 1):]


def length_chart(stats: Stats) -> Bars:
    """The share of tokens of each length (bytes), over the vocabulary and as used."""
    def shares(counts: list[int]) -> list[float]:
        buckets = counts[1:LONGEST_BUCKET] + [sum(counts[LONGEST_BUCKET:])]
        buckets += [0] * (LONGEST_BUCKET - len(buckets))
        total = sum(buckets) or 1
        return [round(100 * c / total, 2) for c in buckets]

    categories = [str(n) for n in range(1, LONGEST_BUCKET)] + [f"{LONGEST_BUCKET}+"]
    return Bars("token lengths", categories,
                {"vocabulary": shares(stats.vocab_lengths), "as used": shares(stats.used_lengths)},
                xlabel="bytes per token", ylabel="% of tokens")
