"""Confidence colours (F8, /confidence): every generated token coloured by the probability it was
sampled with, in the chat and the token pane, a legend, and a sparkline with figures under each
reply; clicking a token opens it in the inspector."""

from __future__ import annotations

import math

from rich.style import Style

from tui import actions, colour_scale, confidence
from tui.widgets.confidence import ConfidenceLegend, ConfidenceSpark, ReplyTokens
from tui.widgets.messages import AssistantMessage
from test_tui_app import SIZE, idle, make_app, send, wait_until

PROBS = [0.9, 0.05, 0.5, 0.15, 1.0]
TOOL_REPLY = [{"type": "text", "text": "Let me compute that. "}, {"type": "python", "text": "12+30"},
              {"type": "python_output", "text": "42"}, {"type": "text", "text": "It is 42."}]


def bg(style: Style) -> str:
    return style.bgcolor.get_truecolor().hex


# ---- the arithmetic

def test_token_colour_brightens_as_the_probability_falls_and_forced_tokens_stand_apart():
    lightness = [colour_scale.luminance(confidence.token_style(p, False).bgcolor.get_truecolor())
                 for p in (1.0, 0.8, 0.5, 0.2, 0.0)]
    assert lightness == sorted(lightness) and len(set(lightness)) == 5
    forced = confidence.token_style(None, True)
    assert forced == confidence.FORCED_STYLE and forced.underline
    assert bg(forced) not in {bg(confidence.token_style(p / 10, False)) for p in range(11)}
    # the text stays readable: dark text on the bright end, light text on the dark end
    assert confidence.token_style(0.0, False).color.get_truecolor().hex == "#000000"
    assert confidence.token_style(1.0, False).color.get_truecolor().hex == "#ffffff"


def test_reply_figures_count_sampled_tokens_and_give_mean_surprisal():
    probs = [0.5, None, 0.25, 0.1, None]
    forced = [False, True, False, False, True]
    stats = confidence.reply_stats(probs, forced)
    assert (stats.sampled, stats.forced, stats.min_p, stats.low) == (3, 2, 0.1, 1)
    assert math.isclose(stats.mean_p, 0.85 / 3)
    assert math.isclose(stats.mean_surprisal, (1 + 2 + math.log2(10)) / 3)
    assert confidence.describe(stats) == ("min p 0.10 · mean p 0.28 · mean surprisal 2.11 bits · 1 below 0.2 · "
                                          "2 forced")
    assert confidence.describe(confidence.reply_stats([None], [True])) == "no sampled tokens · 1 forced"


def test_sparkline_bar_shows_the_least_likely_token_of_its_run():
    probs = [0.9, 0.1, 0.8, 0.7, None, None]
    forced = [False, False, False, False, True, True]
    bars = confidence.sparkline(probs, forced, 3)  # two tokens a bar
    assert [index for _, _, index in bars] == [1, 3, 4]
    assert [bar for bar, _, _ in bars] == ["▁", "▆", "·"]
    assert len(confidence.sparkline(probs, forced, 100)) == 6


# ---- the app

async def test_f8_colours_the_reply_shows_the_legend_and_toggles_back(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["The fox jumps over the dog."], tmp_path, probs=PROBS)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_until(pilot, idle(app, 2))
        reply = app.chat_log.query(AssistantMessage).last()
        legend = app.query_one(ConfidenceLegend)
        assert not legend.display and not reply.query(ReplyTokens)
        await pilot.press("f8")
        await pilot.pause()
        view = reply.query_one(ReplyTokens)
        markdown = reply.query_one("Markdown")
        assert legend.display and "confidence" in legend.render().plain and "forced" in legend.render().plain
        assert view.display and view.region.height > 0 and markdown.region.height == 0
        assert view.as_text().plain == "The fox jumps over the dog."
        await pilot.press("f8")
        await pilot.pause()
        assert not legend.display and view.region.height == 0 and markdown.region.height > 0
        # the slash command and its alias do the same; the palette lists it with its key
        for command in ("/confidence", "/conf"):
            await send(pilot, command)
            await pilot.pause()
        assert not app.confidence_on
        await send(pilot, "/confidence")
        await pilot.pause()
        assert app.confidence_on and legend.display
    entry = next(a for a in actions.palette_actions(False) if a.action == "toggle_confidence")
    assert entry.palette_help.startswith("F8 or /confidence: ")


async def test_each_token_takes_the_colour_of_its_probability_in_chat_pane_and_raw_view(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["The fox jumps over the dog."], tmp_path, probs=PROBS)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f8")  # on before the reply: it streams coloured
        await send(pilot, "hi")
        await wait_until(pilot, idle(app, 2))
        turn = app.session.turn(1)
        reply = app.chat_log.query(AssistantMessage).last()
        spans = reply.query_one(ReplyTokens).as_text().spans
        expected = [bg(confidence.token_style(p, False)) for p in turn.probs[:-1]]  # the end token is not drawn
        assert [bg(span.style) for span in spans] == expected
        assert len(set(expected)) == len(set(PROBS))
        await pilot.press("f2")
        await pilot.pause()
        view = app.debug_pane.conversation_view
        cells = {i: bg(view.token_style(i)) for i in range(len(view.cells))}
        generated = [i for i, c in enumerate(view.cells) if c.origin == "generated"]
        assert [cells[i] for i in generated] == [bg(confidence.token_style(p, False)) for p in turn.probs]
        user = next(i for i, c in enumerate(view.cells) if c.region == "user" and not c.special)
        assert cells[user] not in {bg(confidence.token_style(p, False)) for p in PROBS}  # not generated: its shade
        await pilot.press("f3")
        await pilot.pause()
        raw = app.query_one("#raw-text").content  # the Rich Text the raw view was given
        raw_bgs = {bg(s.style) for s in raw.spans if s.style.bgcolor is not None}
        assert {bg(confidence.token_style(p, False)) for p in PROBS} <= raw_bgs
        # streamed while coloured, the Markdown gets the whole text when the colours go off
        await pilot.press("f3", "f8")
        await pilot.pause()
        assert reply.text == "The fox jumps over the dog."


async def test_sparkline_figures_and_forced_tokens_of_a_tool_call(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, [TOOL_REPLY], tmp_path, probs=PROBS)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is 12+30?")
        await wait_until(pilot, idle(app, 2))
        await pilot.press("f8")
        await pilot.pause()
        turn = app.session.turn(1)
        reply = app.chat_log.query(AssistantMessage).last()
        spark = reply.query_one(ConfidenceSpark)
        stats = confidence.reply_stats(turn.probs, turn.forced)
        assert spark.stats == stats and stats.forced == sum(turn.forced) > 0
        assert stats.low == sum(1 for p in turn.probs if p is not None and p < 0.2)
        assert confidence.describe(stats) in spark.render().plain
        tokens = reply.query_one(ReplyTokens)
        forced = [tokens.token_style(i) for i, f in enumerate(turn.forced) if f]
        assert forced and all(style.underline and bg(style) == bg(confidence.FORCED_STYLE) for style in forced)


async def test_clicking_a_token_or_a_bar_opens_it_in_the_inspector(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["The fox jumps over the dog."], tmp_path, probs=PROBS)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_until(pilot, idle(app, 2))
        await pilot.press("f8")
        await pilot.pause()
        reply = app.chat_log.query(AssistantMessage).last()
        tokens = reply.query_one(ReplyTokens)
        line, col = tokens.laid.starts[1]  # the second token: sampled with p = 0.05
        await pilot.click(tokens, offset=(col, line))
        await pilot.pause()
        view = app.debug_pane.conversation_view
        assert app.debug_pane.display and app.focused is view
        cell = view.cells[view.cursor]
        assert cell.origin == "generated" and cell.event.prob == 0.05 and cell.id == app.session.turn(1).ids[1]
        assert "probability 5.00%" in app.query_one("#token-inspector").summary
        # a sparkline bar opens the least likely token of its run
        spark = reply.query_one(ConfidenceSpark)
        await pilot.click(spark, offset=(2 + 3, 0))  # after "p ", the fourth bar: token 3, p = 0.15
        await pilot.pause()
        assert view.cursor == view.cells.index(cell) + 2 and view.cells[view.cursor].event.prob == 0.15
        # L goes on to the next token sampled with p < 0.2, round to the first
        before = view.cursor
        await pilot.press("l")
        lows = [i for i, c in enumerate(view.cells)
                if c.origin == "generated" and not c.event.forced and c.event.prob < 0.2]
        assert view.cursor == next(i for i in lows if i > before) and view.cells[view.cursor].event.prob == 0.05
        view.cursor = lows[-1]
        await pilot.press("l")
        assert view.cursor == lows[0]  # round to the first
        # the palette's entry does the same, from wherever the keyboard is
        app.chat_input.focus()
        notices = len(app._notifications)
        await app.run_action("token_view('next_low')")
        assert view.cursor == lows[1] and len(app._notifications) == notices


async def test_a_saved_conversation_opens_coloured(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["The fox jumps."], tmp_path, probs=PROBS)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_until(pilot, idle(app, 2))
        conversation = app.session.conversation_id
        turn = app.session.turn(1)
    app = make_app(tiny_tokenizer, ["unused"], tmp_path, app={"resume": conversation})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f8")
        await pilot.pause()
        reply = app.chat_log.query(AssistantMessage).last()
        spans = reply.query_one(ReplyTokens).as_text().spans
        assert reply.query_one(ReplyTokens).as_text().plain == "The fox jumps."
        assert [bg(s.style) for s in spans] == [bg(confidence.token_style(p, False)) for p in turn.probs[:-1]]
        assert reply.query_one(ConfidenceSpark).stats == confidence.reply_stats(turn.probs, turn.forced)


# ---- what it looks like

def test_confidence_view_snapshot(snap_compare, tiny_tokenizer, tmp_path):
    from tui_fakes import scripted_backend

    from model.events import SamplingParams
    from test_tui_snapshots import SIZE as SNAPSHOT_SIZE
    from test_tui_snapshots import TOOL_REPLY as SNAPSHOT_REPLY
    from test_tui_snapshots import chat_once
    from tui.app import GlasschatApp
    from tui.store import ConversationStore

    backend = scripted_backend(tiny_tokenizer, [SNAPSHOT_REPLY], timings=(0.012, 0.112), probs=PROBS)
    app = GlasschatApp(backend, store=ConversationStore(tmp_path), params=SamplingParams(seed=1))

    async def run_before(pilot):
        await chat_once(pilot)
        await pilot.press("f8", "f2")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SNAPSHOT_SIZE, run_before=run_before)


# ---- the token pane following a streaming reply

def test_cells_of_a_streaming_reply_are_built_alone_and_match_a_full_build(tiny_tokenizer):
    from tui_fakes import scripted_backend

    from model.events import SamplingParams, TokenEvent
    from tui.chat_tokens import render_chat
    from tui.session import ChatSession
    from tui.token_cells import build_cells

    session = ChatSession(tiny_tokenizer, 4096)
    session.add_message({"role": "system", "content": "Be brief."})
    backend = scripted_backend(tiny_tokenizer, [TOOL_REPLY], probs=PROBS)
    for text in ("what is 12+30?", "and again?"):
        prompt = session.add_user(text, 64)
        turn = session.begin_reply(prompt, 1)
        for k, event in enumerate(e for e in backend.stream(prompt.ids, SamplingParams(max_tokens=64))
                                  if isinstance(e, TokenEvent)):
            turn.add(event)
            if k % 5 == 0:  # the pane looks a few times while the reply streams
                entries = session.with_pending()
                ids, mask = render_chat(tiny_tokenizer, entries)
                assert session.cells() == build_cells(tiny_tokenizer, ids, mask, entries)
        before = session.cells()
        session.finish_reply(None)
        assert session.cells()[: len(before) - len(turn.ids) - 1] == before[: len(before) - len(turn.ids) - 1]
        ids, mask = render_chat(tiny_tokenizer, session.entries)
        assert session.cells() == build_cells(tiny_tokenizer, ids, mask, session.entries)
    # the conversation's own cells are built once while it does not change
    assert session.cells()[0] is session.cells()[0]


async def test_a_reply_not_generated_here_stays_as_written(tiny_tokenizer, tmp_path):
    app = make_app(tiny_tokenizer, ["unused"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for message in ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Written by hand."}):
            app.session.add_message(message)
            await app.chat_log.add_message(message)
        await pilot.press("f8")
        await pilot.pause()
        reply = app.chat_log.query(AssistantMessage).last()
        assert app.confidence_on and not reply.confident
        assert reply.query_one("Markdown").region.height > 0 and reply.text == "Written by hand."


async def test_neighbouring_tokens_of_one_colour_are_drawn_as_one_segment_and_the_mouse_still_finds_each():
    from textual.app import App

    from tui.widgets.confidence import ReplyToken

    probs = [0.9, 0.9, 0.9, 0.05, 0.9]  # three sure tokens, an unsure one, a sure one
    tokens = [ReplyToken(text, False, p, False) for text, p in zip(["The", " fox", " ran", " far", "."], probs)]

    class One(App):
        inspected: list[int] = []

        def compose(self):
            yield ReplyTokens(0)

        def on_inspect(self, message) -> None:  # what a click on a token posts
            self.inspected.append(message.index)

    app = One()
    async with app.run_test(size=(40, 5)) as pilot:
        widget = app.query_one(ReplyTokens)
        widget.show(tokens)
        await pilot.pause()
        drawn = [s for s in widget.render_line(0) if s.text.strip()]
        assert [s.text for s in drawn] == ["The fox ran", " far", "."]  # one escape sequence per colour run
        assert [widget.token_at(x, 0) for x in (0, 3, 4, 8, 11, 15, 16)] == [0, 1, 1, 2, 3, 4, None]
        assert widget.token_at(0, 1) is None
        await pilot.click(ReplyTokens, offset=(9, 0))  # inside " ran", drawn in one segment with "The fox"
        await pilot.pause()
        assert app.inspected == [2]
