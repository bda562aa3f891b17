"""Word skills: spelling a word, counting a letter in it, reversing it.

The replies are shaped so that a tiny model can do them reliably, one easy step per token:

- every reply first spells the word with one letter per token (``b a n a n a``: each `` x``
  is a single token), which turns "what are the letters of this token?" into a lookup the
  model learns from spelling data that covers every alphabetic token;
- counting keeps a running tally after each match (``s t r (1) a w b e r (2) r (3) y``), so
  the count is always the previous tally plus one, never a sum over the whole word;
- reversing reads the spelled list backwards, then writes the reversed word one letter per
  token (the text parts are encoded separately), so joining needs no knowledge of how BPE
  would have merged a nonsense string like ``esuoh``.
"""

from __future__ import annotations

import random
import string
from typing import NamedTuple

from training.phrasing import Split, check_disjoint, compose, pick, typed

# Requests are composed (see ``phrasing.compose``) from a core — a command ("spell {w}") or a
# question ("how do you spell {w}?") — with {w} the word as typed and, for counting, {c} the
# letter ("r", "the letter r", '"r"') or {cs} its plural ("r's", "rs").
SPELL = check_disjoint({
    "train": [
        ("spell {w}", True), ("spell the word {w}", True), ("spell out {w}", True), ("spell {w} out", True),
        ("spell {w} letter by letter", True), ("spell {w} for me", True), ("write out the letters of {w}", True),
        ("list the letters in {w}", True), ("tell me the letters of {w}", True), ("break {w} into letters", True),
        ("give me the letters of {w}", True), ("show me the spelling of {w}", True), ("spell this: {w}", True),
        ("spell this word: {w}", True), ("spell {w} one letter at a time", True), ("give me the spelling of {w}", True),
        ("how do you spell {w}?", False), ("how is {w} spelled?", False), ("what's the spelling of {w}?", False),
        ("what letters make up {w}?", False), ("how do I spell {w}?", False), ("what are the letters in {w}?", False),
        ("can I get the spelling of {w}?", False), ("{w}: how is it spelled?", False), ("{w} - spell it", False),
        ("letters of {w}?", False), ("spelling of {w}?", False), ("how would you spell {w}?", False),
        ("which letters are in {w}?", False), ("{w}, spelled out?", False), ("list all the letters of {w}", True),
        ("name the letters of {w}", True), ("say the letters of {w}", True), ("spell {w} in letters", True),
        ("what is the correct spelling of {w}?", False), ("write {w} letter by letter", True),
        ("I'd like the spelling of {w}", False), ("the spelling of {w}, please", False), ("{w} spelled out, please", False),
        ("go through the letters of {w}", True), ("spell the following word: {w}", True),
        ("what letters does {w} have?", False), ("do you know how to spell {w}?", False),
        ("what letters is {w} made of?", False), ("write the letters of {w} one by one", True),
        ("I want to know how to spell {w}", False), ("{w} - how do you spell it?", False),
        ("could you tell me how {w} is spelled?", False), ("I want to see how {w} is spelled", False),
        ("tell me what letters are in {w}", True), ("let me see {w} spelled out", False),
        ("{w} is a word I can't spell", False), ("the word I want spelled is {w}", False),
    ],
    "heldout": [
        ("how should I spell {w}?", False), ("what's the right way to spell {w}?", False), ("help me spell {w}", True),
        ("{w} is spelled how?", False), ("I'm not sure how to spell {w}", False),
    ],
})
COUNT = check_disjoint({
    "train": [
        ("how many {cs} are in {w}?", False), ("how many {cs} in {w}?", False), ("how many {cs} does {w} have?", False),
        ("how many times does {c} appear in {w}?", False), ("how many times does {c} occur in {w}?", False),
        ("how often does {c} appear in {w}?", False), ("count the {cs} in {w}", True), ("count {c} in {w}", True),
        ("count how many times {c} occurs in {w}", True), ("count the number of {cs} in {w}", True),
        ("number of {cs} in {w}?", False), ("in {w}, how many {cs} are there?", False), ("{w}: how many {cs}?", False),
        ("{w} has how many {cs}?", False), ("tell me how many {cs} are in {w}", True),
        ("what is the number of {cs} in {w}?", False), ("how many occurrences of {c} are in {w}?", False),
        ("find the number of {cs} in {w}", True), ("does {w} have any {cs}? how many?", False),
        ("{w} contains how many {cs}?", False), ("count the letter {c} in {w}", True),
        ("how many {cs} can you find in {w}?", False), ("count {cs} in {w}", True),
        ("how many {cs} does the word {w} contain?", False), ("in {w}, count the {cs}", False),
        ("how many {cs} are there in the word {w}?", False), ("count up the {cs} in {w}", True),
        ("how often is {c} in {w}?", False), ("how many times do you see {c} in {w}?", False),
        ("give me the number of {cs} in {w}", True), ("in the word {w}, how many times does {c} appear?", False),
        ("what's the number of {cs} in {w}?", False), ("tell me the count of {cs} in {w}", True),
        ("how many times is {c} in {w}?", False), ("tell me how many {cs} the word {w} contains", True),
        ("what's the count of {c} in {w}?", False), ("how many {cs} would you find in {w}?", False),
        ("{w} - how many {cs} does it have?", False), ("I want to know how many {cs} are in {w}", False),
        ("let me see how many {cs} {w} has", False), ("how many of the letter {c} does {w} have?", False),
    ],
    "heldout": [
        ("how many {cs} appear in {w}?", False), ("in {w}, what's the number of {cs}?", False),
        ("count all the {cs} in {w}", True), ("how many {cs} are contained in {w}?", False), ("{w} - count the {cs}", False),
    ],
})
REVERSE = check_disjoint({
    "train": [
        ("reverse {w}", True), ("reverse the word {w}", True), ("reverse the letters of {w}", True),
        ("reverse the order of the letters in {w}", True), ("write {w} backwards", True), ("spell {w} backwards", True),
        ("spell {w} in reverse", True), ("say {w} backwards", True), ("flip {w}", True), ("flip the word {w}", True),
        ("turn {w} around", True), ("read {w} backwards", True), ("write {w} in reverse", True),
        ("reverse this word: {w}", True), ("{w} backwards", False), ("write the letters of {w} in reverse order", True),
        ("what is {w} backwards?", False), ("what's {w} reversed?", False), ("what's {w} spelled backwards?", False),
        ("how do you say {w} backwards?", False), ("how is {w} written backwards?", False),
        ("what do you get when you reverse {w}?", False), ("{w} reversed?", False), ("what's the reverse of {w}?", False),
        ("can you reverse {w}?", False), ("how does {w} look backwards?", False), ("give me {w} backwards", True),
        ("put the letters of {w} in reverse order", True), ("reverse the spelling of {w}", True),
        ("show me {w} reversed", True), ("{w} in reverse, please", False), ("I want {w} reversed", False),
        ("what does {w} look like backwards?", False), ("reverse the following word: {w}", True),
        ("can I get {w} backwards?", False), ("{w} - reverse it", False),
        ("give me {w} in reverse order", True), ("what does {w} look like reversed?", False),
        ("I'd like to see {w} written backwards", False), ("{w} - write it backwards", False),
        ("show me what {w} is backwards", True), ("let me see {w} backwards", False),
        ("tell me what {w} is reversed", True), ("I want to see how {w} looks backwards", False),
        ("the word I want reversed is {w}", False),
    ],
    "heldout": [
        ("how would {w} look backwards?", False), ("{w} spelled in reverse?", False),
        ("could you turn {w} backwards?", False), ("what would {w} be reversed?", False),
        ("make {w} go backwards", True),
    ],
})
TEMPLATES = {"spell": SPELL, "count": COUNT, "reverse": REVERSE}
WORD_SKILLS = tuple(TEMPLATES)

# follow-ups about the word of the previous turn: (skill, phrase with {it} and {c}/{cs})
FOLLOW_UPS = check_disjoint({
    "train": [("reverse", "now reverse {it}"), ("reverse", "and backwards?"), ("reverse", "what about backwards?"),
              ("reverse", "write {it} backwards"), ("reverse", "now spell {it} backwards"), ("reverse", "flip {it}"),
              ("reverse", "and reversed?"), ("reverse", "what is {it} backwards?"), ("reverse", "reverse {it} too"),
              ("spell", "spell {it}"), ("spell", "can you spell {it}?"), ("spell", "how is {it} spelled?"),
              ("spell", "and the spelling?"), ("spell", "now spell {it}"), ("spell", "spell {it} out"),
              ("count", "how many {cs} does {it} have?"), ("count", "and how many {cs}?"),
              ("count", "count the {cs} in {it}"), ("count", "how many times does {c} appear in {it}?"),
              ("count", "now count the {cs}"), ("count", "how many {cs} are in {it}?"),
              ("reverse", "ok, now {it} backwards please"), ("count", "and the number of {cs} in {it}?"),
              ("spell", "what letters are in {it}?")],
    "heldout": [("reverse", "and what is {it} reversed?"), ("count", "and in {it}, how many {cs}?"),
                ("spell", "how do you spell {it}?")],
})
# how a follow-up refers to the earlier word
THE_WORD = ["it", "it", "it", "that", "that word", "the same word", "this word", "the word"]

def spelled(word: str) -> str:
    """``banana`` -> ``b a n a n a`` (each letter is then one `` x`` token)."""
    return " ".join(word.lower())


def tally(word: str, letter: str) -> tuple[str, int]:
    """The spelled word with a running count after each ``letter``: ``s t r (1) a w ...``."""
    out, count = [], 0
    for ch in word.lower():
        if ch == letter:
            count += 1
            out.append(f"{ch} ({count})")
        else:
            out.append(ch)
    return " ".join(out), count


def spell_reply(word: str) -> str:
    return f"Letter by letter: {spelled(word)}."


def count_reply(word: str, letter: str) -> str:
    listed, n = tally(word, letter)
    total = f"is 1 {letter}" if n == 1 else f"are {n} {letter}'s"
    return f"Spelling it out and counting the {letter}'s: {listed}. So there {total}."


def reverse_reply(word: str) -> list[dict]:
    backwards = word.lower()[::-1]
    head = f"Spelled out: {spelled(word)}. Backwards: {spelled(backwards)}. Reversed, the word is"
    # one part per letter: the reversed word comes out one letter per token
    letters = [" " + backwards[0], *backwards[1:]]
    return [{"type": "text", "text": t} for t in (head, *letters, ".")]


def pick_letter(rng: random.Random, word: str) -> str:
    """A letter to count: usually one the word has, sometimes one it has not."""
    present = sorted(set(word.lower()))
    absent = [c for c in string.ascii_lowercase if c not in present]
    if rng.random() < 0.75 or not absent:
        return rng.choice(present)
    return rng.choice(absent)


def _word_as_typed(rng: random.Random, word: str) -> str:
    w = word.capitalize() if rng.random() < 0.08 else word
    return rng.choice(("{}", "{}", "{}", "{}", "{}", '"{}"', '"{}"', "'{}'", "the word {}", 'the word "{}"')).format(w)


def _letter_as_typed(rng: random.Random, letter: str) -> tuple[str, str]:
    """``(singular, plural)`` forms of the letter: ("r", "r's"), ('"r"', '"r"s'), ("the letter r", "r's")."""
    c = letter.upper() if rng.random() < 0.08 else letter
    singular = rng.choice(("{}", "{}", "{}", '"{}"', "'{}'", "the letter {}", 'the letter "{}"')).format(c)
    plural = rng.choice(("{}'s", "{}'s", "{}s", '"{}"s', "{}")).format(c)
    return singular, plural


def reply(skill: str, word: str, letter: str | None = None) -> str | list[dict]:
    if skill == "spell":
        return spell_reply(word)
    if skill == "count":
        return count_reply(word, letter)
    return reverse_reply(word)


class WordTurn(NamedTuple):
    """One user request about a word and the assistant's reply. ``phrasing`` is the template the
    request was built from ("spell {w}"), so an evaluation can report accuracy per phrasing."""

    user: str
    reply: str | list[dict]
    skill: str
    letter: str | None  # the letter counted, for "count"
    phrasing: str


def exchange(rng: random.Random, skill: str, word: str, split: Split) -> WordTurn:
    """One exchange asking ``skill`` about ``word``."""
    letter = pick_letter(rng, word) if skill == "count" else None
    core, command = pick(rng, TEMPLATES[skill], split)
    w = _word_as_typed(rng, word)
    if "the word {w}" in core:
        w = word
    c, cs = _letter_as_typed(rng, letter or "x")
    user = compose(rng, core, split, command, w=w, c=c, cs=cs)
    return WordTurn(typed(rng, user), reply(skill, word, letter), skill, letter, core)


def follow_up(rng: random.Random, word: str, split: Split) -> WordTurn:
    """A follow-up about the previous turn's word ("now reverse it"), of a skill it picks."""
    skill, phrase = rng.choice(FOLLOW_UPS[split])
    letter = pick_letter(rng, word) if skill == "count" else None
    c, cs = _letter_as_typed(rng, letter or "x")
    user = phrase.format(it=rng.choice(THE_WORD), c=c, cs=cs)
    return WordTurn(typed(rng, user), reply(skill, word, letter), skill, letter, phrase)
