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
from tui.records import TurnRecord


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
    """Each message's tokens, kept by position for as long as the message (and its turn) are the
    same objects: a chat that grows by a message renders one message, not all of them again.

    A rendered conversation is ``<|bos|>`` then each message's tokens in turn (a leading system
    message is merged into the first user message, rendered with it), so a message's tokens do
    not depend on the messages around it."""

    def __init__(self) -> None:
        self._entries: list[tuple[dict, TurnRecord | None, list[int], list[int]] | None] = []

    def segment(self, tokenizer, index: int, message: dict, turn: TurnRecord | None) -> tuple[list[int], list[int]]:
        if index < len(self._entries) and (entry := self._entries[index]) is not None:
            cached_message, cached_turn, ids, mask = entry
            if cached_message is message and cached_turn is turn:
                return ids, mask
        ids, mask = message_tokens(tokenizer, message, turn)
        if index >= len(self._entries):
            self._entries.extend([None] * (index + 1 - len(self._entries)))
        self._entries[index] = (message, turn, ids, mask)
        return ids, mask


def message_tokens(tokenizer, message: dict, turn: TurnRecord | None = None) -> tuple[list[int], list[int]]:
    """One (non-system) message's tokens and mask as they appear in a rendered conversation;
    an assistant message with the ``turn`` it was generated in (its text unchanged since) as
    generated. The tokenizer's own rendering of a one-message conversation, less its start."""
    if message["role"] == "user":
        ids, mask = tokenizer.render_conversation({"messages": [message]})
        return ids[1:], mask[1:]  # after <|bos|>
    if turn is not None and tokenizer.parse_assistant(turn.ids) == message["content"]:
        body, body_mask = reply_tokens(tokenizer, turn)
        return [tokenizer.encode_special("<|assistant_start|>"), *body], [0, *body_mask]
    ids, mask = tokenizer.render_conversation({"messages": [{"role": "user", "content": ""}, message]})
    return ids[3:], mask[3:]  # after <|bos|><|user_start|><|user_end|>


def head_tokens(tokenizer, system: dict, user: dict) -> tuple[list[int], list[int]]:
    """A system message and the user message it is merged into, as rendered."""
    ids, mask = tokenizer.render_conversation({"messages": [system, user]})
    return ids[1:], mask[1:]


def render_chat(tokenizer, messages: list[dict], turns: dict[int, TurnRecord],
                cache: RenderCache | None = None) -> tuple[list[int], list[int]]:
    """``render_conversation``'s ``(ids, mask)`` with generated replies as generated."""
    normalize({"messages": messages})  # the one validation, naming the bad message
    cache = cache or RenderCache()
    ids, mask = [tokenizer.bos_id], [0]
    start = 0
    if messages[0]["role"] == "system":
        head, head_mask = head_tokens(tokenizer, messages[0], messages[1])
        ids += head
        mask += head_mask
        start = 2
    for index in range(start, len(messages)):
        segment, segment_mask = cache.segment(tokenizer, index, messages[index], turns.get(index))
        ids += segment
        mask += segment_mask
    return ids, mask


def prompt_ids(tokenizer, messages: list[dict], turns: dict[int, TurnRecord]) -> list[int]:
    """The prompt for the reply to ``messages`` (which end with a user message)."""
    return render_chat(tokenizer, messages, turns)[0] + [tokenizer.encode_special("<|assistant_start|>")]
