"""The help screen (F1 or /help): every key and every slash command."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.commands import COMMANDS


_KEY_NAMES = {"escape": "Esc", "left": "←", "right": "→", "up": "↑", "down": "↓", "delete": "Del",
              "pageup": "PgUp", "pagedown": "PgDn"}


def key_label(keys: str) -> str:
    """``ctrl+n,f2`` -> ``Ctrl+N / F2``."""
    def one(key: str) -> str:
        *modifiers, name = key.split("+")
        if name in _KEY_NAMES:
            name = _KEY_NAMES[name]
        else:
            name = name.upper() if len(name) == 1 or (name[0] == "f" and name[1:].isdigit()) else name.capitalize()
        return "+".join([*(m.capitalize() for m in modifiers), name])

    return " / ".join(one(key.strip()) for key in keys.split(","))


def help_table(sections: list[tuple[str, list[tuple[str, str]]]]) -> Group:
    """A titled two-column table (keys, what they do) per section."""
    parts = []
    for title, rows in sections:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True, min_width=22)
        table.add_column(ratio=1)
        for keys, description in rows:
            table.add_row(keys, description)
        parts += [Text(title, style="bold underline"), table, Text("")]
    return Group(*parts)


def command_rows() -> list[tuple[str, str]]:
    return [(command.usage, command.help) for command in COMMANDS] + [("//text", "send a message that starts with /")]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, key_sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.key_sections = key_sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "glasschat — keys and commands (Esc closes)"
            yield Static(help_table([*self.key_sections, ("Slash commands", command_rows())]))
