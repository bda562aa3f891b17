"""The machine a benchmark ran on, for its report line."""

from __future__ import annotations

import platform


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
