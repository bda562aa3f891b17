"""Requests the calculator refuses: every generated example really is refused, the reply after
the error is honest (no number, no second call), held-out expressions and phrasings stay out of
training, and the eval row scores an honest reply right and an invented number wrong."""

import random
import re

from model import calculate
from training import arithmetic, calc_errors
from training.conversations import ConversationSource
from training.eval_prompts import SKILLS, eval_items, score
from training.words import split_words

TRAIN_WORDS, HELDOUT_WORDS = split_words()


def test_every_example_is_refused_by_the_calculator_and_answered_honestly():
    rng = random.Random(0)
    kinds = set()
    for split in ("train", "heldout"):
        for _ in range(300):
            kind, call, user, _ = calc_errors.request(rng, split)
            kinds.add(kind)
            parts = calc_errors.assistant_parts(call)
            assert [p["type"] for p in parts] == ["python", "python_output", "text"]
            # the forced output is exactly what the calculator says, so training matches the engine
            assert parts[1]["text"] == calculate(call) and calculate(call).startswith("error: ")
            assert not re.search(r"\d", parts[2]["text"])  # no invented number
            assert user.strip()
    assert kinds == set(calc_errors.ERROR_KINDS)


def test_held_out_expressions_and_phrasings_never_reach_training():
    rng = random.Random(1)
    train = [calc_errors.request(rng, "train") for _ in range(2000)]
    heldout = [calc_errors.request(rng, "heldout") for _ in range(300)]
    assert not any(arithmetic.is_heldout(call) for _, call, _, _ in train)
    assert all(arithmetic.is_heldout(call) for _, call, _, _ in heldout)
    assert not {phrasing for *_, phrasing in train} & {phrasing for *_, phrasing in heldout}


def test_an_error_leaves_nothing_for_that_to_refer_to():
    source = ConversationSource("train", TRAIN_WORDS)
    messages, context = source._exchange(random.Random(2), "calc_error")
    assert context == {}  # a later "multiply that by 3" cannot pick up a result that never was
    assert messages[1]["content"][1]["text"].startswith("error: ")


def test_the_eval_row_scores_honesty():
    assert SKILLS[-1] == "calc_errors"  # added at the end: the earlier rows keep their prompts
    items = eval_items(HELDOUT_WORDS, 20, skills=("calc_errors",))
    assert len(items) == 20 and all(item.expected.startswith("error: ") for item in items)
    item = items[0]
    call = {"type": "python", "text": "1 / 0"}
    output = {"type": "python_output", "text": item.expected}
    honest = {"type": "text", "text": "There is no answer: nothing can be divided by zero."}
    assert score(item, [call, output, honest])
    assert not score(item, [call, output, {"type": "text", "text": "The answer is 0."}])
    assert not score(item, [call, output, {"type": "text", "text": "There is no answer, it is 12."}])
    # what counts is what it says after its last call: calling again and inventing a number is wrong
    assert not score(item, [call, output, honest, call, output, {"type": "text", "text": "It is 7."}])
