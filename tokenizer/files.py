"""The on-disk tokenizer format: a directory holding

- ``tokenizer.tiktoken`` — tiktoken's standard ranks file: one ``base64(token bytes) rank``
  line per BPE token, ranks ``0..n-1`` (readable by ``tiktoken.load.load_tiktoken_bpe``);
- ``tokenizer_meta.json`` — ``{"format", "pattern", "num_bpe_tokens", "special_tokens"}``,
  the split regex and the special-token ids (``n..n+8``).

Both files are written atomically, the ranks first, so a reader never pairs new metadata
with old ranks.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError
from glasschat.loading import LoadError, read_bytes, read_json
from tokenizer.specials import special_ids

RANKS_FILE = "tokenizer.tiktoken"
META_FILE = "tokenizer_meta.json"
FORMAT = "glasschat-tokenizer/1"
MAX_RANKS_BYTES = 256 * 2**20  # ~40 bytes a token: millions of tokens


class TokenizerFileError(UserError):
    """A tokenizer directory that is missing, incomplete or inconsistent."""


def save_tokenizer_files(directory: str | Path, ranks: dict[bytes, int], pattern: str) -> None:
    """Write ``ranks`` (token bytes -> rank, ranks ``0..n-1``) and ``pattern`` to ``directory``."""
    directory = Path(directory)
    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    if [rank for _, rank in by_rank] != list(range(len(by_rank))):
        raise ValueError("ranks must be exactly 0..n-1")
    lines = "".join(f"{base64.b64encode(token).decode('ascii')} {rank}\n" for token, rank in by_rank)
    meta = {
        "format": FORMAT,
        "pattern": pattern,
        "num_bpe_tokens": len(by_rank),
        "special_tokens": special_ids(len(by_rank)),
    }
    atomic_write_text(directory / RANKS_FILE, lines)
    atomic_write_text(directory / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def load_tokenizer_files(directory: str | Path) -> tuple[dict[bytes, int], str, dict[str, int]]:
    """Read a tokenizer directory: ``(ranks, pattern, special token ids)``; clear errors if bad."""
    directory = Path(directory)
    ranks_path, meta_path = directory / RANKS_FILE, directory / META_FILE
    for path in (ranks_path, meta_path):
        if not path.is_file():
            raise TokenizerFileError(f"{path}: missing (a tokenizer directory holds {RANKS_FILE} and {META_FILE})")
    try:
        meta = read_json(meta_path)
    except LoadError as error:
        raise TokenizerFileError(str(error)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TokenizerFileError(f"{meta_path}: field 'format' must be {FORMAT!r}")
    pattern = meta.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise TokenizerFileError(f"{meta_path}: field 'pattern' must be a non-empty string")

    ranks: dict[bytes, int] = {}
    try:
        data = read_bytes(ranks_path, MAX_RANKS_BYTES)
    except LoadError as error:
        raise TokenizerFileError(str(error)) from None
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token_b64, rank_text = line.split()
            if len(rank_text) > 12:
                raise ValueError("rank too long")
            token, rank = base64.b64decode(token_b64, validate=True), int(rank_text)
        except (ValueError, binascii.Error):
            raise TokenizerFileError(f"{ranks_path}: line {line_no}: expected 'BASE64 RANK'") from None
        if token in ranks:
            raise TokenizerFileError(f"{ranks_path}: line {line_no}: token listed twice")
        ranks[token] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerFileError(f"{ranks_path}: ranks must be exactly 0..{len(ranks) - 1}")

    expected = special_ids(len(ranks))
    if meta.get("num_bpe_tokens") != len(ranks) or meta.get("special_tokens") != expected:
        raise TokenizerFileError(
            f"{meta_path}: fields 'num_bpe_tokens'/'special_tokens' do not match {RANKS_FILE} "
            f"({len(ranks)} BPE tokens, so specials must take ids {len(ranks)}..{len(ranks) + 8})"
        )
    return ranks, pattern, expected
