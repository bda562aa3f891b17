"""The saved conversations (Ctrl+O): open one, or delete it."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.store import ConversationStore


class ConversationsScreen(ModalScreen[str | None]):
    """Returns the id of the conversation to open, or None."""

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("delete,ctrl+d", "delete", "Delete"),
    ]

    def __init__(self, store: ConversationStore, current: str | None) -> None:
        super().__init__()
        self.store = store
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="conversations-body") as body:
            body.border_title = "Conversations (Enter opens, Del deletes, Esc closes)"
            yield OptionList(id="conversation-list")
            yield Static(id="conversations-empty")

    def on_mount(self) -> None:
        self.refresh_list()

    def refresh_list(self) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        saved = self.store.list()
        for entry in saved:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.updated))
            prompt = Text()
            prompt.append(f"{when}  ", style="dim")
            prompt.append(entry.title, style="bold" if entry.id == self.current else "")
            prompt.append(f"  ({entry.messages} messages)", style="dim")
            options.add_option(Option(prompt, id=entry.id))
        self.query_one("#conversations-empty", Static).update("" if saved else "No saved conversations yet.")
        if saved:
            options.highlighted = 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_delete(self) -> None:
        option = self.query_one(OptionList).highlighted_option
        if option is None or option.id is None:
            return
        if option.id == self.current:
            self.notify("That is the open conversation; start a new one (Ctrl+N) to delete it.", severity="warning")
            return
        self.store.delete(option.id)
        self.refresh_list()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
