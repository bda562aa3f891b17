"""The loss curves of a training stage: the training loss at every step and the held-out loss
at every evaluation.

The loop keeps a ``LossHistory`` in its saved state, so a resumed stage continues the curves it
was interrupted in (cut back to the saved step, since the steps after it run again), and writes
it beside the state as ``loss.json`` for anyone to read or plot. ``loss_chart`` turns one into
the chart the terminal shows live and ``checkpoint/loss.png`` keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from glasschat.atomic import atomic_write_text
from glasschat.charts import Lines, Series

LOSS_FILE = "loss.json"  # beside each training stage's state
LOSS_CHART = "loss.png"  # in the checkpoint, beside the model card that shows it


@dataclass
class LossHistory:
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, loss of that step's batch)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out loss after it)

    def to_json(self) -> dict:
        return {"train": [[s, v] for s, v in self.train], "val": [[s, v] for s, v in self.val]}

    @classmethod
    def from_json(cls, data: dict | None, upto: int | None = None) -> LossHistory:
        """The history saved in ``data``, without the steps after ``upto`` (they run again)."""
        data = data or {}

        def points(key: str) -> list[tuple[int, float]]:
            return [(int(s), float(v)) for s, v in data.get(key, []) if upto is None or int(s) <= upto]

        return cls(points("train"), points("val"))


def write_loss_file(directory: Path, name: str, history: LossHistory) -> Path:
    path = Path(directory) / LOSS_FILE
    atomic_write_text(path, json.dumps({"stage": name, **history.to_json()}) + "\n")
    return path


def read_loss_file(directory: Path) -> LossHistory | None:
    """The history in ``directory/loss.json``, or ``None`` if there is none (a run made before
    loss files were written, or a stage not run yet)."""
    from glasschat.errors import UserError
    from glasschat.loading import read_json

    path = Path(directory) / LOSS_FILE
    if not path.is_file():
        return None
    try:
        data = read_json(path, max_bytes=256 * 2**20)
        return LossHistory.from_json(data if isinstance(data, dict) else None)
    except (UserError, TypeError, ValueError):
        return None  # a damaged loss file costs the chart, never the run


def loss_chart(name: str, history: LossHistory) -> Lines:
    return Lines(f"{name}: loss", [
        Series("train", [s for s, _ in history.train], [v for _, v in history.train]),
        Series("held-out", [s for s, _ in history.val], [v for _, v in history.val]),
    ], xlabel="step", ylabel="loss")
