"""The glasschat app: a chat with a local model that shows its tokens.

A thread worker reads the engine's stream into a ``LiveReply`` (``tui.live_reply``); an async
pump drains it about 30 times a second into the reply's widgets, so the UI never waits on the
engine and the engine never waits on the UI. Every action has a key and a command-palette entry;
F1 lists them all.
"""

from __future__ import annotations

import asyncio
import json
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

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError
from model.backend import Backend
from model.events import SamplingParams, Stop
from tui import actions
from tui import commands as slash
from tui.context import Prompt, fit_prompt
from tui.generate import finish_turn, with_seed
from tui.chat_file import ChatRecord, Line, TurnRecord, entry_error, to_markdown, write_records
from tui.replay import ReplayState, compare, expected_ids
from tui.chat_tokens import prompt_ids, render_chat
from tui.reply_blocks import ReplyBlocks
from tui.screens.conversations import ConversationsScreen
from tui.screens.help import HelpScreen, key_sections
from tui.screens.settings import SettingsScreen
from tui.store import ConversationStore, title_of
from tui.live_reply import EngineFailure, LiveReply
from tui.token_cells import TokenCell, build_cells
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_log import ChatLog
from tui.widgets.debug_pane import DebugPane
from tui.widgets.raw_view import RawView
from tui.widgets.status_bar import Status, StatusBar
from tui.widgets.token_view import TokenView

PUMP_INTERVAL_S = 1 / 30  # how often streamed text reaches the screen
LIVE_TOKENS_INTERVAL_S = 0.25  # how often the token pane follows a streaming reply
DRAFT_PREVIEW_DELAY_S = 0.08  # typing pause before the draft's tokens are recomputed
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
        self.messages: list[dict] = []
        self.turns: dict[int, TurnRecord] = {}
        self.conversation_id = self.store.new_id()
        self.created = time.time()
        self.live_reply: LiveReply | None = None
        self.replay: ReplayState | None = ReplayState(replay) if replay else None
        self.dropped = 0
        self.last_reply_shown: list[tuple[float, int]] = []  # for ``glasschat bench tui``
        self._resume = resume
        self._draft_timer: Timer | None = None
        self._live_tokens_at = 0.0

    # ---- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="chat-column"):
                yield ChatLog(id="chat-log")
                yield RawView(id="raw-view")
                yield ChatInput(id="input")
            yield DebugPane(self.tokenizer, self.backend.info.sequence_len, id="debug-pane")
        yield StatusBar(Status(self.backend.info, self.params), id="status-bar")

    async def on_mount(self) -> None:
        self.query_one(DebugPane).display = False
        self.query_one(RawView).display = False
        if self._resume is not None:
            await self.open_conversation(self._resume)
        if self.replay is not None:
            self.call_after_refresh(self.replay_advance)

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
    async def on_submitted(self, event: ChatInput.Submitted) -> None:
        await self.submit(event.text)

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
        if self.messages and self.messages[-1]["role"] == "user":
            self.notify("The last message has no reply yet: Ctrl+R generates one, Ctrl+E edits it.",
                        severity="warning")
            return
        if await self.send(slash.message_text(text)):
            self.chat_input.clear()

    async def send(self, text: str) -> bool:
        """Add a user message and generate the reply; False (and a notification) when the
        message cannot be sent."""
        messages = [*self.messages, {"role": "user", "content": text}]
        try:
            prompt = fit_prompt(self.tokenizer, messages, self.backend.info.sequence_len, self.params.max_tokens,
                                self.turns)
        except UserError as error:
            self.notify(str(error), severity="error")
            return False
        self.messages = messages
        await self.chat_log.add_message(messages[-1])
        self.chat_log.jump_to_newest()
        self.save()
        await self.generate(prompt, self.params)
        return True

    async def generate(self, prompt: Prompt, params: SamplingParams) -> None:
        """Start generating the reply to ``prompt`` in a thread; the pump shows it."""
        if prompt.dropped > self.dropped:
            await self.chat_log.add_notice(
                f"The conversation no longer fits the model's {self.backend.info.sequence_len}-token context: "
                f"the {prompt.dropped} oldest messages are no longer sent.")
        self.dropped = prompt.dropped
        params = with_seed(params)
        widget = await self.chat_log.start_reply()
        live = LiveReply(TurnRecord(message=len(self.messages), seed=params.seed), widget,
                                ReplyBlocks(self.tokenizer.special_name))
        self.live_reply = live
        self.set_state("generating…")
        engine_params = replace(params, top_alternatives=max(params.top_alternatives, INSPECTOR_ALTERNATIVES))
        loop = asyncio.get_running_loop()
        self.run_worker(lambda: live.run(self.backend, prompt.ids, engine_params, loop,
                                               get_current_worker()),
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
            self.set_state("ready")
            self.notify(f"Could not show the reply: {type(error).__name__}: {error}", severity="error", timeout=10)

    async def _drain(self, live: LiveReply) -> Stop | EngineFailure | None:
        pieces, end = live.drain()
        if pieces:
            await live.widget.write(pieces)
        if pieces or end is not None:
            live.shown.append((time.perf_counter(), len(live.turn.ids)))
        if end is None and self._tokens_visible() and time.monotonic() - self._live_tokens_at > LIVE_TOKENS_INTERVAL_S:
            self._live_tokens_at = time.monotonic()
            self.refresh_tokens()
        return end

    async def _finish(self, live: LiveReply, end: Stop | EngineFailure) -> None:
        turn = live.turn
        if isinstance(end, Stop):
            finish_turn(turn, end)
        else:
            turn.stop_reason = "error"
            self.notify(f"Engine error: {end.error}", severity="error", timeout=10)
        await live.widget.finish(None if turn.stop_reason == "assistant_end" else turn.stop_reason)
        live.shown.append((time.perf_counter(), len(turn.ids)))  # the streams are flushed now
        if turn.ids or turn.stop_reason != "error":
            self.messages.append({"role": "assistant", "content": self.tokenizer.parse_assistant(turn.ids)})
            self.turns[turn.message] = turn
        else:
            await self.chat_log.truncate(len(self.messages))
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
        if not self.messages:
            self.notify("Nothing to regenerate yet.", severity="warning")
            return
        if self.messages[-1]["role"] == "assistant":
            await self._truncate(len(self.messages) - 1)
        try:
            prompt = fit_prompt(self.tokenizer, self.messages, self.backend.info.sequence_len,
                                self.params.max_tokens, self.turns)
        except UserError as error:
            self.notify(str(error), severity="error")
            return
        await self.generate(prompt, replace(self.params, seed=None))

    async def action_edit_last(self) -> None:
        """Take back the last user message (and its reply) into the message box."""
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return
        last_user = max((i for i, m in enumerate(self.messages) if m["role"] == "user"), default=None)
        if last_user is None:
            self.notify("No message to edit yet.", severity="warning")
            return
        text = self.messages[last_user]["content"]
        if last_user == 1 and self.messages[0]["role"] == "system":
            last_user = 0  # a system message cannot stand alone
        await self._truncate(last_user)
        self.chat_input.load_text(text)
        self.chat_input.move_cursor(self.chat_input.document.end)
        self.chat_input.focus()

    async def _truncate(self, count: int) -> None:
        self.messages = self.messages[:count]
        self.turns = {i: t for i, t in self.turns.items() if i < count}
        await self.chat_log.truncate(count)
        self.save()
        self.refresh_tokens()

    async def action_new_conversation(self) -> None:
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return
        await self.reset_conversation()
        self.chat_input.focus()

    async def reset_conversation(self) -> None:
        self.messages, self.turns, self.dropped = [], {}, 0
        self.conversation_id, self.created = self.store.new_id(), time.time()
        await self.chat_log.clear()
        self.refresh_tokens()

    def action_open_conversations(self) -> None:
        if self.live_reply is not None:
            self.notify("A reply is still streaming: press Esc first.", severity="warning")
            return

        async def opened(conversation_id: str | None) -> None:
            if conversation_id is not None:
                await self.open_conversation(conversation_id)

        self.push_screen(ConversationsScreen(self.store, self.conversation_id if self.messages else None), opened)

    async def open_conversation(self, conversation_id: str) -> None:
        try:
            record = self.store.load(conversation_id)
            if record.messages:
                self.tokenizer.render_conversation(record.conversation)
        except UserError as error:
            self.notify(f"Cannot open the conversation: {error}", severity="error", timeout=10)
            return
        await self.reset_conversation()
        self.conversation_id = conversation_id
        self.created = record.meta.get("created", self.created)
        self.messages = list(record.messages)
        self.turns = {turn.message: turn for turn in record.turns}
        for message in self.messages:
            await self.chat_log.add_message(message)
        self.chat_log.jump_to_newest()
        last = record.turns[-1] if record.turns else None
        if last is not None:
            self.status.ttft_ms, self.status.tokens_per_s = last.ttft_ms, last.tokens_per_s
        self.set_state("ready")
        self.refresh_tokens()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_sections()))

    def action_toggle_tokens(self) -> None:
        pane = self.debug_pane
        pane.display = not pane.display
        if pane.display:
            self.refresh_tokens()
            self.refresh_draft()

    def action_toggle_raw(self) -> None:
        raw = self.query_one(RawView)
        raw.display = not raw.display
        self.chat_log.display = not raw.display
        if raw.display:
            self.refresh_tokens()

    def action_settings(self, focus_field: str | None = None) -> None:
        def applied(params: SamplingParams | None) -> None:
            if params is not None:
                self.set_params(params)

        self.push_screen(SettingsScreen(self.params, focus_field), applied)

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
                self.save_as(argument)
            elif command.name == "export":
                self.export_ids(argument)
            elif command.name == "regen":
                await self.action_regenerate()
            elif command.name == "edit":
                await self.action_edit_last()
            elif command.name == "help":
                self.action_help()
        except UserError as error:
            self.notify(str(error), severity="error")

    def save_as(self, filename: str) -> None:
        """``/save FILE``: Markdown for ``.md``, a chat file for ``.jsonl``/``.json``."""
        if not filename:
            raise UserError("usage: /save FILE.md or /save FILE.jsonl")
        if not self.messages:
            raise UserError("nothing to save: the conversation is empty")
        path = Path(filename).expanduser()
        if path.suffix.lower() in (".md", ".markdown"):
            atomic_write_text(path, to_markdown(self.messages, title_of(self.messages)))
        elif path.suffix.lower() in (".jsonl", ".json"):
            write_records(path, [self.record().to_json()])
        else:
            raise UserError(f"/save {filename}: the file name must end in .md or .jsonl")
        self.notify(f"Saved {path}")

    def export_ids(self, filename: str) -> None:
        """``/export FILE``: the rendered conversation as ``{"ids", "mask"}`` — the tokens the
        token pane shows, replies as generated."""
        if not filename:
            raise UserError("usage: /export FILE.json")
        if not self.messages:
            raise UserError("nothing to export: the conversation is empty")
        ids, mask = render_chat(self.tokenizer, self.messages, self.turns)
        path = Path(filename).expanduser()
        atomic_write_text(path, json.dumps({"ids": ids, "mask": mask}) + "\n")
        self.notify(f"Exported {len(ids)} tokens to {path}")

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
        for view in self.debug_pane.query(TokenView):
            getattr(view, f"action_{action}")()

    # ---- token pane, raw view, draft preview

    def _tokens_visible(self) -> bool:
        return self.debug_pane.display or self.query_one(RawView).display

    def conversation_cells(self) -> list[TokenCell]:
        """The conversation (with the reply being generated, if any) as display cells."""
        messages, turns = list(self.messages), dict(self.turns)
        live = self.live_reply
        if live is not None and live.turn.ids:
            messages.append({"role": "assistant", "content": self.tokenizer.parse_assistant(live.turn.ids)})
            turns[live.turn.message] = live.turn
        if not messages:
            return []
        ids, mask = render_chat(self.tokenizer, messages, turns)
        return build_cells(self.tokenizer, ids, mask, messages, turns)

    def refresh_tokens(self) -> None:
        """Recompute the token pane, raw view and status bar from the conversation."""
        cells = self.conversation_cells()
        self.status.context_used = self._context_used(cells)
        self.status.dropped = self.dropped
        self.refresh_status()
        if self.debug_pane.display:
            self.debug_pane.show_conversation(cells, self.dropped)
        raw = self.query_one(RawView)
        if raw.display:
            raw.show(cells)

    def _context_used(self, cells: list[TokenCell]) -> int:
        if not self.dropped:
            return len(cells)
        first_sent = min((c.message for c in cells if c.message >= 0), default=0) + self.dropped
        return sum(1 for c in cells if c.message < 0 or c.message >= first_sent)

    @on(ChatInput.Changed)
    def on_draft_changed(self) -> None:
        if not self.debug_pane.display:
            return
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(DRAFT_PREVIEW_DELAY_S, self.refresh_draft)

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
        messages = [*self.messages, {"role": "user", "content": slash.message_text(text)}]
        try:
            full = prompt_ids(self.tokenizer, messages, self.turns)
            base = render_chat(self.tokenizer, self.messages, self.turns)[0] if self.messages else []
        except UserError as error:
            pane.show_draft([], note=f"cannot be sent here: {error}")
            return
        tail = full[len(base):]
        pane.show_draft(build_cells(self.tokenizer, tail, [0] * len(tail), [], start=len(base)))

    # ---- status and persistence

    @property
    def status(self) -> Status:
        return self.query_one(StatusBar).status

    def refresh_status(self) -> None:
        self.query_one(StatusBar).show(self.status)

    def set_state(self, state: str) -> None:
        self.status.state = state
        self.refresh_status()

    def record(self) -> ChatRecord:
        meta = {"id": self.conversation_id, "title": title_of(self.messages), "model": self.backend.info.name,
                "created": self.created, "updated": time.time()}
        return ChatRecord(list(self.messages), [self.turns[i] for i in sorted(self.turns)], meta)

    def save(self) -> None:
        """Write the conversation to the data directory (atomically); errors are notified."""
        if not self.messages:
            self.store.delete(self.conversation_id)
            return
        try:
            self.store.save(self.conversation_id, self.record())
        except OSError as error:
            self.notify(f"Could not save the conversation: {error}", severity="error")

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
                self.messages.append(message)
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
        if self.messages:
            await self.reset_conversation()
        await self.chat_log.add_notice(f"replaying script line {entry.number}")
        self.replay.started = True
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
