"""Confidence colours: each generated token coloured by the probability it was sampled with.

``TokenEvent.prob`` is the token's probability under the model (temperature 1, before any
filtering). The colour comes from the shared scale (``tui.colour_scale``) at ``t = 1 - p``, so
a token the model was sure of is dark and an unlikely one is bright: the eye goes to the
guesses, as in the surprise view, where brighter is more surprising. Tokens the engine forced
(the calculator's output) were never sampled: they are drawn apart, grey and underlined.

The per-reply figures are over sampled tokens only. The engine reports the top 5 alternatives,
not the whole distribution, so a reply's entropy cannot be computed honestly here; the mean
surprisal (``-log2 p`` of the tokens actually drawn) is what the figures give instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.style import Style

from tui import colour_scale

LOW_P = 0.2  # below this a sampled token counts as low-confidence (L in the token pane jumps to the next)
FORCED_STYLE = Style(bgcolor="#3a3a3a", color="#b0b0b0", underline=True, italic=True)
UNKNOWN_STYLE = Style(bgcolor="#303030", color="#d0d0d0")  # sampled, but no probability recorded
SPARK_BARS = "▁▂▃▄▅▆▇█"


def token_style(prob: float | None, forced: bool) -> Style:
    """The colour of a generated token sampled with ``prob`` (or forced)."""
    if forced:
        return FORCED_STYLE
    if prob is None or math.isnan(prob):
        return UNKNOWN_STYLE
    return colour_scale.style(1.0 - prob)


@dataclass(frozen=True)
class ReplyStats:
    """What one reply's sampled tokens say about the model's confidence."""

    sampled: int  # tokens with a probability
    forced: int
    min_p: float | None
    mean_p: float | None
    mean_surprisal: float | None  # bits: mean of -log2 p over the sampled tokens
    low: int  # sampled tokens with p < LOW_P


def reply_stats(probs: list[float | None], forced: list[bool]) -> ReplyStats:
    sampled = [p for p, f in zip(probs, forced) if not f and p is not None and not math.isnan(p)]
    n_forced = sum(1 for f in forced if f)
    if not sampled:
        return ReplyStats(0, n_forced, None, None, None, 0)
    surprisal = sum(-math.log2(max(p, 1e-300)) for p in sampled) / len(sampled)
    return ReplyStats(len(sampled), n_forced, min(sampled), sum(sampled) / len(sampled), surprisal,
                      sum(1 for p in sampled if p < LOW_P))


def describe(stats: ReplyStats) -> str:
    """``min p 0.03 · mean p 0.71 · mean surprisal 0.80 bits · 4 below 0.2 · 2 forced``."""
    if stats.sampled == 0:
        return f"no sampled tokens · {stats.forced} forced"
    return (f"min p {stats.min_p:.2f} · mean p {stats.mean_p:.2f} · mean surprisal {stats.mean_surprisal:.2f} bits · "
            f"{stats.low} below {LOW_P:g} · {stats.forced} forced")


def sparkline(probs: list[float | None], forced: list[bool], width: int) -> list[tuple[str, Style, int]]:
    """At most ``width`` bars, ``(bar, style, token index)``: each bar stands for a run of
    consecutive tokens and shows the least likely sampled one among them (the one a click opens),
    its height the probability; a run of forced tokens only is a grey dot."""
    n = len(probs)
    if n == 0 or width <= 0:
        return []
    bars = []
    per_bar = max(1, math.ceil(n / width))
    for start in range(0, n, per_bar):
        run = range(start, min(n, start + per_bar))
        scored = [(probs[i], i) for i in run if not forced[i] and probs[i] is not None]
        if not scored:
            bars.append(("·", FORCED_STYLE if any(forced[i] for i in run) else UNKNOWN_STYLE, start))
            continue
        p, index = min(scored)
        bar = SPARK_BARS[min(len(SPARK_BARS) - 1, int(p * len(SPARK_BARS)))]
        colour = colour_scale.rgb(1.0 - p)
        bars.append((bar, Style(color=colour_scale.hex_colour(colour)), index))
    return bars


def is_low(event) -> bool:
    """A sampled token the model gave less than ``LOW_P``."""
    return event is not None and not event.forced and event.prob is not None and event.prob < LOW_P


def next_low(cells, after: int) -> int | None:
    """The position of the next generated cell after ``after`` that ``is_low``, wrapping round
    to the first; None when there is none."""
    n = len(cells)
    for step in range(1, n + 1):
        position = (after + step) % n
        cell = cells[position]
        if cell.origin == "generated" and is_low(cell.event):
            return position
    return None


def legend_steps(steps: int = 6) -> list[tuple[str, Style]]:
    """The legend's swatches, from p = 1 (sure) down to p = 0: ``(label, style)``."""
    return [(f" {p:.1f} ", token_style(p, False)) for p in (1 - k / (steps - 1) for k in range(steps))]
