"""Charts as PNG files, drawn by matplotlib.

Only the object-oriented API with the Agg canvas is used — a ``Figure`` made here, never
pyplot — so there is no global figure state, no display backend to find, and the same picture
on a headless machine as on a desktop. Several charts go into one file as panels stacked top to
bottom. The file is written atomically (``glasschat.atomic``): a reader sees the old image or
the new one, never half of one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from glasschat.atomic import atomic_write_bytes, check_file_target
from glasschat.charts import Bars, Chart, Lines

PANEL_SIZE = (8.0, 3.6)  # inches per panel; with DPI, 800 pixels wide
DPI = 100


def png_bytes(charts: Sequence[Chart]) -> bytes:
    """``charts`` as one PNG image, one panel each, top to bottom."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not charts:
        raise ValueError("png_bytes: no charts to draw")
    heights = [_panel_height(chart) for chart in charts]
    figure = Figure(figsize=(PANEL_SIZE[0], sum(heights)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(charts), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, chart in zip(axes, charts, strict=True):
        if isinstance(chart, Lines):
            _lines(ax, chart)
        else:
            _bars(ax, chart)
        ax.set_title(chart.title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(path: str | os.PathLike, charts: Sequence[Chart]) -> None:
    """Write ``charts`` to ``path`` as a PNG (a ``WriteError`` naming it if it cannot be written)."""
    check_file_target(path)
    atomic_write_bytes(path, png_bytes(charts))


def _lines(ax, chart: Lines) -> None:
    for series in chart.series:
        if series.x:
            # a lone point (one evaluation) needs a marker to be seen at all
            ax.plot(series.x, series.y, label=series.label, marker="o" if len(series.x) < 30 else None,
                    markersize=3, linewidth=1.2)
    ax.set_xlabel(chart.xlabel)
    ax.set_ylabel(chart.ylabel)
    ax.grid(alpha=0.3)
    if len(chart.series) > 1:
        ax.legend()


def _bars(ax, chart: Bars) -> None:
    labels = list(chart.values)
    slot = 0.8 / max(1, len(labels))
    positions = range(len(chart.categories))
    for k, label in enumerate(labels):
        offsets = [p - 0.4 + slot * (k + 0.5) for p in positions]
        if chart.horizontal:
            ax.barh(offsets, chart.values[label], height=slot, label=label)
        else:
            ax.bar(offsets, chart.values[label], width=slot, label=label)
    if chart.horizontal:
        ax.set_yticks(list(positions), chart.categories)
        ax.invert_yaxis()  # the first category on top, as in the text table
        ax.set_xlabel(chart.ylabel)
        ax.set_ylabel(chart.xlabel)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(list(positions), chart.categories)
        ax.set_xlabel(chart.xlabel)
        ax.set_ylabel(chart.ylabel)
        ax.grid(axis="y", alpha=0.3)
    if chart.value_max is not None:
        (ax.set_xlim if chart.horizontal else ax.set_ylim)(0, chart.value_max)
    if len(labels) > 1:
        ax.legend()


def _panel_height(chart: Chart) -> float:
    if isinstance(chart, Bars) and chart.horizontal:
        return max(PANEL_SIZE[1], 1.0 + 0.35 * len(chart.categories) * max(1, len(chart.values)))
    return PANEL_SIZE[1]
