"""Counting chunks in parallel: read, split and count in worker processes.

Work items (see ``train_inputs``) are handed to the workers a few at a time, so input is
streamed and only a bounded number of items is in flight. Each worker adds the chunks of its
items into one counter of its own and sends it back once, at the end: this process only feeds
work and adds up one counter per worker. Sums do not depend on which worker counted what.

With ``max_chars`` the corpus has to end at the same document whatever the worker count, so
then each item's counts come back on their own and are added in input order; the item in which
the budget runs out is counted again here, up to the right document.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from glasschat.errors import UserError
from tokenizer.train_inputs import WorkItem, read_item
from tokenizer.train_split import ChunkSplitter

ITEMS_IN_FLIGHT_PER_WORKER = 2
WORKER_POLL_SECONDS = 1.0


@dataclass
class ChunkCounts:
    counts: Counter[str]
    documents: int = 0
    chars: int = 0
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _ItemDone:
    """What a worker reports after each item (``counts`` only when counts go back per item)."""

    index: int
    documents: int
    chars: int
    nbytes: int
    warnings: list[str]
    counts: Counter[str] | None = None


@dataclass(frozen=True)
class _Config:
    splitter: ChunkSplitter
    split_lines: bool
    doc_cap: int | None


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _documents(config: _Config, item: WorkItem, char_budget: int | None = None) -> tuple[list[str], list[str]]:
    """The documents of one item, capped, and warnings; with ``char_budget``, only up to the
    document that takes the running character count past it (kept, as nanochat does)."""
    docs = read_item(item, config.split_lines)
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
    return texts, docs.warnings


def _worker(config: _Config, tasks, results, per_item: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is handled once, by the parent
    counts: Counter[str] = Counter()
    try:
        while (task := tasks.get()) is not None:
            index, item = task
            texts, warnings = _documents(config, item)
            item_counts = config.splitter.count(texts) if per_item else None
            if not per_item:
                config.splitter.count(texts, counts)
            results.put(("item", _ItemDone(index, len(texts), sum(map(len, texts)), item.nbytes, warnings,
                                           item_counts)))
        results.put(("done", counts))
    except UserError as error:
        results.put(("user_error", str(error)))
    except BaseException:
        results.put(("crash", traceback.format_exc()))


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

    def note(done: _ItemDone) -> None:
        for message in done.warnings:
            file_name = message.split(": ")[0]
            if file_name not in warned_files:  # one warning per file is enough
                warned_files.add(file_name)
                total.warnings.append(message)
                on_warning(message)
        total.documents += done.documents
        total.chars += done.chars
        total.bytes_read += done.nbytes
        on_progress(total.bytes_read)

    if workers <= 1:
        for item in items:
            budget = None if max_chars is None else max_chars - total.chars
            texts, warnings = _documents(config, item, budget)
            splitter.count(texts, total.counts)
            note(_ItemDone(0, len(texts), sum(map(len, texts)), item.nbytes, warnings))
            if max_chars is not None and total.chars > max_chars:
                break
        return total

    per_item = max_chars is not None
    ordered: dict[int, tuple[WorkItem, _ItemDone]] = {}
    next_in_order = 0
    for message in _run_workers(config, items, workers, per_item):
        if isinstance(message, Counter):  # a worker's total
            if total.counts:
                total.counts.update(message)
            else:
                total.counts = message
            continue
        item, done = message
        if not per_item:
            note(done)
            continue
        # add per-item counts in input order, stopping at the document that crosses max_chars
        ordered[done.index] = (item, done)
        while next_in_order in ordered:
            item, done = ordered.pop(next_in_order)
            next_in_order += 1
            if total.chars + done.chars > max_chars:
                texts, warnings = _documents(config, item, max_chars - total.chars)
                splitter.count(texts, total.counts)
                note(_ItemDone(done.index, len(texts), sum(map(len, texts)), item.nbytes, warnings))
                return total
            total.counts.update(done.counts)
            note(done)
    return total


def _run_workers(config: _Config, items: Iterable[WorkItem], workers: int, per_item: bool) -> Iterator:
    """Feed ``items`` to ``workers`` processes; yield ``(item, _ItemDone)`` as items finish, then
    each worker's counter (empty unless counts are kept per worker). Stopping the iteration
    early stops the workers."""
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    tasks, results = context.SimpleQueue(), context.Queue()
    processes = [context.Process(target=_worker, args=(config, tasks, results, per_item), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        in_flight: dict[int, WorkItem] = {}
        iterator = enumerate(items)
        exhausted = False
        finished = 0
        while finished < workers:
            while not exhausted and len(in_flight) < workers * ITEMS_IN_FLIGHT_PER_WORKER:
                task = next(iterator, None)
                if task is None:
                    exhausted = True
                    for _ in processes:
                        tasks.put(None)
                else:
                    in_flight[task[0]] = task[1]
                    tasks.put(task)
            kind, payload = _receive(results, processes)
            if kind == "item":
                yield in_flight.pop(payload.index), payload
            elif kind == "done":
                finished += 1
                yield payload
            elif kind == "user_error":
                raise UserError(payload)
            else:
                raise RuntimeError(f"a counting worker failed:\n{payload}")
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()


def _receive(results, processes):
    """The next message from the workers; an error if one of them died without a word."""
    while True:
        try:
            return results.get(timeout=WORKER_POLL_SECONDS)
        except queue.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a counting worker died (exit code {dead[0].exitcode})") from None
