"""The word list behind the word skills (spelling, letter counting, reversal) and its split.

``data/words.txt`` is committed, so training does not depend on what a machine happens to
have installed. ``python -m training.words`` rebuilds it from two offline sources:

- ``data/common_words.txt``, everyday words written by hand (fruit, animals, household
  things, common verbs and adjectives — what people try in a chat);
- words mined from the offline English documents of ``sources`` (Python's help topics and
  standard-library docstrings): lowercase, 4-12 letters, standing alone in prose at least
  ``MIN_COUNT`` times in at least two documents, and capitalised at least once (a word that
  starts a sentence somewhere is English; ``maxlinelen`` and ``attrtext`` never do).

Every word belongs to exactly one split. About one word in ten (by a hash of the word) is held
out for evaluation and never appears in any training conversation — unless the tokenizer makes
it a single token: the model learns the letters of every alphabetic token in training, so such
a word could not test anything and goes to training instead.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
WORDS_FILE = DATA_DIR / "words.txt"
COMMON_WORDS_FILE = DATA_DIR / "common_words.txt"

MIN_LETTERS, MAX_LETTERS = 3, 12
MIN_COUNT = 3
HELDOUT_EVERY = 10  # one word in this many is held out

_WORD = re.compile(r"^[a-z]+$")
# a lowercase word standing alone in prose: not part of an identifier, attribute or call
_PROSE_WORD = re.compile(r"(?<![\w.'`])([a-z]{4,12})(?![\w`(])")
_CAPITALISED_WORD = re.compile(r"(?<![\w.'`])([A-Z][a-z]{3,11})(?![\w`(])")


def _read_list(path: Path) -> list[str]:
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words.extend(line.split("#", 1)[0].split())
    return words


def is_heldout(word: str) -> bool:
    """True for the hashed tenth of all words that is held out (before the single-token rule).

    A word and its reversal (pool, loop) share a split: reversing one spells the other.
    """
    key = min(word, word[::-1])
    digest = hashlib.sha256(f"glasschat-heldout-word:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_EVERY == 0


@functools.cache
def all_words() -> tuple[str, ...]:
    return tuple(_read_list(WORDS_FILE))


def split_words(single_token: Callable[[str], bool] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train, heldout)`` words. ``single_token(word)`` says whether the tokenizer writes the
    word as one token; those words always train (see the module docstring)."""
    train, heldout = [], []
    for word in all_words():
        held = is_heldout(word) and not (single_token and single_token(word))
        (heldout if held else train).append(word)
    return tuple(train), tuple(heldout)


def single_token_rule(tokenizer) -> Callable[[str], bool]:
    """The ``single_token`` predicate for a ``Tokenizer``: one token after a space or alone."""
    return lambda word: len(tokenizer.encode(" " + word)) == 1 or len(tokenizer.encode(word)) == 1


def build_word_list(documents) -> list[str]:
    """The sorted, deduplicated word list from the hand-written list and ``documents``."""
    counts: collections.Counter[str] = collections.Counter()
    in_documents: collections.Counter[str] = collections.Counter()
    capitalised: set[str] = set()
    for doc in documents:
        found = _PROSE_WORD.findall(doc)
        counts.update(found)
        in_documents.update(set(found))
        capitalised.update(w.lower() for w in _CAPITALISED_WORD.findall(doc))
    mined = {w for w, n in counts.items()
             if n >= MIN_COUNT and in_documents[w] >= 2 and w in capitalised and re.search("[aeiouy]", w)}
    words = set(_read_list(COMMON_WORDS_FILE)) | mined
    return sorted(w for w in words if _WORD.match(w) and MIN_LETTERS <= len(w) <= MAX_LETTERS)


def main() -> None:
    from glasschat.atomic import atomic_write_text
    from training.sources import english_documents

    words = build_word_list(english_documents())
    header = ("# glasschat word list: data/common_words.txt plus words mined from Python's help topics\n"
              "# and standard-library docstrings. Rebuild with: python -m training.words\n")
    atomic_write_text(WORDS_FILE, header + "\n".join(words) + "\n")
    print(f"{WORDS_FILE}: {len(words)} words, {sum(map(is_heldout, words))} held out")


if __name__ == "__main__":
    main()
