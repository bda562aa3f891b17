"""A chunk too long to rewrite whole at every merge: a linked list of tokens with, for each
pair, the set of positions where it occurs.

Short chunks are merged by ``str.replace``, which costs the chunk's length each time. A chunk of
a million letters (a DNA sequence, a CJK paragraph without punctuation, a run of spaces) could be
touched by thousands of merges, so its merges cost the number of occurrences instead, and over
the whole training at most its length in total.
"""

from __future__ import annotations

from collections import Counter

PAIR_SHIFT = 21  # pair key = left << 21 | right; token ids stay below 2**21


class LongWord:
    __slots__ = ("tokens", "next", "prev", "positions")

    def __init__(self, ids: list[int]):
        n = len(ids)
        self.tokens = list(ids)  # -1 where a token was absorbed into its left neighbour
        self.next = list(range(1, n)) + [-1]
        self.prev = list(range(-1, n - 1))
        self.positions: dict[int, set[int]] = {}
        for i in range(n - 1):
            self.positions.setdefault(ids[i] << PAIR_SHIFT | ids[i + 1], set()).add(i)

    def count(self, key: int) -> int:
        """Occurrences of the pair (overlapping ones included, as BPE counts them)."""
        found = self.positions.get(key)
        return len(found) if found else 0

    def pair_counts(self) -> Counter[int]:
        return Counter({key: len(found) for key, found in self.positions.items() if found})

    def merge(self, key: int, new: int) -> Counter[int]:
        """Merge every occurrence of the pair, left to right; return the change in occurrences
        of every other pair: gains for pairs holding the new token, losses for their
        neighbours."""
        found = self.positions.pop(key, None)
        delta: Counter[int] = Counter()
        if not found:
            return delta
        left_id, right_id = key >> PAIR_SHIFT, key & ((1 << PAIR_SHIFT) - 1)
        tokens, nxt, prv, positions = self.tokens, self.next, self.prev, self.positions
        for p in sorted(found):
            q = nxt[p]
            # an earlier merge in this pass may have used this position (runs like "aaa")
            if tokens[p] != left_id or q < 0 or tokens[q] != right_id:
                continue
            before, after = prv[p], nxt[q]
            if before >= 0:
                old = tokens[before] << PAIR_SHIFT | left_id
                _discard(positions, old, before)
                delta[old] -= 1
                pair = tokens[before] << PAIR_SHIFT | new
                positions.setdefault(pair, set()).add(before)
                delta[pair] += 1
            if after >= 0:
                old = right_id << PAIR_SHIFT | tokens[after]
                _discard(positions, old, q)
                delta[old] -= 1
                pair = new << PAIR_SHIFT | tokens[after]
                positions.setdefault(pair, set()).add(p)
                delta[pair] += 1
            tokens[p], tokens[q] = new, -1
            nxt[p] = after
            if after >= 0:
                prv[after] = p
        delta.pop(key, None)
        return Counter({pair: n for pair, n in delta.items() if n})


def _discard(positions: dict[int, set[int]], key: int, position: int) -> None:
    found = positions.get(key)
    if found is not None:
        found.discard(position)
        if not found:
            del positions[key]
