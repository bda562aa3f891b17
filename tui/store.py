"""Saved conversations: one chat file per conversation under ``$XDG_DATA_HOME/glasschat/``.

Each file is a one-line chat file (``tui.chat_file``) that ``glasschat replay`` can read. The chat
rewrites it atomically after every user message and every reply, so killing the process at any
moment loses at most the reply being generated.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError
from glasschat.loading import read_text
from tokenizer.conversation import normalize
from tui.chat_file import ChatRecord, RecordFileError, entry_error, read_lines, write_records

SUFFIX = ".jsonl"
MAX_DRAFT_BYTES = 64 * 2**20


def data_dir() -> Path:
    """``$XDG_DATA_HOME/glasschat`` (``~/.local/share/glasschat`` when it is unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "glasschat"


def title_of(messages: list[dict], width: int = 60) -> str:
    """The first line of the first user message, shortened."""
    for message in messages:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            line = message["content"].strip().split("\n", 1)[0]
            return line if len(line) <= width else line[: width - 1] + "…"
    return "(empty conversation)"


@dataclass(frozen=True)
class SavedConversation:
    id: str
    title: str
    updated: float  # seconds since the epoch
    messages: int


class ConversationStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "conversations"

    @staticmethod
    def new_id() -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)

    def path(self, conversation_id: str) -> Path:
        return self.root / f"{conversation_id}{SUFFIX}"

    def save(self, conversation_id: str, record: ChatRecord) -> None:
        write_records(self.path(conversation_id), [record.to_json()])

    # the files beside the conversations: a draft kept over a crash, and the log of errors met
    @property
    def draft_path(self) -> Path:
        return self.root / ".draft.txt"

    @property
    def error_log(self) -> Path:
        return self.root / "errors.log"

    def save_draft(self, text: str) -> None:
        atomic_write_text(self.draft_path, text)

    def take_draft(self) -> str | None:
        """The draft kept by ``save_draft`` (then forgotten); None when there is none."""
        try:
            text = read_text(self.draft_path, MAX_DRAFT_BYTES)
        except UserError:
            return None
        self.draft_path.unlink(missing_ok=True)
        return text or None

    def write_problem(self) -> str | None:
        """Why conversations cannot be saved here (a read-only or full disk, a file in the way);
        None when they can. Tries what a save does: make the directory and a file in it."""
        try:
            atomic_write_text(self.root / ".write-check", "")
            (self.root / ".write-check").unlink(missing_ok=True)
        except (UserError, OSError) as error:
            return str(error)
        return None

    def load(self, conversation_id: str) -> ChatRecord:
        path = self.path(conversation_id)
        entries = read_lines(path)
        if len(entries) != 1 or entry_error(entries[0]):
            raise RecordFileError(f"{path}: expected one conversation object with a \"messages\" list")
        record = ChatRecord.from_json(entries[0].data)
        if record.messages:  # every message well-formed, so nothing that shows or resumes it can fail on one
            try:
                normalize(record.conversation)
            except UserError as error:
                raise RecordFileError(f"{path}: {error}") from None
        return record

    def delete(self, conversation_id: str) -> None:
        self.path(conversation_id).unlink(missing_ok=True)

    def list(self) -> list[SavedConversation]:
        """Saved conversations, most recently updated first; unreadable files are skipped."""
        found = []
        for path in self.root.glob(f"*{SUFFIX}"):
            try:
                record = self.load(path.stem)
                updated = path.stat().st_mtime
            except (UserError, OSError):
                continue
            found.append(SavedConversation(path.stem, record.meta.get("title") or title_of(record.messages),
                                           updated, len(record.messages)))
        return sorted(found, key=lambda saved: (saved.updated, saved.id), reverse=True)

    def latest(self) -> str | None:
        saved = self.list()
        return saved[0].id if saved else None
