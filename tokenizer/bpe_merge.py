"""The BPE merge loop: from chunk counts to the ordered list of merges.

Each step merges the pair of adjacent tokens with the highest count over the corpus, ties going
to the smallest ``(left_id, right_id)`` — the rule rustbpe (nanochat's trainer) follows, so the
merges are the same as its merges on the same chunks.

The loop is compiled (``_bpe_merge.c``, built at install): a 32k vocabulary is 32k merges, and
the Python loop's fixed cost per merge made it slower than rustbpe on every corpus. Where no C
compiler was found at install, the extension is skipped and ``bpe_merge_python`` runs instead:
the same merges (the tests hold both to a from-scratch reference), about 6x the time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

try:
    from tokenizer._bpe_merge import learn_merges as compiled_learn_merges
except ImportError:  # built without a C compiler
    compiled_learn_merges = None


def preload() -> None:
    """Import what the loop needs before it runs: numpy, for the Python loop."""
    if compiled_learn_merges is None:
        import tokenizer.bpe_merge_python  # noqa: F401


def learn_merges(
    chunk_counts: Mapping[str, int],
    num_merges: int,
    on_progress: Callable[[int], None] = lambda merges_done: None,
    *,
    consume: bool = False,
) -> list[tuple[int, int]]:
    """Up to ``num_merges`` merges ``(left_id, right_id)`` of the chunks (text -> count); merge
    ``i`` makes token ``256 + i``. Fewer come back when the corpus runs out of pairs.

    With ``consume``, ``chunk_counts`` (a dict) is emptied once the loop has its own copy: it is
    often the largest thing in memory, and the loop's copy is several times smaller.
    """
    if compiled_learn_merges is not None:
        if not isinstance(chunk_counts, dict):
            chunk_counts, consume = dict(chunk_counts), True
        return compiled_learn_merges(chunk_counts, num_merges, on_progress, consume)
    from tokenizer.bpe_merge_python import learn_merges as python_learn_merges

    return python_learn_merges(chunk_counts, num_merges, on_progress, consume)


def merges_to_ranks(merges: list[tuple[int, int]]) -> dict[bytes, int]:
    """Token bytes -> rank: the 256 single bytes, then one token per merge."""
    token_bytes = [bytes([b]) for b in range(256)]
    for left, right in merges:
        token_bytes.append(token_bytes[left] + token_bytes[right])
    ranks = {token: rank for rank, token in enumerate(token_bytes)}
    if len(ranks) != len(token_bytes):
        raise ValueError("two merges made the same token bytes")
    return ranks
