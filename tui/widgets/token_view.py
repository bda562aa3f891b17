"""A run of tokens drawn one after the other: special tokens as badges, role regions tinted,
trained-on (mask 1) tokens underlined, neighbouring tokens in alternating shades, partial
UTF-8 bytes as byte badges. A cursor (arrow keys, or the mouse) picks a token to inspect."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip

from tokenizer.display import visible_whitespace
from tui import confidence as confidence_colours
from tui.actions import pane_bindings
from tui.attention import attention_style
from tui.surprise import surprise_style
from tui.token_cells import GENERATED, TokenCell
from tui.widgets.token_lines import TokenLinesWidget

# Backgrounds per region, two shades alternating token by token.
REGION_SHADES = {
    "none": ("#303030", "#3c3c3c"),
    "user": ("#1b2e52", "#243d69"),
    "assistant": ("#1d4029", "#285536"),
    "python": ("#4d3f0f", "#635214"),
    "output": ("#432050", "#572a68"),
}
SPECIAL_STYLE = Style(color="#ffffff", bgcolor="#a3316f", bold=True)
BYTE_STYLE = Style(color="#ffd75f", italic=True)
CURSOR_STYLE = Style(color="#000000", bgcolor="#ffd700", bold=True)
ID_STYLE = Style(color="#8a8a8a", dim=True)


def cell_pieces(cell: TokenCell, position: int, *, whitespace: bool = False, ids: bool = False,
                dim: bool = False, shading: bool = True, bits: float | None = None, surprise: bool = False,
                confidence: bool = False, attention: bool = False, weight: float | None = None,
                peak: float = 0.0) -> list[tuple[str, Style, Style]]:
    """How one token is drawn: ``(text, style, style under the cursor)`` pieces. Its background is its
    region's shade (alternating), the attention heat strip (``attention``: the ``weight`` the
    selected token gave it, relative to the heaviest, ``peak``), its surprisal (``surprise``,
    ``bits``) or, for a generated token with ``confidence``, the probability it was sampled
    with; without ``shading`` only special tokens and byte badges stand out."""
    event = cell.event if cell.origin == GENERATED else None
    special = SPECIAL_STYLE
    if attention:
        base = attention_style(weight, peak) + Style(underline=bool(cell.mask))
    elif surprise:
        base = surprise_style(bits) + Style(underline=bool(cell.mask))
    elif confidence and event is not None:
        base = confidence_colours.token_style(event.prob, event.forced)
        special = Style(bold=True)  # a generated special token keeps its probability's colour
    elif shading:
        shade = REGION_SHADES.get(cell.region, REGION_SHADES["none"])[position % 2]
        base = Style(bgcolor=shade, underline=bool(cell.mask))
    else:
        base = Style()
    if dim:
        base += Style(dim=True)
    cursor = base + CURSOR_STYLE
    pieces = []
    for segment, is_byte in cell.segments:
        if cell.special:
            style = base + special
        elif is_byte:
            style = base + BYTE_STYLE
        else:
            style = base
        pieces.append((visible_whitespace(segment) if whitespace and not cell.special else segment, style, cursor))
    if ids:
        pieces.append((str(cell.id), base + ID_STYLE, cursor + ID_STYLE))
    return pieces


def render_cells(cells: list[TokenCell], *, cursor: int = -1, whitespace: bool = False, ids: bool = False,
                 dim_messages_before: int = -1, shading: bool = True, confidence: bool = False,
                 attention: list[float | None] | None = None) -> Text:
    """The tokens as one Rich ``Text`` (the raw view), drawn as ``cell_pieces`` says."""
    text = Text(no_wrap=False, overflow="fold")
    peak = max((w for w in attention or () if w is not None), default=0.0)
    for position, cell in enumerate(cells):
        weight = attention[position] if attention is not None and position < len(attention) else None
        pieces = cell_pieces(cell, position, whitespace=whitespace, ids=ids, shading=shading, confidence=confidence,
                             dim=0 <= cell.message < dim_messages_before, attention=attention is not None,
                             weight=weight, peak=peak)
        for segment, style, cursor_style in pieces:
            text.append(segment, cursor_style if position == cursor else style)
    return text


class TokenView(TokenLinesWidget, can_focus=True):
    """Shows ``cells``; posts ``Highlighted`` when the cursor moves to a token."""

    BINDINGS = [
        Binding("left", "move(-1)", "Previous token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "move_to(0)", "First token", show=False),
        Binding("end", "move_to(-1)", "Last token", show=False),
        Binding("w", "toggle_whitespace", "Whitespace", tooltip="show spaces, tabs and newlines"),
        Binding("i", "toggle_ids", "Ids", tooltip="show each token's id"),
        Binding("l", "next_low", "Next unsure",
                tooltip=f"jump to the next generated token sampled with p < {confidence_colours.LOW_P:g}"),
        *pane_bindings(),
    ]

    cursor: reactive[int] = reactive(-1)
    show_whitespace: reactive[bool] = reactive(False)
    show_ids: reactive[bool] = reactive(False)

    class Highlighted(Message):
        def __init__(self, view: TokenView, cell: TokenCell | None) -> None:
            super().__init__()
            self.view = view
            self.cell = cell

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cells: list[TokenCell] = []
        self.dim_messages_before = -1
        self.surprise: list[float | None] | None = None  # bits per cell while the surprise view is on
        self.confidence = False  # generated tokens coloured by their probability
        self.attention: list[float | None] | None = None  # the heat strip while the attention view is on
        self._peak = 0.0  # the heaviest weight of the strip

    def token_count(self) -> int:
        return len(self.cells)

    def token_pieces(self, index: int) -> list[tuple[str, Style, Style]]:
        cell, surprise, attention = self.cells[index], self.surprise, self.attention
        return cell_pieces(cell, index, whitespace=self.show_whitespace, ids=self.show_ids,
                           dim=0 <= cell.message < self.dim_messages_before, surprise=surprise is not None,
                           bits=surprise[index] if surprise is not None and index < len(surprise) else None,
                           confidence=self.confidence, attention=attention is not None,
                           weight=attention[index] if attention is not None and index < len(attention) else None,
                           peak=self._peak)

    def set_cells(self, cells: list[TokenCell], dim_messages_before: int = -1) -> None:
        """Show ``cells``; only the tokens from the first changed one on are laid out again (a
        streaming reply adds a few at the end)."""
        old = self.cells
        self.cells = cells
        if dim_messages_before != self.dim_messages_before:
            first = 0
        else:
            first = next((k for k, (a, b) in enumerate(zip(old, cells)) if a is not b and a != b),
                         min(len(old), len(cells)))
        self.dim_messages_before = dim_messages_before
        if self.cursor >= len(cells):
            self.cursor = len(cells) - 1
        if first < len(old) or first < len(cells) or not cells:
            self.relayout(first)

    def set_surprise(self, surprise: list[float | None] | None) -> None:
        """Colour the tokens by these bits (one per cell), or by region again with None."""
        n = len(self.cells)
        unchanged = (surprise is None) == (self.surprise is None) and (
            surprise is None or list(surprise[:n]) == list(self.surprise[:n]))
        self.surprise = surprise
        if not unchanged:
            self.relayout(0)

    def set_attention(self, weights: list[float | None] | None) -> None:
        """Draw the heat strip (one weight per cell, None for none), or no strip with None."""
        if weights is None and self.attention is None:
            return
        self.attention = weights
        self._peak = max((w for w in weights or () if w is not None), default=0.0)
        self.relayout(0)

    def set_confidence(self, on: bool) -> None:
        if on != self.confidence:
            self.confidence = on
            self.relayout(0)

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, super().get_content_height(container, viewport, width))

    def render_line(self, y: int) -> Strip:
        if not self.cells:
            base = self.rich_style
            if y == 0:
                return Strip([Segment("(no tokens)", base + Style(dim=True))]).adjust_cell_length(self.size.width, base)
            return Strip.blank(self.size.width, base)
        return super().render_line(y)

    def watch_cursor(self, cursor: int) -> None:
        self.set_cursor_token(cursor)
        self.post_message(self.Highlighted(self, self.cells[cursor] if 0 <= cursor < len(self.cells) else None))
        self._scroll_cursor_into_view()

    def watch_show_whitespace(self) -> None:
        self.relayout(0)

    def watch_show_ids(self) -> None:
        self.relayout(0)

    def action_move(self, step: int) -> None:
        if self.cells:
            self.cursor = min(max(self.cursor + step, 0), len(self.cells) - 1)

    def action_move_to(self, position: int) -> None:
        if self.cells:
            self.cursor = position % len(self.cells)

    def action_toggle_whitespace(self) -> None:
        self.show_whitespace = not self.show_whitespace

    def action_toggle_ids(self) -> None:
        self.show_ids = not self.show_ids

    def action_next_low(self) -> None:
        """Move to the next generated token sampled with p < LOW_P (round to the first)."""
        position = confidence_colours.next_low(self.cells, self.cursor)
        if position is None:
            self.notify(f"No generated token here was sampled with p < {confidence_colours.LOW_P:g}.")
        else:
            self.cursor = position

    def on_mouse_move(self, event) -> None:
        position = self.event_token(event)
        if position is not None:
            self.cursor = position

    def on_click(self, event) -> None:
        self.focus()

    def _scroll_cursor_into_view(self) -> None:
        """Scroll the enclosing container so the cursor's line is visible."""
        lines = self.laid.token_lines(self.cursor)
        if not lines or self.size.width <= 0 or self.parent is None:
            return
        region = self.virtual_region
        self.parent.scroll_to_region(Region(region.x, region.y + lines.start, 1, 1), animate=False, immediate=True)
