"""The conversation as the model sees it: rendered by the tokenizer, with each generated reply
kept as the exact tokens the model produced.

Re-encoding a reply's text does not always give back the tokens the model sampled (BPE has many
spellings of one string, and a small model does not always pick the canonical one). The chat
sends the model its own tokens back, as nanochat's chat does, and the token pane shows those,
so the inspector can explain every one of them. A reply whose saved text no longer matches its
tokens (an edited file) is rendered from its text.
"""

from __future__ import annotations

from tokenizer.conversation import normalize
from tui.chat_file import Entry, TurnRecord


def reply_tokens(tokenizer, turn: TurnRecord) -> tuple[list[int], list[int]]:
    """A reply's body as generated, closed with ``<|assistant_end|>``, and its mask: 1 for what
    the model wrote, 0 for what the engine forced (tool output)."""
    end = tokenizer.encode_special("<|assistant_end|>")
    ids, mask = list(turn.ids), [0 if forced else 1 for forced in turn.forced]
    if ids and ids[-1] == tokenizer.bos_id and turn.stop_reason == "bos":
        ids, mask = ids[:-1], mask[:-1]
    if not ids or ids[-1] != end:
        ids, mask = ids + [end], mask + [1]
    return ids, mask


class RenderCache:
    """Each entry's tokens, kept by position for as long as the entry (its message and turn) is
    the same: a chat that grows by a message renders one message, not all of them again.

    A rendered conversation is ``<|bos|>`` then each message's tokens in turn (a leading system
    message is merged into the first user message and rendered with it), so a message's tokens
    do not depend on the messages around it."""

    def __init__(self) -> None:
        self._segments: list[tuple[Entry, dict, TurnRecord | None, list[int], list[int]] | None] = []

    def segment(self, tokenizer, index: int, entry: Entry) -> tuple[list[int], list[int]]:
        if index < len(self._segments) and (cached := self._segments[index]) is not None:
            if cached[0] is entry and cached[1] is entry.message and cached[2] is entry.turn:
                return cached[3], cached[4]
        ids, mask = message_tokens(tokenizer, entry)
        if index >= len(self._segments):
            self._segments.extend([None] * (index + 1 - len(self._segments)))
        self._segments[index] = (entry, entry.message, entry.turn, ids, mask)
        return ids, mask


def message_tokens(tokenizer, entry: Entry) -> tuple[list[int], list[int]]:
    """One (non-system) message's tokens and mask as they appear in a rendered conversation; a
    generated reply (its text unchanged since) as generated. The tokenizer's own rendering of a
    one-message conversation, less its start."""
    message, turn = entry.message, entry.turn
    if message["role"] == "user":
        ids, mask = tokenizer.render_conversation({"messages": [message]})
        return ids[1:], mask[1:]  # after <|bos|>
    if turn is not None and tokenizer.parse_assistant(turn.ids) == message["content"]:
        body, body_mask = reply_tokens(tokenizer, turn)
        return [tokenizer.encode_special("<|assistant_start|>"), *body], [0, *body_mask]
    ids, mask = tokenizer.render_conversation({"messages": [{"role": "user", "content": ""}, message]})
    return ids[3:], mask[3:]  # after <|bos|><|user_start|><|user_end|>


def head_tokens(tokenizer, system: Entry, user: Entry) -> tuple[list[int], list[int]]:
    """A system message and the user message it is merged into, as rendered."""
    ids, mask = tokenizer.render_conversation({"messages": [system.message, user.message]})
    return ids[1:], mask[1:]


def render_chat(tokenizer, entries: list[Entry], cache: RenderCache | None = None) -> tuple[list[int], list[int]]:
    """``render_conversation``'s ``(ids, mask)`` with generated replies as generated, built
    message by message (from ``cache`` where it has them)."""
    normalize({"messages": [entry.message for entry in entries]})  # the one validation, naming the bad message
    cache = cache or RenderCache()
    ids, mask = [tokenizer.bos_id], [0]
    start = 0
    if entries[0].role == "system":
        head, head_mask = head_tokens(tokenizer, entries[0], entries[1])
        ids += head
        mask += head_mask
        start = 2
    for index in range(start, len(entries)):
        segment, segment_mask = cache.segment(tokenizer, index, entries[index])
        ids += segment
        mask += segment_mask
    return ids, mask


def prompt_ids(tokenizer, entries: list[Entry], cache: RenderCache | None = None) -> list[int]:
    """The prompt for the reply to ``entries`` (which end with a user message)."""
    return render_chat(tokenizer, entries, cache)[0] + [tokenizer.encode_special("<|assistant_start|>")]
