"""The loss chart of a training stage, redrawn in place in the terminal while it trains.

On a terminal, ``glasschat train`` shows each training stage as a chart of its loss so far
(train and held-out) with its newest progress lines below it, redrawn where it stands: the
cursor goes back up over what was drawn last and the screen below is cleared. Off a terminal
(a pipe, a log file, CI) nothing is drawn and the progress lines print as they come — a file
should hold lines, not cursor movements.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TextIO

from glasschat.term_chart import render, terminal_width
from training.loss_history import LossHistory, loss_chart

REDRAW_EVERY_S = 0.5  # a redraw costs a few milliseconds; more often than this only flickers
LINES_KEPT = 3  # progress lines shown under the chart


class LiveLossChart:
    def __init__(self, name: str, stream: TextIO, width: int | None = None, height: int | None = None,
                 every_s: float = REDRAW_EVERY_S):
        self.name, self.stream, self.every_s = name, stream, every_s
        self.width = width or terminal_width()
        rows = shutil.get_terminal_size((80, 24)).lines
        self.height = height or max(8, min(18, rows - LINES_KEPT - 2))
        self.history = LossHistory()
        self.lines: deque[str] = deque(maxlen=LINES_KEPT)
        self.drawn = 0  # lines on screen from the last draw
        self.last_draw = -float("inf")
        self.val_seen = 0

    def log(self, line: str) -> None:
        self.lines.append(line)
        self.draw()

    def update(self, history: LossHistory) -> None:
        # a new held-out point is drawn at once; training points wait for the next redraw
        new_val, self.val_seen = len(history.val) != self.val_seen, len(history.val)
        self.history = history
        self.draw(force=new_val)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < self.every_s:
            return
        self.last_draw = now
        parts = []
        if self.history.train:
            parts.append(render(loss_chart(self.name, self.history), width=self.width, height=self.height, color=True))
        # a line wider than the terminal would wrap and throw off the count of lines to go back over
        parts.extend(line[: self.width] for line in self.lines)
        text = "\n".join(parts)
        back = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        self.stream.write(f"{back}{text}\n")
        self.stream.flush()
        self.drawn = text.count("\n") + 1

    def close(self) -> None:
        self.draw(force=True)


@contextlib.contextmanager
def loss_display(name: str, log: Callable[[str], None], live: bool,
                 stream: TextIO | None = None) -> Iterator[tuple[Callable[[str], None], Callable | None]]:
    """``(log, on_history)`` for a training stage: the live chart's on a terminal (``live``),
    else ``log`` itself and no chart."""
    if not live:
        yield log, None
        return
    chart = LiveLossChart(name, stream or sys.stdout)
    try:
        yield chart.log, chart.update
    finally:
        chart.close()
