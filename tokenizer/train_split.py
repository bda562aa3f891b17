"""The trainer's regex split, fast and in agreement with the split tiktoken does at inference.

tiktoken compiles the split pattern with its own regex engine, whose Unicode tables are older
than those of the ``regex`` module: ``regex`` counts ~17,000 more code points as letters
(``\\p{L}``) and a few hundred more as numbers (``\\p{N}``). Split with ``regex`` as is, text
holding such a character would be cut into different chunks at training and at inference, and
the tokenizer would learn merges for chunks it never sees.

So the trainer asks tiktoken itself which code points each class escape of the pattern
(``\\p{..}``, ``\\s``, ``\\d``, ``\\w`` and their negations) matches, and writes them into the
pattern as explicit sets:

- Documents within the Basic Multilingual Plane (nearly all text) are split by that explicit
  pattern restricted to the BMP and compiled with the standard ``re`` module, whose lookup
  tables make large BMP sets cheap — faster than ``regex`` with ``\\p{..}``.
- Documents with characters beyond the BMP (emoji, rare CJK) are split by that same BMP pattern
  too, for the named patterns: each character beyond the BMP is replaced by a BMP character that
  tiktoken puts in the same classes, which the pattern cannot tell apart from it (see
  ``AstralStandIns``), and the chunks are cut from the original at the same places. ``regex``
  and ``re`` over all planes are 5-10x slower on such text.
- Counting with a named pattern, the trainer's hot path, is compiled (``_chunk_count.c``): the
  pattern as a hand-written scanner over a table of tiktoken's classes for the BMP (characters
  beyond it classified by their stand-ins), each distinct chunk of a call made into a str once.
  About 4x faster than ``re.findall`` and ``Counter.update``, which remain where no C compiler
  was found at install, and for ``split``.
- A custom pattern's documents beyond the BMP are split by ``regex``; the few code points on
  which ``regex`` and tiktoken disagree are *disputed*, and a document holding one is split by
  the explicit pattern over all planes instead.
"""

from __future__ import annotations

import functools
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator

import regex
import tiktoken

from glasschat.errors import UserError
from tokenizer.patterns import NAMED_PATTERNS

try:
    from tokenizer._chunk_count import count_chunks as compiled_count_chunks
except ImportError:  # built without a C compiler
    compiled_count_chunks = None

# the most digits one chunk holds, in each named pattern (the compiled split's only parameter)
_MAX_DIGITS = {NAMED_PATTERNS["nanochat"]: 2, NAMED_PATTERNS["gpt4"]: 3}
_LETTER, _NUMBER, _SPACE = 1, 2, 4

BMP_LIMIT = 0x10000
ALL_LIMIT = 0x110000
# A document longer than this is split in pieces of about this many characters: the list of
# chunks findall makes for a 10 MB document would take hundreds of MB (and for a piece of 256k
# characters, about 5 MB).
PIECE_CHARS = 1 << 18
# Where a piece may end: after a newline that a letter follows. In the named patterns no chunk
# holds both a newline and a letter, so a chunk always ends there, and the text on either side
# splits the same alone as in the whole (nothing looks behind; what looks ahead at the newline
# sees the same). ASCII letters, CJK ideographs and Hangul syllables are letters in every
# Unicode version tiktoken or ``regex`` may use.
_PIECE_END = re.compile("\n(?=[A-Za-z\u4e00-\u9fa5\uac00-\ud7a3])")


@functools.lru_cache(maxsize=1)  # cleared after use: the string for all planes takes 4 MB
def _code_points(limit: int) -> str:
    """Every code point below ``limit`` except the surrogates, in order."""
    points = array("I", range(min(limit, 0xD800)))
    points.extend(range(0xE000, limit))
    return points.tobytes().decode("utf-32-le")


Runs = tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive code point ranges


def _runs(chars: str) -> Runs:
    """The runs of consecutive code points in ``chars`` (sorted, distinct characters)."""
    points = array("I")
    points.frombytes(chars.encode("utf-32-le", "surrogatepass"))
    runs = []
    start = previous = None
    for point in points:
        if previous is None or point != previous + 1:
            if previous is not None:
                runs.append((start, previous))
            start = point
        previous = point
    if previous is not None:
        runs.append((start, previous))
    return tuple(runs)


def _complement(runs: Runs, limit: int) -> Runs:
    out, next_free = [], 0
    for lo, hi in runs:
        if lo > next_free:
            out.append((next_free, lo - 1))
        next_free = hi + 1
    if next_free < limit:
        out.append((next_free, limit - 1))
    return tuple(out)


def _symmetric_difference(a: Runs, b: Runs) -> list[int]:
    """Code points in exactly one of ``a`` and ``b``."""
    edges = sorted([(lo, 1) for lo, _ in a] + [(hi + 1, -1) for _, hi in a]
                   + [(lo, 1) for lo, _ in b] + [(hi + 1, -1) for _, hi in b])
    out, depth, since = [], 0, 0
    for point, step in edges:
        if depth == 1 and point > since:
            out.extend(range(since, point))
        depth += step
        since = point
    return out


def _class_body(runs: Runs) -> str:
    """A character-class body (no brackets) matching exactly the code points of ``runs``."""
    return "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in runs)


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
def tiktoken_class(escape: str, limit: int = ALL_LIMIT) -> Runs:
    """The code points below ``limit`` that tiktoken's regex engine matches with the class
    ``escape`` (e.g. ``\\p{L}``)."""
    encoding = _probe_encoding(escape)
    return _runs(encoding.decode_bytes(encoding.encode_ordinary(_code_points(limit))).decode("utf-8"))


@functools.lru_cache(maxsize=None)
def _disputed_for(escape: str) -> tuple[int, ...]:
    ours = _runs("".join(regex.findall(escape + "+", _code_points(ALL_LIMIT))))
    return tuple(_symmetric_difference(ours, tiktoken_class(escape)))


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
    disputed: set[int] = set()
    for match in _class_escapes(pattern):
        disputed.update(_disputed_for(_positive(match)[0]))
    if re.search(r"\\[bB]", pattern):  # word boundaries are defined by \w
        disputed.update(_disputed_for("\\w"))
    _code_points.cache_clear()
    return frozenset(map(chr, disputed))


@functools.lru_cache(maxsize=None)
def _explicit_body(escape: str, negated: bool, limit: int) -> str:
    runs = tiktoken_class(escape, limit)
    return _class_body(_complement(runs, limit) if negated else runs)


def explicit_pattern(pattern: str, limit: int = ALL_LIMIT) -> str:
    """``pattern`` with every class escape replaced by the code points below ``limit`` that
    tiktoken matches with it: the same split as tiktoken's on text below ``limit``.

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
                    out.append(_explicit_body(escape, negated, limit))
                else:
                    out.append("[" + ("^" if negated else "") + _explicit_body(escape, False, limit) + "]")
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


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class AstralStandIns:
    """For a named pattern: each character beyond the BMP mapped to a BMP character that the
    pattern matches in exactly the same places, so that the fast BMP split cuts a document
    beyond the BMP where tiktoken cuts it.

    The named patterns test a character beyond the BMP only through their class escapes
    (``\\p{L}``, ``\\p{N}``, ``\\s``): every literal in them is ASCII. So a non-ASCII BMP
    character in the same classes (by tiktoken's tables), and without case (the ``(?i:..)``
    literals cannot match it), stands in for it.
    """

    def __init__(self, pattern: str):
        # one probe per class: it matches a character alone exactly when the class holds it
        # (asked per character, not over all planes: that table takes tens of MB to build)
        escapes = sorted({_positive(match)[0] for match in _class_escapes(pattern)})
        self._probes = [_probe_encoding(escape) for escape in escapes]
        self._for_signature: dict[tuple[bool, ...], str | None] = {}
        self._table: dict[str, str | None] = {}

    def _signature(self, char: str) -> tuple[bool, ...]:
        return tuple(bool(probe.encode_ordinary(char)) for probe in self._probes)

    def _stand_in(self, char: str) -> str | None:
        signature = self._signature(char)
        if signature not in self._for_signature:
            found = None
            for point in range(0x80, 0xD800):  # a few hundred steps at most for the signatures in use
                candidate = chr(point)
                if candidate.lower() == candidate.upper() == candidate and self._signature(candidate) == signature:
                    found = candidate
                    break
            self._for_signature[signature] = found
        return self._for_signature[signature]

    def translate(self, doc: str) -> str | None:
        """``doc`` with every character beyond the BMP replaced by its stand-in (same length),
        or None if one has none."""
        table = self._table
        for char in set(_ASTRAL.findall(doc)):
            if char not in table:
                table[char] = self._stand_in(char)
            if table[char] is None:
                return None
        return _ASTRAL.sub(lambda match: table[match.group()], doc)


def pieces(doc: str, size: int | None = None) -> Iterator[str]:
    """``doc`` cut into pieces of about ``size`` characters where a chunk is sure to end, one at
    a time (so that only one copy of a piece is alive beside the document)."""
    size = size or PIECE_CHARS
    start = 0
    while len(doc) - start > size:
        end = _PIECE_END.search(doc, start + size)
        if end is None:
            break
        yield doc[start : end.end()]
        start = end.end()
    yield doc[start:] if start else doc


def _within_bmp(text: str) -> bool:
    # characters beyond the BMP take two UTF-16 code units: a fast, allocation-only check
    return text.isascii() or len(text.encode("utf-16-le", "surrogatepass")) == 2 * len(text)


def _class_table() -> bytes:
    """Per BMP code point, ``_LETTER | _NUMBER | _SPACE`` as tiktoken has ``\\p{L}``, ``\\p{N}``
    and ``\\s``: the compiled split's view of a character."""
    table = bytearray(BMP_LIMIT)
    for escape, bit in (("\\p{L}", _LETTER), ("\\p{N}", _NUMBER), ("\\s", _SPACE)):
        for lo, hi in tiktoken_class(escape, BMP_LIMIT):
            for point in range(lo, hi + 1):
                table[point] |= bit
    return bytes(table)


class ChunkSplitter:
    """Cuts documents into chunks and counts them, exactly as tiktoken cuts text at inference.

    Built once in the parent process and inherited by the counting workers.
    """

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        try:
            self._bmp: re.Pattern | None = re.compile(explicit_pattern(pattern, BMP_LIMIT))
        except re.error:  # a custom pattern using syntax only `regex` knows
            self._bmp = None
        # built on first use: only documents beyond the BMP need them
        self._disputed: re.Pattern | None | bool = False
        self._faithful: regex.Pattern | None = None
        self._stand_ins: AstralStandIns | None = None
        self._cuttable = pattern in NAMED_PATTERNS.values()  # a custom pattern may look behind
        # the compiled split's class table (named patterns only): made here, in the parent, so
        # that the counting processes forked from it do not each make their own
        compiled = compiled_count_chunks is not None and self._cuttable and self._bmp is not None
        self._classes: bytes | None = _class_table() if compiled else None

    def count(self, docs: list[str], counts: Counter[str] | None = None) -> Counter[str]:
        """Chunk counts of ``docs``, added to ``counts`` if given."""
        if counts is None:
            counts = Counter()
        if compiled_count_chunks is not None and self._classes is not None:
            return self._count_compiled(docs, counts)
        if self._cuttable and any(len(doc) > PIECE_CHARS for doc in docs):
            docs = (piece for doc in docs for piece in pieces(doc))
        if self._bmp is None:
            beyond = docs
        else:
            findall = self._bmp.findall
            beyond = []
            for doc in docs:
                if _within_bmp(doc):
                    counts.update(findall(doc))
                else:
                    beyond.append(doc)
        for doc in beyond:
            counts.update(self._split_with_regex(doc))
        return counts

    def _count_compiled(self, docs: list[str], counts: Counter[str]) -> Counter[str]:
        """``count`` by the compiled split (``_chunk_count.c``): a named pattern as a scanner over
        tiktoken's classes, with a character beyond the BMP classified by its stand-in."""
        texts, class_texts = [], []
        for doc in docs:
            if _within_bmp(doc):
                texts.append(doc)
                class_texts.append(doc)
                continue
            if self._stand_ins is None:
                self._stand_ins = AstralStandIns(self.pattern)
            translated = self._stand_ins.translate(doc)
            if translated is None:
                counts.update(self._split_with_regex(doc))
            else:
                texts.append(doc)
                class_texts.append(translated)
        compiled_count_chunks(texts, class_texts, self._classes, _MAX_DIGITS[self.pattern], counts)
        return counts

    def split(self, doc: str) -> list[str]:
        """The chunks of one document, in order."""
        if self._bmp is not None and _within_bmp(doc):
            return self._bmp.findall(doc)
        return self._split_with_regex(doc)

    def _split_with_regex(self, doc: str) -> list[str]:
        if self._cuttable and self._bmp is not None:
            if self._stand_ins is None:
                self._stand_ins = AstralStandIns(self.pattern)
            translated = self._stand_ins.translate(doc)
            if translated is not None:
                return [doc[match.start() : match.end()] for match in self._bmp.finditer(translated)]
        if self._disputed is False:
            disputed = disputed_chars(self.pattern)
            self._disputed = re.compile("[" + _class_body(_runs("".join(sorted(disputed)))) + "]") if disputed else None
        if self._disputed is not None and self._disputed.search(doc):
            if self._faithful is None:
                self._faithful = regex.compile(explicit_pattern(self.pattern))
                _code_points.cache_clear()
            return self._faithful.findall(doc)
        return self._regex.findall(doc)
