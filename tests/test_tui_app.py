"""The chat app driven by Pilot against a scripted engine: what a user sees and relies on."""

from __future__ import annotations

import json

import pytest
from tui_fakes import scripted_backend, wait_until

from tui.app import GlasschatApp
from tui.store import ConversationStore
from tui.widgets.messages import AssistantMessage, ToolCall, UserMessage

SIZE = (120, 40)


def idle(app, messages: int):
    return lambda: app.live_reply is None and len(app.session.messages) == messages


def make_app(tokenizer, replies, tmp_path, **options):
    backend = scripted_backend(tokenizer, replies, **{k: v for k, v in options.items() if k != "app"})
    return GlasschatApp(backend, store=ConversationStore(tmp_path / "store"), **options.get("app", {}))


async def send(pilot, text: str) -> None:
    pilot.app.chat_input.load_text(text)
    await pilot.press("enter")


async def test_send_streams_the_reply_and_saves_it(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["Hello **there**! It's 42."], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"hi there")
        await pilot.press("enter")
        await wait_until(pilot, idle(app, 2))
        assert app.chat_input.text == ""
        assert app.session.messages == [{"role": "user", "content": "hi there"},
                                {"role": "assistant", "content": "Hello **there**! It's 42."}]
        reply = app.chat_log.query(AssistantMessage).last()
        assert reply.text == "Hello **there**! It's 42."
        assert [w.__class__ for w in app.chat_log.message_widgets] == [UserMessage, AssistantMessage]
        turn = app.session.turn(1)
        assert turn.stop_reason == "assistant_end"
        assert turn.ids[-1] == tiny_tokenizer.encode_special("<|assistant_end|>")
        # the prompt sent was the rendered conversation, ready for the reply
        prompt, params = app.backend.calls[0]
        assert prompt == tiny_tokenizer.render_for_completion({"messages": app.session.messages[:1]})
        assert params.top_alternatives == 5 and params.seed is not None
        saved = app.store.load(app.session.conversation_id)
        assert saved.messages == app.session.messages and saved.turns[0].ids == turn.ids


async def test_shift_enter_and_ctrl_j_add_lines(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c")
        assert app.chat_input.text == "a\nb\nc"
        await pilot.press("enter")
        await wait_until(pilot, idle(app, 2))
        assert app.session.messages[0]["content"] == "a\nb\nc"


async def test_escape_stops_mid_stream_and_closes_the_turn(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["one two three four five six seven"], tmp_path, hold_after=3)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "count")
        await wait_until(pilot, app.backend.holding.is_set)
        # already on disk: killing the app now would lose only the reply being generated
        assert app.store.load(app.session.conversation_id).messages == [{"role": "user", "content": "count"}]
        await pilot.press("escape")
        await wait_until(pilot, idle(app, 2))
        turn = app.session.turn(1)
        assert turn.stop_reason == "cancelled" and len(turn.ids) == 3
        assert app.session.messages[1]["content"] == tiny_tokenizer.decode(turn.ids)
        ids, mask = tiny_tokenizer.render_conversation({"messages": app.session.messages})
        assert ids[-4:] == turn.ids + [tiny_tokenizer.encode_special("<|assistant_end|>")]
        assert app.chat_log.query_one(".stop-reason").render().plain == "stopped"
        # the pane says the closing token was added, not generated
        await pilot.press("f2")
        closing = app.debug_pane.conversation_view.cells[-1]
        assert closing.special == "<|assistant_end|>" and closing.origin == "closed"


async def test_tool_call_is_its_own_block(tiny_tokenizer, tmp_path):
    reply = [{"type": "text", "text": "Let me compute. "}, {"type": "python", "text": "12+30"},
             {"type": "python_output", "text": "42"}, {"type": "text", "text": "It is 42."}]
    app = make_app(tiny_tokenizer, [reply], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "12+30?")
        await wait_until(pilot, idle(app, 2))
        tool = app.chat_log.query_one(ToolCall)
        assert (tool.expression, tool.output) == ("12+30", "42")
        assert app.session.messages[1]["content"] == reply
        assert app.chat_log.query(AssistantMessage).last().text == "Let me compute. It is 42."


async def test_token_pane_shows_specials_mask_and_generation(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["Hi!"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_until(pilot, idle(app, 2))
        await pilot.press("f2")
        cells = app.debug_pane.conversation_view.cells
        ids, mask = tiny_tokenizer.render_conversation({"messages": app.session.messages})
        assert [c.id for c in cells] == ids and [c.mask for c in cells] == mask
        assert [c.special for c in cells if c.special] == [
            "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>"]
        assert {c.region for c in cells} == {"none", "user", "assistant"}
        generated = [c for c in cells if c.origin == "generated"]
        assert [c.id for c in generated] == app.session.turn(1).ids
        assert all(c.event.prob == 0.5 and len(c.event.top) == 5 for c in generated)
        counts = app.query_one("#token-counts").render().plain
        assert f"{len(ids)} tokens" in counts and f"context {len(ids)}/512" in counts
        # the inspector follows the cursor
        view = app.debug_pane.conversation_view
        view.focus()
        view.cursor = cells.index(generated[0])
        await pilot.pause()
        text = app.query_one("#token-inspector").summary
        assert "sampled, probability 50.00%" in text and f"id {generated[0].id}" in text


async def test_live_preview_keeps_typed_special_strings_ordinary(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await pilot.press(*"hi <|user_end|>")
        draft = app.debug_pane.draft_view
        typed = lambda: "".join(c.text for c in draft.cells if not c.special)  # noqa: E731
        await wait_until(pilot, lambda: typed() == "hi <|user_end|>")  # a slow machine previews mid-typing
        specials = [c.special for c in draft.cells if c.special]
        assert specials == ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>"]
        assert "".join(c.text for c in draft.cells if not c.special) == "hi <|user_end|>"
        await pilot.press("ctrl+u")  # clear the line: the preview empties
        await wait_until(pilot, lambda: not draft.cells)


async def test_slash_commands_set_params_and_export(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["Fine."], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for command in ("/temperature 0.25", "/topk 7", "/topp 0.5", "/seed 11", "/max 40"):
            await send(pilot, command)
        p = app.params
        assert (p.temperature, p.top_k, p.top_p, p.seed, p.max_tokens) == (0.25, 7, 0.5, 11, 40)
        assert "T 0.25 · top-k 7 · top-p 0.5 · seed 11 · max 40" in app.query_one("#status-bar").render().plain
        await send(pilot, "/temperature -1")
        await send(pilot, "/bogus")
        assert app.params.temperature == 0.25 and app.session.messages == []
        notes = [n.message for n in app._notifications]
        assert any("temperature=-1.0 must be a finite number >= 0" in n for n in notes)
        assert any("unknown command /bogus" in n for n in notes)
        await send(pilot, "how are you")
        await wait_until(pilot, idle(app, 2))
        assert app.backend.calls[0][1].seed == 11 and app.backend.calls[0][1].max_tokens == 40
        await send(pilot, f"/save {tmp_path / 'chat.md'}")
        await send(pilot, f"/save {tmp_path / 'chat.jsonl'}")
        await send(pilot, f"/export {tmp_path / 'ids.json'}")
        assert "## User\n\nhow are you" in (tmp_path / "chat.md").read_text()
        line = json.loads((tmp_path / "chat.jsonl").read_text())
        assert line["messages"] == app.session.messages
        exported = json.loads((tmp_path / "ids.json").read_text())
        assert tuple(exported.values()) == tuple(tiny_tokenizer.render_conversation({"messages": app.session.messages}))
        await send(pilot, "/clear")
        assert app.session.messages == [] and not app.chat_log.message_widgets


async def test_regenerate_and_edit_last(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["First.", "Second."], tmp_path, app={"params": None})
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/seed 3")
        await send(pilot, "question")
        await wait_until(pilot, idle(app, 2))
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.live_reply is None and app.session.messages[-1]["content"] == "Second.")
        assert len(app.session.messages) == 2 and len(app.chat_log.message_widgets) == 2
        first_seed, second_seed = (params.seed for _, params in app.backend.calls)
        assert first_seed == 3 and second_seed != 3  # a new seed
        await pilot.press("ctrl+e")
        assert app.session.messages == [] and app.chat_input.text == "question"
        await pilot.press(*" again", "enter")
        await wait_until(pilot, idle(app, 2))
        assert app.session.messages[0]["content"] == "question again"


async def test_engine_error_is_a_notification_and_the_app_goes_on(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["never shown"], tmp_path, fail_after=0)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_until(pilot, lambda: app.live_reply is None and app._notifications)
        assert "scripted engine failure" in list(app._notifications)[-1].message
        assert app.session.messages == [{"role": "user", "content": "hello"}]
        assert len(app.chat_log.message_widgets) == 1
        app.backend.fail_after = None
        await pilot.press("ctrl+r")
        await wait_until(pilot, idle(app, 2))
        assert app.session.messages[1]["content"] == "never shown"


async def test_old_turns_are_dropped_with_a_notice_when_context_is_full(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["Sure, here is a long answer about the quick brown fox."], tmp_path,
                   sequence_len=96)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/max 16")
        for n in range(4):
            await send(pilot, f"question number {n} about the lazy dog")
            await wait_until(pilot, idle(app, 2 * (n + 1)))
        assert app.session.dropped > 0
        notice = app.chat_log.query(".notice").first().render().plain
        assert "oldest messages are no longer sent" in notice
        prompt, _ = app.backend.calls[-1]
        assert len(prompt) + 16 <= 96
        assert prompt == tiny_tokenizer.render_for_completion({"messages": app.session.messages[app.session.dropped:-1]})
        await send(pilot, "x " * 200)  # alone longer than the context: refused, kept in the box
        assert app.chat_input.text.startswith("x x")
        assert any("too long for the model" in n.message for n in app._notifications)


async def test_resume_and_conversation_list(tiny_tokenizer, tmp_path):
    first = make_app(tiny_tokenizer, ["Remembered."], tmp_path)
    async with first.run_test(size=SIZE) as pilot:
        await send(pilot, "remember this")
        await wait_until(pilot, idle(first, 2))
    store = ConversationStore(tmp_path / "store")
    latest = store.latest()
    assert latest == first.session.conversation_id
    second = make_app(tiny_tokenizer, ["New."], tmp_path, app={"resume": latest})
    async with second.run_test(size=SIZE) as pilot:
        assert second.session.messages == first.session.messages
        assert second.session.turn(1).ids == first.session.turn(1).ids
        await pilot.press("ctrl+n")
        assert second.session.messages == []
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: second.session.messages == first.session.messages)
        assert second.session.conversation_id == latest


@pytest.mark.parametrize("script_lines", [2])
async def test_replay_in_app_plays_then_hands_over(tiny_tokenizer, tmp_path, script_lines):
    from tui.chat_file import Line

    script = [Line(1, {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "A."},
                                    {"role": "user", "content": "second"}]}),
              Line(2, {"messages": [{"role": "assistant", "content": "bad: starts with assistant"}]})]
    app = make_app(tiny_tokenizer, ["A.", "B."], tmp_path, app={"replay": script})
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.replay is None, timeout=10)
        assert [m["content"] for m in app.session.messages] == ["first", "A.", "second", "B."]
        notices = [n.render().plain for n in app.chat_log.query(".notice")]
        assert "matches the script's reply" in notices
        assert any("script line 2: message 0" in n for n in notices)
        assert notices[-1] == "replay finished: your turn"
        await send(pilot, "now me")
        await wait_until(pilot, idle(app, 6))


async def test_replay_pause_and_step(tiny_tokenizer, tmp_path):
    from tui.chat_file import Line

    script = [Line(1, {"messages": [{"role": "user", "content": m} for m in ("a",)]}),
              Line(2, {"messages": [{"role": "user", "content": "b"}, {"role": "assistant", "content": "x"},
                                    {"role": "user", "content": "c"}]})]
    app = make_app(tiny_tokenizer, ["ok"], tmp_path, app={"replay": script})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")  # paused before or after the first turn
        await wait_until(pilot, lambda: app.live_reply is None)
        played = len(app.backend.calls)
        await pilot.pause(0.8)
        assert len(app.backend.calls) == played  # paused: nothing more
        await pilot.press("f6")
        await wait_until(pilot, lambda: len(app.backend.calls) == played + 1 and app.live_reply is None)
        await pilot.pause(0.8)
        assert len(app.backend.calls) == played + 1  # one step only
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.replay is None, timeout=10)
        assert len(app.backend.calls) == 3


async def test_paste_keeps_newlines_and_end_follows_the_newest_message(tiny_tokenizer, tmp_path):
    from textual import events

    app = make_app(tiny_tokenizer, ["line\n\n" * 60], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(events.Paste("first line\nsecond line"))  # as the terminal driver does
        await pilot.pause()
        assert app.chat_input.text == "first line\nsecond line" and app.session.messages == []  # pasted, not sent
        await pilot.press("enter")
        await wait_until(pilot, idle(app, 2))
        log = app.chat_log
        await pilot.pause()
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y  # followed the stream
        log.scroll_home(animate=False)
        await pilot.pause()
        assert log.scroll_y == 0
        await pilot.press("end")  # at the end of the (empty) input: jump to the newest message
        await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y)


async def test_settings_screen_and_command_palette(tiny_tokenizer, tmp_path):
    from textual.widgets import Input

    from tui.screens.settings import SettingsScreen

    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        assert isinstance(app.screen, SettingsScreen)
        app.screen.query_one("#set-top_p", Input).value = "1.5"
        await pilot.press("enter")
        assert "top_p=1.5 must be in (0, 1]" in str(app.screen.query_one("#settings-error").render())
        app.screen.query_one("#set-top_p", Input).value = "0.8"
        app.screen.query_one("#set-seed", Input).value = "9"
        await pilot.press("enter")
        assert not isinstance(app.screen, SettingsScreen)
        assert (app.params.top_p, app.params.seed) == (0.8, 9)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for action in ("Regenerate", "Edit last message", "New conversation", "Toggle the token pane",
                       "Toggle the raw view", "Sampling settings", "Set temperature", "Set max tokens",
                       'Export {"ids", "mask"} as JSON', "Save the conversation as Markdown or JSONL"):
            assert action in titles


async def test_every_action_in_the_table_is_bound_listed_and_runs_from_the_palette(tiny_tokenizer, tmp_path):
    from tui.actions import ACTIONS, key_label
    from tui.screens.help import HelpScreen, key_sections
    from tui.screens.settings import SettingsScreen
    from tui.widgets.token_view import TokenView

    app = make_app(tiny_tokenizer, ["ok"], tmp_path)
    keyed = [action for action in ACTIONS if action.key]
    assert [(b.key, b.action) for b in app.BINDINGS] == [(a.key, a.action) for a in keyed]
    help_rows = dict(key_sections()[0][1])
    assert all(help_rows[key_label(a.key)] == a.help for a in keyed)
    for action in ACTIONS:  # every action string names a method of the app
        assert callable(getattr(app, "action_" + action.action.split("(")[0])), action.action
    async with app.run_test(size=SIZE) as pilot:
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Pause or resume the replay" not in commands  # no replay is playing
        assert commands["New conversation"].help == "Ctrl+N or /clear: start a new conversation"
        await commands["Set top-p"].callback()
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen) and app.screen.focused.id == "set-top_p"
        app.screen.dismiss(None)
        await pilot.pause()
        await commands["Save the conversation as Markdown or JSONL"].callback()
        assert app.chat_input.text == "/save "
        await commands["Toggle token ids in the token pane"].callback()
        await pilot.pause()
        assert app.debug_pane.display and all(view.show_ids for view in app.debug_pane.query(TokenView))
        await commands["Help: keys and commands"].callback()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_surprise_view_colours_every_token_and_reports_bits_per_byte(tiny_tokenizer, tmp_path):
    from tui.surprise import surprise_style

    app = make_app(tiny_tokenizer, ["Hi there!"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_until(pilot, idle(app, 2))
        backend = app.backend
        await pilot.press("f7")  # opens the token pane with the surprise view
        summary = app.query_one("#surprise-summary")
        await wait_until(pilot, lambda: "bits/byte" in summary.render().plain)
        view = app.debug_pane.conversation_view
        ids = [c.id for c in view.cells]
        assert backend.surprisal_calls == [ids]  # one forward over the whole rendered conversation
        # the scripted model finds token t 1 + t % 5 bits surprising; the first token has no prediction
        assert view.surprise == [None] + [float(1 + t % 5) for t in ids[1:]]
        regions, lengths = tiny_tokenizer.regions(ids), tiny_tokenizer.token_bytes

        def bpb(region):
            counted = [(1 + t % 5, lengths[t]) for t, r in zip(ids, regions) if r == region and lengths[t]]
            return sum(b for b, _ in counted) / sum(n for _, n in counted)

        text = summary.render().plain
        assert f"your text {bpb('user'):.2f} bits/byte" in text and f"replies {bpb('assistant'):.2f} bits/byte" in text
        # tokens are drawn in their surprisal's colour, the user's too
        user_token = next(i for i, c in enumerate(view.cells) if c.region == "user" and not c.special)
        assert view.token_style(user_token).bgcolor == surprise_style(view.surprise[user_token]).bgcolor
        # the inspector lists the surprisal beside the probability
        view.focus()
        generated = next(i for i, c in enumerate(view.cells) if c.origin == "generated")
        view.cursor = generated
        await pilot.pause()
        inspector = app.query_one("#token-inspector").summary
        bits = view.surprise[generated]
        assert "sampled, probability 50.00%" in inspector
        assert f"surprise: {bits:.2f} bits: the model gave it probability {2 ** -bits:.2%}" in inspector
        # nothing changed: toggling again shows the same answer without another forward
        await pilot.press("f7")
        assert view.surprise is None and not summary.display
        await pilot.press("f7")
        assert view.surprise is not None and len(backend.surprisal_calls) == 1
        # a new exchange is scored when its reply has ended
        app.chat_input.focus()
        await send(pilot, "again")
        await wait_until(pilot, lambda: idle(app, 4)() and len(backend.surprisal_calls) == 2)
        await wait_until(pilot, lambda: view.surprise is not None and len(view.surprise) == len(view.cells)
                         and view.surprise[-1] is not None)
        assert backend.surprisal_calls[-1] == [c.id for c in view.cells]
