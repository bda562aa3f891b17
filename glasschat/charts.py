"""What a chart shows, apart from where it is drawn.

A chart is one of two plain dataclasses — ``Lines`` (curves over a shared x axis, e.g. loss per
step) or ``Bars`` (one or more values per category, e.g. accuracy per skill) — and two renderers
draw the same object: ``glasschat.term_chart`` as text for the terminal, ``glasschat.image_chart``
as a PNG file. Commands build the dataclass once and hand it to either, so the terminal and the
image never disagree on what is plotted.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]


@dataclass
class Lines:
    title: str
    series: list[Series]
    xlabel: str = ""
    ylabel: str = ""


@dataclass
class Bars:
    """``values[label]`` holds one number per category; several labels are drawn side by side."""

    title: str
    categories: list[str]
    values: dict[str, list[float]] = field(default_factory=dict)
    xlabel: str = ""  # the categories' axis
    ylabel: str = ""  # the values' axis
    horizontal: bool = False  # long category names (paths) read better down the side
    value_max: float | None = None  # a fixed end of the values' axis (100 for percentages of a whole)

    def __post_init__(self):
        for label, numbers in self.values.items():
            if len(numbers) != len(self.categories):
                raise ValueError(f"Bars {self.title!r}: {label!r} has {len(numbers)} values for "
                                 f"{len(self.categories)} categories")


Chart = Lines | Bars
