"""Shared helpers for the skill generators: the train/held-out split of phrasings and the
surface noise a person's typing adds (lower case, a missing question mark).

Every generator takes ``split`` ("train" or "heldout"). Phrasings come in two disjoint lists
per skill; the held-out list is used only by evaluation, so the eval measures whether the
model understood the request rather than whether it memorised the sentence.
"""

from __future__ import annotations

import random
from typing import Literal

Split = Literal["train", "heldout"]
SPLITS: tuple[str, ...] = ("train", "heldout")


def pick(rng: random.Random, phrasings: dict[str, list[str]], split: Split) -> str:
    return rng.choice(phrasings[split])


def check_disjoint(phrasings: dict[str, list[str]]) -> dict[str, list[str]]:
    """Return ``phrasings`` after checking that no phrasing is in both splits (fails at import)."""
    shared = {p.lower() for p in phrasings["train"]} & {p.lower() for p in phrasings["heldout"]}
    if shared:
        raise ValueError(f"phrasings in both splits: {sorted(shared)}")
    return phrasings


def typed(rng: random.Random, text: str) -> str:
    """``text`` as people type it: sometimes all lower case, sometimes without the final '?'."""
    roll = rng.random()
    if roll < 0.15:
        text = text.lower()
    elif roll < 0.2:
        text = text[0].upper() + text[1:]
    if text.endswith("?") and rng.random() < 0.15:
        text = text[:-1]
    return text
