"""A widget that draws tokens laid out by ``tui.token_lines``: the token pane's views and the
chat's confidence colours. It lays each token out once and repaints only the lines that change
(new tokens at the end, the cursor's old and new lines), so a reply streaming into a long
conversation costs the new tokens, not the conversation.

The mouse finds a token through the layout (``token_at``), not through metadata in each token's
style: styles without a token number are equal wherever the colours are, so neighbouring tokens
of one colour are drawn as one segment, one escape sequence for the terminal instead of one per
token (a confident stretch of a reply is one colour)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tui.token_lines import TokenLines


class TokenLinesWidget(Widget):
    """Subclasses say how many tokens there are (``token_count``) and what each looks like
    (``token_pieces``), and call ``relayout(first changed token)`` when tokens change."""

    DEFAULT_CSS = "TokenLinesWidget { height: auto; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.laid = TokenLines(80)
        self.cursor_token = -1  # drawn in its pieces' cursor style
        self._strips: dict[int, tuple[int, Style, Strip]] = {}  # line -> (width, base style, strip)

    def token_count(self) -> int:
        raise NotImplementedError

    def token_pieces(self, index: int) -> list[tuple[str, Style, Style]]:
        raise NotImplementedError

    def relayout(self, first: int = 0) -> None:
        """Lay out again every token from ``first`` on (``first`` = the old count: append)."""
        height = self.laid.height
        restart = self.laid.truncate(first)
        dirty = self.laid.height - 1 if restart else 0
        for index in range(restart, self.token_count()):
            self.laid.append(self.token_pieces(index))
        self._forget_strips(dirty)
        if self.laid.height != height or not self.size.width:
            self.refresh(layout=True)
        else:
            self.refresh(Region(0, dirty, self.size.width, self.laid.height - dirty))

    def _forget_strips(self, first_line: int) -> None:
        for line in [y for y in self._strips if y >= first_line]:
            del self._strips[line]

    def set_cursor_token(self, token: int) -> None:
        """Draw ``token`` as the cursor (-1: none), repainting just the lines involved."""
        old, self.cursor_token = self.cursor_token, token
        lines = {*self.laid.token_lines(old), *self.laid.token_lines(token)}
        for y in lines:
            self._strips.pop(y, None)
        if lines and self.size.width:
            top, bottom = min(lines), max(lines)
            self.refresh(Region(0, top, self.size.width, bottom - top + 1))

    def get_content_height(self, container, viewport, width: int) -> int:
        if max(1, width) != self.laid.width:
            self.laid = TokenLines(width)
            self._strips.clear()
            for index in range(self.token_count()):
                self.laid.append(self.token_pieces(index))
        return self.laid.height

    def token_at(self, x: int, y: int) -> int | None:
        """The token drawn at column ``x`` of content line ``y``, if any."""
        if not 0 <= y < self.laid.height or x < 0:
            return None
        col = 0
        for piece in self.laid.lines[y]:
            col += cell_len(piece.text)
            if x < col:
                return piece.token
        return None

    def event_token(self, event) -> int | None:
        """The token under a mouse event, if any."""
        offset = event.get_content_offset(self)
        return None if offset is None else self.token_at(offset.x, offset.y)

    def token_style(self, token: int) -> Style | None:
        """The style the first piece of ``token`` is drawn in (None: not drawn)."""
        for y in self.laid.token_lines(token):
            for piece in self.laid.lines[y]:
                if piece.token == token:
                    return piece.cursor_style if token == self.cursor_token else piece.style
        return None

    def render_lines(self, crop):
        # the widget's own style is the same for every line of one paint, and costly to look
        # up (it walks the ancestors' backgrounds): once per paint, not once per line
        self._base_style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, base = self.size.width, getattr(self, "_base_style", None) or self.rich_style
        cached = self._strips.get(y)
        if cached is not None and cached[0] == width and cached[1] == base:
            return cached[2]
        if y >= self.laid.height:
            return Strip.blank(width, base)
        cursor = self.cursor_token
        segments = Segment.simplify(Segment(p.text, base + (p.cursor_style if p.token == cursor else p.style))
                                    for p in self.laid.lines[y])  # one segment per run of one style
        strip = Strip(segments).adjust_cell_length(width, base)
        self._strips[y] = (width, base, strip)
        return strip

    def as_text(self) -> Text:
        """Everything drawn, as one Rich ``Text`` with the drawn styles (for tests and copying)."""
        text = Text()
        for y, line in enumerate(self.laid.lines):
            if y:
                text.append("\n")
            for p in line:
                text.append(p.text, p.cursor_style if p.token == self.cursor_token else p.style)
        return text
