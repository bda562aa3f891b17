"""Showing tokens to people: readable labels and the coloured terminal views of the
``glasschat tokenizer encode|render`` commands.

A token is shown as its text, a special token as its name, and bytes that are only part of a
UTF-8 character as byte badges such as ``<0xE4>`` (a BPE token can end mid-character).
"""

from __future__ import annotations

from tokenizer.runtime import Tokenizer


def byte_segments(data: bytes) -> tuple[tuple[str, bool], ...]:
    """A token's bytes as ``(text, is_badge)`` segments: text where the bytes form whole UTF-8
    characters, ``<0xE4>``-style badges for bytes that are only part of one."""
    segments: list[tuple[str, bool]] = []
    rest = data
    while rest:
        try:
            segments.append((rest.decode("utf-8"), False))
            break
        except UnicodeDecodeError as error:
            if error.start:
                segments.append((rest[: error.start].decode("utf-8"), False))
            segments.append(("".join(f"<0x{b:02X}>" for b in rest[error.start : error.end]), True))
            rest = rest[error.end :]
    return tuple(segments)


def token_label(tok: Tokenizer, token_id: int) -> str:
    """The text of one token, with a special token as its name and partial UTF-8 as byte badges."""
    name = tok.special_name(token_id)
    if name is not None:
        return name
    return "".join(text for text, _ in byte_segments(tok.decode_single_token_bytes(token_id)))


def visible_whitespace(text: str) -> str:
    """Make spaces, tabs and newlines visible (the newline is kept so lines still break)."""
    return text.replace(" ", "·").replace("\t", "→").replace("\r", "␍").replace("\n", "↵\n")


# Alternating backgrounds make token boundaries visible; regions tint them.
_REGION_BACKGROUNDS = {
    "none": ("grey23", "grey30"),
    "user": ("dark_blue", "navy_blue"),
    "assistant": ("dark_green", "green4"),
    "python": ("dark_goldenrod", "orange4"),
    "output": ("dark_cyan", "deep_sky_blue4"),
}


def print_tokens(tok: Tokenizer, ids: list[int], mask: list[int] | None = None) -> None:
    """Print ``ids`` as coloured tokens; with ``mask``, tint by role and mark trained-on tokens."""
    from rich.console import Console
    from rich.text import Text

    regions = tok.regions(ids) if mask is not None else ["none"] * len(ids)
    text = Text()
    for index, token_id in enumerate(ids):
        background = _REGION_BACKGROUNDS[regions[index]][index % 2]
        if tok.is_special(token_id):
            style = f"bold white on magenta{' underline' if mask and mask[index] else ''}"
            text.append(token_label(tok, token_id), style=style)
            if token_id != ids[-1] and tok.special_name(token_id) in ("<|bos|>", "<|user_end|>", "<|assistant_end|>"):
                text.append("\n")
            continue
        style = f"white on {background}"
        if mask and mask[index]:
            style += " bold underline"
        text.append(visible_whitespace(token_label(tok, token_id)), style=style)
    console = Console(highlight=False, soft_wrap=True)
    console.print(text)
    summary = f"{len(ids)} tokens"
    if mask is not None:
        summary += f", {sum(mask)} trained on (mask 1, underlined)"
    chars = len(tok.decode([i for i in ids if not tok.is_special(i)]))
    summary += f", {chars} characters"
    if chars and ids:
        summary += f", {chars / max(1, sum(not tok.is_special(i) for i in ids)):.2f} chars/token"
    console.print(summary, style="dim")
