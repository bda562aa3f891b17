"""Training a byte-level BPE tokenizer: inputs -> chunk counts -> merges -> tokenizer directory.

``train_tokenizer`` is the one entry point (the CLI's ``tokenizer train`` and the default
model's recipe both call it). With ``vocab_size`` V it learns ``V - 265`` merges on top of the
256 byte tokens; the nine special tokens take the last nine ids. If the corpus runs out of pairs
first, training stops early with a warning and the specials follow the last learned token.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glasschat.errors import UserError
from tokenizer import bpe_merge
from tokenizer.files import save_tokenizer_files
from tokenizer.patterns import DEFAULT_PATTERN, resolve_pattern
from tokenizer.specials import NUM_SPECIAL_TOKENS, special_ids
from tokenizer.train_count import PARQUET_TEXT_PER_BYTE, count_chunks, max_workers, workers_for
from tokenizer.train_inputs import Source, plan_sources, work_items
from tokenizer.train_progress import Progress
from tokenizer.train_split import ChunkSplitter, check_tiktoken_compiles

MIN_VOCAB_SIZE = 256 + NUM_SPECIAL_TOKENS
MAX_VOCAB_SIZE = 1_000_000  # token ids are kept as code points of Python strings


class TrainingWarning(UserWarning):
    """Something in the input or the run the user should know about; training went on."""


@dataclass
class TrainResult:
    out_dir: Path
    ranks: dict[bytes, int]  # the BPE tokens, ids 0..num_bpe_tokens-1
    pattern: str
    special_ids: dict[str, int]
    vocab_size: int  # BPE tokens + specials (smaller than asked if training stopped early)
    num_merges: int
    stopped_early: bool
    documents: int
    chars: int
    unique_chunks: int
    seconds_counting: float
    seconds_merging: float
    warnings: list[str] = field(default_factory=list)

    @property
    def num_bpe_tokens(self) -> int:
        return len(self.ranks)


def train_tokenizer(
    inputs: Sequence[str | os.PathLike],
    vocab_size: int,
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    pattern: str = DEFAULT_PATTERN,
    max_chars: int | None = None,
    doc_cap: int | None = None,
    split_lines: bool = False,
    column: str = "text",
    progress: bool = True,
) -> TrainResult:
    """Train on ``inputs`` (files, .jsonl, .parquet, directories, ``-``) and write the tokenizer
    to ``out_dir``; ``column`` is the JSONL field and parquet column holding the text.

    ``pattern`` is ``"nanochat"``, ``"gpt4"`` or a regex. Mistakes in the arguments or the input
    raise ``UserError``; problems that do not stop training (invalid UTF-8, an early stop) are
    issued as ``TrainingWarning`` and listed in the result.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(f"--vocab-size: must be at least {MIN_VOCAB_SIZE} "
                        f"(256 byte tokens + {NUM_SPECIAL_TOKENS} special tokens), got {vocab_size}")
    if vocab_size > MAX_VOCAB_SIZE:
        raise UserError(f"--vocab-size: at most {MAX_VOCAB_SIZE:,} is supported, got {vocab_size:,}")
    for option, value in (("--max-chars", max_chars), ("--doc-cap", doc_cap), ("--workers", workers)):
        if value is not None and value < 1:
            raise UserError(f"{option}: must be at least 1, got {value}")
    if workers is not None and workers > max_workers():
        raise UserError(f"--workers: at most {max_workers()} (4 per CPU this process may use), got {workers:,}")
    regex_text = resolve_pattern(pattern)
    check_tiktoken_compiles(regex_text)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"{out_dir}: --out must be a directory, and this is a file")
    plan = plan_sources(inputs, split_lines)
    total_bytes = sum(s.size for s in plan if isinstance(s, Source))
    if workers is None:
        text_bytes = None if "-" in plan else sum(
            s.size * (PARQUET_TEXT_PER_BYTE if s.kind == "parquet" else 1) for s in plan)
        if text_bytes is not None and max_chars is not None:
            text_bytes = min(text_bytes, max_chars)
        workers = workers_for(text_bytes)
    display = Progress(progress)
    result_warnings: list[str] = []

    def warn(message: str) -> None:
        result_warnings.append(message)
        if display.active:
            display.stream.write("\r\x1b[2K")
        warnings.warn(TrainingWarning(message), stacklevel=3)

    started = time.perf_counter()
    splitter = ChunkSplitter(regex_text)
    display.start("counting", total_bytes if "-" not in plan else None, "MB", scale=1e6)
    counted = count_chunks(
        work_items(plan, split_lines, column=column),
        splitter,
        workers=workers,
        split_lines=split_lines,
        column=column,
        doc_cap=doc_cap,
        max_chars=max_chars,
        on_progress=display.update,
        on_warning=warn,
        # what the merge loop imports is imported while the helpers finish their last items
        # (and only then: forked earlier, they would carry its pages)
        while_waiting=bpe_merge.preload,
    )
    display.finish()
    if not counted.counts:
        names = ", ".join(os.fspath(i) for i in inputs)
        raise UserError(f"{names}: no text to train on (the corpus is empty)")
    counting_done = time.perf_counter()
    unique_chunks = len(counted.counts)

    num_merges = vocab_size - MIN_VOCAB_SIZE
    display.start("merging", num_merges, "merges")
    merges = bpe_merge.learn_merges(counted.take_counts(), num_merges, on_progress=display.update, consume=True)
    display.finish()
    merging_done = time.perf_counter()

    stopped_early = len(merges) < num_merges
    if stopped_early:
        warn(f"the corpus ran out of pairs to merge after {len(merges)} merges: the vocabulary has "
             f"{256 + len(merges) + NUM_SPECIAL_TOKENS} tokens, not {vocab_size}")
    ranks = bpe_merge.merges_to_ranks(merges)
    try:
        save_tokenizer_files(out_dir, ranks, regex_text)
    except OSError as error:
        raise UserError(f"{out_dir}: cannot write the tokenizer: {error.strerror or error}") from None
    return TrainResult(
        out_dir=Path(out_dir),
        ranks=ranks,
        pattern=regex_text,
        special_ids=special_ids(len(ranks)),
        vocab_size=len(ranks) + NUM_SPECIAL_TOKENS,
        num_merges=len(merges),
        stopped_early=stopped_early,
        documents=counted.documents,
        chars=counted.chars,
        unique_chunks=unique_chunks,
        seconds_counting=counting_done - started,
        seconds_merging=merging_done - counting_done,
        warnings=result_warnings,
    )
