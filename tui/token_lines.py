"""Tokens laid out in terminal lines, one token after another, append-only.

The token pane and the chat's confidence colours show thousands of styled tokens that grow by a
few at a time while a reply streams. Handing all of them to Rich as one ``Text`` re-wraps the
whole text on every frame (the cost grows with the conversation, and Rich's word wrapping of a
long unbroken line is far worse than linear). Here each token is placed once: appending tokens
touches only the last line, and a change in the middle re-lays the lines from the start of the
changed token's line on. A token goes on the next line when it does not fit the rest of this
one (a token wider than a whole line is folded), and a newline in a token's text ends the line.

Each laid-out piece keeps its style, the style it takes under the cursor, and the index of its
token, so a widget can draw the cursor without laying anything out again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len, get_character_cell_size
from rich.style import Style

# control characters would move the terminal's cursor: each is drawn as one visible cell
_CONTROLS = {c: chr(0x2400 + c) for c in range(32) if c not in (9, 10)} | {9: "    ", 127: "␡"}


def printable(text: str) -> str:
    """``text`` safe to draw: tabs as spaces, other control characters as their symbols."""
    return text.translate(_CONTROLS) if not text.isprintable() else text


@dataclass
class Piece:
    text: str
    style: Style
    cursor_style: Style
    token: int


@dataclass
class TokenLines:
    width: int
    lines: list[list[Piece]] = field(default_factory=lambda: [[]])
    starts: list[tuple[int, int]] = field(default_factory=list)  # per token: (line, column) where it starts
    ends: list[int] = field(default_factory=list)  # per token: the line it ends on
    col: int = 0

    def __post_init__(self) -> None:
        self.width = max(1, self.width)

    @property
    def tokens(self) -> int:
        return len(self.starts)

    @property
    def height(self) -> int:
        return len(self.lines)

    def append(self, pieces: list[tuple[str, Style, Style]]) -> None:
        """Lay out the next token: ``(text, style, cursor style)`` pieces."""
        token = len(self.starts)
        texts = [(printable(text), style, cursor) for text, style, cursor in pieces]
        head = cell_len("".join(t for t, _, _ in texts).split("\n", 1)[0])  # its width up to a newline
        if self.col and self.col + head > self.width and head <= self.width:
            self._new_line()
        self.starts.append((len(self.lines) - 1, self.col))
        for text, style, cursor in texts:
            for k, part in enumerate(text.split("\n")):
                if k:
                    self._new_line()
                self._place(part, style, cursor, token)
        self.ends.append(len(self.lines) - 1)

    def _new_line(self) -> None:
        self.lines.append([])
        self.col = 0

    def _place(self, text: str, style: Style, cursor: Style, token: int) -> None:
        while text:
            room = self.width - self.col
            if room <= 0:
                self._new_line()
                room = self.width
            if text.isascii():
                cut = min(room, len(text))
                part, text = text[:cut], text[cut:]
                used = cut
            else:
                used, cut = 0, 0
                for ch in text:
                    size = get_character_cell_size(ch)
                    if used + size > room:
                        break
                    used += size
                    cut += 1
                if cut == 0:  # a wide character at the edge: it starts the next line
                    if self.col == 0:  # wider than the whole line: drawn anyway
                        cut, used = 1, get_character_cell_size(text[0])
                    else:
                        self._new_line()
                        continue
                part, text = text[:cut], text[cut:]
            self.lines[-1].append(Piece(part, style, cursor, token))
            self.col += used

    def truncate(self, token: int) -> int:
        """Forget tokens from ``token`` on, and those before it back to the last one that starts
        a line (everything before that one keeps its place); the first token to lay out again."""
        if token >= len(self.starts):
            return len(self.starts)
        restart = max(token, 0)
        while restart > 0 and self.starts[restart][1] != 0:
            restart -= 1
        if restart == 0:
            self.lines, self.starts, self.ends, self.col = [[]], [], [], 0
            return 0
        del self.lines[self.starts[restart][0]:]
        del self.starts[restart:]
        del self.ends[restart:]
        self.lines.append([])  # the token at ``restart`` began this line
        self.col = 0
        return restart

    def token_lines(self, token: int) -> range:
        """The lines token ``token`` is drawn on."""
        if not 0 <= token < len(self.starts):
            return range(0)
        return range(self.starts[token][0], self.ends[token] + 1)
