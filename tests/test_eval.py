"""Evaluation: the scorers, and the eval loop on an engine that answers right or wrong."""

import pytest

from model.events import GenerationStats, Stop, TokenEvent
from training import small_talk
from training.eval_prompts import FIRST_SKILLS, SKILLS, EvalItem, eval_items, score
from training.evaluate import app_default, evaluate, format_table, format_weak_phrasings
from training.words import split_words

HELDOUT = split_words()[1]


@pytest.fixture(scope="module")
def default_heldout_words():
    """The held-out words of the bundled model's tokenizer: what its eval asked about."""
    from pathlib import Path

    from tokenizer import Tokenizer
    from training.word_pools import word_pools

    tokenizer = Tokenizer.load(Path(__file__).resolve().parents[1] / "checkpoints" / "default" / "tokenizer")
    return word_pools(tokenizer)[1]


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


def test_letter_totals_and_palindromes_are_read_from_the_verdict():
    letters = _item("letters", "5")
    assert score(letters, "Counting the letters: h (1) e (2) l (3) l (4) o (5). So hello has 5 letters.")
    assert not score(letters, "Counting the letters: h (1) e (2) l (3) l (4). So hell has 4 letters.")
    assert not score(letters, "Spelling it out and counting the l's: h e l (1) l (2) o. So there are 2 l's.")
    yes = _item("palindromes", "yes", kind="palindrome")
    assert score(yes, "Spelled out: l e v e l. Backwards: l e v e l. The same both ways, so yes, level is a palindrome.")
    assert not score(yes, "Spelled out: l e v e r. Backwards: r e v e l. Not the same, so no, lever is not a palindrome.")
    assert not score(yes, "so yes, so no")  # both verdicts is no verdict
    assert not score(yes, "Yes.")


def test_conversation_replies_are_scored_by_the_skill_of_their_request():
    count = _item("conversations", "2", kind="count")
    assert score(count, "Spelling it out and counting the p's: a p (1) p (2) l e. So there are 2 p's.")
    assert not score(count, "Letter by letter: a p p l e.")
    assert score(_item("conversations", "126", kind="arithmetic"), "The answer is 126.")
    assert score(_item("conversations", "thanks", kind="thanks"), small_talk.REPLIES["thanks"])
    assert not score(_item("conversations", "thanks", kind="thanks"), small_talk.REPLIES["goodbye"])
    assert score(_item("acknowledge", "acknowledge"), small_talk.REPLIES["acknowledge"])
    assert score(_item("powers", "81"), "The answer is 81.") and not score(_item("powers", "81"), "The answer is 12.")


def test_the_first_six_rows_keep_the_prompts_the_bundled_model_was_measured_on(default_heldout_words):
    # the targets compare a new model with the shipped one on the same prompts: adding rows must
    # not change a byte of the first six (hash of the 1200 prompts the model card's table used).
    # The words depend on the bundled tokenizer (a word it makes one token always trains), so a
    # new bundled model pins its own prompts here.
    import hashlib
    import json

    items = eval_items(default_heldout_words, 200, seed=1234, skills=FIRST_SKILLS)
    blob = json.dumps([[i.skill, i.kind, i.conversation, i.expected, i.phrasing] for i in items], sort_keys=True)
    assert hashlib.sha256(blob.encode()).hexdigest() == "75a830acb6dc54bed99c623d92b8702f8c8af7761393957edf03998201a314b6"
    assert [i for i in eval_items(default_heldout_words, 200, seed=1234) if i.skill in FIRST_SKILLS] == items


def test_conversation_items_score_each_reply_of_whole_chats():
    items = [i for i in eval_items(HELDOUT, 30, seed=5, skills=("conversations",))]
    assert len(items) >= 30
    by_chat: dict[int, list] = {}
    for item in items:
        by_chat.setdefault(item.chat, []).append(item)
    for chat in by_chat.values():
        requests = [i for i in chat if i.kind not in ("greeting", "thanks", "goodbye", "acknowledge")]
        assert len(requests) >= 3
        for turn, item in enumerate(chat):  # each item is the chat so far, ending with its user message
            messages = item.conversation["messages"]
            assert len(messages) == 2 * turn + 1 and messages[-1]["role"] == "user"
            assert messages[:-1] == chat[-1].conversation["messages"][:2 * turn]
    assert {i.phrasing.split()[0] for i in items} >= {"fresh", "back-ref"}


def test_eval_rejects_unknown_rows():
    with pytest.raises(ValueError, match="unknown eval skills: jokes"):
        eval_items(HELDOUT, 1, skills=("jokes",))


def test_the_default_sampling_column_is_the_apps():
    from model.events import SamplingParams

    column = app_default()
    assert (column.temperature, column.top_k, column.top_p) == (SamplingParams().temperature, SamplingParams().top_k,
                                                               SamplingParams().top_p)
    assert column.label == f"T={SamplingParams().temperature:g} k={SamplingParams().top_k}"


def _correct_reply(item: EvalItem) -> str:
    if item.skill == "calc_errors":
        return "There is no answer: that is not a number the calculator can give."
    kind = item.kind if item.skill in ("multi_turn", "conversations", "long_words", "first_prompts") else item.skill
    if kind in ("powers", "percentages", "square_roots"):
        kind = "arithmetic"
    return {
        "letters": f"So it has {item.expected} letters.",
        "palindromes": f"So {item.expected}, it is.", "palindrome": f"So {item.expected}, it is.",
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
        ids = self.tokenizer.encode(self.replies.get(tuple(prompt_ids), "I don't know."))
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
        assert row["n"] == 4 or (skill == "conversations" and row["n"] >= 4)  # whole chats
        assert row["accuracy"] == (1.0 if correct else 0.0), (skill, row["failures"])
    n = len(items)
    assert result["stop_rate"] == pytest.approx((n - n // 12) / n)  # every 12th reply ran out of tokens
    assert result["mean_reply_tokens"] > 1 and result["tokens_per_s"] > 0
    table = format_table({"runs": [result, {**result, "temperature": 0.7}, {**result, "temperature": 0.6, "top_k": 50}]})
    assert "greedy" in table and "T=0.7" in table and "T=0.6 k=50" in table and "stop rate" in table
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
    assert all("{" in i.phrasing for i in items if i.skill in FIRST_SKILLS and i.skill != "small_talk")
    weak = format_weak_phrasings({"runs": [result]}).splitlines()
    assert weak[0].startswith("held-out phrasings right under 90% of the time (greedy)")
    assert weak[1] == f"  reversal       0/{asked:<3d}  {missed}"
    assert weak[2] == "first prompts answered wrong (greedy):"  # the scripted engine knows none of them


def test_the_first_prompts_are_scored_and_the_missed_ones_shown_with_their_replies(tiny_tokenizer):
    from training.eval_prompts import FIRST_PROMPTS, first_prompt_items
    from training.evaluate import first_prompts

    items = first_prompt_items()
    assert [i.conversation["messages"] for i in items] == [[{"role": "user", "content": p[0]}] for p in FIRST_PROMPTS]
    wrong = items[0]  # "spell banana", answered with the letters of "spell" leaking in
    replies = {tuple(tiny_tokenizer.render_for_completion(i.conversation)): _correct_reply(i) for i in items}
    replies[tuple(tiny_tokenizer.render_for_completion(wrong.conversation))] = "Letter by letter: s p a n a n a n a."
    result = first_prompts(ScriptedEngine(tiny_tokenizer, replies), tiny_tokenizer, 0.0, seed=0)
    assert result["n"] == len(FIRST_PROMPTS) and result["correct"] == len(FIRST_PROMPTS) - 1
    assert result["missed"] == [{"prompt": "spell banana", "expected": "b a n a n a",
                                 "reply": "Letter by letter: s p a n a n a n a."}]
    run = {"temperature": 0.0, "skills": {}, "first_prompts": result, "prompts": 1, "stop_rate": 1.0,
           "mean_reply_tokens": 1.0, "tokens_per_s": 1.0}
    assert f"first prompts        {len(FIRST_PROMPTS)}       {len(FIRST_PROMPTS) - 1}/{len(FIRST_PROMPTS)}" in format_table({"runs": [run]})
    assert format_weak_phrasings({"runs": [run]}).splitlines() == [
        "first prompts answered wrong (greedy):", "  'spell banana' -> 'Letter by letter: s p a n a n a n a.'"]


def test_the_cards_example_prompts_are_first_prompts_it_got_right_one_per_skill():
    from training.evaluate import example_prompts

    held_out = {"arithmetic": {"right": ["hey, what is 931 - 17 for me please?", "1-69 makes what?"]},
                "spelling": {"right": ["spell quixotic"]}}
    missed = [{"prompt": "what is 12 + 30?", "expected": "42", "reply": "The answer is 41."},
              {"prompt": "reverse the word house", "expected": "esuoh", "reply": "esuo"}]
    run = {"skills": held_out, "first_prompts": {"correct": 25, "n": 27, "missed": missed}}
    # the first right prompt of each kind, in the order arithmetic, count, reverse: a missed one
    # gives way to the next of its kind
    assert example_prompts(run) == ["What's 15% of 80?", "how many r's in strawberry?", "reverse hello"]
    assert example_prompts(run, count=1) == ["What's 15% of 80?"]
    # a report from before the first prompts: the shortest held-out prompts right, a skill each
    assert example_prompts({"skills": held_out}) == ["1-69 makes what?", "spell quixotic",
                                                     "hey, what is 931 - 17 for me please?"]


def test_a_long_chat_drops_its_oldest_exchanges_like_the_app(tiny_tokenizer):
    from training.evaluate import MAX_REPLY_TOKENS, fitted_prompt

    messages = []
    for n in range(12):
        messages += [{"role": "user", "content": f"spell word number {n} " * 3},
                     {"role": "assistant", "content": "Letter by letter: w o r d." * 3}]
    conversation = {"messages": messages + [{"role": "user", "content": "and backwards?"}]}
    full = tiny_tokenizer.render_for_completion(conversation)
    assert fitted_prompt(tiny_tokenizer, conversation, None) == full
    fitted = fitted_prompt(tiny_tokenizer, conversation, 512)
    assert len(fitted) <= 512 - min(MAX_REPLY_TOKENS, 256) < len(full)
    # what is left is the newest part of the chat, ending with the question, whole exchanges only
    assert full[-len(fitted) + 1:] == fitted[1:]  # after <|bos|>: the chat's tail, unchanged
    assert fitted[1] == tiny_tokenizer.encode_special("<|user_start|>")  # starting at a user message
    kept = tiny_tokenizer.decode(fitted)
    assert "number 11" in kept and "number 0 " not in kept


def test_the_readme_chat_is_replayed_on_the_models_own_replies(tiny_tokenizer):
    from training.eval_prompts import README_CHAT
    from training.evaluate import readme_chat

    class Echo:
        """Right on every request except the strawberry one, where it spells banana again."""

        def __init__(self):
            self.prompts = []

        def stream(self, prompt_ids, params):
            self.prompts.append(tiny_tokenizer.decode(prompt_ids))
            turn = len(self.prompts) - 1
            _, kind, expected = README_CHAT[turn]
            text = {"arithmetic": f"The answer is {expected}.", "spell": f"Letter by letter: {expected}.",
                    "count": "So there are 0 r's.", "reverse": f"Reversed, the word is {expected}."}.get(
                kind) or small_talk.REPLIES[expected]
            ids = tiny_tokenizer.encode(text)
            for token in ids:
                yield TokenEvent(id=token, text="", forced=False)
            yield Stop("assistant_end", GenerationStats(len(prompt_ids), len(ids), 0.01, 0.02))

    engine = Echo()
    result = readme_chat(engine, tiny_tokenizer, 0.0, seed=0)
    assert result["n"] == len(README_CHAT) == 10
    assert result["right"] == [True] * 6 + [False] + [True] * 3
    assert "So there are 0 r's." in engine.prompts[-1]  # later requests see the model's own wrong reply
