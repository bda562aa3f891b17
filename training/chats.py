"""Conversations that switch skill every turn and refer back, the way people actually chat:

    spell banana -> how many r's in strawberry? -> and how many p's? -> what is 12 + 30?
    -> now multiply that by 3 -> and 'stressed'? (reverse it) -> thanks

Two rules make the model read the *latest* request:

- the newest word wins: a turn that names a word makes it what "it"/"that word" means from then
  on, and every later word question without a word of its own is about that newest word — never
  about an earlier one, however often that one was asked about;
- "that"/"the answer" in an arithmetic follow-up is the latest number the calculator gave,
  even if word questions came in between (and a word follow-up after an arithmetic turn still
  means the latest word).

Consecutive turns switch skill, except two back-references that continue the previous turn:
"and 'stressed'?", which asks the previous word question again about a new word (the new word
then wins), and "now multiply that by 3" right after a result.

``chat`` returns the messages and, per assistant reply, a ``Reply`` saying what it must
answer, so evaluation scores each reply of a held-out chat.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from training import arithmetic, math_skills, small_talk, word_extras, word_skills
from training.phrasing import Split, check_disjoint, typed
from training.word_skills import THE_WORD, _letter_as_typed, _word_as_typed, pick_letter

# back-references to the latest word for the skills of ``word_extras``: (skill, phrase with {it})
EXTRA_FOLLOW_UPS = check_disjoint({
    "train": [("letters", "and how many letters?"), ("letters", "how many letters does {it} have?"),
              ("letters", "how long is {it}?"), ("letters", "count the letters in {it}"),
              ("letters", "and the number of letters?"), ("palindrome", "is {it} a palindrome?"),
              ("palindrome", "and is {it} a palindrome?"), ("palindrome", "is {it} the same backwards?"),
              ("palindrome", "palindrome?"), ("reverse", "spell {it} backwards"), ("reverse", "and backwards?"),
              ("count", "and how many {cs}?"), ("spell", "spell {it} for me")],
    "heldout": [("letters", "how many letters would {it} have?"), ("palindrome", "would {it} be a palindrome?"),
                ("reverse", "spell {it} in reverse now"), ("count", "how often does {c} show up in {it}?")],
})
# the previous word question again, about a new word: {w} as typed
SAME_AGAIN = check_disjoint({
    "train": ["and {w}?", "what about {w}?", "now {w}", "same for {w}", "and {w}", "now do {w}", "{w} too?",
              "how about {w}?", "and now {w}?", "ok, and {w}?", "same with {w}", "then {w}?"],
    "heldout": ["and for {w}?", "next up: {w}", "do {w} next"],
})
WORD_TURN_SKILLS = ("spell", "count", "reverse", "letters", "palindrome")
NUMBER_SKILLS = ("arithmetic", "power", "percent", "sqrt")
CHAT_TALK = ("thanks", "acknowledge", "out_of_scope", "capabilities", "identity", "how_are_you")


@dataclass(frozen=True)
class Reply:
    """What one assistant reply of a chat must answer: ``skill`` (a word skill, ``arithmetic``
    for every calculator call, or a small-talk kind), the ``expected`` answer (as the eval's
    scorers read it), and how the request was made (``fresh``, ``back-ref``, ``again``)."""

    skill: str
    expected: str
    ref: str
    phrasing: str


def word_answer(skill: str, word: str, letter: str | None) -> str:
    """The answer a reply about ``word`` must state, in the form the eval's scorers read."""
    w = word.lower()
    if skill == "spell":
        return word_skills.spelled(w)
    if skill == "count":
        return str(w.count(letter))
    if skill == "reverse":
        return w[::-1]
    if skill == "letters":
        return str(len(w))
    return "yes" if w == w[::-1] else "no"


def _word_reply(skill: str, word: str, letter: str | None):
    if skill in word_skills.WORD_SKILLS:
        return word_skills.reply(skill, word, letter)
    return word_extras.reply(skill, word)


@dataclass
class _State:
    word: str | None = None  # the newest word a user named: what "it" means
    word_skill: str | None = None  # the previous turn's word question, for "and 'stressed'?"
    letter: str | None = None  # the letter that question counted
    value: int | None = None  # the latest calculator result, if a follow-up can use it
    last: str | None = None  # the previous turn's skill: the next turn switches


def chat(rng: random.Random, split: Split, pick_word: Callable[[random.Random], str],
         turns: int | None = None) -> tuple[list[dict], list[Reply]]:
    """A chat of ``turns`` (3-6 by default) requests, a skill switch every turn, with back-references.

    ``pick_word(rng)`` draws a word of the split (the caller decides which words that may be)."""
    turns = turns or rng.choice((3, 4, 4, 5, 5, 6))
    messages: list[dict] = []
    replies: list[Reply] = []
    state = _State()
    if rng.random() < 0.2:
        _say(messages, replies, *_talk(rng, "greeting", split))
    for _ in range(turns):
        # a fresh calculation right after one is rarer: chats switch between words and numbers
        options = ["word", "word"] + (["number"] if state.last in NUMBER_SKILLS else ["number", "number"])
        if state.word is not None:
            options += ["word_ref", "word_ref"]
        if state.word_skill is not None and state.last == state.word_skill:
            options += ["again"]
        if state.value is not None and state.last not in (None, "arithmetic"):
            options += ["number_ref"]
        if state.value is not None and state.last in NUMBER_SKILLS:
            options += ["number_ref", "number_ref"]  # "now multiply that by 3" right after a result
        if state.last not in CHAT_TALK and state.last is not None:
            options += ["talk"]
        kind = rng.choice(options)
        user, reply, meta = _TURNS[kind](rng, split, state, pick_word)
        _say(messages, replies, user, reply, meta)
    if rng.random() < 0.35:
        # a closing remark, never the same small talk as the turn before it
        _say(messages, replies, *_talk(rng, rng.choice([k for k in ("thanks", "goodbye", "acknowledge")
                                                         if k != state.last]), split))
    return messages, replies


def _say(messages: list[dict], replies: list[Reply], user: str, reply, meta: Reply) -> None:
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    replies.append(meta)


def _talk(rng: random.Random, kind: str, split: Split):
    user, reply = small_talk.exchange(rng, kind, split)
    return user, reply, Reply(kind, kind, "fresh", kind)


def _fresh_word(rng, split, state, pick_word):
    skill = rng.choice([s for s in WORD_TURN_SKILLS if s != state.last])
    word = pick_word(rng)
    while word == state.word:
        word = pick_word(rng)
    if skill == "palindrome" and rng.random() < 0.5:
        word = rng.choice(word_extras.palindromes(split))  # half the palindrome questions are about one
    if skill in word_skills.WORD_SKILLS:
        turn = word_skills.exchange(rng, skill, word, split)
    else:
        turn = word_extras.exchange(rng, skill, word, split)
    state.word, state.word_skill, state.letter, state.last = word, skill, turn.letter, skill
    return turn.user, turn.reply, Reply(skill, word_answer(skill, word, turn.letter), "fresh", turn.phrasing)


def _word_ref(rng, split, state, pick_word):
    follow_ups = [f for f in word_skills.FOLLOW_UPS[split] + EXTRA_FOLLOW_UPS[split] if f[0] != state.last]
    skill, phrase = rng.choice(follow_ups)
    letter = pick_letter(rng, state.word) if skill == "count" else None
    c, cs = _letter_as_typed(rng, letter or "x")
    user = typed(rng, phrase.format(it=rng.choice(THE_WORD), c=c, cs=cs))
    state.word_skill, state.letter, state.last = skill, letter, skill
    return user, _word_reply(skill, state.word, letter), Reply(skill, word_answer(skill, state.word, letter),
                                                              "back-ref", phrase)


def _again(rng, split, state, pick_word):
    """The previous word question about a new word: "and 'stressed'?" — the new word wins."""
    word = pick_word(rng)
    while word == state.word:
        word = pick_word(rng)
    phrase = rng.choice(SAME_AGAIN[split])
    user = typed(rng, phrase.format(w=_word_as_typed(rng, word)))
    skill, letter = state.word_skill, state.letter  # a count keeps its letter: "and 'berry'?" counts r's again
    state.word = word
    return user, _word_reply(skill, word, letter), Reply(skill, word_answer(skill, word, letter), "again", phrase)


def _remember(state: _State, value, skill: str) -> None:
    state.value = value if isinstance(value, int) and abs(value) < 10**6 else (
        int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 10**6 else None)
    state.last = skill


def _fresh_number(rng, split, state, pick_word):
    skill = rng.choice([s for s in ("arithmetic", "arithmetic", *NUMBER_SKILLS) if s != state.last])
    if skill == "arithmetic":
        user, parts, problem = arithmetic.exchange(rng, split)
    else:
        user, parts, problem = math_skills.exchange(rng, skill, split)
    _remember(state, problem.value, skill)
    return user, parts, Reply("arithmetic", arithmetic.calculator_output(problem.call), "fresh", problem.phrasing)


def _number_ref(rng, split, state, pick_word):
    user, parts, problem = arithmetic.follow_up(rng, state.value, split)
    _remember(state, problem.value, "arithmetic")
    return user, parts, Reply("arithmetic", arithmetic.calculator_output(problem.call), "back-ref", problem.phrasing)


def _chat_talk(rng, split, state, pick_word):
    kind = rng.choice([k for k in CHAT_TALK if k != state.last])
    state.last = kind
    return _talk(rng, kind, split)


_TURNS = {"word": _fresh_word, "number": _fresh_number, "word_ref": _word_ref, "again": _again,
          "number_ref": _number_ref, "talk": _chat_talk}
