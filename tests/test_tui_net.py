"""The app's safety net, driven by Pilot: nothing a user does ends the app or loses the
conversation or the draft."""

from __future__ import annotations

import os

import pytest
from test_tui_app import SIZE, idle, make_app, send, wait_until

from tokenizer.conversation import normalize
from tui.store import ConversationStore


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.parametrize("target", ["dir", "proc", "below_file"])
async def test_save_and_export_to_impossible_places_are_notifications(tiny_tokenizer, tmp_path, target):
    (tmp_path / "file").write_text("x")
    (tmp_path / "d.jsonl").mkdir()
    path = {"dir": str(tmp_path / "d.jsonl"), "proc": "/proc/x.jsonl", "below_file": str(tmp_path / "file" / "x.jsonl")}[target]
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_until(pilot, idle(app, 2))
        for command in (f"/save {path}", f"/export {path}"):
            await send(pilot, command)
            await wait_until(pilot, lambda: any("cannot write" in n for n in notes(app)))
            app.clear_notifications()
        assert app.is_running and len(app.session.messages) == 2
    assert (tmp_path / "file").read_text() == "x"


async def test_f2_leaves_the_keyboard_with_the_message_box(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "f2", "b", "f3", "c", "f3", "f2", "d")
        assert app.chat_input.text == "abcd" and app.focused is app.chat_input
        await pilot.press("enter")
        await wait_until(pilot, idle(app, 2))
        await pilot.press("f2", "x")
        await pilot.pause(0.3)  # the pane's refresh after a reply
        await pilot.press("y")
        assert app.chat_input.text == "xy" and app.focused is app.chat_input
        # the user moves into the token pane on purpose, then closes it: typing comes back to the draft
        await pilot.press("tab")
        assert app.focused is not app.chat_input
        await pilot.press("f2", "z")
        assert app.chat_input.text == "xyz" and app.focused is app.chat_input


async def test_a_read_only_data_directory_is_said_once_at_start(tiny_tokenizer, tmp_path):
    (tmp_path / "blocker").write_text("a file where the data directory should be")
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    app.store = ConversationStore(tmp_path / "blocker" / "conversations")
    app.session.store = app.store
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "not saving" in str(app.query_one("#status-bar").render())
        assert sum("will not be saved" in n for n in notes(app)) == 1
        for text in ("one", "two"):
            await send(pilot, text)
            await wait_until(pilot, idle(app, 2 if text == "one" else 4))
        assert not any("Could not save" in n for n in notes(app))  # not after every turn
        assert app.is_running


async def test_a_bug_in_an_action_is_a_notification_and_keeps_conversation_and_draft(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_until(pilot, idle(app, 2))

        def broken(*args, **kwargs):
            raise RuntimeError("a bug in the token pane")

        app.session.cells = broken
        await pilot.press(*"my draft", "f2")  # the pane's refresh fails
        await pilot.pause()
        await send(pilot, "/save")  # and a slash command's usage error is a notification too
        await pilot.pause()
        assert app.is_running
        assert any("a bug in the token pane" in n and "draft are kept" in n for n in notes(app))
        assert app.session.messages[0]["content"] == "hi" and len(app.session.messages) == 2
        assert (app.store.error_log).read_text().count("RuntimeError: a bug in the token pane") >= 1


async def test_a_crash_that_escapes_the_net_exits_non_zero_with_the_work_saved(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    with pytest.raises(RuntimeError, match="escaped"):
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, "hi")
            await wait_until(pilot, idle(app, 2))
            await pilot.press(*"unsent words")

            def escaped():
                raise RuntimeError("escaped the net")

            app.call_later(escaped)
            await pilot.pause(0.2)
    assert app.return_code == 1
    assert app.store.load(app.session.conversation_id).messages == app.session.messages
    # the next start gives the draft back
    again = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.chat_input.text == "unsent words"
    assert not again.store.draft_path.exists()


async def test_malformed_saved_conversations_do_not_break_the_list_or_resume(tiny_tokenizer, tmp_path):
    store = ConversationStore(tmp_path / "store")
    store.root.mkdir(parents=True)
    for name, text in {"deep": "[" * 100_000, "ints": '{"messages": [1, 2]}',
                       "title": '{"messages": [], "meta": {"title": {}}}'}.items():
        store.path(f"29990101-000000-{name}").write_text(text)
    os.mkfifo(store.path("29990101-000000-fifo"))
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_until(pilot, idle(app, 2))
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
    listed = [saved.id for saved in store.list()]
    assert listed[-1] == app.session.conversation_id or app.session.conversation_id in listed


async def test_mashing_keys_and_commands_while_a_reply_streams(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["one two three four five six seven eight nine ten"] * 3, tmp_path,
                   delay_s=0.01)
    keys = ["escape", "ctrl+r", "ctrl+e", "f2", "f3", "f2", "f3", "ctrl+end", "f5", "f6", "f1", "escape",
            "ctrl+n", "ctrl+r", "ctrl+o", "escape", "f4", "escape"]
    commands = ["/temperature 5", "/temperature nan", "/max 0", "/seed 99999999999999999999999", "/topk -1",
                "/save", f"/save {tmp_path}", "/export /proc/x", "/regen", "/edit", "/nonsense", "/help"]
    async with app.run_test(size=SIZE) as pilot:
        for round_ in range(2):
            await send(pilot, f"question {round_}")
            for key in keys:
                await pilot.press(key)
                if len(app.screen_stack) > 1:  # a screen opened: close it
                    await pilot.press("escape")
            for command in commands:
                await send(pilot, command)
                if len(app.screen_stack) > 1:
                    await pilot.press("escape")
            await wait_until(pilot, lambda: app.live_reply is None, timeout=20)
        app.chat_input.load_text("")
        await pilot.press(*"the draft survives")
        await pilot.press("f2", "f3", "f3", "f2")
        assert app.is_running
        assert app.chat_input.text == "the draft survives"
        if app.session.messages:
            normalize({"messages": app.session.messages})  # well-formed: alternating, valid parts
            saved = app.store.load(app.session.conversation_id)
            assert saved.messages == app.session.messages
        assert not app.store.error_log.exists(), app.store.error_log.read_text()


async def test_a_long_conversation_resumes_with_its_newest_messages_shown(tiny_tokenizer, tmp_path):
    from tui.chat_file import ChatRecord
    from tui.widgets.chat_log import MAX_SHOWN

    messages = []
    for n in range(200):
        messages += [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": f"a{n}"}]
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    app.store.save("long", ChatRecord(messages))
    app._resume = "long"
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(app.session.messages) == 400)
        shown = app.chat_log.message_widgets
        assert len(shown) == MAX_SHOWN and shown[-1].text == "a199"
        assert "250 earlier messages are not shown" in str(app.chat_log.children[0].render())
        await send(pilot, "one more")
        await wait_until(pilot, idle(app, 402))
        await pilot.press("ctrl+e")  # taking a message back works on the shown end
        await pilot.pause()
        assert app.chat_input.text == "one more" and len(app.session.messages) == 400
        assert app.chat_log.message_widgets[-1].text == "a199"
