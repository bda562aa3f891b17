"""The nine special tokens: the one place their names and order are defined.

They are never trained. A tokenizer with ``n`` BPE tokens (ids ``0..n-1``) gives them ids
``n..n+8`` in exactly this order.
"""

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
)

NUM_SPECIAL_TOKENS = len(SPECIAL_TOKENS)


def special_ids(num_bpe_tokens: int) -> dict[str, int]:
    """Map each special token name to its id, placed right after ``num_bpe_tokens`` BPE ids."""
    return {name: num_bpe_tokens + i for i, name in enumerate(SPECIAL_TOKENS)}
