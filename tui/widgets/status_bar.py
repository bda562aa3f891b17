"""The status bar: model, context used, speed of the last reply, sampling parameters, state."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Static

from model.events import SamplingParams
from tui.backend import ModelInfo

WARN_FRACTION = 0.85  # context used above this is shown as a warning


@dataclass
class Status:
    model: ModelInfo
    params: SamplingParams = field(default_factory=SamplingParams)
    context_used: int = 0
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    state: str = "ready"
    dropped: int = 0  # oldest messages left out of the prompt


def params_label(params: SamplingParams) -> str:
    seed = "random" if params.seed is None else str(params.seed)
    return (f"T {params.temperature:g} · top-k {params.top_k} · top-p {params.top_p:g} · seed {seed} "
            f"· max {params.max_tokens}")


class StatusBar(Static):
    def __init__(self, status: Status, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status = status

    def on_mount(self) -> None:
        self.show(self.status)

    def show(self, status: Status) -> None:
        self.status = status
        model, window = status.model, status.model.sequence_len
        near_full = status.context_used >= WARN_FRACTION * window
        self.set_class(near_full, "warn")
        text = Text()
        text.append(f" {model.name} ({model.size_label}, {model.weight_format}) ", style="bold")
        text.append(f"│ ctx {status.context_used}/{window} ", style="bold" if near_full else "")
        if status.dropped:
            text.append(f"({status.dropped} oldest msgs not sent) ")
        ttft = "–" if status.ttft_ms is None else f"{status.ttft_ms:.0f} ms"
        speed = "–" if status.tokens_per_s is None else f"{status.tokens_per_s:.1f} tok/s"
        text.append(f"│ ttft {ttft} · {speed} ")
        text.append(f"│ {params_label(status.params)} ")
        text.append(f"│ {status.state}", style="italic")
        self.update(text)
