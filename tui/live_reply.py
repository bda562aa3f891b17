"""One reply on its way from the engine to the screen.

A ``LiveReply`` is the hand-over point between two sides that must never wait on each other:
the engine side (a thread worker reading the engine's stream) appends events to a deque and
sets ``ended`` once; the UI side (the app's pump) drains the deque at its own pace and turns
the tokens into display pieces. Appends and pops on a deque are thread-safe, so no lock is held
by either side.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field

from model.backend import Backend
from model.events import SamplingParams, Stop, TokenEvent
from tui.chat_file import TurnRecord
from tui.reply_blocks import Piece, ReplyBlocks, merge_pieces
from tui.widgets.messages import AssistantMessage


@dataclass
class EngineFailure:
    error: BaseException


@dataclass
class LiveReply:
    """One reply being generated: the engine thread fills ``events``, the pump drains it."""

    turn: TurnRecord
    widget: AssistantMessage
    tracker: ReplyBlocks
    cancel: threading.Event = field(default_factory=threading.Event)
    events: deque = field(default_factory=deque)
    shown: list[tuple[float, int]] = field(default_factory=list)  # (time, tokens on screen)
    fresh: list[TokenEvent] = field(default_factory=list)  # drained tokens the widget has not taken yet
    # set (from the engine thread, once) when the reply has ended, so the pump shows the end at
    # once instead of at its next tick
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def run(self, backend: Backend, prompt_ids: list[int], params: SamplingParams, loop: asyncio.AbstractEventLoop,
            worker) -> None:
        """The engine side, in a thread worker: queue the engine's events, never touch the UI.
        Any engine failure is queued as an ``EngineFailure``, so it becomes a notification."""
        try:
            for event in backend.stream(prompt_ids, params, cancel=self.cancel):
                self.events.append(event)
                if isinstance(event, Stop):
                    return
                if worker.is_cancelled:  # the app is closing
                    self.cancel.set()
            self.events.append(EngineFailure(RuntimeError("the engine ended without a stop event")))
        except Exception as error:
            self.events.append(EngineFailure(error))
        finally:
            try:
                loop.call_soon_threadsafe(self.ended.set)
            except RuntimeError:  # the app has closed its loop
                pass

    def drain(self) -> tuple[list[Piece], Stop | EngineFailure | None]:
        """The UI side: what the queued tokens add to the reply's blocks (one piece per block),
        and the reply's end if it has come."""
        pieces, end = [], None
        while self.events:
            item = self.events.popleft()
            if isinstance(item, TokenEvent):
                self.turn.add(item)
                self.fresh.append(item)
                piece = self.tracker.feed(item)
                if piece is not None:
                    pieces.append(piece)
            else:
                end = item
                break
        return merge_pieces(pieces), end

    async def wait(self, timeout: float) -> None:
        """Until the next tick, or sooner when the reply has ended."""
        try:
            await asyncio.wait_for(self.ended.wait(), timeout)
        except TimeoutError:
            pass
