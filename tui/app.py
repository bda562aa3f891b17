"""The glasschat app: a chat with a local model that shows its tokens.

The conversation and what is done to it live in a ``ChatSession`` (``tui.session``); the app
wires it to the widgets. A thread worker reads the engine's stream into a ``LiveReply`` (``tui.live_reply``); an async
pump drains it about 30 times a second into the reply's widgets, so the UI never waits on the
engine and the engine never waits on the UI. Every action has a key and a command-palette entry;
F1 lists them all.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import get_current_worker

from glasschat.errors import UserError
from glasschat.loading import scrub_text
from model.backend import Backend
from model.events import SamplingParams, Stop
from tui import actions, surprise
from tui import commands as slash
from tui.attention_view import AttentionView
from tui.chat_file import Line, TurnRecord, entry_error
from tui.context import Prompt
from tui.guard import describe, guarded, log_error
from tui.replay import ReplayState, compare, expected_ids
from tui.reply_blocks import ReplyBlocks
from tui.screens.conversations import ConversationsScreen
from tui.screens.help import HelpScreen, key_sections
from tui.screens.settings import SettingsScreen
from tui.session import ChatSession, with_seed
from tui.store import ConversationStore
from tui.live_reply import EngineFailure, LiveReply
from tui.token_cells import GENERATED, TokenCell
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_log import ChatLog
from tui.widgets.confidence import ConfidenceLegend, Inspect, reply_tokens
from tui.widgets.messages import AssistantMessage
from tui.widgets.debug_pane import DebugPane
from tui.widgets.raw_view import RawView
from tui.widgets.status_bar import Status, StatusBar
from tui.widgets.token_view import TokenView
from tui.widgets.welcome import Welcome

PUMP_INTERVAL_S = 1 / 30  # how often streamed text reaches the screen
LIVE_TOKENS_INTERVAL_S = 0.25  # how often the token pane follows a streaming reply
DRAFT_PREVIEW_DELAY_S = 0.08  # typing pause before the draft's tokens are recomputed
DRAFT_PREVIEW_LONG_DELAY_S = 0.5  # the same for a draft of more than 200 lines (a paste)
DRAFT_PREVIEW_TOKENS = 500  # the most draft tokens shown: a pasted book stays responsive
REPLAY_PAUSE_S = 0.6  # between replayed turns, so they can be followed
INSPECTOR_ALTERNATIVES = 5


class GlasschatApp(App):
    CSS_PATH = Path(__file__).parent / "glasschat.tcss"  # absolute, so subclasses elsewhere find it
    TITLE = "glasschat"
    AUTO_FOCUS = "#input"

    BINDINGS = actions.bindings()  # every action is described once, in tui.actions

    def __init__(self, backend: Backend, *, store: ConversationStore | None = None,
                 params: SamplingParams | None = None, resume: str | None = None,
                 replay: list[Line] | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.store = store or ConversationStore()
        self.params = params or SamplingParams()
        self.session = ChatSession(self.tokenizer, backend.info.sequence_len, store=self.store,
                                   model=backend.info.name)
        self.live_reply: LiveReply | None = None
        self.replay: ReplayState | None = ReplayState(replay) if replay else None
        self.last_reply_shown: list[tuple[float, int]] = []  # for ``glasschat bench tui``
        self._resume = resume
        self._draft_timer: Timer | None = None
        self.surprise_on = False
        self.confidence_on = False
        # the surprise view's last answer: (the ids it scored, bits per cell, the headline)
        self._surprise: tuple[tuple[int, ...], list[float | None], str] | None = None
        self._surprise_pending: tuple[int, ...] | None = None
        self._live_tokens_at = 0.0
        self._save_problem: str | None = None  # why the last save failed, said once
        self.attention = AttentionView(self)  # the token pane's attention view (A)

    # ---- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="chat-column"):
                yield ConfidenceLegend(id="confidence-legend")
                yield Welcome(self.backend.info, id="welcome")
                yield ChatLog(id="chat-log")
                yield RawView(id="raw-view")
                yield ChatInput(id="input")
            yield DebugPane(self.tokenizer, self.backend.info.sequence_len, id="debug-pane")
        yield StatusBar(Status(self.backend.info, self.params), id="status-bar")

    @guarded
    async def on_mount(self) -> None:
        if not self.is_headless:
            # Python's cycle collector rescans every long-lived object at each full collection:
            # with the app's widgets, styles and imports that took tens of ms, now and then in the
            # middle of a streaming reply (`glasschat bench tui`: key-press delay p95 roughly
            # halved). Objects alive once the app has started stay for its lifetime: freeze them
            # out of the collector's scans. Not under tests (many apps in one process).
            gc.collect()
            gc.freeze()
        self.query_one(DebugPane).display = False
        self.query_one(RawView).display = False
        problem = self.store.write_problem()
        if problem is not None:  # said once, here and in the status bar, not after every turn
            self._save_problem = problem
            self.status.saving = "not saving: read-only data directory"
            self.refresh_status()
            self.notify(f"Conversations will not be saved: {problem}", severity="warning", timeout=10)
        draft = self.store.take_draft()
        if draft is not None:
            self.chat_input.load_text(draft)
            self.chat_input.move_cursor(self.chat_input.document.end)
            self.notify("Your unsent draft from the last session is back in the message box.")
        if self._resume is not None:
            await self.open_conversation(self._resume)
        if self.replay is not None:
            self.call_after_refresh(self.replay_advance)
        self.refresh_welcome()

    @property
    def chat_log(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def chat_input(self) -> ChatInput:
        return self.query_one(ChatInput)

    @property
    def debug_pane(self) -> DebugPane:
        return self.query_one(DebugPane)

    # ---- sending

    @on(ChatInput.Submitted)
    @guarded
    async def on_submitted(self, event: ChatInput.Submitted) -> None:
        # text that UTF-8 cannot hold (a pasted lone surrogate) is stored as the tokenizer reads it
        await self.submit(scrub_text(event.text))

    async def submit(self, text: str) -> None:
        """Handle what was typed: a slash command, or a message to send."""
        try:
            command = slash.parse(text.strip())
        except UserError as error:
            self.notify(str(error), severity="error")
            return
        if command is not None:
            self.chat_input.clear()
            await self.run_slash(*command)
            return
        if self.live_reply is not None:
            self.notify("A reply is still streaming: wait for it or press Esc.", severity="warning")
            return
        if self.replay is not None:
            await self.end_replay("replay ended: your turn")
        if self.session.awaiting_reply:
            self.notify("The last message has no reply yet: Ctrl+R generates one, Ctrl+E edits it.",
                        severity="warning")
            return
        if await self.send(slash.message_text(text)):
            self.chat_input.clear()

    async def send(self, text: str) -> bool:
        """Add a user message and generate the reply; False (and a notification) when the
        message cannot be sent."""
        try:
            prompt = self.session.add_user(text, self.params.max_tokens)
        except UserError as error:
            self.notify(str(error), severity="error")
            return False
        await self.chat_log.add_message(self.session.entries[-1].message)
        self.chat_log.jump_to_newest()
        self.refresh_welcome()
        self.save()
        await self.generate(prompt, self.params)
        return True

    async def generate(self, prompt: Prompt, params: SamplingParams) -> None:
        """Start generating the reply to ``prompt`` in a thread; the pump shows it."""
        if prompt.dropped > self.session.dropped:
            await self.chat_log.add_notice(
                f"The conversation no longer fits the model's {self.backend.info.sequence_len}-token context: "
                f"the {prompt.dropped} oldest messages are no longer sent.")
        params = with_seed(params)
        widget = await self.chat_log.start_reply()
        live = LiveReply(self.session.begin_reply(prompt, params.seed), widget, ReplyBlocks(self.tokenizer.special_name))
        widget.message = live.turn.message
        if self.confidence_on:
            await widget.set_confident(True)
        self.live_reply = live
        self.set_state("generating…")
        engine_params = replace(params, top_alternatives=max(params.top_alternatives, INSPECTOR_ALTERNATIVES))
        loop = asyncio.get_running_loop()
        self.run_worker(lambda: live.run(self.backend, prompt.ids, engine_params, loop, get_current_worker()),
                        thread=True, group="engine", exit_on_error=False)
        self.run_worker(self._pump(live), group="pump", exit_on_error=False)

    async def _pump(self, live: LiveReply) -> None:
        """Move queued events to the screen at ``PUMP_INTERVAL_S`` until the reply ends."""
        try:
            while True:
                end = await self._drain(live)
                if end is not None:
                    await self._finish(live, end)
                    return
                await live.wait(PUMP_INTERVAL_S)
        except Exception as error:  # a display bug must not leave the chat stuck mid-reply
            live.cancel.set()
            self.live_reply = None
            self.session.abandon_reply()
            self.set_state("ready")
            self.notify(f"Could not show the reply: {type(error).__name__}: {error}", severity="error", timeout=10)

    async def _drain(self, live: LiveReply) -> Stop | EngineFailure | None:
        pieces, end = live.drain()
        if pieces:
            await live.widget.write(pieces)
        if live.fresh:
            fresh, live.fresh = live.fresh, []
            live.widget.add_tokens(fresh, self.tokenizer.special_name)
        if pieces or end is not None:
            live.shown.append((time.perf_counter(), len(live.turn.ids)))
        if end is None and self._tokens_visible() and time.monotonic() - self._live_tokens_at > LIVE_TOKENS_INTERVAL_S:
            self._live_tokens_at = time.monotonic()
            self.refresh_tokens()
        return end

    async def _finish(self, live: LiveReply, end: Stop | EngineFailure) -> None:
        turn = live.turn
        kept = self.session.finish_reply(end if isinstance(end, Stop) else None)
        if not isinstance(end, Stop):
            self.notify(f"Engine error: {end.error}", severity="error", timeout=10)
        await live.widget.finish(None if turn.stop_reason == "assistant_end" else turn.stop_reason)
        live.shown.append((time.perf_counter(), len(turn.ids)))  # the streams are flushed now
        if not kept:
            await self.chat_log.truncate(len(self.session.entries))
        self.live_reply = None
        self.last_reply_shown = live.shown
        status = self.status
        status.ttft_ms, status.tokens_per_s = turn.ttft_ms, turn.tokens_per_s
        self.set_state("ready")
        self.save()
        self.refresh_tokens()
        if self.replay is not None:
            await self._replay_turn_done(turn)

    # ---- actions

    def action_stop(self) -> None:
        if self.replay is not None and not self.replay.paused:
            self.replay.paused = True
            self.set_state("replay paused (F5 resumes, F6 steps)")
        if self.live_reply is not None:
            self.live_reply.cancel.set()
            self.set_state("stopping…")

    async def action_regenerate(self) -> None:
        """Generate the last reply again, with a new seed."""
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return
        if not self.session.entries:
            self.notify("Nothing to regenerate yet.", severity="warning")
            return
        if self.session.take_back_reply():
            await self._taken_back()
        try:
            prompt = self.session.prompt(self.params.max_tokens)
        except UserError as error:
            self.notify(str(error), severity="error")
            return
        await self.generate(prompt, replace(self.params, seed=None))

    async def action_edit_last(self) -> None:
        """Take back the last user message (and its reply) into the message box."""
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return
        text = self.session.take_back_last_user()
        if text is None:
            self.notify("No message to edit yet.", severity="warning")
            return
        await self._taken_back()
        self.chat_input.load_text(text)
        self.chat_input.move_cursor(self.chat_input.document.end)
        self.chat_input.focus()

    async def _taken_back(self) -> None:
        """Show the session after messages were taken back from its end."""
        await self.chat_log.truncate(len(self.session.entries))
        self.save()
        self.refresh_tokens()

    async def action_new_conversation(self) -> None:
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return
        await self.reset_conversation()
        self.chat_input.focus()

    async def reset_conversation(self) -> None:
        self.session.reset()
        await self.chat_log.clear()
        self.refresh_tokens()
        self.refresh_welcome()

    def refresh_welcome(self) -> None:
        """The first screen shows while the chat is empty: not once a message is sent, a
        conversation opened or a replay playing, again after Ctrl+N or /clear (and not over the
        raw view, which takes the chat's place)."""
        self.query_one(Welcome).display = (not self.session.entries and self.replay is None
                                           and not self.query_one(RawView).display)

    @on(Welcome.PromptChosen)
    def on_prompt_chosen(self, event: Welcome.PromptChosen) -> None:
        """An example prompt goes into the message box, for Enter to send."""
        self.action_prefill(event.prompt)

    def action_open_conversations(self) -> None:
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return

        @guarded
        async def opened(app, conversation_id: str | None) -> None:
            if conversation_id is not None:
                await app.open_conversation(conversation_id)

        current = self.session.conversation_id if self.session.entries else None
        self.push_screen(ConversationsScreen(self.store, current), partial(opened, self))

    @guarded
    async def open_conversation(self, conversation_id: str) -> None:
        try:
            self.session.open(conversation_id)
        except UserError as error:
            self.notify(f"Cannot open the conversation: {error}", severity="error", timeout=10)
            return
        await self.chat_log.load(self.session.messages)
        if self.confidence_on:
            await self.show_confidence()
        self.chat_log.jump_to_newest()
        self.refresh_welcome()
        last = self.session.last_turn
        if last is not None:
            self.status.ttft_ms, self.status.tokens_per_s = last.ttft_ms, last.tokens_per_s
        self.set_state("ready")
        self.refresh_tokens()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_sections()))

    def action_toggle_tokens(self) -> None:
        pane = self.debug_pane
        typing = self.focused is self.chat_input
        pane.display = not pane.display
        if pane.display:
            self.refresh_tokens()
            self.refresh_draft()
        self._keep_typing_in_the_draft(typing)

    def action_toggle_surprise(self) -> None:
        self.surprise_on = not self.surprise_on
        if self.surprise_on and not self.debug_pane.display:
            self.action_toggle_tokens()
        else:
            self.refresh_tokens()

    async def action_toggle_confidence(self) -> None:
        """Colour every generated token by its probability, in the chat and the token pane."""
        self.confidence_on = not self.confidence_on
        self.query_one(ConfidenceLegend).display = self.confidence_on
        await self.show_confidence()
        self.debug_pane.conversation_view.set_confidence(self.confidence_on)
        if self.query_one(RawView).display:
            self.refresh_tokens()

    async def show_confidence(self) -> None:
        """Every shown reply as coloured tokens (or as Markdown again), as ``confidence_on`` says."""
        entries = self.session.entries
        for widget in self.chat_log.query(AssistantMessage):
            tokens = None
            if self.confidence_on and not widget.tokens and widget is not getattr(self.live_reply, "widget", None):
                widget.message = self.chat_log.message_index(widget)
                turn = entries[widget.message].turn if 0 <= widget.message < len(entries) else None
                tokens = [] if turn is None else reply_tokens(self.tokenizer, turn.ids, turn.probs, turn.forced)
            await widget.set_confident(self.confidence_on, tokens)

    @on(Inspect)
    def on_inspect(self, event: Inspect) -> None:
        """A click on a coloured token or a sparkline bar: that token in the token pane's inspector."""
        if not self.debug_pane.display:
            self.action_toggle_tokens()
        view = self.debug_pane.conversation_view
        positions = [i for i, cell in enumerate(view.cells) if cell.message == event.message]
        position = positions[1 + event.index] if 1 + event.index < len(positions) else None  # after <|assistant_start|>
        if position is None or view.cells[position].origin != GENERATED:
            self.notify("That token is not in the token pane (the reply was re-encoded).", severity="warning")
            return
        view.focus()
        view.cursor = position
    def action_attention(self, what: str, by: int = 0) -> None:
        """The attention view: ``toggle`` it, or step the ``layer`` or ``head`` by ``by``."""
        if not self.debug_pane.display:
            self.action_toggle_tokens()
        if what == "toggle":
            self.attention.toggle()
        else:
            self.attention.step(what, by)

    @on(TokenView.Highlighted)
    def on_token_selected(self, event: TokenView.Highlighted) -> None:
        if self.attention.on and event.view is self.debug_pane.conversation_view:
            self.attention.refresh()

    def action_toggle_raw(self) -> None:
        raw = self.query_one(RawView)
        typing = self.focused is self.chat_input
        raw.display = not raw.display
        self.chat_log.display = not raw.display
        self.refresh_welcome()
        if raw.display:
            self.refresh_tokens()
        self._keep_typing_in_the_draft(typing)

    def _keep_typing_in_the_draft(self, typing: bool) -> None:
        """After a pane opens or closes: the message box keeps the keyboard if it had it, and
        gets it back if the focused widget was just hidden (typing would go nowhere)."""
        focused = self.focused
        if typing or focused is None or not focused.display or not all(a.display for a in focused.ancestors
                                                                        if hasattr(a, "display")):
            self.chat_input.focus()

    def on_key(self, event) -> None:
        # a printable key with nothing focused (the focused widget went away) belongs in the draft
        if self.focused is None and event.is_printable and event.character and len(self.screen_stack) == 1:
            self.chat_input.focus()
            self.chat_input.insert(event.character)
            event.stop()

    def action_settings(self, focus_field: str | None = None) -> None:
        @guarded
        def applied(app, params: SamplingParams | None) -> None:
            if params is not None:
                app.set_params(params)

        self.push_screen(SettingsScreen(self.params, focus_field), partial(applied, self))

    def action_jump_to_newest(self) -> None:
        self.chat_log.jump_to_newest()

    @on(ChatInput.JumpToNewest)
    def on_jump(self) -> None:
        self.chat_log.jump_to_newest()

    def set_params(self, params: SamplingParams) -> None:
        self.params = params
        self.status.params = params
        self.refresh_status()

    # ---- slash commands

    async def run_slash(self, command: slash.SlashCommand, argument: str) -> None:
        try:
            if command.param is not None:
                self.set_params(slash.set_param(self.params, command, argument))
                self.notify(f"{command.param} = {getattr(self.params, command.param)}")
            elif command.name == "clear":
                await self.action_new_conversation()
            elif command.name == "save":
                self.notify(f"Saved {self.session.save_as(argument)}")
            elif command.name == "export":
                path, count = self.session.export_ids(argument)
                self.notify(f"Exported {count} tokens to {path}")
            elif command.name == "regen":
                await self.action_regenerate()
            elif command.name == "edit":
                await self.action_edit_last()
            elif command.name == "confidence":
                await self.action_toggle_confidence()
            elif command.name == "help":
                self.action_help()
        except Exception as error:  # a mistake in the command, or a bug: a notification either way
            self.report_error(f"/{command.name}", error)

    # ---- the safety net (tui.guard)

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """Every key, palette entry and widget action comes through here: a bug in one is
        reported, and the chat goes on."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as error:
            self.report_error(f"action {action}", error)
            return True

    def report_error(self, where: str, error: Exception) -> None:
        """Say what went wrong; a bug's traceback goes to the error log."""
        log = None
        if not isinstance(error, UserError) and log_error(self.store.error_log, where, error):
            log = self.store.error_log
        self.notify(describe(where, error, log), severity="error", timeout=15)

    def _handle_exception(self, error: Exception) -> None:
        # what the net did not catch ends the app (non-zero): first keep the work
        self.preserve_work()
        super()._handle_exception(error)

    def preserve_work(self) -> None:
        """Save the conversation and the draft, as far as possible (the app is going down)."""
        try:
            self.session.save()
        except Exception:
            pass
        try:
            draft = self.chat_input.text
            if draft.strip():
                self.store.save_draft(scrub_text(draft))
        except Exception:
            pass

    # ---- command palette

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        for action in actions.palette_actions(replaying=self.replay is not None):
            yield SystemCommand(action.title, action.palette_help, partial(self.run_action, action.action))

    def action_prefill(self, text: str) -> None:
        """Put ``text`` in the message box, to be completed (``/save `` and its file name)."""
        self.chat_input.load_text(text)
        self.chat_input.move_cursor(self.chat_input.document.end)
        self.chat_input.focus()

    def action_token_view(self, action: str) -> None:
        """Run a token view's action (``toggle_ids``) on the token pane's views, opening it first."""
        if not self.debug_pane.display:
            self.action_toggle_tokens()
        # only the conversation has generated tokens to move between
        views = [self.debug_pane.conversation_view] if action == "next_low" else self.debug_pane.query(TokenView)
        for view in views:
            getattr(view, f"action_{action}")()

    # ---- token pane, raw view, draft preview

    def _tokens_visible(self) -> bool:
        return self.debug_pane.display or self.query_one(RawView).display

    def refresh_tokens(self) -> None:
        """Recompute the token pane, raw view and status bar from the conversation."""
        dropped = self.session.dropped
        self.status.context_used = self.session.context_used()
        self.status.dropped = dropped
        self.refresh_status()
        raw = self.query_one(RawView)
        if not (self.debug_pane.display or raw.display):
            return  # the cells of a long chat are costly: made only to be shown
        cells: list[TokenCell] = self.session.cells()
        if self.debug_pane.display:
            self.debug_pane.show_conversation(cells, dropped)
            self.refresh_surprise(cells)
            self.attention.refresh()
        if raw.display:
            raw.show(cells, confidence=self.confidence_on)

    def refresh_surprise(self, cells: list[TokenCell]) -> None:
        """The surprise view for ``cells``: the last answer if it scored these tokens, else one
        forward over them in a thread, never while a reply streams (until it ends, the tokens it
        already scored keep their colours)."""
        pane = self.debug_pane
        if not self.surprise_on:
            pane.show_surprise(None)
            return
        ids = tuple(cell.id for cell in cells)
        known = self._surprise
        if known is not None and known[0] == ids:
            pane.show_surprise(known[1], known[2])
            return
        prefix = known[1] + [None] * (len(ids) - len(known[0])) if known and ids[: len(known[0])] == known[0] else None
        if self.live_reply is not None:
            pane.show_surprise(prefix or [None] * len(ids), "surprise: scored when the reply ends")
            return
        pane.show_surprise(prefix, "surprise: one forward over the conversation…")
        if self._surprise_pending != ids:
            self._surprise_pending = ids
            self.run_worker(partial(self._score_surprise, ids), thread=True, group="surprise", exit_on_error=False)

    def _score_surprise(self, ids: tuple[int, ...]) -> None:
        """In a thread: ask the backend for the surprisal of ``ids``, hand the answer to the UI."""
        try:
            bits: list[float] | str = self.backend.surprisal(list(ids))
        except Exception as error:  # shown as a notification; the view turns off
            bits = f"{type(error).__name__}: {error}"
        self.call_from_thread(self._surprise_scored, ids, bits)

    def _surprise_scored(self, ids: tuple[int, ...], bits: list[float] | str) -> None:
        if self._surprise_pending == ids:
            self._surprise_pending = None
        if isinstance(bits, str):
            self.surprise_on = False
            self.notify(f"Could not score the conversation: {bits}", severity="error", timeout=10)
        else:
            per_cell = surprise.per_token(list(ids), bits)
            regions = self.tokenizer.regions(list(ids))
            lengths = self.tokenizer.token_bytes
            headline = surprise.describe(surprise.region_bpb(list(ids), regions, per_cell, lengths, "user"),
                                         surprise.region_bpb(list(ids), regions, per_cell, lengths, "assistant"))
            self._surprise = (ids, per_cell, headline)
        self.refresh_tokens()

    @on(ChatInput.Changed)
    @guarded
    def on_draft_changed(self) -> None:
        if not self.debug_pane.display:
            return
        if self._draft_timer is not None:
            self._draft_timer.stop()
        # a long draft waits for a longer pause: its preview costs more than a keystroke
        long = self.chat_input.document.line_count > 200 or len(self.chat_input.document.get_line(0)) > 20_000
        self._draft_timer = self.set_timer(DRAFT_PREVIEW_LONG_DELAY_S if long else DRAFT_PREVIEW_DELAY_S,
                                           self.refresh_draft)

    @guarded
    def refresh_draft(self) -> None:
        """Show the tokens the draft in the message box would add to the conversation."""
        text = self.chat_input.text
        pane = self.debug_pane
        if not text:
            pane.show_draft([])
            return
        try:
            if slash.parse(text.strip()) is not None:
                pane.show_draft([], note="a slash command: nothing is sent to the model")
                return
        except UserError:
            pane.show_draft([], note="an unknown slash command (/help lists them)")
            return
        try:
            cells, total = self.session.draft_cells(slash.message_text(text), DRAFT_PREVIEW_TOKENS)
        except UserError as error:
            pane.show_draft([], note=f"cannot be sent here: {error}")
            return
        pane.show_draft(cells, total=total)

    # ---- status and persistence

    @property
    def status(self) -> Status:
        return self.query_one(StatusBar).status

    def refresh_status(self) -> None:
        self.query_one(StatusBar).show(self.status)

    def set_state(self, state: str) -> None:
        self.status.state = state
        self.refresh_status()

    def save(self) -> None:
        """Write the conversation to the data directory (atomically). A failure is notified once
        (not after every turn) and shown in the status bar until a save works again."""
        try:
            self.session.save()
        except (UserError, OSError) as error:
            if self._save_problem is None:  # newly failing: say so; already known: the status bar says it
                self.notify(f"Could not save the conversation: {error}", severity="error", timeout=10)
            self._save_problem = str(error)
            self.status.saving = "not saving"
            self.refresh_status()
            return
        if self._save_problem is not None:
            self._save_problem, self.status.saving = None, ""
            self.refresh_status()

    # ---- replay

    def action_replay_pause(self) -> None:
        if self.replay is None:
            self.notify("No replay is playing (glasschat chat --replay SCRIPT).", severity="warning")
            return
        self.replay.paused = not self.replay.paused
        self.set_state("replay paused (F5 resumes, F6 steps)" if self.replay.paused else "replaying…")
        if not self.replay.paused:
            self.call_later(self.replay_advance)

    def action_replay_step(self) -> None:
        if self.replay is None:
            self.notify("No replay is playing (glasschat chat --replay SCRIPT).", severity="warning")
            return
        self.replay.paused = True
        self.replay.steps += 1
        self.call_later(self.replay_advance)

    @guarded
    async def replay_advance(self) -> None:
        """Play the script's next turn, unless paused or a reply is streaming."""
        replay = self.replay
        if replay is None or self.live_reply is not None:
            return
        if replay.paused and not replay.steps:
            self.set_state("replay paused (F5 resumes, F6 steps)")
            return
        while (entry := replay.current_entry()) is not None:
            if not replay.started and not await self._replay_start_entry(entry):
                replay.next_entry()
                continue
            message = replay.next_message()
            if message is None:
                replay.next_entry()
            elif message["role"] == "system":
                self.session.add_message(message)
                await self.chat_log.add_message(message)
            else:
                replay.use_step()
                self.set_state("replaying…" if not replay.paused else "replay step")
                if await self.send(message["content"]):
                    return
                replay.next_entry()
        await self.end_replay("replay finished: your turn")

    async def _replay_start_entry(self, entry: Line) -> bool:
        """Begin a script conversation in a fresh chat; False (with a notice) if it is invalid."""
        problem = entry_error(entry)
        if problem is None:
            try:
                self.tokenizer.render_conversation(entry.data)
            except UserError as error:
                problem = str(error)
        if problem is not None:
            note = f"script line {entry.number}: {problem} (skipped)"
            await self.chat_log.add_notice(note)
            self.notify(note, severity="warning", timeout=8)
            return False
        if self.session.entries:
            await self.reset_conversation()
        await self.chat_log.add_notice(f"replaying script line {entry.number}")
        self.replay.started = True
        self.refresh_welcome()
        return True

    async def _replay_turn_done(self, turn: TurnRecord) -> None:
        expected = self.replay.script_reply()
        if expected is not None:
            result = compare(expected_ids(self.tokenizer, expected), turn.ids)
            note = ("matches the script's reply" if result["exact_match"]
                    else f"differs from the script's reply from token {result['first_difference']}")
            await self.chat_log.add_notice(note)
        if turn.stop_reason == "cancelled":
            return  # Esc paused the replay
        self.set_timer(REPLAY_PAUSE_S, self.replay_advance)

    async def end_replay(self, note: str) -> None:
        self.replay = None
        await self.chat_log.add_notice(note)
        self.set_state("ready")
