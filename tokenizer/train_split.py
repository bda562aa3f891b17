"""The trainer's regex split, made to agree with the split tiktoken does at inference.

The trainer splits text with the ``regex`` module (fast here, and it compiles the split
patterns), but tiktoken compiles the same pattern with its own engine, whose Unicode tables are
older: ``regex`` counts ~17,000 more code points as letters (``\\p{L}``) and a few hundred more
as numbers (``\\p{N}``). Text holding such a character would be cut into different chunks at
training and at inference, and the tokenizer would learn merges for chunks it never sees.

So for each character-class escape in the pattern (``\\p{..}``, ``\\s``, ``\\d``, ``\\w`` and their
negations) we ask tiktoken itself which code points it matches, and call the code points on
which the two engines disagree *disputed*. Text without a disputed character splits the same in
both engines and takes the fast path; text with one is split by a *faithful* pattern, in which
every class escape is replaced by the explicit set of code points tiktoken matches.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable

import regex
import tiktoken

from glasschat.errors import UserError
from tokenizer.patterns import NAMED_PATTERNS

_CODE_POINTS = None  # every code point but the surrogates, built on first use


def _all_code_points() -> str:
    global _CODE_POINTS
    if _CODE_POINTS is None:
        _CODE_POINTS = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    return _CODE_POINTS


def check_tiktoken_compiles(pattern: str) -> None:
    """Raise ``UserError`` if tiktoken, which splits text at inference, cannot compile ``pattern``."""
    try:
        _probe_encoding(pattern)
    except Exception as error:  # tiktoken reports a bad regex as a plain ValueError from Rust
        raise UserError(f"--pattern: tiktoken cannot compile this regex: {error}") from None


def _probe_encoding(pattern: str) -> tiktoken.Encoding:
    # byte-level ranks and no merges: encoding returns the bytes of every match, nothing else
    ranks = {bytes([b]): b for b in range(256)}
    return tiktoken.Encoding(name="glasschat-probe", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})


@functools.lru_cache(maxsize=None)
def tiktoken_class(escape: str) -> frozenset[str]:
    """The code points tiktoken's regex engine matches with the class ``escape`` (e.g. ``\\p{L}``)."""
    encoding = _probe_encoding(escape)
    matched = encoding.decode_bytes(encoding.encode_ordinary(_all_code_points()))
    return frozenset(matched.decode("utf-8"))


@functools.lru_cache(maxsize=None)
def _disputed_for(escape: str) -> frozenset[str]:
    return frozenset(regex.findall(escape, _all_code_points())) ^ tiktoken_class(escape)


# A class escape: \p{..} / \P{..}, \pX / \PX, or one of \s \S \d \D \w \W.
_ESCAPE = re.compile(r"\\([pP])(\{[^}]*\}|[A-Za-z])|\\([sSdDwW])")


def _positive(match: re.Match) -> tuple[str, bool]:
    """``(positive escape, negated?)`` for a class escape: ``\\S`` -> ``(\\s, True)``."""
    if match.group(1):
        name = match.group(2)
        name = name if name.startswith("{") else "{" + name + "}"
        return "\\p" + name, match.group(1) == "P"
    letter = match.group(3)
    return "\\" + letter.lower(), letter.isupper()


def _class_escapes(pattern: str) -> Iterable[re.Match]:
    """The class escapes of ``pattern``, skipping escaped backslashes (``\\\\p`` is literal)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            match = _ESCAPE.match(pattern, i)
            if match:
                yield match
                i = match.end()
                continue
            i += 2
        else:
            i += 1


def disputed_chars(pattern: str) -> frozenset[str]:
    """Code points on which ``regex`` and tiktoken disagree for some class escape in ``pattern``."""
    disputed: set[str] = set()
    for match in _class_escapes(pattern):
        disputed |= _disputed_for(_positive(match)[0])
    if re.search(r"\\[bB]", pattern):  # word boundaries are defined by \w
        disputed |= _disputed_for("\\w")
    return frozenset(disputed)


def _ranges(chars: Iterable[str]) -> str:
    """A character-class body (no brackets) matching exactly ``chars``."""
    points = sorted(map(ord, chars))
    parts = []
    i = 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        lo, hi = points[i], points[j]
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
        i = j + 1
    return "".join(parts)


@functools.lru_cache(maxsize=None)
def _explicit_body(escape: str, negated: bool) -> str:
    chars = tiktoken_class(escape)
    if negated:
        chars = frozenset(_all_code_points()) - chars
    return _ranges(chars)


def faithful_pattern(pattern: str) -> str:
    """``pattern`` with every class escape replaced by the explicit code points tiktoken matches.

    Inside a bracketed set the escape becomes ranges; outside it becomes a bracketed set.
    """
    out = []
    depth = 0  # inside [...]?
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            match = _ESCAPE.match(pattern, i)
            if match:
                escape, negated = _positive(match)
                if depth:
                    out.append(_explicit_body(escape, negated))
                else:
                    out.append("[" + ("^" if negated else "") + _explicit_body(escape, False) + "]")
                i = match.end()
            else:
                out.append(pattern[i : i + 2])
                i += 2
            continue
        if ch == "[":
            depth += 1
            out.append(ch)
            i += 1
            # a ']' right after '[' or '[^' is a literal
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if ch == "]" and depth:
            depth -= 1
        out.append(ch)
        i += 1
    return "".join(out)


class ChunkSplitter:
    """Cuts documents into chunks and counts them, exactly as tiktoken cuts text at inference.

    Built once in the parent process (probing tiktoken takes a fraction of a second) and
    inherited by the counting workers.
    """

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._fast = regex.compile(pattern)
        disputed = disputed_chars(pattern)
        self._disputed = re.compile("[" + _ranges(disputed) + "]") if disputed else None
        self._faithful: regex.Pattern | None = None
        # The named patterns match every character, so a disputed character in a document
        # always shows up in some chunk; a custom pattern may skip characters, so its
        # documents are checked one by one instead.
        self._covers_all_text = pattern in NAMED_PATTERNS.values()

    def count(self, docs: list[str]) -> Counter[str]:
        """Chunk counts of ``docs``."""
        counts: Counter[str] = Counter()
        findall = self._fast.findall
        for doc in docs:
            counts.update(findall(doc))
        if self._disputed is None:
            return counts
        if self._covers_all_text and not self._disputed.search("\0".join(counts)):
            return counts
        # rare: some document holds a character the two engines classify differently
        counts = Counter()
        for doc in docs:
            if self._disputed.search(doc):
                counts.update(self._faithful_regex().findall(doc))
            else:
                counts.update(findall(doc))
        return counts

    def split(self, doc: str) -> list[str]:
        """The chunks of one document (for tests and tools; counting uses ``count``)."""
        if self._disputed is not None and self._disputed.search(doc):
            return self._faithful_regex().findall(doc)
        return self._fast.findall(doc)

    def _faithful_regex(self) -> regex.Pattern:
        if self._faithful is None:
            self._faithful = regex.compile(faithful_pattern(self.pattern))
        return self._faithful
