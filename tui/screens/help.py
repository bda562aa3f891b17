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

from tui.actions import key_label, key_rows
from tui.commands import COMMANDS
from tui.widgets.token_view import TokenView


def key_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """The help's key sections: the app's actions (``tui.actions``) amid the message box's own
    keys, the token pane's bindings, the conversations list's keys."""
    return [
        ("Chat", [("Enter", "send the message"), ("Shift+Enter / Ctrl+J", "new line in the message"),
                  *key_rows(), ("End (at line end)", "jump to the newest message"),
                  ("Ctrl+P", "command palette: every action by name"), ("Ctrl+Q", "quit")]),
        ("Token pane (F2, then Tab to focus it)", [
            (key_label(b.key), b.tooltip or b.description) for b in TokenView.BINDINGS]
         + [("mouse", "hover or click a token to inspect it")]),
        ("Conversations (Ctrl+O)", [("Enter", "open"), ("Del / Ctrl+D", "delete"), ("Esc", "close")]),
    ]


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
