"""Shared helpers for the skill generators: how a request is phrased, and the train/held-out
split of phrasings.

A request is composed from parts — an opener ("hey, "), an adverb ("just "), a polite wrapper
around a command ("could you …"), the core sentence ("spell {w}") with some words swapped for
synonyms ("letters" -> "characters"), a trailing filler (" for me") and a closer ("?",
" please") — so training sees many thousands of distinct sentences and a tiny model learns to
find the word or the numbers wherever they stand, instead of memorising a few templates. Cores
and wrappers come in two disjoint lists per skill; the held-out lists are used only by
evaluation, so the eval measures whether the model understood a request it has never seen.
"""

from __future__ import annotations

import random
import re
from typing import Literal

Split = Literal["train", "heldout"]

OPENERS = ["", "", "", "", "", "", "hey, ", "hi! ", "ok, ", "okay ", "now ", "next: ", "quick question: ",
           "alright, ", "hmm, ", "one more: ", "so ", "and ", "another one: ", "ok so ", "right, "]
CLOSERS = ["", "", "", "", ".", "!", " please", ", please", " thanks", " :)", " now"]
ADVERBS = ["", "", "", "", "", "", "just ", "quickly ", "simply ", "now ", "also ", "actually ", "please "]
TRAILERS = ["", "", "", "", "", "", "", " for me", " real quick", " again", " correctly", " if you can",
            " right now", " for me please"]
# words a person may use in place of others, in both splits: (pattern, alternatives). Only the
# request's own words are swapped, never the word or numbers it asks about, and "reverse" only as
# a verb: "reversed", "in reverse" and "the reverse of" stay as they are.
SYNONYMS = [(re.compile(r" letters\b"), [" letters", " letters", " characters"]),
            (re.compile(r" backwards\b"), [" backwards", " backwards", " backward"]),
            (re.compile(r" the word "), [" the word ", " the word ", " the term ", " this word: "]),
            (re.compile(r"(?<!\bin)(?<!\bthe) reverse(?= )"), [" reverse", " reverse", " invert"])]
# The share of training requests typed bare, the core alone ("spell banana"): what people type
# first. Composed, a bare request came up about once in 30,000, and a model that had seen "spell
# it" hundreds of times read a bare "spell banana" as "spell it" and spelled the word before:
# "s p a n a n a n a". In full runs (docs/default-model-experiments.md), 15% fixed that but
# multi-turn fell 12 points; 5% kept multi-turn but did not fix it. The words it still misses
# are those the tokenizer makes one token (" banana"), whatever the phrasing.
BARE = 0.05
QUESTION_CLOSERS = ["?", "?", "?", "?", "", "??", "? thanks", "? please"]

# polite wrappers around a command core ("spell {w}")
WRAPPERS = {
    "train": ["{x}", "{x}", "{x}", "can you {x}", "could you {x}", "please {x}", "will you {x}",
              "I want you to {x}", "try to {x}", "go ahead and {x}", "can you please {x}", "I need you to {x}"],
    "heldout": ["would you {x}", "I'd like you to {x}", "would you kindly {x}"],
}


def check_disjoint(phrasings: dict[str, list]) -> dict[str, list]:
    """Return ``phrasings`` after checking that no phrasing is in both splits (fails at import)."""
    key = lambda p: (p if isinstance(p, str) else repr(p)).lower()  # noqa: E731
    shared = {key(p) for p in phrasings["train"]} & {key(p) for p in phrasings["heldout"]}
    if shared:
        raise ValueError(f"phrasings in both splits: {sorted(shared)}")
    return phrasings


check_disjoint(WRAPPERS)


def pick(rng: random.Random, phrasings: dict[str, list], split: Split):
    return rng.choice(phrasings[split])


def compose(rng: random.Random, core: str, split: Split, command: bool, **fields) -> str:
    """A full request around ``core``: opener + (adverb + wrapper if a command) + core + trailer + closer,
    or, for a share ``BARE`` of training requests, the core alone.

    ``core`` is a template ("spell {w}"): synonyms are swapped in before ``fields`` fill it, so
    a word asked about ("letters") is never changed into another ("characters")."""
    # drawn only for training requests, so every held-out prompt stays byte-identical
    bare = split == "train" and rng.random() < BARE
    for pattern, alternatives in SYNONYMS:
        if pattern.search(f" {core}"):
            core = pattern.sub(rng.choice(alternatives), f" {core}", count=1)[1:]
    if fields:
        core = core.format(**fields)
    if bare:
        return core
    if command:
        core = rng.choice(WRAPPERS[split]).format(x=rng.choice(ADVERBS) + core)
    if not core.endswith("?"):
        core += rng.choice(TRAILERS)
    question = core.endswith("?") or core.split(" ", 1)[0].lower() in (
        "how", "what", "what's", "can", "could", "will", "would", "which", "is", "does", "do")
    core = core.rstrip("?")
    closer = rng.choice(QUESTION_CLOSERS if question else CLOSERS)
    text = rng.choice(OPENERS) + core + closer
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


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
