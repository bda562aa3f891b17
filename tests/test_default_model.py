"""The shipped default model: it loads, fits the size budget, and answers through the engine."""

import json

import pytest

from glasschat.paths import default_checkpoint_dir
from model import Engine, SamplingParams, load_model

CHECKPOINT = default_checkpoint_dir()


@pytest.fixture(scope="module")
def engine():
    gpt, tokenizer = load_model(CHECKPOINT)
    return Engine(gpt, tokenizer), tokenizer


def _ask(engine, messages):
    eng, tokenizer = engine
    prompt = tokenizer.render_for_completion({"messages": messages})
    reply = eng.generate(prompt, SamplingParams(temperature=0.0, max_tokens=200))[0]
    return tokenizer.parse_assistant(reply.ids), reply.stop


def test_checkpoint_is_small_and_documented():
    files = [p for p in CHECKPOINT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20_000_000
    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["dtype"] in ("float16", "bfloat16")
    card = (CHECKPOINT / "MODEL_CARD.md").read_text()
    assert "glasschat train --recipe default" in card and "greedy" in card


def test_answers_12_plus_30_with_the_calculator(engine):
    reply, stop = _ask(engine, [{"role": "user", "content": "What is 12 + 30?"}])
    assert stop.reason == "assistant_end"
    assert isinstance(reply, list), reply  # it used the tool
    assert [p["type"] for p in reply] == ["python", "python_output", "text"]
    assert reply[1]["text"] == "42"
    assert "42" in reply[2]["text"]


def test_held_out_word_skills_stay_above_a_floor(engine):
    """A guard against shipping a broken model: on 40 held-out prompts per skill (the eval's
    words and phrasings, greedy) each skill stays above 80% and replies stop. The full figures are in the card."""
    from training.eval_prompts import FIRST_SKILLS, eval_items
    from training.evaluate import evaluate
    from training.word_pools import word_pools

    eng, tokenizer = engine
    _, heldout_words, _ = word_pools(tokenizer)
    # the first model's rows (issue 17's new rows are for the model trained on them)
    items = [i for i in eval_items(heldout_words, 40, seed=77, skills=FIRST_SKILLS) if i.skill != "multi_turn"]
    report = evaluate(eng, tokenizer, items, temperature=0.0, seed=77, log=lambda _: None)
    accuracy = {skill: row["accuracy"] for skill, row in report["skills"].items()}
    assert all(value >= 0.8 for value in accuracy.values()), accuracy
    assert report["stop_rate"] >= 0.99


def test_answers_every_example_prompt_of_its_card_greedily(engine):
    """The chat's first screen offers the card's example prompts, first prompts the eval found
    right: each must be answered right, as the eval scores it."""
    from model.facts import checkpoint_facts
    from training.eval_prompts import first_prompt_items, score

    prompts = checkpoint_facts(CHECKPOINT).example_prompts
    items = {item.phrasing: item for item in first_prompt_items()}
    assert len(prompts) == 3 and set(prompts) <= set(items), prompts
    for prompt in prompts:
        reply, stop = _ask(engine, items[prompt].conversation["messages"])
        assert stop.reason == "assistant_end", prompt
        assert score(items[prompt], reply), (prompt, reply)
