"""Charts as text for the terminal, drawn by plotext.

``render(chart)`` returns the chart as a string (ANSI colours only when asked), sized to the
terminal: its width (at most ``MAX_WIDTH``, so a chart on a wide screen stays readable) and a
fixed height. plotext keeps one global figure, so each call clears it first and builds from
scratch; nothing here is shown or written, the caller prints the string.
"""

from __future__ import annotations

import shutil

import plotext

from glasschat.charts import Bars, Chart, Lines

MAX_WIDTH = 100
MIN_WIDTH = 40
HEIGHT = 18


def terminal_width(default: int = 80) -> int:
    """The width to draw at: the terminal's (``COLUMNS`` when set, else ``default`` off a terminal)."""
    columns = shutil.get_terminal_size((default, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, columns))


def render(chart: Chart, width: int | None = None, height: int | None = None, color: bool = False) -> str:
    """``chart`` drawn as text, ``width`` columns (default: the terminal's) by ``height`` lines."""
    if isinstance(chart, Bars) and chart.horizontal and len(chart.values) > 1:
        # plotext's side-by-side horizontal bars run into each other and under the legend:
        # a chart per series reads unambiguously
        return "\n\n".join(
            render(Bars(f"{chart.title} — {label}", chart.categories, {label: values}, chart.xlabel, chart.ylabel,
                        horizontal=True, value_max=chart.value_max), width, height, color)
            for label, values in chart.values.items())
    width = width or terminal_width()
    height = height or (HEIGHT if isinstance(chart, Lines) else _bar_height(chart))
    plotext.clear_figure()
    plotext.limitsize(False, False)  # the size asked for, not clipped to what plotext thinks the terminal is
    plotext.plotsize(width, height)
    plotext.theme("pro" if color else "clear")
    if isinstance(chart, Lines):
        _lines(chart)
    else:
        _bars(chart, color)
    plotext.title(chart.title)
    text = plotext.build()
    plotext.clear_figure()
    if not color:
        text = plotext.uncolorize(text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def _lines(chart: Lines) -> None:
    for series in chart.series:
        if series.x:
            plotext.plot(series.x, series.y, label=series.label, marker="braille")
    plotext.xlabel(chart.xlabel)
    plotext.ylabel(chart.ylabel)
    xs = [x for series in chart.series for x in series.x]
    if xs and all(float(x).is_integer() for x in xs):
        # steps are whole numbers: ticks at 50.8 and 100.5 would read as a bug
        low, high = int(min(xs)), int(max(xs))
        plotext.xticks(sorted({round(low + k * (high - low) / 4) for k in range(5)}))


# without colour, side-by-side bars are told apart by their fill
FILLS = ("sd", "▒", "dot", "x")


def _bars(chart: Bars, color: bool) -> None:
    orientation = "horizontal" if chart.horizontal else "vertical"
    labels = list(chart.values)
    categories, columns = chart.categories, [chart.values[label] for label in labels]
    if chart.horizontal:  # plotext puts the first category at the bottom; the table lists it first
        categories, columns = categories[::-1], [column[::-1] for column in columns]
    if len(labels) == 1:
        plotext.bar(categories, columns[0], orientation=orientation, width=0.6)
    else:
        markers = None if color else [FILLS[k % len(FILLS)] for k in range(len(labels))]
        plotext.multiple_bar(categories, columns, labels=labels, orientation=orientation, width=0.8, marker=markers)
    # plotext names axes by position, so the values' label goes where the values run
    value_axis, category_axis = (plotext.xlabel, plotext.ylabel) if chart.horizontal else (plotext.ylabel, plotext.xlabel)
    value_axis(chart.ylabel)
    category_axis(chart.xlabel)
    if chart.value_max is not None:
        (plotext.xlim if chart.horizontal else plotext.ylim)(0, chart.value_max)


def _bar_height(chart: Bars) -> int:
    """Horizontal bars need a row or two per bar to stay apart; vertical ones a fixed height."""
    if not chart.horizontal:
        return HEIGHT
    return max(10, min(40, 6 + 2 * len(chart.categories)))
