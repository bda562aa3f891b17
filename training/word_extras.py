"""More word questions people ask first: how many letters a word has, whether it is a
palindrome, and spelling, counting and reversing long words (13-20 letters).

The replies keep the word skills' one-step-per-token shape (``training.word_skills``):

- letter totals spell the word with a running index, ``h (1) e (2) l (3) l (4) o (5)``, so the
  total is the last index, never a count over the whole word at once;
- a palindrome answer spells the word forwards and backwards, then compares the two lines.

Long words come from ``data/long_words.txt``, split by the same hash as the word list
(``training.words.is_heldout``): held-out long words never occur in training.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from training.phrasing import Split, check_disjoint, compose, typed
from training.word_skills import WordTurn, _word_as_typed, spelled
from training.words import DATA_DIR, _read_list, all_words, is_heldout

LONG_WORDS_FILE = DATA_DIR / "long_words.txt"
LONG_MIN, LONG_MAX = 13, 20  # the word list stops at 12 letters; people try longer words

# palindromes people try; split by the word hash like every other word
PALINDROMES = ("level", "racecar", "noon", "kayak", "radar", "civic", "madam", "refer", "rotor", "stats", "tenet",
               "deed", "peep", "wow", "solos", "sagas", "redder", "reviver", "rotator", "deified", "repaper", "minim",
               "pop", "mom", "dad", "bob", "eye", "gig", "nun", "pup", "tot", "toot", "sees", "anna", "hannah",
               "otto", "malayalam", "releveler", "murdrum", "redivider", "seles", "ewe", "did",
               "boob", "poop", "tattarrattat", "aibohphobia", "kook", "sis", "stets", "sexes")

LETTERS = check_disjoint({
    "train": [("how many letters are in {w}?", False), ("how many letters in {w}?", False),
              ("how many letters does {w} have?", False), ("how long is {w}?", False),
              ("count the letters in {w}", True), ("count the letters of {w}", True), ("how many letters is {w}?", False),
              ("what's the length of {w}?", False), ("number of letters in {w}?", False),
              ("how many characters are in {w}?", False), ("{w} has how many letters?", False),
              ("tell me how many letters {w} has", True), ("what is the letter count of {w}?", False),
              ("how many letters are there in the word {w}?", False), ("how many letters make up {w}?", False),
              ("length of the word {w}?", False), ("{w}: how many letters?", False)],
    "heldout": [("how many letters long is {w}?", False), ("count all the letters of {w}", True),
                ("what's the number of letters in {w}?", False), ("{w} - how many letters?", False)],
})
PALINDROME = check_disjoint({
    "train": [("is {w} a palindrome?", False), ("is {w} the same backwards?", False),
              ("is {w} a palindrome or not?", False), ("check if {w} is a palindrome", True),
              ("does {w} read the same both ways?", False), ("tell me if {w} is a palindrome", True),
              ("{w}: palindrome?", False), ("is the word {w} a palindrome?", False),
              ("does {w} read the same forwards and backwards?", False), ("palindrome check: {w}", False),
              ("can {w} be read backwards the same way?", False)],
    "heldout": [("would {w} count as a palindrome?", False), ("is {w} spelled the same in reverse?", False),
                ("find out whether {w} is a palindrome", True)],
})
EXTRA_SKILLS = ("letters", "palindrome")


@functools.cache
def long_words() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train, heldout)`` long words: 13-20 letters, none of them in the word list."""
    listed = set(all_words())
    words = [w for w in _read_list(LONG_WORDS_FILE) if LONG_MIN <= len(w) <= LONG_MAX and w not in listed]
    return tuple(w for w in words if not is_heldout(w)), tuple(w for w in words if is_heldout(w))


def palindromes(split: Split) -> tuple[str, ...]:
    return tuple(w for w in PALINDROMES if is_heldout(w) == (split == "heldout"))


def indexed(word: str) -> str:
    """``hello`` -> ``h (1) e (2) l (3) l (4) o (5)``."""
    return " ".join(f"{ch} ({i})" for i, ch in enumerate(word.lower(), start=1))


def letters_reply(word: str) -> str:
    n = len(word)
    return f"Counting the letters: {indexed(word)}. So {word.lower()} has {n} letter{'s' * (n != 1)}."


def palindrome_reply(word: str) -> str:
    w = word.lower()
    verdict = (f"The same both ways, so yes, {w} is a palindrome." if w == w[::-1]
               else f"Not the same, so no, {w} is not a palindrome.")
    return f"Spelled out: {spelled(w)}. Backwards: {spelled(w[::-1])}. {verdict}"


def reply(skill: str, word: str) -> str:
    return letters_reply(word) if skill == "letters" else palindrome_reply(word)


def palindrome_word(rng: random.Random, words: Sequence[str], split: Split) -> str:
    """Half the time a palindrome of ``split``, else a word of ``words`` (rarely a palindrome)."""
    return rng.choice(palindromes(split)) if rng.random() < 0.5 else rng.choice(words)


def exchange(rng: random.Random, skill: str, word: str, split: Split) -> WordTurn:
    """One request of ``skill`` (``letters`` or ``palindrome``) about ``word``."""
    core, command = rng.choice((LETTERS if skill == "letters" else PALINDROME)[split])
    w = word if "the word {w}" in core else _word_as_typed(rng, word)
    return WordTurn(typed(rng, compose(rng, core, split, command, w=w)), reply(skill, word), skill, None, core)
