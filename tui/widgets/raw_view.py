"""The raw view (F3): the chat as the exact token stream the model sees, special tokens and all."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.token_cells import TokenCell
from tui.widgets.token_view import render_cells


class RawView(VerticalScroll):
    can_focus = False

    def compose(self):
        yield Static(id="raw-text")

    def show(self, cells: list[TokenCell], confidence: bool = False) -> None:
        """``cells``; with ``confidence`` the generated tokens on the colours of their probabilities."""
        self.query_one("#raw-text", Static).update(render_cells(cells, shading=False, confidence=confidence))
        self.scroll_end(animate=False)
