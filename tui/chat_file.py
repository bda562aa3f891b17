"""Chat records on disk: one conversation per JSONL line, for replay scripts, transcripts and
saved chats alike.

A line is ``{"messages": [...]}`` — the format nanochat and most chat datasets use — plus
optional keys that readers of plain conversations ignore: ``turns`` (what was generated for
each assistant message: ids, probabilities, stop reason, timings) and ``meta`` (title, model,
times). A file may also be one JSON list of such objects. Validating the messages themselves is
the tokenizer's job (``render_conversation`` raises ``ConversationError``); this module only
reads and writes lines, and renders a conversation as Markdown.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError
from glasschat.loading import read_json_lines
from model.events import TokenEvent


class RecordFileError(UserError):
    """A chat file whose content is not what a chat file holds."""


@dataclass
class TurnRecord:
    """What the engine produced for one assistant message.

    ``ids`` are the generated ids as they came out, sampled and forced, including the stop
    token the model sampled (a stopped or cut reply has none: rendering closes the turn with
    ``<|assistant_end|>``). ``forced``, ``probs`` and ``top`` run parallel to ``ids``; ``probs``
    is None for forced tokens.
    """

    message: int
    ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    probs: list[float | None] = field(default_factory=list)
    top: list[list[list[float]]] = field(default_factory=list)
    stop_reason: str = ""
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    seed: int | None = None

    def add(self, event: TokenEvent) -> None:
        self.ids.append(event.id)
        self.forced.append(event.forced)
        self.probs.append(None if event.prob is None else round(event.prob, 6))
        self.top.append([[token, round(prob, 6)] for token, prob in event.top])

    def event(self, index: int) -> TokenEvent:
        """The generation details of token ``index`` as a ``TokenEvent`` (text left empty)."""
        top = self.top[index] if index < len(self.top) else []
        return TokenEvent(
            id=self.ids[index],
            text="",
            forced=self.forced[index] if index < len(self.forced) else False,
            prob=self.probs[index] if index < len(self.probs) else None,
            top=tuple((int(token), float(prob)) for token, prob in top),
        )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TurnRecord | None:
        """Read a turn written by ``to_json``; None when it is not one (the turn is then dropped)."""
        if not isinstance(data, dict) or not isinstance(data.get("message"), int):
            return None
        ids = data.get("ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            return None
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        try:
            return cls(**known)
        except TypeError:
            return None


@dataclass
class Entry:
    """One message of a conversation in memory, with what the engine produced for it when it is
    a generated reply: the two travel together, so no index keeps them in step."""

    message: dict
    turn: TurnRecord | None = None

    @property
    def role(self) -> str:
        return self.message["role"]


@dataclass
class ChatRecord:
    """One conversation with what glasschat knows about how it was produced: on disk the turns
    name their assistant message by index, as readers of plain conversations expect."""

    messages: list[dict]
    turns: list[TurnRecord] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: list[Entry], meta: dict | None = None) -> ChatRecord:
        turns = []
        for index, entry in enumerate(entries):
            if entry.turn is not None:
                entry.turn.message = index
                turns.append(entry.turn)
        return cls([entry.message for entry in entries], turns, dict(meta or {}))

    def entries(self) -> list[Entry]:
        """The messages with their turns (a turn naming no assistant message is dropped)."""
        entries = [Entry(message) for message in self.messages]
        for turn in self.turns:
            if 0 <= turn.message < len(entries) and entries[turn.message].role == "assistant":
                entries[turn.message].turn = turn
        return entries

    @property
    def conversation(self) -> dict:
        return {"messages": self.messages}

    def turn_for(self, message_index: int) -> TurnRecord | None:
        for turn in self.turns:
            if turn.message == message_index:
                return turn
        return None

    def to_json(self) -> dict:
        data: dict = {"messages": self.messages}
        if self.turns:
            data["turns"] = [turn.to_json() for turn in self.turns]
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_json(cls, data: dict) -> ChatRecord:
        turns = [t for t in map(TurnRecord.from_json, data.get("turns") or []) if t is not None]
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        if not isinstance(meta.get("title", ""), str):
            meta = {key: value for key, value in meta.items() if key != "title"}  # shown as text: it must be one
        return cls(messages=data["messages"], turns=turns, meta=meta)


@dataclass
class Line:
    """One entry of a chat file: its 1-based line number (or list position) and its object."""

    number: int
    data: Any


def read_lines(path: str | Path) -> list[Line]:
    """Read a JSONL file (or a file holding one JSON list) into entries.

    Blank lines are skipped. A file that cannot be read or a line that is not JSON is an error
    naming the file and line (``glasschat.loading`` bounds size and depth); what each entry
    holds is checked by its user (``render_conversation`` for messages).
    """
    return [Line(number, data) for number, data in read_json_lines(path)]


def entry_error(entry: Line) -> str | None:
    """Why an entry cannot be a chat record at all (None when it has a ``messages`` list)."""
    if not isinstance(entry.data, dict):
        return "expected an object with a \"messages\" list"
    if not isinstance(entry.data.get("messages"), list):
        return "missing a \"messages\" list"
    return None


def dumps_line(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_records(path: str | Path, records: list[dict]) -> None:
    """Write records as JSONL, atomically."""
    atomic_write_text(path, "".join(dumps_line(record) for record in records))


def to_markdown(messages: list[dict], title: str | None = None) -> str:
    """A readable Markdown rendering: a heading per message, tool calls as code blocks."""
    out = [f"# {title}\n"] if title else []
    for message in messages:
        out.append(f"## {message['role'].capitalize()}\n")
        content = message["content"]
        if isinstance(content, str):
            out.append(content.rstrip() + "\n")
            continue
        for part in content:
            if part["type"] == "text":
                out.append(part["text"].rstrip() + "\n")
            elif part["type"] == "python":
                out.append(f"```python\n{part['text']}\n```\n")
            else:
                out.append(f"```text\n{part['text']}\n```\n")
    return "\n".join(out)
