"""Fitting a conversation into the model's context window.

When the conversation no longer fits, the oldest user/assistant turns are left out of what is
sent (a leading system message is kept); the chat shows a notice and keeps them on screen and
on disk. The prompt leaves room for the reply: ``max_tokens``, but never more than half the
window, so a large ``max_tokens`` does not push all history out.
"""

from __future__ import annotations

from dataclasses import dataclass

from glasschat.errors import UserError
from tokenizer.conversation import normalize
from tui.chat_file import Entry
from tui.chat_tokens import RenderCache, head_tokens


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


def fit_prompt(tokenizer, entries: list[Entry], sequence_len: int, max_tokens: int,
               cache: RenderCache | None = None) -> Prompt:
    """The prompt for a reply to ``entries`` (which end with a user message), with generated
    replies as generated, oldest turns dropped until it leaves ``reply_room`` tokens;
    ``ContextFullError`` if the last user message alone leaves no room at all.

    Each message is rendered once (or taken from ``cache``) and the drops are counted on the
    messages' lengths, so a long history costs one pass, not one rendering per dropped pair."""
    normalize({"messages": [entry.message for entry in entries]})  # the one validation, naming the bad message
    cache = cache or RenderCache()
    budget = sequence_len - reply_room(sequence_len, max_tokens)
    first = 1 if entries[0].role == "system" else 0
    segments = [cache.segment(tokenizer, index, entries[index])[0] for index in range(first, len(entries))]
    after = [0] * (len(segments) + 1)  # after[k]: tokens of segments k.. to the end
    for k in range(len(segments) - 1, -1, -1):
        after[k] = after[k + 1] + len(segments[k])

    def head(dropped: int) -> list[int]:
        """The first kept message's tokens (merged with the system message, if there is one)."""
        if not first:
            return segments[dropped]
        return head_tokens(tokenizer, entries[0], entries[first + dropped])[0]

    dropped = 0
    while True:
        length = 2 + len(head(dropped)) + after[dropped + 1]  # <|bos|> ... <|assistant_start|>
        if length <= budget or dropped + 1 >= len(segments):
            break
        dropped += 2  # one user message and the assistant reply that followed it
    if length >= sequence_len:
        raise ContextFullError(
            f"the message is too long for the model: the prompt needs {length} tokens "
            f"and the context holds {sequence_len}")
    ids = [tokenizer.bos_id, *head(dropped)]
    for segment in segments[dropped + 1:]:
        ids += segment
    ids.append(tokenizer.encode_special("<|assistant_start|>"))
    return Prompt(ids, dropped)
