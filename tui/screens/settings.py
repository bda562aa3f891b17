"""The settings screen (F4): the sampling parameters, checked before they are applied."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from glasschat.errors import UserError
from model.events import SamplingParams

FIELDS = (
    ("temperature", "Temperature", "0 = greedy", "number"),
    ("top_k", "Top-k", "0 = off", "integer"),
    ("top_p", "Top-p", "1 = off", "number"),
    ("seed", "Seed", "blank = a new seed each reply", "integer"),
    ("max_tokens", "Max tokens", "per reply", "integer"),
)


class SettingsScreen(ModalScreen[SamplingParams | None]):
    """Returns the new parameters, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, params: SamplingParams, focus_field: str | None = None) -> None:
        super().__init__()
        self.params = params
        self.focus_field = focus_field

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-body") as body:
            body.border_title = "Sampling (Enter applies, Esc cancels)"
            with Grid(id="settings-grid"):
                for name, label, hint, kind in FIELDS:
                    value = getattr(self.params, name)
                    yield Label(label)
                    yield Input("" if value is None else str(value), placeholder=hint, type=kind, id=f"set-{name}")
                    yield Label(hint, classes="hint")
            yield Static(id="settings-error")
            with Horizontal(id="settings-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#set-{self.focus_field or 'temperature'}", Input).focus()

    def read_params(self) -> SamplingParams:
        values = {}
        for name, label, _, kind in FIELDS:
            raw = self.query_one(f"#set-{name}", Input).value.strip()
            if name == "seed" and not raw:
                values[name] = None
                continue
            try:
                values[name] = float(raw) if kind == "number" else int(raw)
            except ValueError:
                raise UserError(f"{label}: {raw!r} is not {'a number' if kind == 'number' else 'an integer'}") from None
        return SamplingParams(**{**self.params.__dict__, **values})

    def _apply(self) -> None:
        try:
            params = self.read_params()
        except UserError as error:
            self.query_one("#settings-error", Static).update(str(error))
            return
        self.dismiss(params)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self._apply()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
