"""The token pane's attention view: what the token under the cursor looked at.

The backend answers ``weights[layer][head][key]`` for one query position (``model.attention``,
an exact reference forward, asked for on demand and never while a reply streams). The view
picks a layer (or the average of all layers) and a head (or the average of the heads), and
reads off one weight per earlier token: the heat strip drawn over the conversation's tokens,
the inspector's five most attended tokens, and a line with each layer's most attended token.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style

from tui import colour_scale

ALL = -1  # the layer or head choice that averages them all
TOP = 5

QUERY_STYLE = Style(color="#000000", bgcolor="#5fd7ff", bold=True)


@dataclass(frozen=True)
class Choice:
    """Which layer and head the view shows; ``ALL`` averages."""

    layer: int = ALL
    head: int = ALL

    def step(self, what: str, by: int, layers: int, heads: int) -> Choice:
        """The next (``by`` 1) or previous layer or head, through ``ALL`` and around."""
        if what == "layer":
            return Choice((self.layer + 1 + by) % (layers + 1) - 1, self.head)
        return Choice(self.layer, (self.head + 1 + by) % (heads + 1) - 1)

    def label(self, layers: int, heads: int) -> str:
        layer = "all layers" if self.layer == ALL else f"layer {self.layer + 1}/{layers}"
        head = "heads averaged" if self.head == ALL else f"head {self.head + 1}/{heads}"
        return f"{layer} · {head}"


def strip(weights: list[list[list[float]]], choice: Choice) -> list[float]:
    """One weight per key: the chosen layer's (or every layer's average) chosen head (or the
    heads' average). An average of softmaxes is still a distribution over the keys."""
    layers = weights if choice.layer == ALL else [weights[choice.layer]]
    rows = [heads if choice.head == ALL else [heads[choice.head]] for heads in layers]
    count = sum(len(r) for r in rows)
    keys = len(weights[0][0])
    return [sum(row[j] for heads in rows for row in heads) / count for j in range(keys)]


def top(weights: list[float], k: int = TOP) -> list[tuple[int, float]]:
    """The ``k`` most attended keys as ``(position, weight)``, heaviest first (earlier on ties)."""
    return sorted(enumerate(weights), key=lambda item: (-item[1], item[0]))[:k]


def per_layer(weights: list[list[list[float]]], head: int) -> list[tuple[int, float]]:
    """For each layer, its most attended key with the chosen head (or the heads' average)."""
    return [top(strip(weights, Choice(layer, head)), 1)[0] for layer in range(len(weights))]


def attention_style(weight: float | None, peak: float) -> Style:
    """The background of a key that got ``weight`` when the heaviest got ``peak`` (grey: none)."""
    if weight is None or peak <= 0:
        return Style(bgcolor="#262626", color="#8a8a8a")
    return colour_scale.style(weight / peak)  # the app's one scale: brighter is more attended


def cell_weights(weights: list[float], cells: int) -> list[float | None]:
    """The strip over every cell of the conversation: None after the query (it saw none of them)."""
    return [*weights, *([None] * (cells - len(weights)))][:cells]
