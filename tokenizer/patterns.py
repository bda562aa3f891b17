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


# Texts a usable pattern must split without an empty piece: tiktoken's splitter panics (a Rust
# PanicException, not an error) on a zero-length match, so one is refused before it is used.
_PROBES = ("", "a", " ", "Hello, world! 12 345\n\n  x", "é 你好 😀", "\t\r\n")


def pattern_problem(pattern: object) -> str | None:
    """Why ``pattern`` cannot split text for BPE (None when it can): it is not a string, does not
    compile (with ``regex`` for training, or with tiktoken's engine for encoding), or matches the
    empty string."""
    if not isinstance(pattern, str) or not pattern:
        return "the split pattern must be a non-empty string"
    try:
        compiled = regex.compile(pattern)
    except regex.error as error:
        return f"the split pattern does not compile: {error}"
    for probe in _PROBES:
        if any(match.end() == match.start() for match in compiled.finditer(probe)):
            return f"the split pattern {pattern!r} matches the empty string (in {probe!r})"
    import tiktoken

    try:
        tiktoken.Encoding("pattern-check", pat_str=pattern, mergeable_ranks={bytes([b]): b for b in range(256)},
                          special_tokens={})
    except ValueError as error:
        return f"the split pattern does not compile for tiktoken: {str(error).splitlines()[0]}"
    return None


def resolve_pattern(name_or_regex: str) -> str:
    """Return the regex for a pattern name (``nanochat``, ``gpt4``) or check and return a custom one.

    Raises ``UserError`` when a custom pattern cannot split text (``pattern_problem``).
    """
    if name_or_regex in NAMED_PATTERNS:
        return NAMED_PATTERNS[name_or_regex]
    problem = pattern_problem(name_or_regex)
    if problem is not None:
        raise UserError(f"--pattern: not a known name ({', '.join(NAMED_PATTERNS)}) and {problem}")
    return name_or_regex
