"""Progress of a model load on the terminal: quiet for a fast load, a line that updates in place
for a slow one.

``LoadProgress()`` is a ``progress(done_bytes, total_bytes)`` callback (what
``model.checkpoint.load_engine`` calls as it packs the weights). It writes nothing until the
load has run for ``after_s`` (a one-second load needs no bar), then
``loading model: 42% (0.31 of 0.74 GB)`` on stderr, rewritten in place, and clears it at the end.
Only on a terminal: piped stderr stays clean.
"""

from __future__ import annotations

import sys
import time


class LoadProgress:
    def __init__(self, label: str = "loading model", stream=None, after_s: float = 1.0):
        self.label, self.after_s = label, after_s
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if time.perf_counter() - self.start < self.after_s or not self.stream.isatty():
            return
        self.shown = True
        self.stream.write(f"\r{self.text(done, total)}\x1b[K")
        if done >= total:
            self.stream.write("\r\x1b[K")  # done: the reply starts on a clean line
        self.stream.flush()

    def text(self, done: int, total: int) -> str:
        return f"{self.label}: {done / max(total, 1):.0%} ({done / 1e9:.2f} of {total / 1e9:.2f} GB)"
