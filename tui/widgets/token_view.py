"""A run of tokens drawn one after the other: special tokens as badges, role regions tinted,
trained-on (mask 1) tokens underlined, neighbouring tokens in alternating shades, partial
UTF-8 bytes as byte badges. A cursor (arrow keys, or the mouse) picks a token to inspect."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from tokenizer.display import visible_whitespace
from tui.actions import pane_bindings
from tui.attention import attention_style
from tui.surprise import surprise_style
from tui.token_cells import TokenCell

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




def render_cells(cells: list[TokenCell], *, cursor: int = -1, whitespace: bool = False,
                 ids: bool = False, dim_messages_before: int = -1, shading: bool = True,
                 surprise: list[float | None] | None = None, attention: list[float | None] | None = None) -> Text:
    """The tokens as one Rich ``Text``; each token's span carries ``{"token": index}`` metadata
    so the mouse can find it. Without ``shading`` only special tokens and byte badges stand out.
    With ``surprise`` (bits per cell, None for none) each token's background is its surprisal
    instead of its region's shade; with ``attention`` (weight per cell) it is the heat strip:
    the weight the selected token gave it, relative to the heaviest."""
    text = Text(no_wrap=False, overflow="fold")
    peak = max((w for w in attention or () if w is not None), default=0.0)
    for position, cell in enumerate(cells):
        meta = {"token": position}
        if attention is not None:
            weight = attention[position] if position < len(attention) else None
            base = attention_style(weight, peak) + Style(underline=bool(cell.mask), meta=meta)
        elif surprise is not None:
            bits = surprise[position] if position < len(surprise) else None
            base = surprise_style(bits) + Style(underline=bool(cell.mask), meta=meta)
        elif shading:
            shade = REGION_SHADES.get(cell.region, REGION_SHADES["none"])[position % 2]
            base = Style(bgcolor=shade, underline=bool(cell.mask), meta=meta)
        else:
            base = Style(meta=meta)
        if 0 <= cell.message < dim_messages_before:
            base += Style(dim=True)
        if position == cursor:
            base += CURSOR_STYLE
        for segment, is_byte in cell.segments:
            if cell.special:
                style = base + SPECIAL_STYLE if position != cursor else base
            elif is_byte:
                style = base + BYTE_STYLE if position != cursor else base
            else:
                style = base
            text.append(visible_whitespace(segment) if whitespace and not cell.special else segment, style)
        if ids:
            text.append(str(cell.id), base + ID_STYLE)
    return text


class TokenView(Widget, can_focus=True):
    """Shows ``cells``; posts ``Highlighted`` when the cursor moves to a token."""

    BINDINGS = [
        Binding("left", "move(-1)", "Previous token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "move_to(0)", "First token", show=False),
        Binding("end", "move_to(-1)", "Last token", show=False),
        Binding("w", "toggle_whitespace", "Whitespace", tooltip="show spaces, tabs and newlines"),
        Binding("i", "toggle_ids", "Ids", tooltip="show each token's id"),
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
        self.attention: list[float | None] | None = None  # the heat strip while the attention view is on
        self._rendered: tuple[tuple, Text] | None = None  # layout, paint and scrolling share one render

    def set_cells(self, cells: list[TokenCell], dim_messages_before: int = -1) -> None:
        self.cells = cells
        self.dim_messages_before = dim_messages_before
        self._rendered = None
        if self.cursor >= len(cells):
            self.cursor = len(cells) - 1
        self.refresh(layout=True)

    def set_surprise(self, surprise: list[float | None] | None) -> None:
        """Colour the tokens by these bits (one per cell), or by region again with None."""
        self.surprise = surprise
        self._rendered = None
        self.refresh(layout=True)

    def set_attention(self, weights: list[float | None] | None) -> None:
        """Draw the heat strip (one weight per cell, None for none), or no strip with None."""
        self.attention = weights
        self._rendered = None
        self.refresh(layout=True)

    def render(self) -> Text:
        if not self.cells:
            return Text("(no tokens)", style="dim")
        key = (self.cursor, self.show_whitespace, self.show_ids, self.dim_messages_before)
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = key, render_cells(self.cells, cursor=self.cursor, whitespace=self.show_whitespace,
                                               ids=self.show_ids, dim_messages_before=self.dim_messages_before,
                                               surprise=self.surprise, attention=self.attention)
        return self._rendered[1]

    def get_content_height(self, container, viewport, width: int) -> int:
        rendered = self.render()
        return max(1, len(rendered.wrap(self.app.console, max(1, width))))

    def watch_cursor(self, cursor: int) -> None:
        self.refresh(layout=True)
        self.post_message(self.Highlighted(self, self.cells[cursor] if 0 <= cursor < len(self.cells) else None))
        self._scroll_cursor_into_view()

    def watch_show_whitespace(self) -> None:
        self.refresh(layout=True)

    def watch_show_ids(self) -> None:
        self.refresh(layout=True)

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

    def on_mouse_move(self, event) -> None:
        position = event.style.meta.get("token")
        if position is not None:
            self.cursor = position

    def on_click(self, event) -> None:
        self.focus()

    def _scroll_cursor_into_view(self) -> None:
        """Scroll the enclosing container so the cursor's line is visible."""
        if not (0 <= self.cursor < len(self.cells)) or self.size.width <= 0 or self.parent is None:
            return
        rendered = self.render()
        start = next((span.start for span in rendered.spans
                      if isinstance(span.style, Style) and span.style.meta.get("token") == self.cursor), 0)
        row = max(0, len(rendered[:start + 1].wrap(self.app.console, self.size.width)) - 1)
        region = self.virtual_region
        self.parent.scroll_to_region(Region(region.x, region.y + row, 1, 1), animate=False, immediate=True)
