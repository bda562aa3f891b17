"""The conversation as the model sees it: rendered by the tokenizer, with each generated reply
kept as the exact tokens the model produced.

Re-encoding a reply's text does not always give back the tokens the model sampled (BPE has many
spellings of one string, and a small model does not always pick the canonical one). The chat
sends the model its own tokens back, as nanochat's chat does, and the token pane shows those,
so the inspector can explain every one of them. A reply whose saved text no longer matches its
tokens (an edited file) is rendered from its text.
"""

from __future__ import annotations

from tui.chat_file import Entry, TurnRecord
from tui.token_cells import message_indices


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


def render_chat(tokenizer, entries: list[Entry]) -> tuple[list[int], list[int]]:
    """``render_conversation``'s ``(ids, mask)`` with generated replies as generated."""
    messages = [entry.message for entry in entries]
    ids, mask = tokenizer.render_conversation({"messages": messages})
    usable = {index: entry.turn for index, entry in enumerate(entries)
              if entry.turn is not None and entry.role == "assistant"
              and tokenizer.parse_assistant(entry.turn.ids) == entry.message["content"]}
    if not usable:
        return ids, mask
    owners = message_indices(tokenizer, ids, messages)
    out_ids: list[int] = []
    out_mask: list[int] = []
    i = 0
    while i < len(ids):
        turn = usable.get(owners[i])
        out_ids.append(ids[i])
        out_mask.append(mask[i])
        i += 1
        if turn is None:
            continue
        # ids[i - 1] is the reply's <|assistant_start|>: swap the rendered body for the generated one
        end = i
        while end < len(ids) and owners[end] == owners[i - 1]:
            end += 1
        body, body_mask = reply_tokens(tokenizer, turn)
        out_ids += body
        out_mask += body_mask
        i = end
    return out_ids, out_mask


def prompt_ids(tokenizer, entries: list[Entry]) -> list[int]:
    """The prompt for the reply to ``entries`` (which end with a user message)."""
    return render_chat(tokenizer, entries)[0] + [tokenizer.encode_special("<|assistant_start|>")]
