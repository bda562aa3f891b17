"""The rendered conversation as a list of displayable tokens, for the debug pane and raw view.

Each token knows its label (text, or byte badges for bytes that are only part of a UTF-8
character), whether it is special, its region (user / assistant / python call / tool output),
its mask bit, which message it belongs to, and — for tokens the model generated — how it was
generated (sampled or forced, probability, top alternatives).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.events import TokenEvent
from tokenizer.display import byte_segments
from tui.chat_file import Entry

# How a token of an assistant turn relates to what the engine produced.
GENERATED = "generated"  # exactly the token the engine produced (see ``event``)
CLOSED = "closed"  # <|assistant_end|> added when a reply was stopped or cut short
REENCODED = "reencoded"  # the reply's text re-encoded differently from the generated tokens
WRITTEN = "written"  # not generated here (typed, loaded from a script, or rendering)


@dataclass(frozen=True)
class TokenCell:
    index: int
    id: int
    special: str | None  # the special token's name
    segments: tuple[tuple[str, bool], ...]  # (text, is a byte badge)
    region: str  # none | user | assistant | python | output
    mask: int
    message: int  # index into the conversation's messages; -1 for <|bos|>
    origin: str = WRITTEN
    event: TokenEvent | None = None

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)


def message_indices(tokenizer, ids: list[int], messages: list[dict]) -> list[int]:
    """For each token, the index of the message it renders; -1 for ``<|bos|>``. A system
    message is rendered inside the first user message, which is reported as the user message."""
    offset = 1 if messages and messages[0].get("role") == "system" else 0
    openers = {tokenizer.encode_special("<|user_start|>"), tokenizer.encode_special("<|assistant_start|>")}
    turn, result = -1, []
    for token in ids:
        if token in openers:
            turn += 1
        result.append(-1 if turn < 0 else turn + offset)
    return result


def build_cells(tokenizer, ids: list[int], mask: list[int], entries: list[Entry],
                start: int = 0, first_message: int = 0) -> list[TokenCell]:
    """Display cells for ``entries`` rendered as ``ids``/``mask``, a generated reply's tokens
    with what was generated for them. ``start`` numbers the cells (for a preview appended to a
    view); ``first_message`` is the conversation index of ``entries[0]`` (for cells of the last
    messages only, appended to those of the ones before)."""
    regions = tokenizer.regions(ids)
    owners = message_indices(tokenizer, ids, [entry.message for entry in entries])
    turns = {index: entry.turn for index, entry in enumerate(entries) if entry.turn is not None}
    origins = _origins(tokenizer, ids, owners, turns)
    cells = []
    for i, token in enumerate(ids):
        name = tokenizer.special_name(token)
        segments = ((name, False),) if name else byte_segments(tokenizer.decode_single_token_bytes(token))
        origin, event = origins.get(i, (WRITTEN, None))
        owner = owners[i] + first_message if owners[i] >= 0 else -1
        cells.append(TokenCell(start + i, token, name, segments, regions[i], mask[i], owner, origin, event))
    return cells


def _origins(tokenizer, ids, owners, turns) -> dict[int, tuple[str, TokenEvent | None]]:
    """Match each assistant turn's rendered tokens with the tokens generated for it."""
    result: dict[int, tuple[str, TokenEvent | None]] = {}
    start_id = tokenizer.encode_special("<|assistant_start|>")
    end_id = tokenizer.encode_special("<|assistant_end|>")
    for message, turn in turns.items():
        positions = [i for i, owner in enumerate(owners) if owner == message]
        if not positions or ids[positions[0]] != start_id:
            continue
        body = positions[1:]
        generated = list(range(len(turn.ids)))
        for k, position in enumerate(body):
            if k < len(generated) and turn.ids[k] == ids[position]:
                result[position] = (GENERATED, turn.event(k))
            elif ids[position] == end_id and k == len(body) - 1 and k >= len(generated):
                result[position] = (CLOSED, None)
            else:
                for rest in body[k:]:
                    result[rest] = (REENCODED, None)
                break
    return result


@dataclass(frozen=True)
class Counts:
    tokens: int
    special: int
    characters: int
    bytes: int

    @property
    def chars_per_token(self) -> float:
        ordinary = self.tokens - self.special
        return self.characters / ordinary if ordinary else 0.0


def count(cells: list[TokenCell], tokenizer) -> Counts:
    ordinary = [c.id for c in cells if c.special is None]
    return Counts(
        tokens=len(cells),
        special=len(cells) - len(ordinary),
        characters=len(tokenizer.decode(ordinary)),
        bytes=sum(len(tokenizer.decode_single_token_bytes(i)) for i in ordinary),
    )
