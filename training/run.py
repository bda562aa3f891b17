"""The bookkeeping of one ``glasschat train`` run: where it writes, which stages are done, and
how long each took on how busy a machine (``timings.json``, which the model card quotes)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glasschat.atomic import atomic_write_text
from training.recipe import Recipe


@dataclass
class Run:
    """One ``glasschat train`` invocation: the recipe, the output directory and the settings of
    this machine (device, thread count), plus a log function and whether the training stages
    draw their loss live (stdout is a terminal)."""

    recipe: Recipe
    out: Path
    device: str = "cpu"
    threads: int = 1
    log: Callable[[str], None] = print
    live: bool = False

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    # timings.json: per stage, wall time and machine load, so the card can say how long it took
    def timings(self) -> dict:
        path = self.path("timings.json")
        return json.loads(path.read_text()) if path.is_file() else {}

    def record(self, stage: str, seconds: float, load_before: str, **more) -> None:
        timings = self.timings()
        timings[stage] = {"seconds": round(seconds, 1), "threads": self.threads, "device": self.device,
                          "loadavg_before": load_before, "loadavg_after": loadavg(), **more}
        atomic_write_text(self.path("timings.json"), json.dumps(timings, indent=2) + "\n")

    def done(self, stage: str) -> bool:
        return stage in self.timings()


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds while a stage runs, so the
    timings say how busy the machine was during the stage, not only at its ends."""

    def __init__(self, every: float = 15.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            value = loadavg().split(" ")[0]
            if value != "unknown":
                self.samples.append(float(value))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        return {"load_mean": round(sum(self.samples) / len(self.samples), 2), "load_max": max(self.samples)}
