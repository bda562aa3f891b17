"""The machine a benchmark runs on: its CPU for the report line, a process's children and the
CPU time it has used, and where nanochat's reference code sits beside the source tree (the
baseline several benchmarks race)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# ../shared/reference/nanochat beside the source tree: nanochat's own package, one folder per commit
NANOCHAT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "nanochat"


def cpu_name() -> str:
    """The CPU's model name (what ``lscpu`` calls Model name)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def children(pid: int) -> list[int]:
    """The processes ``pid`` started, from Linux's ``/proc`` (an ``OSError`` where there is none,
    or once the process is gone)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.extend(int(c) for c in f.read().split())
    return found


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used so far, from Linux's ``/proc``
    (an ``OSError`` where there is none, or once the process is gone)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
