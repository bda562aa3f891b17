"""Scripted conversation replay.

A script is a chat file (``tui.chat_file``): one conversation per line. Replaying feeds each
user message to the model and generates the assistant reply; the generated replies, not the
script's, form the context of later turns — as in a real chat, and as the exact tokens the model
produced (``tui.session``). Where the script has an
assistant message, the transcript compares it with what was generated (exact match, index of
the first differing token).

The same seed and sampling parameters give the same transcript, timings aside: every turn is
sampled with the given seed, so a turn depends only on (seed, parameters, prompt).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from glasschat.errors import UserError
from model.backend import Backend
from model.events import SamplingParams
from tui.chat_file import Line, entry_error
from tui.session import ChatSession


@dataclass(frozen=True)
class ScriptTurn:
    """One reply to generate: the script's messages up to and including the user message it
    answers (generated replies are substituted as the replay goes), and the script's own reply
    if it has one."""

    user_index: int
    expected: dict | None


def plan_turns(messages: list[dict]) -> list[ScriptTurn]:
    """A reply is generated after every user message."""
    turns = []
    for index, message in enumerate(messages):
        if message["role"] == "user":
            following = messages[index + 1] if index + 1 < len(messages) else None
            expected = following if following is not None and following["role"] == "assistant" else None
            turns.append(ScriptTurn(index, expected))
    return turns


@dataclass
class ReplayState:
    """Where a replay in the app stands: the script's conversations, the current one, and the
    next of its messages to play. Assistant messages are never played (the model answers);
    they are what the generated reply is compared with."""

    entries: list[Line]
    entry: int = 0
    message: int = 0  # the next message of the current conversation to look at
    paused: bool = False
    steps: int = 0  # turns to play while paused (F6)
    started: bool = False  # the current conversation has been opened in the chat

    def current_entry(self) -> Line | None:
        return self.entries[self.entry] if self.entry < len(self.entries) else None

    def next_entry(self) -> None:
        self.entry, self.message, self.started = self.entry + 1, 0, False

    def next_message(self) -> dict | None:
        """The current conversation's next user or system message; None at its end."""
        script = self.entries[self.entry].data["messages"]
        while self.message < len(script) and script[self.message]["role"] == "assistant":
            self.message += 1
        if self.message >= len(script):
            return None
        self.message += 1
        return script[self.message - 1]

    def use_step(self) -> None:
        self.steps = max(0, self.steps - 1)

    def script_reply(self) -> dict | None:
        """The script's own reply to the user message played last, if it has one."""
        script = self.entries[self.entry].data["messages"]
        return {t.user_index: t.expected for t in plan_turns(script)}.get(self.message - 1)


def expected_ids(tokenizer, assistant_message: dict) -> list[int]:
    """The token ids of an assistant message's body, ending with ``<|assistant_end|>``."""
    ids = tokenizer.render_conversation({"messages": [{"role": "user", "content": ""}, assistant_message]}).ids
    start = ids.index(tokenizer.encode_special("<|assistant_start|>"))
    return ids[start + 1:]


def compare(expected: list[int], generated: list[int]) -> dict:
    """Exact match, and the index of the first token where the two differ (None if equal)."""
    first = next((i for i, (a, b) in enumerate(zip(expected, generated)) if a != b), None)
    if first is None and len(expected) != len(generated):
        first = min(len(expected), len(generated))
    return {"exact_match": first is None, "first_difference": first, "expected_ids": expected}


def replay_conversation(backend: Backend, conversation: dict, params: SamplingParams) -> dict:
    """Replay one conversation; returns its transcript record (``messages`` with the generated
    replies, and per reply ``ids``, ``stop_reason``, ``ttft_ms``, ``tokens_per_s``, ...).

    Raises ``ConversationError`` (from the tokenizer) for a malformed conversation and
    ``ContextFullError`` for a user message longer than the context.
    """
    tokenizer = backend.tokenizer
    script = conversation["messages"]
    tokenizer.render_conversation(conversation)  # validation: names the bad message
    session = ChatSession(tokenizer, backend.info.sequence_len)  # the model is sent its own tokens back
    turns: list[dict] = []
    plan = {turn.user_index: turn for turn in plan_turns(script)}
    for index, message in enumerate(script):
        if message["role"] == "assistant":
            continue  # generated instead, below
        session.add_message(message)
        if index not in plan:
            continue
        prompt = session.prompt(params.max_tokens)
        turn = session.reply(backend, prompt, params)
        record = {"message": turn.message, "ids": turn.ids, "stop_reason": turn.stop_reason,
                  "ttft_ms": turn.ttft_ms, "tokens_per_s": turn.tokens_per_s, "seed": turn.seed}
        if any(turn.forced):
            record["forced"] = [i for i, forced in enumerate(turn.forced) if forced]
        if prompt.dropped:
            record["context_dropped_messages"] = prompt.dropped
        expected = plan[index].expected
        if expected is not None:
            record["expected"] = compare(expected_ids(tokenizer, expected), turn.ids)
        turns.append(record)
    return {"messages": session.messages, "turns": turns}


def replay_entry(backend: Backend, entry: Line, params: SamplingParams) -> dict:
    """One conversation's transcript record, or ``{"line", "error"}`` for a bad one."""
    problem = entry_error(entry)
    if problem is None:
        try:
            return {"line": entry.number, **replay_conversation(backend, entry.data, params)}
        except UserError as error:
            problem = str(error)
    return {"line": entry.number, "error": problem}


def replay_script(backend: Backend, entries: list[Line], params: SamplingParams, concurrency: int = 1) -> Iterator[dict]:
    """Replay every conversation of a script, in script order; a bad one yields
    ``{"line", "error"}`` and the others still run. ``concurrency`` conversations run at once
    (threads: for a server, which batches them); every turn is sampled with the given seed, so
    the records are the serial run's."""
    if concurrency <= 1:
        for entry in entries:
            yield replay_entry(backend, entry, params)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="replay") as pool:
        yield from pool.map(lambda entry: replay_entry(backend, entry, params), entries)
