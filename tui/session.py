"""A chat conversation and everything done to it, with no UI and no model: the chat app and
headless replay both drive a ``ChatSession``.

The session holds the conversation as ``Entry``s (a message with what the engine produced for
it), renders it to the model's tokens (generated replies as generated), fits it into the
context window, keeps the bookkeeping of a reply (begin, finish — kept when stopped, dropped
when it failed before its first token), regenerate and edit, and saves and loads it. What shows
it (widgets, notifications) and what generates (a ``model.backend.Backend``) stay outside; the
one exception is ``reply``, which runs a backend's stream to the end for headless callers.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import replace
from pathlib import Path

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError
from model.backend import Backend
from model.events import SamplingParams, Stop, TokenEvent
from tokenizer.conversation import normalize
from tui.chat_file import ChatRecord, Entry, TurnRecord, to_markdown, write_records
from tui.chat_tokens import RenderCache, head_tokens, message_tokens, prompt_ids, render_chat
from tui.context import Prompt, fit_prompt
from tui.store import ConversationStore, title_of
from tui.token_cells import TokenCell, build_cells


def with_seed(params: SamplingParams, rng: random.Random | None = None) -> SamplingParams:
    """``params`` with a concrete seed, drawn when none is set, so every turn can be replayed."""
    if params.seed is not None:
        return params
    return replace(params, seed=(rng or random).randrange(2**31))


class ChatSession:
    """One conversation: its entries, where it is saved, and the reply being generated.

    ``tokenizer`` renders it; ``sequence_len`` is the model's context; ``store`` (optional) is
    where ``save`` writes it, ``model`` the name its file records.
    """

    def __init__(self, tokenizer, sequence_len: int, *, store: ConversationStore | None = None,
                 model: str = "") -> None:
        self.tokenizer = tokenizer
        self.sequence_len = sequence_len
        self.store = store
        self.model = model
        self.entries: list[Entry] = []
        self.pending: TurnRecord | None = None  # the reply being generated, not yet an entry
        self.rendered = RenderCache()  # each message's tokens: a long chat is not rendered again per turn
        self._cells: tuple[list[tuple], list[TokenCell]] | None = None  # the entries' cells, while they are the same
        self.dropped = 0  # oldest messages the last prompt left out
        self.conversation_id = store.new_id() if store is not None else ""
        self.created = time.time()

    # ---- reading

    @property
    def messages(self) -> list[dict]:
        """The conversation's messages (a copy)."""
        return [entry.message for entry in self.entries]

    def turn(self, index: int) -> TurnRecord | None:
        """What was generated for message ``index``; None for a message that was not generated."""
        return self.entries[index].turn if 0 <= index < len(self.entries) else None

    @property
    def awaiting_reply(self) -> bool:
        """The last message is the user's and has no reply yet."""
        return bool(self.entries) and self.entries[-1].role == "user"

    @property
    def last_turn(self) -> TurnRecord | None:
        """The newest generated reply (for the status bar's timings)."""
        return next((entry.turn for entry in reversed(self.entries) if entry.turn is not None), None)

    # ---- rendering

    def render(self) -> tuple[list[int], list[int]]:
        """The whole conversation as ``(ids, mask)``, replies as generated."""
        return render_chat(self.tokenizer, self.entries, self.rendered) if self.entries else ([], [])

    def with_pending(self) -> list[Entry]:
        """The entries with the reply being generated, if it has tokens yet."""
        pending = self.pending
        if pending is None or not pending.ids:
            return list(self.entries)
        return [*self.entries, Entry({"role": "assistant", "content": self.tokenizer.parse_assistant(pending.ids)},
                                     pending)]

    def cells(self) -> list[TokenCell]:
        """The conversation, with the reply being generated, as the token pane's cells.

        The pane follows a streaming reply a few times a second: the cells of the messages
        before it are kept while those messages are the same, and only the reply's own are
        built (a message's tokens do not depend on the ones after it)."""
        if not self.entries:
            return []
        key = [(entry, entry.message, entry.turn) for entry in self.entries]
        cached = self._cells
        if cached is None or len(cached[0]) != len(key) or any(
                a is not b for old, new in zip(cached[0], key) for a, b in zip(old, new)):
            ids, mask = render_chat(self.tokenizer, self.entries, self.rendered)
            cached = self._cells = (key, build_cells(self.tokenizer, ids, mask, self.entries))
        entries = self.with_pending()
        if len(entries) == len(self.entries):
            return cached[1]
        reply = entries[-1]
        ids, mask = message_tokens(self.tokenizer, reply)
        return cached[1] + build_cells(self.tokenizer, ids, mask, [reply], start=len(cached[1]),
                                       first_message=len(entries) - 1)

    def context_used(self) -> int:
        """How many tokens of the conversation (with the reply being generated) the model is
        sent: all, less the messages the last prompt left out. Counted on the cached
        per-message tokens, so the status bar costs no rendering of a long chat."""
        entries = self.with_pending()
        first = 1 if entries and entries[0].role == "system" else 0
        kept = range(first + self.dropped, len(entries))
        if not kept:
            return 0
        used = 1  # <|bos|>
        for index in kept:
            if first and index == kept.start:  # the system message is sent merged into this one
                used += len(head_tokens(self.tokenizer, entries[0], entries[index])[0])
            else:
                used += len(self.rendered.segment(self.tokenizer, index, entries[index])[0])
        return used

    def draft_cells(self, text: str, limit: int | None = None) -> tuple[list[TokenCell], int]:
        """The tokens a user message ``text`` would add to the conversation, as cells (the first
        ``limit`` of them) and how many there are; ``UserError`` when it cannot be sent here.

        Only the draft is rendered (the conversation's tokens do not depend on it), so a long
        chat or a long draft costs the draft's encoding, not the whole conversation's."""
        draft = Entry({"role": "user", "content": text})
        entries = [*self.entries, draft]
        normalize({"messages": [entry.message for entry in entries]})  # can it follow the conversation?
        if len(entries) <= 2 and entries[0].role == "system" or len(entries) == 1:
            tail, start = prompt_ids(self.tokenizer, entries), 0  # the draft opens the conversation
        else:
            tail = [*message_tokens(self.tokenizer, draft)[0], self.tokenizer.encode_special("<|assistant_start|>")]
            start = len(self.render()[0])
        shown = tail if limit is None else tail[:limit]
        return build_cells(self.tokenizer, shown, [0] * len(shown), [], start=start), len(tail)

    # ---- changing it

    def prompt(self, max_tokens: int) -> Prompt:
        """The prompt for a reply to the conversation (which ends with a user message), fitted
        into the context; ``ContextFullError`` when the last message alone leaves no room."""
        return fit_prompt(self.tokenizer, self.entries, self.sequence_len, max_tokens, self.rendered)

    def add_user(self, text: str, max_tokens: int) -> Prompt:
        """Add a user message and return the prompt for its reply; ``UserError`` (conversation
        unchanged) when it cannot be sent."""
        entries = [*self.entries, Entry({"role": "user", "content": text})]
        prompt = fit_prompt(self.tokenizer, entries, self.sequence_len, max_tokens, self.rendered)
        self.entries = entries
        return prompt

    def add_message(self, message: dict) -> None:
        """Add a message as it is (a script's system message)."""
        self.entries.append(Entry(message))

    def begin_reply(self, prompt: Prompt, seed: int | None) -> TurnRecord:
        """Start the reply that ``prompt`` asks for: the record to fill as events arrive."""
        self.dropped = prompt.dropped
        self.pending = TurnRecord(message=len(self.entries), seed=seed)
        return self.pending

    def finish_reply(self, stop: Stop | None) -> bool:
        """End the reply being generated with ``stop`` (None: the engine failed). The reply is
        kept — stopped, cut or complete — unless it failed before its first token; True when
        it was kept."""
        turn, self.pending = self.pending, None
        if turn is None:
            raise RuntimeError("no reply is being generated")
        if stop is None:
            turn.stop_reason = "error"
        else:
            turn.stop_reason = stop.reason
            turn.ttft_ms = round(stop.stats.ttft_s * 1000, 3)
            turn.tokens_per_s = round(stop.stats.tokens_per_s, 3)
        if not turn.ids and turn.stop_reason == "error":
            return False
        self.entries.append(Entry({"role": "assistant", "content": self.tokenizer.parse_assistant(turn.ids)}, turn))
        return True

    def abandon_reply(self) -> None:
        """Forget the reply being generated without keeping it (its display failed)."""
        self.pending = None

    def reply(self, backend: Backend, prompt: Prompt, params: SamplingParams,
              cancel: threading.Event | None = None) -> TurnRecord:
        """Generate the reply to ``prompt`` with ``backend`` to its end and keep it (headless)."""
        turn = self.begin_reply(prompt, params.seed)
        stop = None
        try:
            for event in backend.stream(prompt.ids, params, cancel=cancel):
                if isinstance(event, TokenEvent):
                    turn.add(event)
                elif isinstance(event, Stop):
                    stop = event
                    break
        finally:
            self.finish_reply(stop)
        return turn

    def take_back_reply(self) -> bool:
        """Remove the last reply (to generate it again); True when there was one."""
        if self.entries and self.entries[-1].role == "assistant":
            self.truncate(len(self.entries) - 1)
            return True
        return False

    def take_back_last_user(self) -> str | None:
        """Remove the last user message and what follows it; its text, or None when there is
        none. A system message just before it goes too: it cannot stand alone."""
        last_user = max((i for i, entry in enumerate(self.entries) if entry.role == "user"), default=None)
        if last_user is None:
            return None
        text = self.entries[last_user].message["content"]
        if last_user == 1 and self.entries[0].role == "system":
            last_user = 0
        self.truncate(last_user)
        return text

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` entries."""
        del self.entries[count:]

    def reset(self) -> None:
        """A new, empty conversation."""
        self.entries, self.pending, self.dropped = [], None, 0
        self.conversation_id = self.store.new_id() if self.store is not None else ""
        self.created = time.time()

    # ---- saving and loading

    def record(self) -> ChatRecord:
        meta = {"id": self.conversation_id, "title": title_of(self.messages), "model": self.model,
                "created": self.created, "updated": time.time()}
        return ChatRecord.from_entries(self.entries, meta)

    def save(self) -> None:
        """Write the conversation to the store (atomically; an empty one is removed);
        ``OSError`` when it cannot be written."""
        if self.store is None:
            return
        if not self.entries:
            self.store.delete(self.conversation_id)
        else:
            self.store.save(self.conversation_id, self.record())

    def open(self, conversation_id: str) -> None:
        """Load a saved conversation in place of this one; ``UserError`` (nothing changed) when
        it cannot be read or rendered."""
        if self.store is None:
            raise UserError("no conversation store to open from")
        record = self.store.load(conversation_id)
        if record.messages:
            self.tokenizer.render_conversation(record.conversation)
        self.reset()
        self.conversation_id = conversation_id
        self.created = record.meta.get("created", self.created)
        self.entries = record.entries()

    def save_as(self, filename: str) -> Path:
        """``/save FILE``: Markdown for ``.md``, a chat file for ``.jsonl``/``.json``."""
        if not filename:
            raise UserError("usage: /save FILE.md or /save FILE.jsonl")
        if not self.entries:
            raise UserError("nothing to save: the conversation is empty")
        path = Path(filename).expanduser()
        if path.suffix.lower() in (".md", ".markdown"):
            atomic_write_text(path, to_markdown(self.messages, title_of(self.messages)))
        elif path.suffix.lower() in (".jsonl", ".json"):
            write_records(path, [self.record().to_json()])
        else:
            raise UserError(f"/save {filename}: the file name must end in .md or .jsonl")
        return path

    def export_ids(self, filename: str) -> tuple[Path, int]:
        """``/export FILE``: the rendered conversation as ``{"ids", "mask"}`` — the tokens the
        token pane shows, replies as generated; the path and the token count."""
        if not filename:
            raise UserError("usage: /export FILE.json")
        if not self.entries:
            raise UserError("nothing to export: the conversation is empty")
        ids, mask = self.render()
        path = Path(filename).expanduser()
        atomic_write_text(path, json.dumps({"ids": ids, "mask": mask}) + "\n")
        return path, len(ids)
