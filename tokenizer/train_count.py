"""Counting chunks in parallel: read, split and count in this process and ``workers - 1``
helper processes.

Work items (see ``train_inputs``) are handed to the helpers a few at a time, so input is
streamed and only a bounded number of items is in flight; this process counts an item itself
whenever the helpers have enough queued. Each process adds the chunks of its items into one
counter of its own, and each helper sends its counter back once, at the end. Sums do not depend
on which process counted what.

With ``max_chars`` the corpus has to end at the same document whatever the worker count, so
then each item's counts are kept apart and added in input order; the item in which the budget
runs out is counted again, up to the right document.
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

    def take_counts(self) -> Counter[str]:
        """The counter, which this object lets go of (it is the largest thing in memory)."""
        counts, self.counts = self.counts, Counter()
        return counts


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
    column: str = "text"


# A helper process pays for itself only on enough text: it has to start, and at the end its
# counter (100k+ distinct chunks) is handed back and added, 0.1-0.3 s. Measured here with the
# compiled split: 40 MB counted in 0.4-0.6 s by one process or by two; 537 MB in 10.0 s by one,
# 5.9 s by two. The split in Python is about 4x slower, so helpers pay off sooner.
BYTES_PER_WORKER = 64 << 20
BYTES_PER_WORKER_PYTHON_SPLIT = 8 << 20
# a parquet shard's text is about this many times its size on disk (compressed pages); the
# footers that say exactly are read only once the helpers are running, to keep pyarrow out of them
PARQUET_TEXT_PER_BYTE = 3


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def workers_for(text_bytes: int | None) -> int:
    """Counting processes for about ``text_bytes`` of text (None: unknown, as from stdin): one per
    ``BYTES_PER_WORKER``, at most one per CPU."""
    from tokenizer.train_split import compiled_count_chunks

    if text_bytes is None:
        return default_workers()
    per_worker = BYTES_PER_WORKER if compiled_count_chunks is not None else BYTES_PER_WORKER_PYTHON_SPLIT
    return max(1, min(default_workers(), -(-text_bytes // per_worker)))


def max_workers() -> int:
    """The most counting processes a run may start: counting is CPU-bound, so more processes than
    CPUs only cost memory (each holds its own counts); a few per CPU stay allowed."""
    return 4 * default_workers()


def _documents(config: _Config, item: WorkItem, char_budget: int | None = None) -> tuple[list[str], list[str]]:
    """The documents of one item, capped, and warnings; with ``char_budget``, only up to the
    document that takes the running character count past it (kept, as nanochat does)."""
    docs = read_item(item, config.split_lines, config.column)
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
    _die_with_parent()
    counts: Counter[str] = Counter()
    try:
        while (task := tasks.get()) is not None:
            index, item = task
            results.put(("item", _count_one(config, index, item, counts, per_item)))
        results.put(("done", counts))
    except UserError as error:
        results.put(("user_error", str(error)))
    except BaseException:
        results.put(("crash", traceback.format_exc()))


def _count_one(config: _Config, index: int, item: WorkItem, counts: Counter[str], per_item: bool) -> _ItemDone:
    """Count one item into ``counts``, or into a counter of its own when ``per_item``."""
    texts, warnings = _documents(config, item)
    own = config.splitter.count(texts) if per_item else None
    if not per_item:
        config.splitter.count(texts, counts)
    return _ItemDone(index, len(texts), sum(map(len, texts)), item.nbytes, warnings, own)


def count_chunks(
    items: Iterable[WorkItem],
    splitter: ChunkSplitter,
    *,
    workers: int,
    split_lines: bool = False,
    column: str = "text",
    doc_cap: int | None = None,
    max_chars: int | None = None,
    on_progress: Callable[[int], None] = lambda nbytes: None,
    on_warning: Callable[[str], None] = lambda message: None,
    while_waiting: Callable[[], None] = lambda: None,
) -> ChunkCounts:
    """Count the chunks of every document in ``items``; ``on_progress`` gets bytes read so far.

    ``while_waiting`` runs once this process has counted its last item and the helpers are still
    counting theirs: work for the next phase that would otherwise wait for them."""
    config = _Config(splitter, split_lines, doc_cap, column)
    total = ChunkCounts(Counter())
    per_item = max_chars is not None
    warned_files: set[str] = set()
    ordered: dict[int, tuple[WorkItem, _ItemDone]] = {}
    next_in_order = 0

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

    def finished(item: WorkItem, done: _ItemDone) -> bool:
        """Account for a counted item; True once ``max_chars`` is reached."""
        nonlocal next_in_order
        if not per_item:
            note(done)
            return False
        # add per-item counts in input order, up to the document that crosses max_chars
        ordered[done.index] = (item, done)
        while next_in_order in ordered:
            item, done = ordered.pop(next_in_order)
            next_in_order += 1
            if total.chars + done.chars > max_chars:
                texts, warnings = _documents(config, item, max_chars - total.chars)
                splitter.count(texts, total.counts)
                note(_ItemDone(done.index, len(texts), sum(map(len, texts)), item.nbytes, warnings))
                return True
            total.counts.update(done.counts)
            note(done)
        return False

    def absorb(counts: Counter[str]) -> None:
        if len(counts) > len(total.counts):  # add the smaller counter into the larger
            counts, total.counts = total.counts, counts
        total.counts.update(counts)

    with _Helpers(config, workers - 1, per_item) as helpers:
        for index, item in enumerate(items):
            if helpers.wants_work():
                helpers.submit(index, item)
            elif finished(item, _count_one(config, index, item, total.counts, per_item)):
                return total
            for message in helpers.poll():
                if isinstance(message, Counter):
                    absorb(message)
                elif finished(*message):
                    return total
        helpers.close_tasks()
        while_waiting()
        for message in helpers.finish():
            if isinstance(message, Counter):
                absorb(message)
            elif finished(*message):
                return total
    return total


def _die_with_parent() -> None:
    """Have Linux send this helper SIGTERM when its parent dies, however it dies: a SIGTERM or
    SIGKILL ends the parent without running ``_Helpers.__exit__``, and a helper left behind
    would wait for work forever."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before the request took effect
        os._exit(1)


class _Helpers:
    """Helper processes counting the items handed to them (none when ``count`` is 0)."""

    def __init__(self, config: _Config, count: int, per_item: bool):
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        # a Queue, not a SimpleQueue: put() hands an item to a feeder thread and returns, so this
        # process goes on counting while an item holding text (parquet, stdin) is still being
        # written to a helper busy with its previous one
        self.tasks, self.results = context.Queue(), context.Queue()
        args = (config, self.tasks, self.results, per_item)
        self.processes = [context.Process(target=_worker, args=args, daemon=True) for _ in range(count)]
        self.outstanding: dict[int, WorkItem] = {}
        self.running = count

    def __enter__(self) -> _Helpers:
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join()

    def wants_work(self) -> bool:
        return len(self.outstanding) < ITEMS_IN_FLIGHT_PER_WORKER * self.running

    def submit(self, index: int, item: WorkItem) -> None:
        self.outstanding[index] = item
        self.tasks.put((index, item))

    def poll(self) -> Iterator:
        """Messages already waiting: ``(item, _ItemDone)`` per counted item."""
        while self.running:
            try:
                message = self.results.get_nowait()
            except queue.Empty:
                return
            yield self._unpack(message)

    def close_tasks(self) -> None:
        """Tell the helpers there is no more work."""
        for _ in range(self.running):
            self.tasks.put(None)

    def finish(self) -> Iterator:
        """Yield what the helpers still report, ending with each helper's counter."""
        while self.running:
            yield self._unpack(self._receive())

    def _unpack(self, message):
        kind, payload = message
        if kind == "item":
            return self.outstanding.pop(payload.index), payload
        if kind == "done":
            self.running -= 1
            return payload
        if kind == "user_error":
            raise UserError(payload)
        raise RuntimeError(f"a counting worker failed:\n{payload}")

    def _receive(self):
        """The next message; an error if a helper died without a word."""
        while True:
            try:
                return self.results.get(timeout=WORKER_POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in self.processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a counting worker died (exit code {dead[0].exitcode})") from None
