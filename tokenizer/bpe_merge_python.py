"""The BPE merge loop in Python: what ``tokenizer.bpe_merge`` runs where the compiled loop
(``_bpe_merge.c``) was not built, because no C compiler was found at install. Same merges, 6-7x
the time on a 32k vocabulary: tens of microseconds of bookkeeping per merge add up.

How it stays as fast as Python allows:

- Every unique chunk is kept once, with its count, as a ``str`` whose code points are token
  ids: merging a pair in a chunk is one ``str.replace`` (non-overlapping, left to right, in C).
  A merge that touches many chunks joins them with a separator that is never a token, replaces
  once in the joined string and splits it again: no Python loop over the chunks; the chunks are
  held in a numpy object array, so taking and putting back thousands of them is one step each.
- A merge changes counts only next to the occurrences it merged: each occurrence makes a pair
  (x, new) out of (x, left) and a pair (new, y) out of (right, y). Those are read off the
  rewritten chunks — with a few numpy operations over all of them when a merge touched many
  (``bpe_pair_stats``), by a short loop when it touched a few — so the counts stay exact.
- An index from each pair to the chunks holding it is made when the pair first appears (pairs
  only appear when one of their tokens is made); chunks that lost the pair since are skipped
  when it is merged. The max-heap is lazy: an entry whose count fell since it was pushed goes
  back with the current count when it surfaces.
- Pairs too rare to ever be merged are not indexed: a pair enters the heap only if its count
  is at least a threshold; the others wait in a compact pool with their counts at creation
  (upper bounds), and when the heap runs dry above the threshold, the threshold drops and the
  pool's pairs above it join the heap, to be counted exactly when they surface. The last merges
  of a large run have counts in the tens, while hundreds of thousands of pairs never get past a
  handful.
- A chunk of thousands of tokens is merged position by position instead (``bpe_long_word``),
  so a huge chunk costs about its length in all, not its length once per merge.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np

from tokenizer.bpe_long_word import PAIR_SHIFT, LongWord
from tokenizer.bpe_pair_stats import SEPARATOR, PairStats, all_pairs, pairs_with

LONG_WORD = 8192  # chunks longer than this (in bytes) are merged position by position
BULK_MIN = 64  # merges touching at least this many chunks find new pairs with numpy
# The count of the last merge falls about as 8.6 * corpus bytes / vocab**1.6 (measured here on
# code, man pages and prose, 10-100 MB, vocab 4k-32k). The first threshold sits well below it,
# so that the pool is rarely needed; if the heap runs dry above the threshold, it drops.
LAST_COUNT_SCALE = 8.6
THRESHOLD_MARGIN = 2
THRESHOLD_DROP = 8
POOL_FLUSH = 50_000

_RIGHT = (1 << PAIR_SHIFT) - 1
_COUNT_SHIFT = 2 * PAIR_SHIFT  # heap entry: -count << 42 | pair key (smaller pair first on ties)
_KEY = (1 << _COUNT_SHIFT) - 1
_NO_WORDS: list[int] = []


def byte_words(chunk_counts: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    """Chunks as strings of byte values (code points 0..255) with their counts: those of up to
    ``LONG_WORD`` bytes (a numpy object array and an int64 array), then the longer ones (lists).
    Chunks of one byte have no pairs: left out."""
    # an ASCII string already is its own bytes, one code point each
    words = [c if c.isascii() else c.encode("utf-8").decode("latin-1") for c in chunk_counts]
    counts = np.fromiter(chunk_counts.values(), dtype=np.int64, count=len(words))
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    as_array = np.empty(len(words), dtype=object)
    as_array[:] = words
    del words
    short = (lengths > 1) & (lengths <= LONG_WORD)
    long = lengths > LONG_WORD
    return as_array[short], counts[short], as_array[long].tolist(), counts[long].tolist()


def learn_merges(
    chunk_counts: Mapping[str, int],
    num_merges: int,
    on_progress: Callable[[int], None] = lambda merges_done: None,
    consume: bool = False,
) -> list[tuple[int, int]]:
    """``tokenizer.bpe_merge.learn_merges``, in Python."""
    loop = _MergeLoop(chunk_counts, num_merges)
    if consume:
        chunk_counts.clear()
    del chunk_counts  # a counter passed without a reference kept is freed here
    return loop.run(num_merges, on_progress)


def _overlapping(word: str, token: str) -> int:
    """How many times ``token`` follows itself in ``word`` (a run of n holds n - 1 pairs)."""
    # between two adjacent copies of the token, split() leaves an empty string
    return word.split(token)[1:-1].count("")


class _MergeLoop:
    def __init__(self, chunk_counts: Mapping[str, int], num_merges: int):
        self.words, self.weights_array, long_words, self.long_weights = byte_words(chunk_counts)
        self.long_words = [LongWord(word.encode("latin-1")) for word in long_words]
        self.weights = self.weights_array.tolist()  # a list for the per-chunk loops: faster to index
        words = self.words.tolist()
        self.counts: dict[int, int] = {}  # pair -> count, for the pairs in the heap
        self.unsure: set[int] = set()  # pairs whose count is only an upper bound
        self.where: dict[int, list[int] | np.ndarray] = {}  # pair -> chunks that may hold it
        self.long_index: dict[int, set[int]] = {}  # pair -> long words that may hold it
        self.heap: list[int] = []
        self.pool: list[PairStats] = []  # pairs below the threshold, counts at creation
        self.pool_small: tuple[list[int], list[int], list[list[int]]] = ([], [], [])

        stats = all_pairs(words, self.weights_array)
        extra: Counter[int] = Counter()
        for index, (word, weight) in enumerate(zip(self.long_words, self.long_weights)):
            for key, n in word.pair_counts().items():
                extra[key] += n * weight
                self.long_index.setdefault(key, set()).add(index)
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        corpus_bytes = int(lengths @ self.weights_array) + sum(
            len(w.tokens) * n for w, n in zip(self.long_words, self.long_weights))
        last_count = LAST_COUNT_SCALE * corpus_bytes / (256 + num_merges) ** 1.6
        self.threshold = max(1, int(last_count / THRESHOLD_MARGIN))
        self._admit(stats, extra)

    # -- the loop ------------------------------------------------------------------------

    def run(self, num_merges: int, on_progress: Callable[[int], None]) -> list[tuple[int, int]]:
        merges: list[tuple[int, int]] = []
        heap, counts, unsure = self.heap, self.counts, self.unsure
        while len(merges) < num_merges:
            if not heap or -(heap[0] >> _COUNT_SHIFT) < self.threshold:
                if not self._lower_threshold():
                    break  # no pairs left anywhere
                continue
            entry = heapq.heappop(heap)
            queued, key = -(entry >> _COUNT_SHIFT), entry & _KEY
            count = counts.get(key)
            if count is not None and key in unsure:
                count = counts[key] = self._recount(key)
                unsure.discard(key)
            if not count:
                counts.pop(key, None)
                self.where.pop(key, None)
                continue
            if count != queued:  # stale: the pair lost occurrences since it was queued
                heapq.heappush(heap, (-count << _COUNT_SHIFT) | key)
                continue
            self._merge(key, 256 + len(merges))
            merges.append((key >> PAIR_SHIFT, key & _RIGHT))
            if len(merges) % 256 == 0:
                on_progress(len(merges))
        on_progress(len(merges))
        return merges

    def _holding(self, key: int) -> list[int]:
        """The chunks that hold the pair now (its index may list chunks that lost it)."""
        candidates = self.where.get(key)
        if candidates is None or not len(candidates):
            return []
        ids = candidates if type(candidates) is list else candidates.tolist()
        pair = chr(key >> PAIR_SHIFT) + chr(key & _RIGHT)
        words = self.words
        return [i for i in ids if pair in words[i]]

    def _recount(self, key: int) -> int:
        """The pair's exact count, from the chunks and long words that hold it."""
        left, right = key >> PAIR_SHIFT, key & _RIGHT
        ids = self._holding(key)
        self.where[key] = ids
        words, weights = self.words, self.weights
        if left == right:  # overlapping occurrences count: "aaa" holds ("a", "a") twice
            token = chr(left)
            count = sum([weights[i] * _overlapping(words[i], token) for i in ids])
        else:
            pair = chr(left) + chr(right)
            count = sum([weights[i] * words[i].count(pair) for i in ids])
        for index in self.long_index.get(key, ()):
            count += self.long_words[index].count(key) * self.long_weights[index]
        return count

    def _merge(self, key: int, new: int) -> None:
        left, right = key >> PAIR_SHIFT, key & _RIGHT
        pair, new_char = chr(left) + chr(right), chr(new)
        words = self.words
        candidates = self.where.pop(key, _NO_WORDS)
        bulk = len(candidates) >= BULK_MIN
        if bulk:
            # chunks that lost the pair since they were indexed come back unchanged, and
            # without the new token they add no pairs below
            ids = np.asarray(candidates, dtype=np.int32)
            joined = SEPARATOR + SEPARATOR.join(words[ids].tolist()).replace(pair, new_char) + SEPARATOR
            merged = np.empty(len(ids), dtype=object)
            merged[:] = joined[1:-1].split(SEPARATOR)
            words[ids] = merged
        else:
            chunks, merged = [], []
            for i in candidates if type(candidates) is list else candidates.tolist():
                word = words[i]
                replaced = word.replace(pair, new_char)
                if replaced is not word:  # the index may list chunks that lost the pair since
                    words[i] = replaced
                    chunks.append(i)
                    merged.append(replaced)
        del self.counts[key]

        extra: Counter[int] = Counter()  # pairs created in long words
        if self.long_words:
            removed: Counter[int] = Counter()
            for index in self.long_index.pop(key, ()):
                weight = self.long_weights[index]
                for other, n in self.long_words[index].merge(key, new).items():
                    if n > 0:
                        extra[other] += n * weight
                        self.long_index.setdefault(other, set()).add(index)
                    else:
                        removed[other] -= n * weight
            self._forget(removed.items())

        if bulk:
            created, lost_keys, lost_counts = pairs_with(new, (left, right), joined, ids, self.weights_array)
            self._forget(zip(lost_keys.tolist(), lost_counts.tolist()))
            self._admit(created, extra)
        else:
            self._admit_small(self._pairs_with_small(new, left, right, chunks, merged), extra)

    def _forget(self, removed) -> None:
        """Take lost occurrences off the counts of the pairs in the heap."""
        counts = self.counts
        for key, n in removed:
            if key in counts:
                counts[key] -= n

    def _pairs_with_small(self, new: int, left: int, right: int, chunks: list[int], merged: list[str]) -> dict:
        """``pairs_with`` for a few chunks, by hand: pair -> [count, chunks]; lost occurrences
        go straight to the counts."""
        found: dict[int, list] = {}
        counts, weights = self.counts, self.weights
        new_char, new_left = chr(new), new << PAIR_SHIFT
        right_left, back_to_back = right << PAIR_SHIFT, right << PAIR_SHIFT | left
        for i, word in zip(chunks, merged):
            weight = weights[i]
            last = len(word) - 1
            j = word.find(new_char)
            while j >= 0:
                made = []  # (pair made, pair it took an occurrence from)
                if j:
                    x = ord(word[j - 1])
                    made.append((x << PAIR_SHIFT | new, back_to_back if x == new else x << PAIR_SHIFT | left))
                # (new, new) is counted once, as a left pair
                if j < last and (y := ord(word[j + 1])) != new:
                    made.append((new_left | y, right_left | y))
                for key, lost in made:
                    entry = found.get(key)
                    if entry is None:
                        found[key] = [weight, [i]]
                    else:
                        entry[0] += weight
                        if entry[1][-1] != i:
                            entry[1].append(i)
                    if lost in counts:
                        counts[lost] -= weight
                j = word.find(new_char, j + 1)
        return found

    # -- admission: heap or pool -----------------------------------------------------------

    def _track(self, key: int, count: int, chunks, sure: bool = True) -> None:
        self.where[key] = chunks
        self.counts[key] = count
        if not sure:
            self.unsure.add(key)
        heapq.heappush(self.heap, (-count << _COUNT_SHIFT) | key)

    def _admit(self, stats: PairStats, extra: Counter[int]) -> None:
        """Track the pairs of ``stats`` (plus counts from long words) at or above the threshold;
        pool the rest."""
        counts = stats.counts
        if extra:
            counts = counts.copy()
            position = {k: n for n, k in enumerate(stats.keys.tolist())}
            for key in list(extra):
                n = position.get(key)
                if n is not None:
                    counts[n] += extra.pop(key)
            stats = PairStats(stats.keys, counts, stats.starts, stats.chunks)
        tracked = counts >= self.threshold
        keys = stats.keys
        for n in np.flatnonzero(tracked).tolist():
            self._track(int(keys[n]), int(counts[n]), stats.where(n))
        if not tracked.all():
            self.pool.append(stats.select(~tracked))
        if extra:
            self._admit_small({}, extra)  # pairs found only in long words

    def _admit_small(self, found: dict, extra: Counter[int]) -> None:
        pool_keys, pool_counts, pool_chunks = self.pool_small
        for key in extra:
            found.setdefault(key, [0, []])[0] += extra[key]
        for key, (count, chunks) in found.items():
            if count >= self.threshold:
                self._track(key, count, chunks)
            else:
                pool_keys.append(key)
                pool_counts.append(count)
                pool_chunks.append(chunks)
        if len(pool_keys) >= POOL_FLUSH:
            self._flush_small_pool()

    def _flush_small_pool(self) -> None:
        keys, counts, chunks = self.pool_small
        if not keys:
            return
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        flat = np.fromiter((i for c in chunks for i in c), dtype=np.int32, count=int(lengths.sum()))
        self.pool.append(PairStats(np.array(keys, dtype=np.int64), np.array(counts, dtype=np.int64),
                                   np.concatenate(([0], np.cumsum(lengths))), flat))
        self.pool_small = ([], [], [])

    def _lower_threshold(self) -> bool:
        """Lower the threshold and move the pool's pairs above it to the heap (their counts at
        creation are only upper bounds: they are counted again when they surface); False when
        there is nothing left to merge."""
        self._flush_small_pool()
        if self.threshold == 1:
            return bool(self.heap)
        top = -(self.heap[0] >> _COUNT_SHIFT) if self.heap else 0
        self.threshold = max(1, min(self.threshold // THRESHOLD_DROP, max(top, 1)))
        pool, self.pool = self.pool, []
        for stats in pool:
            rising = stats.counts >= self.threshold
            for n in np.flatnonzero(rising).tolist():
                self._track(int(stats.keys[n]), int(stats.counts[n]), stats.where(n), sure=False)
            if not rising.all():
                self.pool.append(stats.select(~rising))
        return True
