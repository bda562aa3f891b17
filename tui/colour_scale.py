"""One perceptual colour scale for every view that colours tokens by a number (the surprise view,
the confidence colours, the attention strip).

The stops follow viridis: dark purple through teal to yellow, with lightness rising steadily
along the scale, so a larger value always reads as a brighter cell, for colour-blind readers too
and on a terminal that dims colours. Each view maps its number to ``t`` in [0, 1] and gets the
background, and a foreground (black or white) that stays readable on it.
"""

from __future__ import annotations

import math

from rich.style import Style

# (t, rgb) stops sampled from viridis
STOPS = ((0.0, (68, 1, 84)), (0.125, (71, 44, 122)), (0.25, (59, 82, 139)), (0.375, (44, 114, 142)),
         (0.5, (33, 145, 140)), (0.625, (39, 173, 129)), (0.75, (94, 201, 98)), (0.875, (170, 220, 50)),
         (1.0, (253, 231, 37)))


def rgb(t: float) -> tuple[int, int, int]:
    """The scale's colour at ``t`` (clamped to [0, 1]), interpolated between the stops."""
    t = 0.0 if math.isnan(t) else min(max(t, 0.0), 1.0)
    for (low, a), (high, b) in zip(STOPS, STOPS[1:]):
        if t <= high:
            f = (t - low) / (high - low)
            return tuple(round(x + (y - x) * f) for x, y in zip(a, b))  # type: ignore[return-value]
    return STOPS[-1][1]


def luminance(colour: tuple[int, int, int]) -> float:
    """Relative luminance (sRGB), 0 for black to 1 for white."""
    def linear(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def hex_colour(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


_STYLES: dict[int, Style] = {}  # one Style per step: a long chat asks for thousands


def style(t: float, steps: int = 64) -> Style:
    """Background at ``t`` (quantized to ``steps`` levels, more than the eye tells apart) with
    black or white text, whichever contrasts more."""
    level = round((0.0 if math.isnan(t) else min(max(t, 0.0), 1.0)) * steps)
    cached = _STYLES.get(level * 1000 + steps)
    if cached is None:
        colour = rgb(level / steps)
        text = "#000000" if luminance(colour) > 0.18 else "#ffffff"  # contrast against black vs white
        cached = _STYLES[level * 1000 + steps] = Style(bgcolor=hex_colour(colour), color=text)
    return cached
