"""A chunk too long to rewrite whole at every merge: a linked list of tokens with, for each
pair, the positions where it was made.

Short chunks are merged by ``str.replace``, which costs the chunk's length each time. A chunk of
a million letters (a DNA sequence, a CJK paragraph without punctuation, a run of spaces) could be
touched by thousands of merges, so its merges cost the number of occurrences instead, and over
the whole training about its length in total. Everything is kept in 4-byte arrays.

A pair's position list is written once, when the pair first appears (pairs only appear when
one of their tokens is made), and is not cleaned up afterwards: an entry is still an occurrence
if the tokens there are still the pair's, which is checked when the list is read.
"""

from __future__ import annotations

from array import array
from collections import Counter

import numpy as np

PAIR_SHIFT = 21  # pair key = left << 21 | right; token ids stay below 2**21


class LongWord:
    __slots__ = ("tokens", "next", "prev", "positions")

    def __init__(self, data: bytes):
        n = len(data)
        byte_values = np.frombuffer(data, dtype=np.uint8)
        # (an array built from bytes would take them as raw 4-byte ints)
        self.tokens = array("i", byte_values.astype(np.int32).tobytes())  # -1: absorbed on the left
        self.next = array("i", range(1, n + 1))
        self.next[-1] = -1
        self.prev = array("i", range(-1, n - 1))
        keys = (byte_values[:-1].astype(np.int64) << PAIR_SHIFT) | byte_values[1:]
        order = np.argsort(keys, kind="stable")  # positions ascending within each pair
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.diff(sorted_keys, prepend=-1))
        groups = np.split(order.astype(np.int32), starts[1:])
        self.positions: dict[int, array] = {
            int(sorted_keys[s]): array("i", g.tobytes()) for s, g in zip(starts.tolist(), groups)
        }

    def _live(self, key: int) -> array:
        """The pair's positions that still hold it (the list is pruned to them)."""
        found = self.positions.get(key)
        if not found:
            return array("i")
        left, right = key >> PAIR_SHIFT, key & ((1 << PAIR_SHIFT) - 1)
        tokens, nxt = self.tokens, self.next
        live = array("i", [p for p in sorted(set(found))
                           if tokens[p] == left and nxt[p] >= 0 and tokens[nxt[p]] == right])
        self.positions[key] = live
        return live

    def count(self, key: int) -> int:
        """Occurrences of the pair (overlapping ones included, as BPE counts them)."""
        return len(self._live(key))

    def pair_counts(self) -> Counter[int]:
        return Counter({key: len(found) for key, found in self.positions.items()})

    def merge(self, key: int, new: int) -> Counter[int]:
        """Merge every occurrence of the pair, left to right; return the change in occurrences
        of every other pair: gains for pairs holding the new token, losses for their
        neighbours."""
        delta: Counter[int] = Counter()
        found = self.positions.pop(key, None)
        if not found:
            return delta
        left_id, right_id = key >> PAIR_SHIFT, key & ((1 << PAIR_SHIFT) - 1)
        tokens, nxt, prv, positions = self.tokens, self.next, self.prev, self.positions
        for p in sorted(found):
            q = nxt[p]
            # stale entry, or used by an earlier merge in this pass (runs like "aaa")
            if tokens[p] != left_id or q < 0 or tokens[q] != right_id:
                continue
            before, after = prv[p], nxt[q]
            if before >= 0:
                delta[tokens[before] << PAIR_SHIFT | left_id] -= 1
                pair = tokens[before] << PAIR_SHIFT | new
                delta[pair] += 1
                _add(positions, pair, before)
            if after >= 0:
                delta[right_id << PAIR_SHIFT | tokens[after]] -= 1
                pair = new << PAIR_SHIFT | tokens[after]
                delta[pair] += 1
                _add(positions, pair, p)
            tokens[p], tokens[q] = new, -1
            nxt[p] = after
            if after >= 0:
                prv[after] = p
        delta.pop(key, None)
        return Counter({pair: n for pair, n in delta.items() if n})


def _add(positions: dict[int, array], key: int, position: int) -> None:
    found = positions.get(key)
    if found is None:
        positions[key] = array("i", (position,))
    else:
        found.append(position)
