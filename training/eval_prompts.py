"""Held-out evaluation prompts and their scorers.

Every prompt uses the held-out split: phrasings, words and arithmetic expressions that never
occur in training, drawn with seeds of their own. Each ``EvalItem`` is a conversation ending
with a user message and the answer a correct reply must state; ``score(item, reply)`` reads the
reply's visible text (the calculator's output included) and says whether it does.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from training import arithmetic, calc_errors, chats, math_skills, small_talk, word_extras, word_skills

# rows of the eval table, in order: the first model's six, then issue 17's. Each row draws its
# prompts from a seed of its own (``seed * 100 + its index here``), so adding rows at the end
# leaves every earlier row's prompts byte-identical: new models are compared on the same prompts.
FIRST_SKILLS = ("arithmetic", "spelling", "counting", "reversal", "multi_turn", "small_talk")
NEW_SKILLS = ("letters", "powers", "percentages", "square_roots", "palindromes", "long_words", "acknowledge",
              "conversations", "calc_errors")
SKILLS = FIRST_SKILLS + NEW_SKILLS
_MATH_ROWS = {"powers": "power", "percentages": "percent", "square_roots": "sqrt"}

# what an on-topic small-talk reply must mention (lower case)
ON_TOPIC = {
    "greeting": ("hello",),
    "identity": ("glasschat", "tiny"),
    "capabilities": ("arithmetic", "spell"),
    "how_are_you": ("thanks",),
    "thanks": ("welcome",),
    "goodbye": ("goodbye",),
    "out_of_scope": ("can't help",),
    "acknowledge": ("anything else",),
}


@dataclass(frozen=True)
class EvalItem:
    skill: str  # a row of SKILLS
    kind: str  # finer: the operator shape, the small-talk kind, the follow-up skill
    conversation: dict  # ends with the user message to answer
    expected: str  # the answer: a number, a spelled word, a reversed word, or a small-talk kind
    phrasing: str = ""  # the held-out template of the last request ("make {w} go backwards"); small talk: its kind
    chat: int | None = None  # conversations: which chat the reply belongs to


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(content) -> dict:
    return {"role": "assistant", "content": content}


def _arithmetic_item(rng: random.Random) -> EvalItem:
    user, _, problem = arithmetic.exchange(rng, "heldout")
    kind = "parentheses" if "(" in problem.call else f"{problem.call.count(' ') // 2 + 1} operands"
    return EvalItem("arithmetic", kind, {"messages": [_user(user)]}, arithmetic.calculator_output(problem.call),
                    problem.phrasing)


def _word_item(rng: random.Random, skill: str, words: Sequence[str]) -> EvalItem:
    word = rng.choice(words)
    turn = word_skills.exchange(rng, skill, word, "heldout")
    row = {"spell": "spelling", "count": "counting", "reverse": "reversal"}[skill]
    return EvalItem(row, f"{len(word)} letters", {"messages": [_user(turn.user)]}, _word_answer(turn, word),
                    turn.phrasing)


def _word_answer(turn: word_skills.WordTurn, word: str) -> str:
    if turn.skill == "count":
        return str(word.lower().count(turn.letter))
    return word_skills.spelled(word) if turn.skill == "spell" else word.lower()[::-1]


def _multi_turn_item(rng: random.Random, words: Sequence[str]) -> EvalItem:
    """A held-out first exchange (with its correct reply) and a held-out follow-up to answer."""
    if rng.random() < 0.5:
        while True:
            user, parts, problem = arithmetic.exchange(rng, "heldout")
            if isinstance(problem.value, int) and abs(problem.value) < 10**6:
                break
        follow, _, answer = arithmetic.follow_up(rng, problem.value, "heldout")
        messages = [_user(user), _assistant(parts), _user(follow)]
        return EvalItem("multi_turn", "arithmetic", {"messages": messages}, arithmetic.calculator_output(answer.call),
                        answer.phrasing)
    word = rng.choice(words)
    first = word_skills.exchange(rng, rng.choice(word_skills.WORD_SKILLS), word, "heldout")
    follow = word_skills.follow_up(rng, word, "heldout")
    messages = [_user(first.user), _assistant(first.reply), _user(follow.user)]
    return EvalItem("multi_turn", follow.skill, {"messages": messages}, _word_answer(follow, word), follow.phrasing)


def _small_talk_item(rng: random.Random) -> EvalItem:
    kind = rng.choice(small_talk.KINDS)
    return EvalItem("small_talk", kind, {"messages": [_user(small_talk.user_prompt(rng, kind, "heldout"))]}, kind, kind)


def _math_item(rng: random.Random, skill: str) -> EvalItem:
    user, _, problem = math_skills.exchange(rng, _MATH_ROWS[skill], "heldout")
    return EvalItem(skill, _MATH_ROWS[skill], {"messages": [_user(user)]}, arithmetic.calculator_output(problem.call),
                    problem.phrasing)


def _extra_word_item(rng: random.Random, skill: str, words: Sequence[str]) -> EvalItem:
    name = "letters" if skill == "letters" else "palindrome"
    word = rng.choice(words)
    if name == "palindrome":
        word = word_extras.palindrome_word(rng, words, "heldout")
    turn = word_extras.exchange(rng, name, word, "heldout")
    return EvalItem(skill, name, {"messages": [_user(turn.user)]}, chats.word_answer(name, word, None), turn.phrasing)


def _long_word_item(rng: random.Random) -> EvalItem:
    word = rng.choice(word_extras.long_words()[1])
    skill = rng.choice(word_skills.WORD_SKILLS)
    turn = word_skills.exchange(rng, skill, word, "heldout")
    return EvalItem("long_words", skill, {"messages": [_user(turn.user)]}, _word_answer(turn, word),
                    f"{skill} {len(word)} letters")


def _acknowledge_item(rng: random.Random) -> EvalItem:
    text = small_talk.user_prompt(rng, "acknowledge", "heldout")
    return EvalItem("acknowledge", "acknowledge", {"messages": [_user(text)]}, "acknowledge", "acknowledge")


def _calc_error_item(rng: random.Random) -> EvalItem:
    kind, call, user, phrasing = calc_errors.request(rng, "heldout")
    return EvalItem("calc_errors", kind, {"messages": [_user(user)]}, calc_errors.error_output(call), phrasing)


def conversation_items(rng: random.Random, words: Sequence[str], replies: int) -> list[EvalItem]:
    """Held-out chats (3-6 requests, skills switched, back-references) until there are at least
    ``replies`` replies to score; one item per reply: the chat so far, with the right earlier
    replies, ending with its user message. Whole chats are kept, so a few more may come."""
    items: list[EvalItem] = []
    chat_no = 0
    while len(items) < replies:
        messages, wanted = chats.chat(rng, "heldout", lambda r: r.choice(words))
        for turn, reply in enumerate(wanted):
            items.append(EvalItem("conversations", reply.skill, {"messages": messages[:2 * turn + 1]}, reply.expected,
                                  f"{reply.ref} {reply.skill}", chat=chat_no))
        chat_no += 1
    return items


# The README's conversation (docs/conversation.jsonl): each request and what its reply must
# answer. It is replayed the way a user has it — each reply generated on the model's own earlier
# replies — so one wrong reply can derail the rest, as in the app.
README_CHAT = (
    ("hi", "greeting", "greeting"), ("who are you?", "identity", "identity"),
    ("what can you do?", "capabilities", "capabilities"), ("What is 12 + 30?", "arithmetic", "42"),
    ("now multiply that by 3", "arithmetic", "126"), ("spell banana", "spell", "b a n a n a"),
    ("how many r's in strawberry?", "count", "3"), ("reverse the word house", "reverse", "esuoh"),
    ("write me a poem about the sea", "out_of_scope", "out_of_scope"), ("thanks, bye!", "goodbye", "goodbye"),
)


# What people type first, each as a new chat: bare requests on common words (the capabilities
# reply's and the README's examples among them), not held out. The held-out rows ask about unseen
# words in many phrasings and cannot see a model that spells "banana" right inside a chat but
# leaks the letters of "spell" into it when that is all the user typed.
FIRST_PROMPTS = (
    ("spell banana", "spell", "b a n a n a"), ("spell hello", "spell", "h e l l o"),
    ("spell strawberry", "spell", "s t r a w b e r r y"), ("spell house", "spell", "h o u s e"),
    ("how do you spell elephant?", "spell", "e l e p h a n t"), ("spell apple", "spell", "a p p l e"),
    ("spell supercalifragilistic", "spell", "s u p e r c a l i f r a g i l i s t i c"),
    ("how many r's in strawberry?", "count", "3"), ("how many a's in banana?", "count", "3"),
    ("how many l's are in hello?", "count", "2"), ("how many letters in hello?", "letters", "5"),
    ("how many letters are in the word banana", "letters", "6"),
    ("reverse the word house", "reverse", "esuoh"), ("reverse hello", "reverse", "olleh"),
    ("spell banana backwards", "reverse", "ananab"), ("is level a palindrome?", "palindrome", "yes"),
    ("is hello a palindrome?", "palindrome", "no"),
    ("what is 12 + 30?", "arithmetic", "42"), ("What's 15% of 80?", "arithmetic", "12"),
    ("what is 3 to the power of 4", "arithmetic", "81"), ("what is 7 squared?", "arithmetic", "49"),
    ("hi", "greeting", "greeting"), ("what can you do?", "capabilities", "capabilities"),
    ("thank you very much", "thanks", "thanks"), ("ok", "acknowledge", "acknowledge"),
    ("lol", "acknowledge", "acknowledge"), ("bye", "goodbye", "goodbye"),
)


def first_prompt_items() -> list[EvalItem]:
    """``FIRST_PROMPTS`` as eval items, one new chat each."""
    return [EvalItem("first_prompts", kind, {"messages": [_user(user)]}, expected, user)
            for user, kind, expected in FIRST_PROMPTS]


def readme_item(turn: int, messages: list[dict]) -> EvalItem:
    """The README chat's request ``turn`` after ``messages`` (the chat so far, replies as generated)."""
    user, kind, expected = README_CHAT[turn]
    return EvalItem("readme", kind, {"messages": [*messages, _user(user)]}, expected, user)


def eval_items(heldout_words: Sequence[str], per_skill: int, seed: int = 1234,
               skills: Sequence[str] = SKILLS) -> list[EvalItem]:
    """``per_skill`` held-out items for each row of ``skills`` (all rows of ``SKILLS`` by
    default; ``conversations`` counts replies), deterministic in ``seed``."""
    if not heldout_words:
        raise ValueError("no held-out words")
    unknown = [s for s in skills if s not in SKILLS]
    if unknown:
        raise ValueError(f"unknown eval skills: {', '.join(unknown)} (known: {', '.join(SKILLS)})")
    items: list[EvalItem] = []
    for skill in skills:
        rng = random.Random(seed * 100 + SKILLS.index(skill))
        if skill == "conversations":
            items += conversation_items(rng, heldout_words, per_skill)
            continue
        for _ in range(per_skill):
            if skill == "arithmetic":
                items.append(_arithmetic_item(rng))
            elif skill in ("spelling", "counting", "reversal"):
                name = {"spelling": "spell", "counting": "count", "reversal": "reverse"}[skill]
                items.append(_word_item(rng, name, heldout_words))
            elif skill == "multi_turn":
                items.append(_multi_turn_item(rng, heldout_words))
            elif skill == "small_talk":
                items.append(_small_talk_item(rng))
            elif skill in _MATH_ROWS:
                items.append(_math_item(rng, skill))
            elif skill in ("letters", "palindromes"):
                items.append(_extra_word_item(rng, skill, heldout_words))
            elif skill == "long_words":
                items.append(_long_word_item(rng))
            elif skill == "calc_errors":
                items.append(_calc_error_item(rng))
            else:
                items.append(_acknowledge_item(rng))
    return items


# ---- scoring

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _numbers_equal(text: str, expected: str) -> bool:
    try:
        got, want = float(text), float(expected)
    except ValueError:
        return False
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def final_text(reply: str | list[dict]) -> str:
    """The text after the last tool call: what the assistant says to the user."""
    if isinstance(reply, str):
        return reply
    tail = []
    for part in reply:
        if part["type"] == "text":
            tail.append(part["text"])
        else:
            tail = []
    return "".join(tail)


def visible_text(reply: str | list[dict]) -> str:
    if isinstance(reply, str):
        return reply
    return "".join(part["text"] for part in reply if part["type"] == "text")


def _spelled_answer(text: str, expected: str) -> bool:
    # the spelled word as a whole run of single letters: no letter glued on either side
    return re.search(rf"(?<![a-z] )(?<![a-z])\b{re.escape(expected)}\b(?! [a-z]\b)", text.lower()) is not None


def _count_answer(text: str, expected: str) -> bool:
    match = re.search(r"there (?:is|are) (\d+) ", text.lower())
    return match is not None and match.group(1) == expected


def _letters_answer(text: str, expected: str) -> bool:
    match = re.search(r" has (\d+) letters?\b", text.lower())
    return match is not None and match.group(1) == expected


def _palindrome_answer(text: str, expected: str) -> bool:
    # the verdict the reply ends on; a reply that says both is wrong
    verdicts = set(re.findall(r"\bso (yes|no)\b", text.lower()))
    return verdicts == {expected}


def _reversal_answer(text: str, expected: str) -> bool:
    return re.search(rf"\b{re.escape(expected)}\b", text.lower()) is not None


def score(item: EvalItem, reply: str | list[dict]) -> bool:
    """Whether ``reply`` (a parsed assistant turn) states the expected answer."""
    kind = item.kind if item.skill in ("multi_turn", "conversations", "long_words", "readme", "first_prompts") \
        else item.skill
    if item.skill == "calc_errors":
        # honest about the calculator's error: says there is no answer and states no number
        said = final_text(reply)
        return "no answer" in said.lower() and not re.search(r"\d", said)
    if kind in ("arithmetic", *_MATH_ROWS):
        numbers = _NUMBER.findall(final_text(reply))
        return bool(numbers) and _numbers_equal(numbers[-1], item.expected)
    text = visible_text(reply)
    if kind in ("spelling", "spell"):
        return _spelled_answer(text, item.expected)
    if kind in ("counting", "count"):
        return _count_answer(text, item.expected)
    if kind in ("reversal", "reverse"):
        return _reversal_answer(text, item.expected)
    if kind == "letters":
        return _letters_answer(text, item.expected)
    if kind in ("palindromes", "palindrome"):
        return _palindrome_answer(text, item.expected)
    lowered = text.lower()
    return all(phrase in lowered for phrase in ON_TOPIC[item.expected])
