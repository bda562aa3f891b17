"""Pretraining text: offline English documents plus documents of spelled words.

English (``sources``) teaches the model English and the shapes of text. The spelling
documents teach it the letters of every token: each line writes a word (a training word or an
alphabetic token of the tokenizer) and its letters one per token, forwards or backwards —
the knowledge every word skill rests on, given densely here, where every position carries loss.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from training.word_skills import spelled

_LINES = (
    "{w} is spelled {s}.",
    "the word {w} is spelled {s}.",
    "\"{w}\" is spelled {s}.",
    "{w}: {s}",
    "letters of {w}: {s}",
    "{w} backwards is {r}.",
    "\"{w}\" backwards: {r}",
    "{W} is spelled {s}.",
)


def spelling_line(rng: random.Random, word: str) -> str:
    template = rng.choice(_LINES)
    return template.format(w=word, W=word.capitalize(), s=spelled(word), r=spelled(word.lower()[::-1]))


def spelling_documents(words: Sequence[str], n_documents: int, seed: int, lines_per_document: int = 16) -> Iterator[str]:
    """``n_documents`` documents of spelled ``words``, deterministic in ``seed``."""
    rng = random.Random(seed)
    for _ in range(n_documents):
        yield "\n".join(spelling_line(rng, rng.choice(words)) for _ in range(lines_per_document))
