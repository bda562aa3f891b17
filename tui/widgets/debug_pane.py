"""The tokenizer debug pane (F2): the rendered conversation as tokens, the tokens the draft in
the message box will add, counts, and the token inspector."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from tokenizer.display import token_label
from tui import token_cells as tk
from tui.token_cells import Counts, TokenCell
from tui.widgets.token_view import TokenView

ORIGIN_LABELS = {
    tk.CLOSED: "added by glasschat to close a reply that was stopped or cut short",
    tk.REENCODED: "the model generated this text as other tokens (the conversation re-encodes it)",
    tk.WRITTEN: "not generated: typed, or from a script or a loaded file",
}
REGION_LABELS = {"none": "outside any message", "user": "user message", "assistant": "assistant reply",
                 "python": "python call", "output": "tool output"}


def describe_counts(counts: Counts, sequence_len: int, dropped: int) -> Text:
    text = Text()
    text.append(f"{counts.tokens} tokens", style="bold")
    text.append(f" ({counts.special} special) · {counts.characters} chars · {counts.bytes} bytes · "
                f"{counts.chars_per_token:.2f} chars/token · context {counts.tokens}/{sequence_len}")
    if dropped:
        text.append(f"\nthe {dropped} oldest messages (dimmed) are no longer sent", style="italic")
    return text


class TokenInspector(Static):
    """Everything known about one token."""

    def __init__(self, tokenizer, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.summary = ""

    def show_cell(self, cell: TokenCell | None, surprise: float | None = None) -> None:
        """Show ``cell`` (with its surprisal in bits, when the surprise view has it);
        ``self.summary`` keeps the same facts as plain text."""
        if cell is None:
            self.summary = "Move over a token (←/→ or the mouse) to inspect it."
            self.update(Text(self.summary, style="dim"))
            return
        rows = self._rows(cell)
        if surprise is not None:
            rows.append(("surprise", f"{surprise:.2f} bits: the model gave it probability {2.0 ** -surprise:.2%} "
                                     "given everything before it (temperature 1, unfiltered)"))
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold")
        table.add_column()
        for label, value in rows:
            table.add_row(label, value)
        self.summary = "\n".join(f"{label}: {Text(value).plain if isinstance(value, str) else value.plain}"
                                 for label, value in rows)
        self.update(table)

    def _rows(self, cell: TokenCell) -> list[tuple[str, str | Text]]:
        raw = cell.special or "".join(segment for segment, _ in cell.segments)
        rows: list[tuple[str, str | Text]] = [
            ("token", Text(f"#{cell.index}  id {cell.id}  {raw!r}")),
            ("bytes", "(special token)" if cell.special else self.tokenizer.decode_single_token_bytes(cell.id).hex(" ")),
            ("where", REGION_LABELS.get(cell.region, cell.region)
             + (f", message {cell.message}" if cell.message >= 0 else "")
             + f", mask {cell.mask}" + (" (trained on)" if cell.mask else "")),
        ]
        event = cell.event
        if cell.origin != tk.GENERATED or event is None:
            return rows + [("how", ORIGIN_LABELS.get(cell.origin, cell.origin))]
        if event.forced:
            rows.append(("how", "forced by the engine (tool output)"))
        else:
            prob = "?" if event.prob is None else f"{event.prob:.2%}"
            rows.append(("how", f"sampled, probability {prob}"))
        if event.top:
            lines = [Text(f"{prob:7.2%}  {self._label(token)!r}  (id {token})", style="bold" if token == cell.id else "")
                     for token, prob in event.top]
            rows.append(("top", Text("\n").join(lines)))
        return rows

    def _label(self, token: int) -> str:
        return token_label(self.tokenizer, token)


class DebugPane(Vertical):
    """The rendered conversation and the draft as tokens, with counts and an inspector."""

    def __init__(self, tokenizer, sequence_len: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.sequence_len = sequence_len
        self.border_title = "tokens (F2)"

    def compose(self) -> ComposeResult:
        yield Static(id="token-counts")
        yield Static(id="surprise-summary")
        with VerticalScroll(id="token-scroll", can_focus=False):
            yield TokenView(id="conversation-tokens")
            yield Static(id="draft-label")
            yield TokenView(id="draft-tokens")
        yield TokenInspector(self.tokenizer, id="token-inspector")
        yield Static(id="attention-panel")

    def on_mount(self) -> None:
        self.query_one(TokenInspector).show_cell(None)
        self.show_draft([])
        self.show_surprise(None)
        self.show_attention(None)

    @property
    def conversation_view(self) -> TokenView:
        return self.query_one("#conversation-tokens", TokenView)

    @property
    def draft_view(self) -> TokenView:
        return self.query_one("#draft-tokens", TokenView)

    def show_conversation(self, cells: list[TokenCell], dropped: int) -> None:
        self.conversation_view.set_cells(cells, dim_messages_before=self._first_sent(cells, dropped))
        counts = tk.count(cells, self.tokenizer)
        self.query_one("#token-counts", Static).update(describe_counts(counts, self.sequence_len, dropped))

    @staticmethod
    def _first_sent(cells: list[TokenCell], dropped: int) -> int:
        """Messages with a lower index than this are no longer sent (-1: all are sent)."""
        if not dropped:
            return -1
        first = min((c.message for c in cells if c.message >= 0), default=0)
        return first + dropped

    def show_draft(self, cells: list[TokenCell], note: str | None = None, total: int | None = None) -> None:
        """The draft's tokens; ``total`` counts them all when ``cells`` holds only the first."""
        label = self.query_one("#draft-label", Static)
        total = len(cells) if total is None else total
        if note is not None:
            label.update(Text(note, style="italic"))
            cells = []
        elif cells and total > len(cells):
            label.update(Text(f"the draft adds {total} tokens (the first {len(cells)} shown):", style="italic"))
        elif cells:
            label.update(Text(f"the draft adds {len(cells)} tokens:", style="italic"))
        else:
            label.update(Text("type a message to see the tokens it adds", style="dim italic"))
        self.draft_view.set_cells(cells)
        self.draft_view.display = bool(cells)

    def show_surprise(self, bits: list[float | None] | None, note: str = "") -> None:
        """The surprise view: colour the conversation's tokens by ``bits`` (one per cell) and show
        ``note`` (the bits per byte, or what is being computed) above them; None turns it off."""
        summary = self.query_one("#surprise-summary", Static)
        summary.display = bits is not None or bool(note)
        summary.update(Text(note, style="italic"))
        self.conversation_view.set_surprise(bits)
        self.border_title = "tokens (F2) · surprise (F7)" if summary.display else "tokens (F2)"
        view = self.conversation_view
        if 0 <= view.cursor < len(view.cells):
            self.query_one(TokenInspector).show_cell(view.cells[view.cursor], self._bits(view, view.cursor))

    def show_attention(self, strip: list[float | None] | None, panel: Text | None = None) -> None:
        """The attention view: the heat strip over the conversation's tokens (one weight per
        cell) and ``panel`` (what the selected token attended to, or a notice); None and None
        turn it off."""
        box = self.query_one("#attention-panel", Static)
        box.border_title = "attention (A) · [ ] layer · , . head"
        box.display = panel is not None
        box.update(panel if panel is not None else "")
        self.conversation_view.set_attention(strip)

    @staticmethod
    def _bits(view: TokenView, position: int) -> float | None:
        surprise = view.surprise
        return surprise[position] if surprise is not None and position < len(surprise) else None

    def on_token_view_highlighted(self, event: TokenView.Highlighted) -> None:
        position = event.view.cursor
        self.query_one(TokenInspector).show_cell(event.cell, self._bits(event.view, position))
