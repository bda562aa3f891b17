"""The first screen: what model is loaded, three prompts from its own card, the keys that matter;
shown until the first message, a replay or a resumed conversation, back after Ctrl+N and /clear.
And where its facts come from: the card (written by training from prompts the model got right),
config metadata, the checkpoint's origin, the engine process, a server."""

from __future__ import annotations

import json

import pytest
from tui_fakes import scripted_backend, wait_until

from glasschat.paths import default_checkpoint_dir
from model.backend import ModelInfo
from model.checkpoint import parameter_count, read_config
from model.config import GPTConfig
from model.facts import checkpoint_facts
from tui.app import GlasschatApp
from tui.chat_file import Line
from tui.store import ConversationStore
from tui.widgets.messages import UserMessage
from tui.widgets.welcome import NO_PROMPTS, ExamplePrompt, Welcome

SIZE = (110, 32)
BUNDLED_PROMPTS = ("what is 12 + 30?", "how many r's in strawberry?", "reverse the word house")


def write_checkpoint_files(directory, card: str | None = None, **config) -> None:
    """The files ``model.facts`` reads: config.json (no weights needed) and maybe a card."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"format": "glasschat-checkpoint/1", "dtype": "bfloat16", "metadata": {}, **config}
    (directory / "config.json").write_text(json.dumps(data))
    if card is not None:
        (directory / "MODEL_CARD.md").write_text(card)


def bundled_config() -> GPTConfig:
    return read_config(default_checkpoint_dir())[0]


def info_of(directory, name="runs/mine") -> ModelInfo:
    """What a backend would say about the model in ``directory``, sized as the bundled model."""
    facts, config = checkpoint_facts(directory), bundled_config()
    return ModelInfo(name, parameter_count(config), config.sequence_len, "fp32", "cpu", facts.source, facts.stored_as,
                     facts.example_prompts)


def make_app(tokenizer, tmp_path, info: ModelInfo | None = None, replies=("Hello!",), **options) -> GlasschatApp:
    backend = scripted_backend(tokenizer, list(replies))
    if info is not None:
        backend.info = info
    return GlasschatApp(backend, store=options.pop("store", None) or ConversationStore(tmp_path / "store"), **options)


def shown_text(app) -> str:
    return "\n".join(str(widget.render()) for widget in app.query_one(Welcome).query("Static"))


def welcome_shown(app) -> bool:
    return app.query_one(Welcome).display


# ---- facts


def test_the_bundled_card_gives_the_bundled_prompts_and_source():
    facts = checkpoint_facts(default_checkpoint_dir())
    assert facts.example_prompts == BUNDLED_PROMPTS
    assert facts.source == "bundled with glasschat" and facts.stored_as == "fp16"


def test_card_prompts_are_read_from_their_section_only(tmp_path):
    card = ("# m\n\n## Size\n\n- 1M parameters\n\n## Example prompts\n\nTry these:\n\n"
            "- `spell cat`\n* what is 2 + 2?\n1. say hello\n- a fourth one\n\n## Limits\n\n- not this\n")
    write_checkpoint_files(tmp_path / "m", card)
    assert checkpoint_facts(tmp_path / "m").example_prompts == ("spell cat", "what is 2 + 2?", "say hello")


def test_without_a_card_section_prompts_come_from_config_metadata(tmp_path):
    write_checkpoint_files(tmp_path / "a", "# m\n\nno prompts here\n",
                           metadata={"example_prompts": ["count the s in mississippi", 7, "hi\x1b[31m"]})
    assert checkpoint_facts(tmp_path / "a").example_prompts == ("count the s in mississippi", "hi [31m")
    write_checkpoint_files(tmp_path / "b")  # no card, no metadata: none
    assert checkpoint_facts(tmp_path / "b").example_prompts == ()


def test_source_names_where_the_model_came_from(tmp_path):
    write_checkpoint_files(tmp_path / "mine", dtype="float32")
    facts = checkpoint_facts(tmp_path / "mine")
    assert facts.source == str(tmp_path / "mine") and facts.stored_as == "fp32"
    write_checkpoint_files(tmp_path / "cached", metadata={"imported_from": "nanochat", "source": "/data/d20",
                                                          "step": 650, "nanochat_generation": "aba30cb"})
    assert checkpoint_facts(tmp_path / "cached").source == \
        "imported from nanochat (generation aba30cb, step 650): /data/d20"
    write_checkpoint_files(tmp_path / "odd", metadata={"imported_from": "nanochat", "source": "/a\n\x1b[2J" + "x" * 999})
    assert checkpoint_facts(tmp_path / "odd").source == ("imported from nanochat: /a  [2J" + "x" * 999)[:300]
    write_checkpoint_files(tmp_path / "small", weight_format="int8", metadata={"quantized_from": "runs/big"})
    facts = checkpoint_facts(tmp_path / "small")
    assert facts.source == f"{tmp_path / 'small'} (int8 copy of runs/big)" and facts.stored_as == "int8"


def test_a_nanochat_folder_is_named_by_its_folder_not_the_conversion_cache():
    from pathlib import Path

    from model.checkpoint import resolve_checkpoint_dir

    folder = Path(__file__).parent / "fixtures" / "nanochat" / "16788ee"
    facts = checkpoint_facts(resolve_checkpoint_dir(str(folder)))  # converted once, into the test cache
    found = folder / "base_checkpoints" / "d3"
    assert facts.source == f"imported from nanochat (generation 16788ee, step 5): {found.resolve()}"
    assert facts.example_prompts == ()


def test_an_unreadable_config_or_card_gives_no_facts_not_an_error(tmp_path):
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "config.json").write_text("{not json")
    (directory / "MODEL_CARD.md").write_bytes(b"## Example prompts\n- caf\xe9 \xff\n")
    facts = checkpoint_facts(directory)
    assert facts.stored_as == "" and facts.example_prompts == ("caf\ufffd \ufffd",)


def test_training_writes_prompts_the_model_got_right_into_the_card(tiny_tokenizer, tmp_path):
    """eval -> MODEL_CARD.md -> model.facts: the card lists right answers only, of several skills."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.gpt import GPT, GPTConfig
    from test_eval import HELDOUT, ScriptedEngine, _correct_reply
    from training.card import write_model_card
    from training.eval_prompts import eval_items
    from training.evaluate import evaluate
    from training.recipe import RECIPES

    torch.set_num_threads(1)
    items = eval_items(HELDOUT, 4, seed=3)
    wrong = {"arithmetic", "spelling"}  # never answered right: never offered
    replies = {tuple(tiny_tokenizer.render_for_completion(i.conversation)):
               "I don't know." if i.skill in wrong else _correct_reply(i) for i in items}
    run = evaluate(ScriptedEngine(tiny_tokenizer, replies), tiny_tokenizer, items, temperature=0.0, seed=0,
                   log=lambda _: None)
    report = {"per_skill": 4, "seed": 3, "heldout_words": len(HELDOUT), "runs": [run, {**run, "temperature": 0.7}]}
    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=1, n_head=2, n_kv_head=1,
                       n_embd=32)
    save_checkpoint(tmp_path / "ckpt", GPT(config).init_weights(seed=1), tiny_tokenizer, {"parameters": 1})
    write_model_card(tmp_path / "ckpt", RECIPES["default"], report, {})
    prompts = checkpoint_facts(tmp_path / "ckpt").example_prompts
    by_prompt = {i.conversation["messages"][-1]["content"]: i for i in items if len(i.conversation["messages"]) == 1}
    assert len(prompts) == 3 and all(p in by_prompt for p in prompts)
    assert [by_prompt[p].skill for p in prompts] == ["counting", "reversal", "small_talk"]
    for prompt in prompts:  # the plainest request of its skill: the shortest one answered right
        skill = by_prompt[prompt].skill
        assert len(prompt) == min(len(p) for p, i in by_prompt.items() if i.skill == skill)


# ---- the first screen in the app


async def test_shown_at_start_with_what_is_loaded_and_the_cards_prompts(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, tmp_path, info_of(default_checkpoint_dir(), "checkpoints/default"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert welcome_shown(app)
        text = shown_text(app)
        config = bundled_config()
        size = f"{parameter_count(config) / 1e6:.1f}M parameters"  # 5.2M for a model of 5,242,880
        for fact in ("checkpoints/default", size, f"context {config.sequence_len:,} tokens",
                     "weights stored as fp16, run as fp32 on cpu", "source: bundled with glasschat",
                     "F2 tokens", "F1 help", "Esc stop"):
            assert fact in text, fact
        assert app.query_one(Welcome).prompts == list(BUNDLED_PROMPTS)
        assert app.focused is app.chat_input  # typing goes straight to the message box


async def test_another_models_card_gives_its_own_prompts(tiny_tokenizer, tmp_path):
    write_checkpoint_files(tmp_path / "other", "## Example prompts\n\n- spell zebra\n- what is 6 * 7?\n")
    app = make_app(tiny_tokenizer, tmp_path, info_of(tmp_path / "other"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.query_one(Welcome).prompts == ["spell zebra", "what is 6 * 7?"]
        assert f"source: {tmp_path / 'other'}" in shown_text(app) and "weights stored as bf16" in shown_text(app)


async def test_without_prompts_a_generic_line_is_shown(tiny_tokenizer, tmp_path):
    write_checkpoint_files(tmp_path / "bare")
    app = make_app(tiny_tokenizer, tmp_path, info_of(tmp_path / "bare"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.query_one(Welcome).prompts == []
        assert NO_PROMPTS in shown_text(app)


async def test_a_served_model_shows_what_the_server_says(tiny_tokenizer, tmp_path):
    from model.remote import RemoteBackend
    from test_serve import random_served, serving

    served = random_served(tiny_tokenizer, sequence_len=64)
    with serving(served) as url:
        remote = RemoteBackend(url, tiny_tokenizer)
        info = remote.info
        remote.close()
    served.batcher.close()
    assert info.source == f"served by {url}" and info.example_prompts == ()
    app = make_app(tiny_tokenizer, tmp_path, info)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = shown_text(app)
        assert f"source: served by {url}" in text and "size not given · context 64 tokens" in text
        assert NO_PROMPTS in text


async def test_hidden_at_the_first_message_back_after_ctrl_n_and_clear(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, tmp_path, info_of(default_checkpoint_dir()))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert welcome_shown(app)
        await pilot.press(*"hi", "enter")
        await wait_until(pilot, lambda: app.live_reply is None and len(app.session.messages) == 2)
        assert not welcome_shown(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert welcome_shown(app) and not app.chat_log.message_widgets
        await pilot.press(*"again", "enter")
        await wait_until(pilot, lambda: app.live_reply is None and len(app.session.messages) == 2)
        assert not welcome_shown(app)
        app.chat_input.load_text("/clear")
        await pilot.press("enter")
        await pilot.pause()
        assert welcome_shown(app) and app.session.messages == []


async def test_hidden_under_the_raw_view(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        assert not welcome_shown(app)
        await pilot.press("f3")
        assert welcome_shown(app)


async def test_hidden_during_a_replay(tiny_tokenizer, tmp_path):
    script = [Line(1, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]})]
    app = make_app(tiny_tokenizer, tmp_path, replay=script)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not welcome_shown(app)
        await wait_until(pilot, lambda: app.replay is None)
        assert not welcome_shown(app) and app.session.messages[0]["content"] == "hi"


async def test_hidden_when_a_conversation_is_resumed(tiny_tokenizer, tmp_path):
    store = ConversationStore(tmp_path / "store")
    first = make_app(tiny_tokenizer, tmp_path, store=store)
    async with first.run_test(size=SIZE) as pilot:
        await pilot.press(*"hi", "enter")
        await wait_until(pilot, lambda: first.live_reply is None and len(first.session.messages) == 2)
        saved = first.session.conversation_id
    app = make_app(tiny_tokenizer, tmp_path, store=store, resume=saved)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert len(app.session.messages) == 2 and not welcome_shown(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert welcome_shown(app)


async def test_clicking_a_prompt_puts_it_in_the_message_box_and_enter_sends_it(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, tmp_path, info_of(default_checkpoint_dir()))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        second = app.query(ExamplePrompt)[1]
        assert await pilot.click(second)
        await pilot.pause()
        assert app.chat_input.text == BUNDLED_PROMPTS[1] and app.focused is app.chat_input
        assert not app.session.messages  # chosen, not sent: it can be changed first
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.live_reply is None and len(app.session.messages) == 2)
        assert app.session.messages[0] == {"role": "user", "content": BUNDLED_PROMPTS[1]}
        assert isinstance(app.chat_log.message_widgets[0], UserMessage) and not welcome_shown(app)


async def test_a_prompt_can_be_picked_with_the_keyboard(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, tmp_path, info_of(default_checkpoint_dir()))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("tab")
        assert isinstance(app.focused, ExamplePrompt) and app.focused.prompt == BUNDLED_PROMPTS[0]
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat_input.text == BUNDLED_PROMPTS[0] and app.focused is app.chat_input
        assert not app.session.messages


@pytest.mark.parametrize("prompt", ["[bold]not markup[/]", "x" * 500])
async def test_a_prompt_is_shown_as_written_and_clipped(tiny_tokenizer, tmp_path, prompt):
    write_checkpoint_files(tmp_path / "odd", f"## Example prompts\n- {prompt}\n")
    app = make_app(tiny_tokenizer, tmp_path, info_of(tmp_path / "odd"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        (shown,) = app.query_one(Welcome).prompts
        assert shown == prompt[:200]
        assert f"› {prompt[:200]}" in shown_text(app)


# ---- snapshots


def test_snapshot_first_screen_of_the_bundled_model(snap_compare, tiny_tokenizer, tmp_path):
    info = info_of(default_checkpoint_dir(), "checkpoints/default")
    assert snap_compare(make_app(tiny_tokenizer, tmp_path, info), terminal_size=SIZE)


def test_snapshot_first_screen_without_prompts(snap_compare, tiny_tokenizer, tmp_path):
    info = ModelInfo("d20-chat", 0, 2048, runs_on="127.0.0.1:8000", source="served by http://127.0.0.1:8000")
    assert snap_compare(make_app(tiny_tokenizer, tmp_path, info), terminal_size=SIZE)
