"""The BPE merge loop: from chunk counts to the ordered list of merges.

Each step merges the pair of adjacent tokens with the highest count over the corpus, ties going
to the smallest ``(left_id, right_id)`` — the rule rustbpe (nanochat's trainer) follows, so the
merges are the same as its merges on the same chunks.

The loop is incremental: every unique chunk is kept once with its count, as a ``str`` whose code
points are token ids (so merging a pair is one ``str.replace``, non-overlapping and left to
right, in C); pair counts are updated only for the chunks that contain the merged pair, found
through an index from pair to chunks; the best pair comes from a max-heap whose stale entries
are refreshed when they surface.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Mapping


def byte_words(chunk_counts: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """Chunks as strings of byte values (code points 0..255), with their counts; chunks of one
    byte have no pairs and are left out."""
    words, weights = [], []
    for chunk, count in chunk_counts.items():
        word = chunk.encode("utf-8").decode("latin-1")
        if len(word) > 1:
            words.append(word)
            weights.append(count)
    return words, weights


def learn_merges(
    chunk_counts: Mapping[str, int],
    num_merges: int,
    on_progress: Callable[[int], None] = lambda merges_done: None,
) -> list[tuple[int, int]]:
    """Up to ``num_merges`` merges ``(left_id, right_id)``; merge ``i`` makes token ``256 + i``.

    Fewer come back when the corpus runs out of pairs.
    """
    words, weights = byte_words(chunk_counts)
    pair_counts: dict[str, int] = defaultdict(int)
    where: dict[str, set[int]] = defaultdict(set)
    for i, word in enumerate(words):
        weight = weights[i]
        for k in range(len(word) - 1):
            pair = word[k : k + 2]
            pair_counts[pair] += weight
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count <= 0:
            continue
        if count != -negative_count:  # stale: the count fell since this entry was pushed
            heapq.heappush(heap, (-count, pair))
            continue
        new = chr(256 + len(merges))
        merges.append((ord(pair[0]), ord(pair[1])))
        created: set[str] = set()
        for i in where.pop(pair):
            word = words[i]
            if pair not in word:
                continue
            weight = weights[i]
            merged = word.replace(pair, new)
            for k in range(len(word) - 1):
                pair_counts[word[k : k + 2]] -= weight
            for k in range(len(merged) - 1):
                other = merged[k : k + 2]
                pair_counts[other] += weight
                if new in other:
                    where[other].add(i)
                    created.add(other)
            words[i] = merged
        del pair_counts[pair]
        for other in created:
            # a pair holding the new token is new: this is its only heap entry
            heapq.heappush(heap, (-pair_counts[other], other))
        if len(merges) % 256 == 0:
            on_progress(len(merges))
    on_progress(len(merges))
    return merges


def merges_to_ranks(merges: list[tuple[int, int]]) -> dict[bytes, int]:
    """Token bytes -> rank: the 256 single bytes, then one token per merge."""
    token_bytes = [bytes([b]) for b in range(256)]
    for left, right in merges:
        token_bytes.append(token_bytes[left] + token_bytes[right])
    return {token: rank for rank, token in enumerate(token_bytes)}
