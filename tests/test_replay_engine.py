"""Replay on the real engine with a tiny random-weight model: transcripts are reproducible,
replies stop for a reason the engine gives, and the chat app streams the engine's tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from model.events import SamplingParams
from model.gpt import GPT, GPTConfig
from model.backend import LocalBackend, ModelInfo
from tui.chat_file import Line
from tui.replay import replay_script

SCRIPT = [
    Line(1, {"messages": [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "Hi."},
                          {"role": "user", "content": "What is 12 + 30?"}]}),
    Line(2, {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]}),
]


@pytest.fixture(scope="module")
def tiny_model(tiny_tokenizer):
    torch.set_num_threads(1)
    config = GPTConfig(sequence_len=96, vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_head=2, n_kv_head=1,
                       n_embd=32)
    return GPT(config).init_weights(seed=0, zero_outputs=False).eval()


@pytest.fixture
def backend(tiny_model, tiny_tokenizer):
    from model.engine import Engine

    info = ModelInfo("tiny-random", tiny_model.num_parameters(), tiny_model.config.sequence_len)
    return LocalBackend(Engine(tiny_model, tiny_tokenizer), tiny_tokenizer, info)


def without_timings(record: dict) -> dict:
    return {**record, "turns": [{k: v for k, v in t.items() if k not in ("ttft_ms", "tokens_per_s")}
                                for t in record["turns"]]}


def test_replay_on_the_engine_is_reproducible(backend, tiny_tokenizer):
    params = SamplingParams(temperature=1.0, seed=3, max_tokens=12)
    first = [without_timings(r) for r in replay_script(backend, SCRIPT, params)]
    second = [without_timings(r) for r in replay_script(backend, SCRIPT, params)]
    assert first == second
    other_seed = [without_timings(r) for r in replay_script(backend, SCRIPT, SamplingParams(temperature=1.0, seed=4,
                                                                                             max_tokens=12))]
    assert other_seed != first
    one, two = first
    assert [t["message"] for t in one["turns"]] == [1, 3] and [t["message"] for t in two["turns"]] == [2]
    for record in first:
        for turn in record["turns"]:
            assert turn["stop_reason"] in ("assistant_end", "bos", "max_tokens", "context_full")
            assert 1 <= len(turn["ids"]) <= 12
            reply = record["messages"][turn["message"]]
            assert reply["role"] == "assistant"
            assert reply["content"] == tiny_tokenizer.parse_assistant(turn["ids"])
    assert one["turns"][0]["expected"]["expected_ids"] == tiny_tokenizer.encode("Hi.") + [
        tiny_tokenizer.encode_special("<|assistant_end|>")]


def test_replay_command_writes_a_transcript(backend, tiny_model, tiny_tokenizer, tmp_path):
    from model.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "ckpt", tiny_model, tiny_tokenizer)
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps(line.data) + "\n" for line in SCRIPT)
                      + json.dumps({"messages": [{"role": "assistant", "content": "no user"}]}) + "\n")
    out = tmp_path / "transcript.jsonl"
    result = subprocess.run([sys.executable, "-m", "glasschat", "replay", str(script), "--checkpoint",
                             str(tmp_path / "ckpt"), "--out", str(out), "--max-tokens", "8", "--seed", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr  # one conversation was bad; the others were replayed
    assert f"{script}: line 3: message 0: expected role 'user'" in result.stderr and "Traceback" not in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3]
    assert len(lines[0]["turns"]) == 2 and "error" in lines[2]
    assert lines[0]["meta"]["params"]["seed"] == 1


async def test_chat_app_streams_the_engine(backend, tmp_path):
    from tui.app import GlasschatApp
    from tui.store import ConversationStore

    app = GlasschatApp(backend, store=ConversationStore(tmp_path), params=SamplingParams(seed=2, max_tokens=10))
    async with app.run_test(size=(100, 30)) as pilot:
        app.chat_input.load_text("Hello there!")
        await pilot.press("enter")
        for _ in range(500):
            if app.live_reply is None and len(app.session.messages) == 2:
                break
            await pilot.pause(0.02)
        turn = app.session.turn(1)
        assert 1 <= len(turn.ids) <= 10 and turn.stop_reason
        assert all(len(top) == 5 for top, forced in zip(turn.top, turn.forced) if not forced)
        await pilot.press("f2")
        generated = [c for c in app.debug_pane.conversation_view.cells if c.origin == "generated"]
        assert generated and all(c.event.prob is not None or c.event.forced for c in generated)
