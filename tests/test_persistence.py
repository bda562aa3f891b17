"""Saved conversations: where they go, what is in them, that a crash loses at most a reply, and
that files are written with the user's usual permissions."""

from __future__ import annotations

import json
import os

import pytest

from glasschat.atomic import WriteError, atomic_write_text
from glasschat.errors import UserError
from tui.chat_file import ChatRecord, TurnRecord, read_lines, to_markdown
from tui.store import ConversationStore, data_dir


def test_data_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert data_dir() == tmp_path / "glasschat"
    assert ConversationStore().root == tmp_path / "glasschat" / "conversations"


def test_save_load_list_latest_delete(tmp_path):
    store = ConversationStore(tmp_path)
    first = ChatRecord([{"role": "user", "content": "first chat\nsecond line"}],
                       [TurnRecord(1, ids=[1, 2], forced=[False, True], probs=[0.5, None], top=[[], []],
                                   stop_reason="assistant_end")])
    store.save("a", first)
    store.save("b", ChatRecord([{"role": "user", "content": "second chat"}]))
    os.utime(store.path("a"), (1, 1))
    assert [s.id for s in store.list()] == ["b", "a"] and store.latest() == "b"
    assert store.list()[1].title == "first chat"
    loaded = store.load("a")
    assert loaded.messages == first.messages and loaded.turns == first.turns
    assert loaded.turns[0].event(1).forced and loaded.turns[0].event(1).prob is None
    # a saved chat is a replay script: one {"messages": [...]} per line
    assert read_lines(store.path("a"))[0].data["messages"] == first.messages
    store.delete("b")
    assert store.latest() == "a"


def test_unreadable_files_are_skipped_in_the_list_and_named_on_load(tmp_path):
    store = ConversationStore(tmp_path)
    store.root.mkdir(parents=True, exist_ok=True)
    store.path("broken").write_text("{not json\n")
    assert store.list() == []
    with pytest.raises(UserError, match=r"broken.jsonl: line 1, column [0-9]+: not valid JSON"):
        store.load("broken")


def test_save_replaces_the_file_atomically(tmp_path, monkeypatch):
    store = ConversationStore(tmp_path)
    store.save("c", ChatRecord([{"role": "user", "content": "kept"}]))

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(WriteError, match="c.jsonl: cannot write: disk full"):
        store.save("c", ChatRecord([{"role": "user", "content": "lost"}]))
    assert json.loads(store.path("c").read_text())["messages"][0]["content"] == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["c.jsonl"]  # no temporary file left behind


def test_markdown_export_shows_tool_calls():
    markdown = to_markdown([{"role": "user", "content": "12+30?"},
                            {"role": "assistant", "content": [{"type": "python", "text": "12+30"},
                                                              {"type": "python_output", "text": "42"},
                                                              {"type": "text", "text": "It is 42."}]}], "t")
    assert markdown == "# t\n\n## User\n\n12+30?\n\n## Assistant\n\n```python\n12+30\n```\n\n```text\n42\n```\n\nIt is 42.\n"


def test_written_files_get_the_users_usual_permissions(tmp_path):
    # an atomic write must not leave the owner-only mode of a temporary file behind
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "hello")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
