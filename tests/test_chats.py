"""Issue 17's generators: chats that switch skill and refer back (the newest word wins), the new
calculator skills, letter totals, palindromes and long words — correct, and with held-out words,
expressions and phrasings that stay out of training."""

import random
import re

import pytest

from model import calculate
from training import arithmetic, chats, math_skills, small_talk, word_extras, word_skills
from training.conversations import ConversationSource
from training.eval_prompts import eval_items
from training.phrasing import check_disjoint
from training.words import is_heldout, split_words

TRAIN_WORDS, HELDOUT_WORDS = split_words()
# distinct words that no template contains, so the words a user named can be found in the text
NAMED = ("banana", "strawberry", "stressed", "pepper", "kangaroo", "level", "umbrella", "xylophone")


def _text(content) -> str:
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


def _named_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w in NAMED]


@pytest.fixture
def named_palindromes(monkeypatch):
    # a palindrome question may swap in a palindrome of its own: one of NAMED, so it is found too
    monkeypatch.setattr(word_extras, "palindromes", lambda split: ("level",))


def _chats(n: int, seed: int, split="train"):
    rng = random.Random(seed)
    return [chats.chat(rng, split, lambda r: r.choice(NAMED)) for _ in range(n)]


def test_the_newest_word_wins(named_palindromes):
    # every word question is about the last word a user named, however many turns ago, and never
    # about an earlier one — checked from the text alone, not from the generator's bookkeeping
    checked = {"fresh": 0, "back-ref": 0, "again": 0}
    for messages, replies in _chats(400, seed=1):
        newest = None
        for turn, reply in enumerate(replies):
            user, answer = messages[2 * turn]["content"], _text(messages[2 * turn + 1]["content"])
            named = _named_words(user)
            if named:
                newest = named[-1]
            if reply.skill in chats.WORD_TURN_SKILLS:
                assert newest is not None, user
                spelled = word_skills.spelled(newest)
                assert spelled in re.sub(r" \(\d+\)", "", answer), (user, answer, newest)
                assert reply.expected == chats.word_answer(reply.skill, newest, _counted(answer))
                checked[reply.ref] += 1
    assert min(checked.values()) > 50, checked


def _counted(answer: str) -> str | None:
    match = re.search(r"counting the (\w)'s", answer)
    return match.group(1) if match else None


def test_that_means_the_latest_calculator_result():
    found = 0
    for messages, replies in _chats(400, seed=2):
        latest = None
        for turn, reply in enumerate(replies):
            content = messages[2 * turn + 1]["content"]
            if isinstance(content, list) and content[0]["type"] == "python":
                if reply.ref == "back-ref":
                    assert content[0]["text"].startswith(f"{latest} "), (messages[2 * turn]["content"], latest)
                    found += 1
                output = content[1]["text"]
                latest = output if re.fullmatch(r"-?\d+", output) else None
    assert found > 50


def test_chats_switch_skill_and_refer_back():
    kinds = []
    for messages, replies in _chats(300, seed=3):
        requests = [r for r in replies if r.skill not in ("greeting", "goodbye")]
        assert 3 <= len(requests) <= 7
        for a, b in zip(replies, replies[1:]):
            # the same skill twice only as "and 'stressed'?" or a follow-up on the result
            assert a.skill != b.skill or b.ref in ("again", "back-ref") or b.skill == "arithmetic", (a, b)
        kinds += [r.ref for r in replies]
    assert {"fresh", "back-ref", "again"} <= set(kinds)


def test_chat_replies_are_right():
    for messages, replies in _chats(200, seed=4):
        for turn, reply in enumerate(replies):
            content = messages[2 * turn + 1]["content"]
            if isinstance(content, list) and content[0]["type"] == "python":
                assert calculate(content[0]["text"]) == content[1]["text"] == reply.expected
            elif reply.skill in small_talk.REPLIES:
                assert content == small_talk.REPLIES[reply.skill]


def test_new_replies_count_and_compare_step_by_step():
    assert word_extras.letters_reply("hello") == "Counting the letters: h (1) e (2) l (3) l (4) o (5). So hello has 5 letters."
    assert word_extras.palindrome_reply("Level").endswith("so yes, level is a palindrome.")
    assert word_extras.palindrome_reply("lever") == (
        "Spelled out: l e v e r. Backwards: r e v e l. Not the same, so no, lever is not a palindrome.")
    assert all(w == w[::-1] for w in word_extras.PALINDROMES)


@pytest.mark.parametrize("skill, ask, call", [("power", "to the power of", "**"), ("percent", "%", "/ 100 *"),
                                              ("sqrt", "root", "sqrt(")])
def test_math_skills_call_the_calculator_safely(skill, ask, call):
    rng = random.Random(6)
    for split in ("train", "heldout"):
        for _ in range(500):
            user, parts, problem = math_skills.exchange(rng, skill, split)
            assert call in parts[0]["text"]
            assert calculate(parts[0]["text"]) == parts[1]["text"]  # never refused: the bounds fit the data
            assert arithmetic.is_heldout(problem.call) == (split == "heldout")
    users = [math_skills.exchange(rng, skill, "train")[0].lower() for _ in range(300)]
    assert any(ask in u for u in users)


def test_squared_and_cubed_mean_powers_of_two_and_three():
    rng = random.Random(7)
    seen = set()
    for _ in range(2000):
        user, parts, _ = math_skills.exchange(rng, "power", "train")
        for word, exponent in (("squared", 2), ("cubed", 3)):
            if word in user.lower():
                assert parts[0]["text"].endswith(f"** {exponent}")
                seen.add(word)
    assert seen == {"squared", "cubed"}


def test_long_words_are_13_to_20_letters_and_split():
    train, held = word_extras.long_words()
    assert len(train) > 80 and held and set(train).isdisjoint(held)
    assert all(re.fullmatch(r"[a-z]{13,20}", w) for w in train + held)
    assert "supercalifragilistic" in train + held
    assert all(is_heldout(w) for w in held) and not any(is_heldout(w) for w in train)
    assert word_extras.palindromes("heldout") and set(word_extras.palindromes("train")).isdisjoint(
        word_extras.palindromes("heldout"))


def test_new_phrasings_are_disjoint_between_splits():
    for table in (math_skills.POWERS, math_skills.SQUARES, math_skills.PERCENTS, math_skills.ROOTS,
                  word_extras.LETTERS, word_extras.PALINDROME, chats.EXTRA_FOLLOW_UPS, chats.SAME_AGAIN,
                  small_talk.MORE_PROMPTS["acknowledge"]):
        check_disjoint(table)
    train_follow_ups = {p for _, p in word_skills.FOLLOW_UPS["train"] + chats.EXTRA_FOLLOW_UPS["train"]}
    assert train_follow_ups.isdisjoint(p for _, p in chats.EXTRA_FOLLOW_UPS["heldout"] + word_skills.FOLLOW_UPS["heldout"])


@pytest.fixture(scope="module")
def training_chats():
    source = ConversationSource("train", TRAIN_WORDS, mixture={"chat": 3, "long_word": 1, "letters": 1, "palindrome": 1,
                                                               "power": 1, "percent": 1, "sqrt": 1, "acknowledge": 1})
    return source.conversations(3000, seed=8)


def test_training_never_names_a_heldout_word_or_expression(training_chats):
    held = set(HELDOUT_WORDS) | set(word_extras.long_words()[1]) | set(word_extras.palindromes("heldout"))
    texts = [_text(m["content"]).lower() for c in training_chats for m in c["messages"]]
    words = {w for t in texts for w in re.findall(r"[a-z]+", t)}
    spelled = {run.replace(" ", "") for t in texts for run in re.findall(r"(?<![a-z])(?:[a-z] )+[a-z](?![a-z])",
                                                                          re.sub(r" \(\d+\)", "", t))}
    assert len(spelled) > 1000
    assert held.isdisjoint(spelled)
    # held-out long words and palindromes are no template's words: not even named in a request
    assert words.isdisjoint(word_extras.long_words()[1]) and words.isdisjoint(word_extras.palindromes("heldout"))
    calls = [p["text"] for c in training_chats for m in c["messages"] if isinstance(m["content"], list)
             for p in m["content"] if p["type"] == "python"]
    assert len(calls) > 1000 and not any(arithmetic.is_heldout(call) for call in calls)


def test_heldout_phrasings_never_appear_in_training(training_chats):
    prompts = [m["content"].lower() for c in training_chats for m in c["messages"] if m["role"] == "user"]
    heldout = [p for p, _ in word_extras.LETTERS["heldout"] + word_extras.PALINDROME["heldout"]]
    heldout += [p for _, p in chats.EXTRA_FOLLOW_UPS["heldout"]] + chats.SAME_AGAIN["heldout"]
    for phrase in heldout:
        pattern = re.escape(phrase.lower().rstrip("?")).replace(re.escape("{w}"), r"\S+").replace(
            re.escape("{it}"), "(?:" + "|".join(word_skills.THE_WORD) + ")").replace(re.escape("{cs}"), r"\S+").replace(re.escape("{c}"), r"\S+")
        assert not any(re.search(pattern, p) for p in prompts), phrase
    eval_prompts = {i.conversation["messages"][-1]["content"].lower() for i in eval_items(
        HELDOUT_WORDS, 100, seed=1234, skills=("letters", "palindromes", "powers", "percentages", "square_roots"))}
    assert eval_prompts.isdisjoint(prompts)
