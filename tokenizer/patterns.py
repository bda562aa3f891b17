"""Regex split patterns: text is cut into chunks by one of these before BPE; merges never
cross a chunk boundary. Both need the ``regex`` module (``\\p{..}`` classes, possessive
quantifiers), which the standard ``re`` cannot compile.
"""

import regex

from glasschat.errors import UserError

# nanochat's pattern: like GPT-4's but numbers split into runs of at most 2 digits,
# which spends fewer merges on numbers in a small vocabulary.
NANOCHAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)

# GPT-4's cl100k_base pattern (digit runs of at most 3).
GPT4 = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)

NAMED_PATTERNS: dict[str, str] = {"nanochat": NANOCHAT, "gpt4": GPT4}
DEFAULT_PATTERN = "nanochat"


def resolve_pattern(name_or_regex: str) -> str:
    """Return the regex for a pattern name (``nanochat``, ``gpt4``) or check and return a custom one.

    Raises ``UserError`` with the regex error when a custom pattern does not compile.
    """
    if name_or_regex in NAMED_PATTERNS:
        return NAMED_PATTERNS[name_or_regex]
    try:
        regex.compile(name_or_regex)
    except regex.error as error:
        raise UserError(f"--pattern: not a known name ({', '.join(NAMED_PATTERNS)}) "
                         f"and not a valid regex: {error}") from None
    return name_or_regex
