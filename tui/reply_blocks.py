"""Follow a reply as it streams: which block (text, python call, tool output) each token's text
goes to.

The engine marks a tool call with ``<|python_start|>``/``<|python_end|>`` and forces its result
between ``<|output_start|>``/``<|output_end|>``; the chat shows each as its own block. Feeding
events returns ``(block index, kind, text)`` pieces that the chat applies to its widgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.events import TokenEvent

TEXT, PYTHON, OUTPUT = "text", "python", "python_output"

_OPENERS = {"<|python_start|>": PYTHON, "<|output_start|>": OUTPUT}
_CLOSERS = {"<|python_end|>", "<|output_end|>"}


@dataclass
class Piece:
    block: int
    kind: str
    text: str


class ReplyBlocks:
    """Assigns each token's text to a block of the reply."""

    def __init__(self, special_name) -> None:
        self._special_name = special_name  # id -> name or None (Tokenizer.special_name)
        self.blocks: list[tuple[str, str]] = []  # (kind, text so far)
        self._kind = TEXT

    def feed(self, event: TokenEvent) -> Piece | None:
        """The text this token adds and where; None when it adds nothing visible."""
        name = self._special_name(event.id)
        if name in _OPENERS:
            self._kind = _OPENERS[name]
            self.blocks.append((self._kind, ""))
            return Piece(len(self.blocks) - 1, self._kind, "")
        if name in _CLOSERS:
            self._kind = TEXT
            return None
        if not event.text:
            return None
        if not self.blocks or self.blocks[-1][0] != self._kind:
            self.blocks.append((self._kind, ""))
        kind, text = self.blocks[-1]
        self.blocks[-1] = (kind, text + event.text)
        return Piece(len(self.blocks) - 1, kind, event.text)


def merge_pieces(pieces: list[Piece]) -> list[Piece]:
    """Join consecutive pieces of the same block, so a batch becomes one write per block."""
    merged: list[Piece] = []
    for piece in pieces:
        if merged and merged[-1].block == piece.block:
            merged[-1] = Piece(piece.block, piece.kind, merged[-1].text + piece.text)
        else:
            merged.append(piece)
    return merged
