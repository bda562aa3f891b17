"""One assistant turn, generated headless: run the backend's ``stream`` and keep what it produced.

Used by replay; the chat app runs the same stream from a thread worker and builds the same
``TurnRecord`` as events reach the screen.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from model.backend import Backend
from model.events import SamplingParams, Stop, TokenEvent
from tui.chat_file import TurnRecord


def with_seed(params: SamplingParams, rng: random.Random | None = None) -> SamplingParams:
    """``params`` with a concrete seed, drawn when none is set, so every turn can be replayed."""
    if params.seed is not None:
        return params
    return replace(params, seed=(rng or random).randrange(2**31))


def finish_turn(turn: TurnRecord, stop: Stop) -> None:
    """Copy the stop reason and timings of ``stop`` into ``turn``."""
    turn.stop_reason = stop.reason
    turn.ttft_ms = round(stop.stats.ttft_s * 1000, 3)
    turn.tokens_per_s = round(stop.stats.tokens_per_s, 3)


def generate_turn(backend: Backend, prompt_ids: list[int], params: SamplingParams, message_index: int,
                  cancel: threading.Event | None = None) -> TurnRecord:
    """Generate one reply to ``prompt_ids`` (which end with ``<|assistant_start|>``)."""
    turn = TurnRecord(message=message_index, seed=params.seed)
    for event in backend.stream(prompt_ids, params, cancel=cancel):
        if isinstance(event, TokenEvent):
            turn.add(event)
        elif isinstance(event, Stop):
            finish_turn(turn, event)
            break
    return turn
