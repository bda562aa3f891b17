"""Conversations and their rendering to token ids with a loss mask.

A conversation is ``{"messages": [...]}``: roles ``user``/``assistant`` alternating, starting
with ``user``; an optional leading ``system`` message is merged into the first user message as
``system + "\\n\\n" + user``. Assistant content is a string or a list of parts
``{"type": "text"|"python"|"python_output", "text": ...}``.

The mask says what a model is trained on: 1 only for what the assistant must learn to write —
its text, its python calls with their delimiters, and ``<|assistant_end|>`` (that is how it
learns to stop). Everything from the user, ``<|assistant_start|>`` (the prompt for a reply) and
tool output (the engine forces it) are 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from glasschat.errors import UserError

PART_TYPES = ("text", "python", "python_output")


class ConversationError(UserError):
    """A conversation that does not follow the format; the message names the message index."""


class Rendered(NamedTuple):
    ids: list[int]
    mask: list[int]


def normalize(conversation: Any) -> list[dict]:
    """Validate a conversation and return its messages with a leading system message merged.

    The result alternates user/assistant starting with user; assistant contents are strings or
    lists of validated parts. Errors name the index of the message in the input.
    """
    if not isinstance(conversation, dict) or "messages" not in conversation:
        raise ConversationError('a conversation must be an object with a "messages" list')
    messages = conversation["messages"]
    if not isinstance(messages, list) or not messages:
        raise ConversationError('"messages" must be a non-empty list')
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ConversationError(f"message {index}: must be an object with 'role' and 'content'")
        if message.get("role") not in ("system", "user", "assistant"):
            raise ConversationError(f"message {index}: role must be 'system', 'user' or 'assistant', "
                                    f"not {message.get('role')!r}")
        if "content" not in message:
            raise ConversationError(f"message {index}: missing 'content'")

    offset = 0
    if messages[0]["role"] == "system":
        if len(messages) < 2 or messages[1]["role"] != "user":
            raise ConversationError("message 1: a system message must be followed by a user message")
        for index in (0, 1):
            if not isinstance(messages[index]["content"], str):
                raise ConversationError(f"message {index}: {messages[index]['role']} content must be a string")
        merged = {"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
        messages, offset = [merged, *messages[2:]], 1

    result = []
    for position, message in enumerate(messages):
        index = position + offset if position else 0
        expected = "user" if position % 2 == 0 else "assistant"
        if message["role"] != expected:
            where = "the first message" if position == 0 else "roles must alternate user/assistant"
            raise ConversationError(f"message {index}: expected role {expected!r} ({where}), got {message['role']!r}")
        content = message["content"]
        if expected == "user" and not isinstance(content, str):
            raise ConversationError(f"message {index}: user content must be a string")
        if expected == "assistant":
            content = _check_assistant_content(content, index)
        result.append({"role": expected, "content": content})
    return result


def _check_assistant_content(content: Any, index: int) -> str | list[dict]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ConversationError(f"message {index}: assistant content must be a string or a list of parts")
    for part_index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            raise ConversationError(f"message {index}: part {part_index}: type must be one of {', '.join(PART_TYPES)}")
        if not isinstance(part.get("text"), str):
            raise ConversationError(f"message {index}: part {part_index}: 'text' must be a string")
    return content


def render(
    messages: list[dict],
    encode: Callable[[str], list[int]],
    special: Callable[[str], int],
    max_tokens: int | None = None,
) -> Rendered:
    """Render normalized messages (see ``normalize``) to ids and mask."""
    ids: list[int] = []
    mask: list[int] = []

    def add(tokens: list[int], bit: int) -> None:
        ids.extend(tokens)
        mask.extend([bit] * len(tokens))

    add([special("<|bos|>")], 0)
    for message in messages:
        content = message["content"]
        if message["role"] == "user":
            add([special("<|user_start|>")], 0)
            add(encode(content), 0)
            add([special("<|user_end|>")], 0)
            continue
        add([special("<|assistant_start|>")], 0)
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                add(encode(part["text"]), 1)
            elif part["type"] == "python":
                add([special("<|python_start|>")], 1)
                add(encode(part["text"]), 1)
                add([special("<|python_end|>")], 1)
            else:
                add([special("<|output_start|>")], 0)
                add(encode(part["text"]), 0)
                add([special("<|output_end|>")], 0)
        add([special("<|assistant_end|>")], 1)
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return Rendered(ids, mask)


# Where each token stands in a rendered conversation, for coloured views. A delimiter belongs
# to the region it opens or closes.
_OPENS = {"<|user_start|>": "user", "<|assistant_start|>": "assistant",
          "<|python_start|>": "python", "<|output_start|>": "output"}
_CLOSES = {"<|user_end|>": "user", "<|assistant_end|>": "assistant",
           "<|python_end|>": "python", "<|output_end|>": "output"}
_OUTER = {"user": "none", "assistant": "none", "python": "assistant", "output": "assistant"}


def regions(ids: list[int], special_names: dict[int, str]) -> list[str]:
    """Label each token ``none`` (e.g. ``<|bos|>``), ``user``, ``assistant``, ``python`` or ``output``."""
    labels = []
    region = "none"
    for token in ids:
        name = special_names.get(token)
        if name in _OPENS:
            region = _OPENS[name]
            labels.append(region)
        elif name in _CLOSES:
            labels.append(_CLOSES[name])
            region = _OUTER[_CLOSES[name]]
        else:
            labels.append(region)
    return labels


def parse_assistant(ids: list[int], special_names: dict[int, str], decode: Callable[[list[int]], str]) -> str | list[dict]:
    """Turn the tokens of one assistant turn back into its content (inverse of ``render``).

    Takes the tokens between ``<|assistant_start|>`` and ``<|assistant_end|>`` (either may be
    included). Returns a string when the turn is plain text, else a list of parts. An unclosed
    python call or output (generation stopped inside it) still becomes a part; other special
    tokens are dropped.
    """
    parts: list[dict] = []
    kind, run = "text", []

    def close() -> None:
        if run or kind != "text":
            parts.append({"type": kind, "text": decode(run)})

    for token in ids:
        name = special_names.get(token)
        if name is None:
            run.append(token)
        elif name in ("<|python_start|>", "<|output_start|>"):
            close()
            kind, run = ("python" if name == "<|python_start|>" else "python_output"), []
        elif name in ("<|python_end|>", "<|output_end|>"):
            close()
            kind, run = "text", []
    close()
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return [part for part in parts if part["type"] != "text" or part["text"]]
