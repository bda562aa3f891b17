"""Evaluation: the scorers, and the eval loop on an engine that answers right or wrong."""

import pytest

from model.events import GenerationStats, Stop, TokenEvent
from training import small_talk
from training.eval_prompts import SKILLS, EvalItem, eval_items, score
from training.evaluate import evaluate, format_table, format_weak_phrasings
from training.words import split_words

HELDOUT = split_words()[1]


def _item(skill, expected, kind=None):
    return EvalItem(skill, kind or skill, {"messages": [{"role": "user", "content": "?"}]}, expected)


def test_arithmetic_reads_the_number_stated_after_the_tool():
    item = _item("arithmetic", "42")
    reply = [{"type": "python", "text": "12 + 30"}, {"type": "python_output", "text": "42"},
             {"type": "text", "text": "The answer is 42."}]
    assert score(item, reply)
    assert not score(item, reply[:2])  # the tool's output alone is not an answer
    assert not score(item, [*reply[:2], {"type": "text", "text": "The answer is 43."}])
    assert score(_item("arithmetic", "-3.5"), "The answer is -3.5.")
    assert score(_item("arithmetic", "1.66666666667"), "The answer is 1.66666666667.")


def test_word_scorers_accept_the_answer_and_nothing_near_it():
    spell = _item("spelling", "h o u s e")
    assert score(spell, "Letter by letter: h o u s e.")
    assert not score(spell, "Letter by letter: h o u s e s.")
    assert not score(spell, "Letter by letter: h o u e.")
    count = _item("counting", "3")
    assert score(count, "Spelling it out and counting the r's: s t r (1) a w b e r (2) r (3) y. So there are 3 r's.")
    assert not score(count, "Spelling it out: s t r (1) a w b e r (2) y. So there are 2 r's.")
    reverse = _item("reversal", "esuoh")
    assert score(reverse, "Spelled out: h o u s e. Backwards: e s u o h. Reversed, the word is esuoh.")
    assert not score(reverse, "Spelled out: h o u s e. Backwards: e s u o h. Reversed, the word is esuo.")


def test_small_talk_must_be_on_topic():
    assert score(_item("small_talk", "greeting"), small_talk.REPLIES["greeting"])
    assert score(_item("small_talk", "out_of_scope"), small_talk.REPLIES["out_of_scope"])
    assert not score(_item("small_talk", "out_of_scope"), small_talk.REPLIES["greeting"])
    assert not score(_item("small_talk", "identity"), "The answer is 42.")


def _correct_reply(item: EvalItem) -> str:
    kind = item.kind if item.skill == "multi_turn" else item.skill
    return {
        "arithmetic": f"The answer is {item.expected}.",
        "spelling": f"Letter by letter: {item.expected}.", "spell": f"Letter by letter: {item.expected}.",
        "counting": f"So there are {item.expected} x's.", "count": f"So there are {item.expected} x's.",
        "reversal": f"Reversed, the word is {item.expected}.", "reverse": f"Reversed, the word is {item.expected}.",
    }.get(kind) or small_talk.REPLIES[item.expected]


class ScriptedEngine:
    """Answers each prompt with a scripted reply, token by token, like ``Engine.stream``."""

    def __init__(self, tokenizer, replies: dict[tuple, str], stop_every: int = 1):
        self.tokenizer, self.replies, self.calls, self.stop_every = tokenizer, replies, 0, stop_every

    def stream(self, prompt_ids, params):
        self.calls += 1
        ids = self.tokenizer.encode(self.replies[tuple(prompt_ids)])
        for token in ids:
            yield TokenEvent(id=token, text=self.tokenizer.decode([token]), forced=False)
        reason = "assistant_end" if self.calls % self.stop_every else "max_tokens"
        if reason == "assistant_end":
            yield TokenEvent(id=self.tokenizer.encode_special("<|assistant_end|>"), text="", forced=False)
        yield Stop(reason, GenerationStats(len(prompt_ids), len(ids) + 1, 0.01, 0.01 + 0.001 * len(ids)))


@pytest.mark.parametrize("correct", [True, False])
def test_eval_counts_right_and_wrong_answers(tiny_tokenizer, correct):
    items = eval_items(HELDOUT, 4, seed=3)
    replies = {tuple(tiny_tokenizer.render_for_completion(i.conversation)):
               _correct_reply(i) if correct else "I don't know." for i in items}
    engine = ScriptedEngine(tiny_tokenizer, replies, stop_every=12)
    result = evaluate(engine, tiny_tokenizer, items, temperature=0.0, seed=0, log=lambda _: None)
    assert list(result["skills"]) == list(SKILLS)
    for skill, row in result["skills"].items():
        assert row["n"] == 4
        assert row["accuracy"] == (1.0 if correct else 0.0), (skill, row["failures"])
    assert result["stop_rate"] == pytest.approx(22 / 24)  # every 12th reply ran out of tokens
    assert result["mean_reply_tokens"] > 1 and result["tokens_per_s"] > 0
    table = format_table({"runs": [result, {**result, "temperature": 0.7}]})
    assert "greedy" in table and "T=0.7" in table and "stop rate" in table
    assert ("100.0%" if correct else "0.0%") in table.splitlines()[1]


def test_eval_reports_which_heldout_phrasings_it_misses(tiny_tokenizer):
    items = eval_items(HELDOUT, 30, seed=3)
    reversal = [i for i in items if i.skill == "reversal"]
    missed = reversal[0].phrasing  # every request in this phrasing gets a wrong answer
    replies = {tuple(tiny_tokenizer.render_for_completion(i.conversation)):
               "I don't know." if i.skill == "reversal" and i.phrasing == missed else _correct_reply(i) for i in items}
    engine = ScriptedEngine(tiny_tokenizer, replies)
    result = evaluate(engine, tiny_tokenizer, items, temperature=0.0, seed=0, log=lambda _: None)
    phrasings = result["skills"]["reversal"]["phrasings"]
    asked = sum(i.phrasing == missed for i in reversal)
    assert phrasings[missed] == {"n": asked, "correct": 0}
    assert sum(p["n"] for p in phrasings.values()) == 30 and len(phrasings) > 1
    assert all(p["correct"] == p["n"] for name, p in phrasings.items() if name != missed)
    # each held-out phrasing is a template from the held-out split, never the filled-in request
    assert all("{" in i.phrasing for i in items if i.skill != "small_talk")
    weak = format_weak_phrasings({"runs": [result]}).splitlines()
    assert weak[0].startswith("held-out phrasings right under 90% of the time (greedy)")
    assert weak[1:] == [f"  reversal       0/{asked:<3d}  {missed}"]
