"""Fitting a conversation into the model's context window.

When the conversation no longer fits, the oldest user/assistant turns are left out of what is
sent (a leading system message is kept); the chat shows a notice and keeps them on screen and
on disk. The prompt leaves room for the reply: ``max_tokens``, but never more than half the
window, so a large ``max_tokens`` does not push all history out.
"""

from __future__ import annotations

from dataclasses import dataclass

from glasschat.errors import UserError
from tui.chat_file import Entry
from tui.chat_tokens import prompt_ids


class ContextFullError(UserError):
    """The newest user message alone does not fit in the context window."""


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    dropped: int  # how many of the oldest non-system messages were left out


def without_oldest(entries: list[Entry], count: int) -> list[Entry]:
    """``entries`` less the ``count`` oldest after a leading system message."""
    head = entries[:1] if entries and entries[0].role == "system" else []
    return head + entries[len(head) + count:]


def reply_room(sequence_len: int, max_tokens: int) -> int:
    return max(1, min(max_tokens, sequence_len // 2))


def fit_prompt(tokenizer, entries: list[Entry], sequence_len: int, max_tokens: int) -> Prompt:
    """The prompt for a reply to ``entries`` (which end with a user message), with generated
    replies as generated, oldest turns dropped until it leaves ``reply_room`` tokens;
    ``ContextFullError`` if the last user message alone leaves no room at all."""
    budget = sequence_len - reply_room(sequence_len, max_tokens)
    body = len(entries) - (1 if entries and entries[0].role == "system" else 0)
    dropped = 0
    while True:
        ids = prompt_ids(tokenizer, without_oldest(entries, dropped))
        if len(ids) <= budget or dropped + 1 >= body:
            break
        dropped += 2  # one user message and the assistant reply that followed it
    if len(ids) >= sequence_len:
        raise ContextFullError(
            f"the message is too long for the model: the prompt needs {len(ids)} tokens "
            f"and the context holds {sequence_len}")
    return Prompt(ids, dropped)
