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

from model.training.phrasing import Split, check_disjoint, pick, typed

SPELL = check_disjoint({
    "train": ["spell {w}", "Spell {w}", "how do you spell {w}?", "How do I spell \"{w}\"?", "spell the word {w}",
              "can you spell {w} for me?", "spell out {w}", "spell '{w}' letter by letter", "{w} - spell it",
              "what are the letters in {w}?", "spell {w} please", "Please spell \"{w}\".",
              "could you spell the word '{w}'?", "letters of {w}?", "{w}: how is it spelled?",
              "give me the spelling of {w}", "break {w} into letters", "Spell \"{w}\" for me",
              "how is {w} spelled?", "spell: {w}"],
    "heldout": ["What is the spelling of {w}?", "Write {w} one letter at a time", "I need {w} spelled out",
                "Spell this word: {w}", "show me how {w} is spelled"],
})
COUNT = check_disjoint({
    "train": ["how many {c}'s are in {w}?", "How many {c}s in {w}?", "how many times does the letter {c} appear in {w}?",
              "count the {c}'s in {w}", "How many \"{c}\" are there in \"{w}\"?", "number of {c}'s in {w}?",
              "how many {c} in {w}", "in the word {w}, how many {c}'s are there?",
              "count how many times {c} occurs in '{w}'", "how often does {c} appear in {w}?", "{w}: how many {c}'s?",
              "how many letter {c}s does {w} have?", "Count the letter {c} in {w}.", "how many {c}'s in {w}?",
              "How many times does '{c}' occur in the word \"{w}\"?", "does {w} have any {c}'s? how many?"],
    "heldout": ["What's the count of {c} in {w}?", "Tell me how many {c}'s the word {w} contains",
                "how many times is {c} in {w}?", "In \"{w}\", count the {c}'s."],
})
REVERSE = check_disjoint({
    "train": ["reverse {w}", "reverse the word {w}", "Reverse \"{w}\"", "what is {w} backwards?", "spell {w} backwards",
              "write {w} in reverse", "how do you say {w} backwards?", "{w} reversed?", "can you reverse '{w}'?",
              "flip the word {w}", "What's {w} spelled backwards?", "reverse the letters of {w}", "turn {w} around",
              "Reverse this word: {w}", "{w} backwards please", "please reverse {w}"],
    "heldout": ["Give me {w} in reverse order", "what does {w} look like reversed?", "Write the word \"{w}\" backwards",
                "mirror the word {w}"],
})
TEMPLATES = {"spell": SPELL, "count": COUNT, "reverse": REVERSE}
WORD_SKILLS = tuple(TEMPLATES)

# follow-ups about the word of the previous turn: (skill, phrase)
FOLLOW_UPS = {
    "train": [("reverse", "now reverse it"), ("reverse", "and backwards?"), ("spell", "spell it"),
              ("spell", "can you spell that?"), ("count", "how many {c}'s does it have?"),
              ("count", "and how many {c}'s?"), ("reverse", "what about backwards?"), ("spell", "spell that word")],
    "heldout": [("reverse", "and now the other way round"), ("count", "count its {c}'s too"),
                ("spell", "now spell it out")],
}


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


def _as_typed(rng: random.Random, word: str, letter: str) -> tuple[str, str]:
    w = word.capitalize() if rng.random() < 0.08 else word
    c = letter.upper() if rng.random() < 0.08 else letter
    return w, c


def reply(skill: str, word: str, letter: str | None = None) -> str | list[dict]:
    if skill == "spell":
        return spell_reply(word)
    if skill == "count":
        return count_reply(word, letter)
    return reverse_reply(word)


def exchange(rng: random.Random, skill: str, word: str, split: Split) -> tuple[str, str | list[dict], str | None]:
    """One (user, assistant, letter) exchange asking ``skill`` about ``word``."""
    letter = pick_letter(rng, word) if skill == "count" else None
    w, c = _as_typed(rng, word, letter or "")
    user = pick(rng, TEMPLATES[skill], split).format(w=w, c=c)
    return typed(rng, user), reply(skill, word, letter), letter


def follow_up(rng: random.Random, word: str, split: Split) -> tuple[str, str | list[dict], str, str | None]:
    """A follow-up about the previous turn's word: (user, assistant, skill, letter)."""
    skill, phrase = rng.choice(FOLLOW_UPS[split])
    letter = pick_letter(rng, word) if skill == "count" else None
    return typed(rng, phrase.format(c=letter or "")), reply(skill, word, letter), skill, letter
