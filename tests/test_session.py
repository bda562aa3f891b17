"""The chat session (``tui.session``): the conversation with its generated replies, fitting,
reply / regenerate / edit bookkeeping, saving and loading — with no app around it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from glasschat.errors import UserError
from model.events import GenerationStats, SamplingParams, Stop, TokenEvent
from tui.session import ChatSession
from tui.store import ConversationStore
from tui_fakes import scripted_backend

PARAMS = SamplingParams(seed=3, max_tokens=40)


def stop(reason: str) -> Stop:
    return Stop(reason, GenerationStats(5, 2, 0.01, 0.03))


def chat(tok, store=None, sequence_len=512) -> ChatSession:
    return ChatSession(tok, sequence_len, store=store, model="scripted")


def test_the_session_imports_neither_textual_nor_torch():
    code = "import sys, tui.session; print(sorted({'textual', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_reply_is_kept_with_its_tokens_and_sent_back_as_generated(tiny_tokenizer):
    tok = tiny_tokenizer
    backend = scripted_backend(tok, ["Hello there.", "Again."])
    session = chat(tok)
    prompt = session.add_user("hi", PARAMS.max_tokens)
    assert prompt.ids == tok.render_for_completion({"messages": session.messages}) and session.awaiting_reply
    turn = session.reply(backend, prompt, PARAMS)
    assert session.messages[1] == {"role": "assistant", "content": "Hello there."}
    assert session.turn(1) is turn and turn.seed == 3 and turn.stop_reason == "assistant_end"
    assert session.turn(0) is None and session.last_turn is turn and not session.awaiting_reply
    second = session.add_user("more", PARAMS.max_tokens)
    ids, _ = session.render()
    assert second.ids == ids + [tok.encode_special("<|assistant_start|>")]
    cells = session.cells()
    assert [c.id for c in cells] == ids and session.context_used() == len(ids)


def test_stopped_replies_are_kept_and_failures_before_a_token_are_not(tiny_tokenizer):
    tok = tiny_tokenizer
    session = chat(tok)
    prompt = session.add_user("hi", 40)
    turn = session.begin_reply(prompt, seed=1)
    assert session.pending is turn and session.with_pending()[-1].turn is None  # no tokens yet
    turn.add(TokenEvent(tok.encode("Hel")[0], "Hel", False, 0.5))
    assert session.with_pending()[-1].turn is turn  # the token pane follows the stream
    assert session.finish_reply(stop("cancelled"))
    assert session.pending is None and session.turn(1).stop_reason == "cancelled" and turn.ttft_ms == 10.0
    session.add_user("again", 40)
    session.begin_reply(session.prompt(40), seed=2)
    assert not session.finish_reply(None)  # the engine failed before its first token
    assert session.awaiting_reply and len(session.entries) == 3
    with pytest.raises(RuntimeError):
        session.finish_reply(None)


def test_regenerate_and_edit_take_back_from_the_end(tiny_tokenizer):
    tok = tiny_tokenizer
    backend = scripted_backend(tok, ["One."])
    session = chat(tok)
    session.add_message({"role": "system", "content": "Be brief."})
    session.reply(backend, session.add_user("first", 40), PARAMS)
    assert session.take_back_reply() and session.messages[-1]["content"] == "first"
    assert not session.take_back_reply()  # the last message is the user's
    assert session.take_back_last_user() == "first"
    assert session.entries == []  # the system message cannot stand alone
    assert session.take_back_last_user() is None


def test_the_context_keeps_the_newest_turns_and_refuses_what_cannot_fit(tiny_tokenizer):
    tok = tiny_tokenizer
    backend = scripted_backend(tok, ["An answer about the lazy dog."])
    session = chat(tok, sequence_len=96)
    for n in range(4):
        session.reply(backend, session.add_user(f"question {n} about the quick brown fox", 16), PARAMS)
    prompt = session.add_user("last", 16)
    assert prompt.dropped > 0 and len(prompt.ids) <= 96 - 16
    session.begin_reply(prompt, 0)
    assert session.dropped == prompt.dropped
    session.abandon_reply()
    cells = session.cells()
    kept = session.entries[prompt.dropped:]
    assert session.context_used() == len(session.tokenizer.render_conversation(
        {"messages": [entry.message for entry in kept]}).ids) < len(cells)
    assert session.take_back_last_user() == "last"
    entries = list(session.entries)
    with pytest.raises(UserError, match="too long for the model"):
        session.add_user("word " * 200, 16)
    assert session.entries == entries  # unchanged by the refused message


def test_save_open_and_reset(tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    store = ConversationStore(tmp_path)
    session = chat(tok, store)
    session.reply(scripted_backend(tok, ["Saved."]), session.add_user("keep me", 40), PARAMS)
    session.save()
    saved = store.load(session.conversation_id)
    assert saved.meta["title"] == "keep me" and saved.meta["model"] == "scripted"
    assert saved.turns[0].message == 1
    other = chat(tok, store)
    other.open(session.conversation_id)
    assert other.messages == session.messages and other.turn(1).ids == session.turn(1).ids
    assert other.created == session.created
    other.reset()
    assert other.entries == [] and other.conversation_id != session.conversation_id
    other.save()  # an empty conversation leaves no file
    assert store.latest() == session.conversation_id
    store.path("bad").write_text('{"messages": [{"role": "robot", "content": "x"}]}\n')
    with pytest.raises(UserError):
        other.open("bad")
    assert other.entries == []


def test_save_as_and_export(tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    session = chat(tok)
    with pytest.raises(UserError, match="nothing to save"):
        session.save_as(str(tmp_path / "a.md"))
    session.reply(scripted_backend(tok, ["Fine."]), session.add_user("how are you", 40), PARAMS)
    assert "## Assistant\n\nFine." in session.save_as(str(tmp_path / "a.md")).read_text()
    line = json.loads(session.save_as(str(tmp_path / "a.jsonl")).read_text())
    assert line["messages"] == session.messages and line["turns"][0]["ids"] == session.turn(1).ids
    with pytest.raises(UserError, match="must end in .md or .jsonl"):
        session.save_as(str(tmp_path / "a.txt"))
    path, count = session.export_ids(str(tmp_path / "ids.json"))
    assert json.loads(path.read_text()) == dict(zip(("ids", "mask"), map(list, session.render())))
    assert count == len(session.render()[0])


def test_draft_cells_are_what_a_message_would_add(tiny_tokenizer):
    tok = tiny_tokenizer
    session = chat(tok)
    session.reply(scripted_backend(tok, ["Yes."]), session.add_user("hi", 40), PARAMS)
    cells, total = session.draft_cells("<|user_end|>")
    base = len(session.render()[0])
    assert cells[0].index == base and total == len(cells)
    assert [c.special for c in cells if c.special] == ["<|user_start|>", "<|user_end|>", "<|assistant_start|>"]
    full = session.tokenizer.render_for_completion({"messages": [*session.messages, {"role": "user", "content": "<|user_end|>"}]})
    assert [c.id for c in cells] == full[base:]  # exactly what sending it would add
    shown, total = session.draft_cells("word " * 5000, limit=100)
    assert len(shown) == 100 and total > 1000 and shown[0].index == base
    empty = chat(tok)
    assert [c.id for c in empty.draft_cells("hi")[0]] == tok.render_for_completion(
        {"messages": [{"role": "user", "content": "hi"}]})
