"""Counting pairs over many chunks at once with numpy: the bulk steps of the merge loop.

Chunks are ``str`` whose code points are token ids. Joined with a separator and viewed as a
``uint32`` array, the pairs of thousands of chunks are counted — weighted by each chunk's count —
and indexed to the chunks that hold them in a few array operations, instead of a Python loop
over every chunk. Used to build the first pair index, and after each merge that touched many
chunks to find the pairs holding the new token.

A pair is the integer key ``left << 21 | right``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenizer.bpe_long_word import PAIR_SHIFT

SEPARATOR = chr(0x10FFFF)  # never a token id
_SEP = 0x10FFFF


@dataclass
class PairStats:
    """Pairs, their weighted counts, and the chunks holding each one:
    ``chunks[starts[k]:starts[k + 1]]`` (ascending chunk indices) for pair ``keys[k]``."""

    keys: np.ndarray  # int64
    counts: np.ndarray  # int64
    starts: np.ndarray  # int64, len(keys) + 1
    chunks: np.ndarray  # int32

    def select(self, mask: np.ndarray) -> PairStats:
        """The pairs where ``mask`` is true."""
        lengths = np.diff(self.starts)[mask]
        take = np.repeat(mask, np.diff(self.starts))
        return PairStats(self.keys[mask], self.counts[mask], np.concatenate(([0], np.cumsum(lengths))),
                         self.chunks[take])

    def where(self, k: int) -> np.ndarray:
        return self.chunks[self.starts[k] : self.starts[k + 1]]


def _as_array(joined: str) -> np.ndarray:
    """Words joined with a separator before, between and after them, as uint32."""
    return np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def all_pairs(words: list[str], weights: np.ndarray) -> PairStats:
    """Every pair of every word (words hold byte values only: code points below 256)."""
    data = np.frombuffer("".join(words).encode("latin-1"), dtype=np.uint8)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    inside = np.ones(max(len(data) - 1, 0), dtype=bool)
    inside[np.cumsum(lengths)[:-1] - 1] = False  # no pair across the end of a word
    key16 = ((data[:-1].astype(np.uint16) << 8) | data[1:])[inside]
    word_of = np.repeat(np.arange(len(words), dtype=np.int32), lengths - 1)
    counts = np.bincount(key16, weights=weights[word_of], minlength=1 << 16).astype(np.int64)
    # a stable sort on 16 bits is a radix sort: pairs grouped, words ascending within a pair
    order = np.argsort(key16, kind="stable")
    key16, word_of = key16[order], word_of[order]
    del order
    first = np.ones(len(key16), dtype=bool)
    first[1:] = (key16[1:] != key16[:-1]) | (word_of[1:] != word_of[:-1])  # a word listed once
    key16, word_of = key16[first], word_of[first]
    starts = np.flatnonzero(np.diff(key16.astype(np.int32), prepend=-1, append=-1))
    present = key16[starts[:-1]].astype(np.int64)
    keys = ((present >> 8) << PAIR_SHIFT) | (present & 255)
    return PairStats(keys, counts[present], starts, word_of)


def pairs_with(new: int, merged_pair: tuple[int, int], joined: str, word_ids: np.ndarray,
               weights: np.ndarray) -> tuple[PairStats, np.ndarray, np.ndarray]:
    """The pairs holding token ``new`` in the chunks ``word_ids``, which just had ``merged_pair``
    merged into it (``joined``: those chunks joined with ``SEPARATOR`` before, between and
    after them); and the pairs that merge took occurrences from, with how many (weighted)."""
    a, b = merged_pair
    array = _as_array(joined)
    separators = np.flatnonzero(array == _SEP)
    at = np.flatnonzero(array == new)
    local = np.searchsorted(separators, at) - 1  # which word each occurrence is in
    x, y = array[at - 1].astype(np.int64), array[at + 1].astype(np.int64)
    weight = weights[word_ids[local]]
    has_left = x != _SEP
    has_right = (y != _SEP) & (y != new)  # (new, new) is counted once, as a left pair
    xl, yr = x[has_left], y[has_right]
    # Each occurrence with a left neighbour x made (x, new) and took one (x, a) — or (b, a)
    # when x is new too (back to back); one with a right neighbour y made (new, y) and took
    # (b, y). Tag the four kinds in bits 21-22 of a compact key, sort once, sum per key.
    compact = np.concatenate((xl, yr | (1 << 21), np.where(xl == new, b, xl) | (2 << 21), yr | (3 << 21)))
    local = np.concatenate((local[has_left], local[has_right]))
    local = np.concatenate((local, local))
    weight = np.concatenate((weight[has_left], weight[has_right]))
    weight = np.concatenate((weight, weight))
    combined = (compact << 32) | local
    order = np.argsort(combined)
    combined, order_weight = combined[order], weight[order]
    compact = combined >> 32
    group = np.flatnonzero(np.diff(compact, prepend=-1))
    totals = np.add.reduceat(order_weight, group) if len(group) else np.zeros(0, np.int64)
    tag, other = compact[group] >> 21, compact[group] & ((1 << 21) - 1)
    made = int(np.searchsorted(tag, 2))  # groups before this one are new pairs
    made_keys = np.where(tag[:made] == 0, (other[:made] << PAIR_SHIFT) | new, (new << PAIR_SHIFT) | other[:made])
    lost_keys = np.where(tag[made:] == 2, (other[made:] << PAIR_SHIFT) | a, (b << PAIR_SHIFT) | other[made:])
    # the chunks holding each new pair, each listed once
    end = group[made] if made < len(group) else len(combined)
    first = np.diff(combined[:end], prepend=-1) != 0
    chunks = word_ids[(combined[:end] & 0xFFFFFFFF)[first]]
    starts = np.append(np.cumsum(first)[group[:made]] - 1, len(chunks))
    return PairStats(made_keys, totals[:made], starts, chunks), lost_keys, totals[made:]
