"""Terminal input that keeps what the user typed and pasted, in order.

Textual's xterm parser reads an ESC and keeps reading, hoping for an escape sequence. Two
ordinary things then go wrong:

- Keys pressed in a burst (Esc, then Ctrl+R at once) reach it as ``ESC ^R ...``: no known
  sequence, so it re-issues the characters as keys and shows the ESC as a printable ``^``,
  which lands in the draft.
- Inside a bracketed paste it does the same with any ESC in the pasted text: those characters
  come out as key presses *before* the paste, so the text is reordered and keys fire.

``InputParser`` splits its input before Textual's parser sees it: an ESC followed at once by a
control character (which no escape sequence starts with) is the Escape key; a bracketed paste
is collected here, escape sequences dropped from it, and delivered as one ``Paste`` in its place.
Everything else goes to Textual's parser unchanged. ``install()`` makes the Linux driver use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from textual import events
from textual._xterm_parser import XTermParser
from textual.message import Message

ESC = "\x1b"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
# CSI (ESC [ params final), SS3 (ESC O x), OSC (ESC ] ... BEL/ST), or ESC and one character
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)?", re.DOTALL)
_STRAY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # keep tab and newlines


class InputParser(XTermParser):
    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._paste: list[str] | None = None  # text of a bracketed paste still arriving
        self._held = ""  # the start of a paste marker cut off at the end of the last read

    def feed(self, data: str) -> Iterable[Message]:
        return list(self._feed(data))

    def _feed(self, data: str) -> Iterator[Message]:
        if not data:  # end of input
            yield from super().feed(data)
            return
        data, self._held = self._held + data, ""
        while data:
            if self._paste is not None:
                end = data.find(PASTE_END)
                if end < 0:
                    keep = _partial_marker(data, PASTE_END)
                    self._paste.append(data[: len(data) - keep])
                    self._held = data[len(data) - keep:]
                    return
                self._paste.append(data[:end])
                yield events.Paste(clean_paste("".join(self._paste)))
                self._paste, data = None, data[end + len(PASTE_END):]
                continue
            start = data.find(PASTE_START)
            if start >= 0:
                yield from self._keys(data[:start])
                self._paste, data = [], data[start + len(PASTE_START):]
                continue
            keep = _partial_marker(data, PASTE_START)
            keep = keep if keep >= 2 else 0  # a lone ESC is the Escape key: Textual's parser times it out
            yield from self._keys(data[: len(data) - keep])
            self._held = data[len(data) - keep:]
            return

    def _keys(self, text: str) -> Iterator[Message]:
        """Keys typed outside a paste: an ESC directly followed by a control character is the
        Escape key on its own; the rest is Textual's to parse."""
        begin = 0
        for match in re.finditer(r"\x1b(?=[\x00-\x1a\x1c-\x1f\x7f])", text):
            if match.start() > begin:
                yield from super().feed(text[begin:match.start()])
            yield events.Key("escape", ESC)
            begin = match.end()
        if begin < len(text):
            yield from super().feed(text[begin:])


def clean_paste(text: str) -> str:
    """Pasted text without escape sequences or stray control characters; line ends as ``\\n``."""
    text = _ESCAPE_SEQUENCE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _STRAY_CONTROLS.sub("", text)


def _partial_marker(data: str, marker: str) -> int:
    """How many characters at the end of ``data`` could be the start of ``marker``."""
    for size in range(min(len(marker) - 1, len(data)), 0, -1):
        if marker.startswith(data[-size:]):
            return size
    return 0


def install() -> None:
    """Have Textual's Linux driver read the terminal through ``InputParser``."""
    from textual.drivers import linux_driver

    if getattr(linux_driver, "XTermParser", None) is XTermParser:
        linux_driver.XTermParser = InputParser
