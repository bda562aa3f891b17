"""Counting chunks in parallel: read, split and count in a pool of worker processes.

Work items (see ``train_inputs``) are handed out a few at a time, so input is streamed and only
a bounded number of items is in flight; each worker returns the chunk counts of one item and
this process adds them up in input order. Sums do not depend on the order or the number of
workers, and ``max_chars`` cuts the corpus at the same document whatever the worker count.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from glasschat.errors import UserError
from tokenizer.train_inputs import WorkItem, read_item
from tokenizer.train_split import ChunkSplitter

ITEMS_IN_FLIGHT_PER_WORKER = 2


@dataclass
class ChunkCounts:
    counts: Counter[str]
    documents: int = 0
    chars: int = 0
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _ItemResult:
    counts: Counter[str]
    documents: int
    chars: int
    nbytes: int
    warnings: list[str]
    error: str | None = None


@dataclass(frozen=True)
class _Config:
    splitter: ChunkSplitter
    split_lines: bool
    doc_cap: int | None


_config: _Config | None = None  # set in each worker by _init_worker


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _init_worker(config: _Config) -> None:
    global _config
    _config = config
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is handled once, by the parent


def _count_in_worker(item: WorkItem) -> _ItemResult:
    return _count_item(_config, item)


def _count_item(config: _Config, item: WorkItem, char_budget: int | None = None) -> _ItemResult:
    """Read, split and count one item; with ``char_budget``, stop after the document that
    takes the running character count past it (that document is kept, as nanochat does)."""
    try:
        docs = read_item(item, config.split_lines)
    except UserError as error:
        return _ItemResult(Counter(), 0, 0, item.nbytes, [], error=str(error))
    texts = docs.texts
    if config.doc_cap is not None:
        cap = config.doc_cap
        texts = [t[:cap] if len(t) > cap else t for t in texts]
    if char_budget is not None:
        chars = 0
        for i, text in enumerate(texts):
            chars += len(text)
            if chars > char_budget:
                texts = texts[: i + 1]
                break
    return _ItemResult(config.splitter.count(texts), len(texts), sum(map(len, texts)), item.nbytes, docs.warnings)


def count_chunks(
    items: Iterable[WorkItem],
    splitter: ChunkSplitter,
    *,
    workers: int,
    split_lines: bool = False,
    doc_cap: int | None = None,
    max_chars: int | None = None,
    on_progress: Callable[[int], None] = lambda nbytes: None,
    on_warning: Callable[[str], None] = lambda message: None,
) -> ChunkCounts:
    """Count the chunks of every document in ``items``; ``on_progress`` gets bytes read so far."""
    config = _Config(splitter, split_lines, doc_cap)
    total = ChunkCounts(Counter())
    warned_files: set[str] = set()

    def add(result: _ItemResult) -> None:
        if result.error:
            raise UserError(result.error)
        for message in result.warnings:
            file_name = message.split(": ")[0]
            if file_name not in warned_files:  # one warning per file is enough
                warned_files.add(file_name)
                total.warnings.append(message)
                on_warning(message)
        if total.counts:
            total.counts.update(result.counts)
        else:
            total.counts = result.counts
        total.documents += result.documents
        total.chars += result.chars
        total.bytes_read += result.nbytes
        on_progress(total.bytes_read)

    def add_or_stop(item: WorkItem, result: _ItemResult) -> bool:
        """Add an item's counts; False once ``max_chars`` is reached."""
        if max_chars is not None and total.chars + result.chars > max_chars:
            # the budget runs out inside this item: count it again, up to the right document
            add(_count_item(config, item, char_budget=max_chars - total.chars))
            return False
        add(result)
        return True

    if workers <= 1:
        for item in items:
            if not add_or_stop(item, _count_item(config, item)):
                break
        return total

    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        pending: deque = deque()
        iterator = iter(items)

        def submit() -> None:
            item = next(iterator, None)
            if item is not None:
                pending.append((item, pool.apply_async(_count_in_worker, (item,))))

        for _ in range(workers * ITEMS_IN_FLIGHT_PER_WORKER):
            submit()
        while pending:
            item, async_result = pending.popleft()
            if not add_or_stop(item, async_result.get()):
                break
            submit()
    return total
