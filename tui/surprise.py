"""The token pane's surprise view: how surprising each token of the conversation is to the model.

A token's surprisal is ``-log2 p`` of that token given every token before it, in bits: 0 for a
token the model was sure of, 1 for a coin flip, ``log2(vocab)`` for a uniform guess. The view
colours each token by it, from cool (expected) to hot (surprising), and sums it into bits per
byte for the user's text and for the replies: bits over a region's ordinary tokens divided by the
UTF-8 bytes they stand for (``Tokenizer.token_bytes``), the measure ``glasschat eval --bpb``
reports for a file. The numbers come from one forward over the rendered conversation
(``model.bpb.surprisal``), asked for on demand, never while a reply streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.style import Style

from tui import colour_scale

# Surprisal at which the colour scale tops out: a token this surprising or more is drawn brightest.
MAX_BITS = 14.0
NO_SCORE = Style(bgcolor="#303030")


def surprise_style(bits: float | None) -> Style:
    """The colour for a token of ``bits`` surprisal, on the shared scale (``tui.colour_scale``):
    darkest when expected, brightest when surprising; grey when it has none (the first token)."""
    if bits is None or math.isnan(bits):
        return NO_SCORE
    return colour_scale.style(bits / MAX_BITS)


@dataclass(frozen=True)
class RegionBpb:
    bits: float
    bytes: int

    @property
    def bpb(self) -> float | None:
        return self.bits / self.bytes if self.bytes else None


def per_token(ids: list[int], surprisal_bits: list[float]) -> list[float | None]:
    """Align ``model.bpb.surprisal``'s answer (one per token after the first) to ``ids``."""
    return [None, *(None if math.isnan(b) else b for b in surprisal_bits)][: len(ids)]


def region_bpb(ids: list[int], regions: list[str], bits: list[float | None], token_bytes, region: str) -> RegionBpb:
    """Bits per byte over the ordinary tokens of ``region`` that have a surprisal."""
    total_bits, total_bytes = 0.0, 0
    for token, where, b in zip(ids, regions, bits):
        if where == region and b is not None and token_bytes[token] > 0:
            total_bits += b
            total_bytes += token_bytes[token]
    return RegionBpb(total_bits, total_bytes)


def describe(user: RegionBpb, reply: RegionBpb) -> str:
    """The view's headline: the two regions' bits per byte."""
    def one(name: str, r: RegionBpb) -> str:
        return f"{name} {r.bpb:.2f} bits/byte ({r.bytes} bytes)" if r.bpb is not None else f"{name} —"

    return f"surprise: {one('your text', user)} · {one('replies', reply)}"
