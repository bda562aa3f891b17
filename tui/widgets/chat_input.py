"""The message box: multi-line, Enter sends, Shift+Enter or Ctrl+J starts a new line."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class ChatInput(TextArea):
    """A ``TextArea`` that posts ``Submitted`` on Enter. Pasted text keeps its newlines."""

    BINDINGS = [
        Binding("end", "end_or_jump", "Line end / newest message", show=False),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class JumpToNewest(Message):
        """End pressed with the cursor already at the end of its line."""

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, tab_behavior="focus", compact=True,
                         highlight_cursor_line=False,
                         placeholder="Message (Enter sends, Shift+Enter or Ctrl+J: new line, /help)",
                         **kwargs)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self.text))
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self.replace("\n", start, end, maintain_selection_offset=False)
            return
        await super()._on_key(event)

    def action_end_or_jump(self) -> None:
        row, column = self.cursor_location
        if column >= len(self.document.get_line(row)):
            self.post_message(self.JumpToNewest())
        else:
            self.action_cursor_line_end()
