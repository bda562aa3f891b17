"""The attention view's wiring in the app: ask the backend when the selected token changes, in a
thread, one request at a time, and draw the answer in the token pane.

The backend's reference forward (``Backend.attention``) is slow next to a keystroke, so it never
runs on the UI's thread and never while a reply streams; while one request runs, moving the
cursor asks nothing: the token selected when the answer comes is asked about next. The last answer
holds every layer and head, so picking another layer or head redraws without asking again.
"""

from __future__ import annotations

import time

from rich.text import Text

from glasschat.errors import UserError
from tui import attention as at
from tui.token_cells import TokenCell

Key = tuple[tuple[int, ...], int]  # (the conversation's ids, the selected position)


def cell_label(cell: TokenCell) -> str:
    return cell.special or repr(cell.text)


def panel_text(cells: list[TokenCell], position: int, weights: list[list[list[float]]], choice: at.Choice) -> Text:
    """The inspector's attention lines: the choice, the top attended tokens, one line per layer."""
    layers, heads = len(weights), len(weights[0])
    text = Text()
    text.append(f"attention of #{position} {cell_label(cells[position])}", style="bold")
    text.append(f" · {choice.label(layers, heads)}\n", style="italic")
    for key, weight in at.top(at.strip(weights, choice)):
        itself = " (itself)" if key == position else ""
        text.append(f"{weight:7.2%}  #{key} {cell_label(cells[key])}{itself}\n")
    text.append("per layer: ", style="bold")
    text.append(" · ".join(f"L{layer + 1} #{key} {weight:.0%}"
                           for layer, (key, weight) in enumerate(at.per_layer(weights, choice.head))))
    return text


class AttentionView:
    def __init__(self, app) -> None:
        self.app = app
        self.on = False
        self.choice = at.Choice()
        self.answer: tuple[Key, list | str] | None = None  # the last answer: weights, or why there are none
        self.pending: Key | None = None  # asked, not answered yet
        self.drawn: tuple[Key, float] | None = None  # the strip last drawn, and when (for ``bench attention``)

    def toggle(self) -> None:
        self.on = not self.on
        self.refresh()

    def step(self, what: str, by: int) -> None:
        """Another layer or head; the view turns on if it was off."""
        if not self.on:
            self.on = True
        elif self.answer is not None and not isinstance(self.answer[1], str):
            weights = self.answer[1]
            self.choice = self.choice.step(what, by, len(weights), len(weights[0]))
        self.refresh()

    def refresh(self) -> None:
        """Draw the view for the selected token: the answer when it has one, else ask."""
        pane = self.app.debug_pane
        if not self.on:
            pane.show_attention(None)
            return
        view = pane.conversation_view
        cells, position = view.cells, view.cursor
        if not 0 <= position < len(cells):
            if cells and self.answer is None and self.pending is None and self.app.live_reply is None:
                self.ask(((cells[0].id,), 0))  # warm up: the first request loads the weights for the forward
            pane.show_attention(None, Text("attention: select a token (Tab to the token pane, then ←/→ or the "
                                           "mouse) to see what it attended to", style="italic"))
            return
        if self.app.live_reply is not None:
            pane.show_attention(None, Text("attention: computed when the reply ends", style="italic"))
            return
        key: Key = (tuple(cell.id for cell in cells), position)
        if self.answer is not None and self.answer[0] == key:
            found = self.answer[1]
            if isinstance(found, str):
                pane.show_attention(None, Text(found, style="bold yellow"))
                return
            strip = at.strip(found, self.choice)
            pane.show_attention(at.cell_weights(strip, len(cells)), panel_text(cells, position, found, self.choice))
            self.drawn = key, time.perf_counter()
            return
        pane.show_attention(None, Text(f"attention: an exact forward over {len(cells)} tokens…", style="italic"))
        self.ask(key)

    def ask(self, key: Key) -> None:
        """One request at a time: while one runs, the next is whatever is selected when it ends."""
        if self.pending is None:
            self.pending = key
            self.app.run_worker(lambda: self._compute(key), thread=True, group="attention", exit_on_error=False)

    def _compute(self, key: Key) -> None:
        """In a thread: the backend's answer, handed to the UI."""
        ids, position = key
        try:
            found: list | str = self.app.backend.attention(list(ids), position)
        except UserError as notice:
            found = str(notice)
        except Exception as error:  # the engine went away, or a bug: said in the pane
            found = f"attention: could not compute it: {type(error).__name__}: {error}"
        self.app.call_from_thread(self._answered, key, found)

    def _answered(self, key: Key, found: list | str) -> None:
        self.pending = None
        self.answer = key, found
        if not isinstance(found, str):  # another model's shape: keep the choice only where it still exists
            if self.choice.layer >= len(found) or self.choice.head >= len(found[0]):
                self.choice = at.Choice()
        self.refresh()  # draws this answer, or asks about the token selected since
