"""A reply as an iterator of events, for a batcher that takes requests with callbacks.

A batcher (``model.batching.Batcher``, or ``model.batch_process.BatcherProcess``, the same loop
in a process of its own) takes a request as ``submit(prompt, params, put, cancel, ...)`` and
calls ``put`` from its own thread; ``Streams.stream`` turns that into what ``Engine.stream``
gives: an iterator of events that cancels its request when the reader goes away. Here, apart
from the batcher, so that the server's side of a batcher process does not import torch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from model.events import SamplingParams, Stop, TokenEvent


class Streams:
    """``stream`` for a batcher: anything with ``submit`` and ``wake`` (``Batcher``, and
    ``model.batch_process.BatcherProcess``, the same loop in a process of its own)."""

    def stream(self, prompt_ids: list[int], params: SamplingParams = SamplingParams(),
               cancel: threading.Event | None = None, stop_ids: dict[int, str] | None = None,
               tools: bool = True) -> Iterator[TokenEvent | Stop]:
        """One reply, as ``Engine.stream`` gives it for ``num_samples=1``. ``stop_ids`` maps the
        tokens that end the reply to their stop reason (default: ``<|assistant_end|>`` and
        ``<|bos|>``); ``tools=False`` leaves the calculator out (a plain completion)."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        cancel = cancel if cancel is not None else threading.Event()
        self.submit(prompt_ids, params, events.put, cancel, stop_ids, tools)
        return self._events(events, cancel)

    def _events(self, events: queue.SimpleQueue, cancel: threading.Event) -> Iterator[TokenEvent | Stop]:
        finished = False
        try:
            while True:
                item = events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Stop):
                    finished = True
                    return
        finally:
            if not finished:  # the reader went away: free its row at the next step
                cancel.set()
                self.wake()
