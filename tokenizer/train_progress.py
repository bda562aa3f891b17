"""The trainer's progress line on stderr: phase, amount done, rate, ETA.

Redrawn in place at most ten times a second, and only when stderr is a terminal: piped or
logged output stays clean.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_SECONDS = 0.1


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.active = enabled and _isatty(self.stream)
        self._phase = ""
        self._unit = ""
        self._scale = 1.0
        self._total: float | None = None
        self._started = self._next_draw = 0.0
        self._done = 0.0

    def start(self, phase: str, total: float | None, unit: str, scale: float = 1.0) -> None:
        """Begin a phase; ``total`` (or None when unknown) and amounts are divided by ``scale``."""
        self._phase, self._total, self._unit, self._scale = phase, total, unit, scale
        self._started = time.monotonic()
        self._next_draw = 0.0
        self._done = 0.0
        self.update(0)

    def update(self, done: float) -> None:
        self._done = done
        if not self.active:
            return
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + REDRAW_SECONDS
        self._draw(self._line(now))

    def finish(self) -> None:
        """End the phase, leaving its final line on screen."""
        if self.active:
            self._draw(self._line(time.monotonic()) + "\n")

    def _line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        done = self._done / self._scale
        rate = done / elapsed
        parts = [f"{self._phase:<9}"]
        if self._total:
            total = self._total / self._scale
            whole = self._scale == 1  # counted things, not a quantity
            parts.append(f"{_amount(done, whole)}/{_amount(total, whole)} {self._unit}")
            if 0 < done < total and rate > 0:
                parts.append(f"{_amount(rate)} {self._unit}/s  ETA {_duration((total - done) / rate)}")
            else:
                parts.append(f"{_amount(rate)} {self._unit}/s")
        else:
            parts.append(f"{_amount(done, self._scale == 1)} {self._unit}  {_amount(rate)} {self._unit}/s")
        parts.append(f"{_duration(elapsed)} elapsed")
        return "  ".join(parts)

    def _draw(self, line: str) -> None:
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _amount(x: float, whole: bool = False) -> str:
    return f"{x:,.0f}" if whole or x >= 100 else f"{x:,.1f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
