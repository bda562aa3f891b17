"""The words the word skills practise on, for a given tokenizer: the word list split into
training and held-out words (``training.words``), every alphabetic token, and made-up words glued
from those tokens. Training draws from them; evaluation asks only about the held-out words."""

from __future__ import annotations

import random
import re

from training.words import single_token_rule, split_words


def alphabetic_tokens(tokenizer) -> list[str]:
    """Every token that is letters only (with or without a leading space), as a pseudo-word."""
    words = set()
    for token_id in range(tokenizer.vocab_size):
        if tokenizer.is_special(token_id):
            continue
        raw = tokenizer.decode_single_token_bytes(token_id)
        if re.fullmatch(rb" ?[A-Za-z]+", raw):
            words.add(raw.decode("ascii").strip())
    return sorted(words)


def word_pools(tokenizer) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """``(train words, held-out words, alphabetic tokens)`` for this tokenizer; alphabetic tokens
    that spell a held-out word are left out (none do: such a word is a single token, so trains)."""
    train, heldout = split_words(single_token_rule(tokenizer))
    held = set(heldout)
    coverage = [w for w in alphabetic_tokens(tokenizer) if w.lower() not in held]
    return train, heldout, coverage


def one_token_words(tokenizer) -> list[str]:
    """The training words this tokenizer writes as one token (" banana", " house"). Spelling one
    of them means recalling the token's letters, with no pieces to read them from."""
    single_token = single_token_rule(tokenizer)
    return [w for w in word_pools(tokenizer)[0] if single_token(w)]


def pseudo_words(pieces: list[str], n: int, seed: int, exclude: set[str]) -> list[str]:
    """``n`` made-up words glued from alphabetic tokens (``ban`` + ``ory``), a third of them with
    a doubled letter where two pieces meet, and some strings of random letters: practice in
    spelling any sequence of tokens, not only the words of the list. None is in ``exclude``."""
    rng = random.Random(seed)
    pieces = sorted({p.lower() for p in pieces})
    by_first: dict[str, list[str]] = {}
    for piece in pieces:
        by_first.setdefault(piece[0], []).append(piece)
    words: set[str] = set()
    while len(words) < n:
        if rng.random() < 0.15:
            word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
        else:
            word = rng.choice(pieces)
            for _ in range(rng.randint(1, 2)):
                follow = by_first.get(word[-1]) if rng.random() < 0.35 else None
                word += rng.choice(follow or pieces)
        if 3 <= len(word) <= 12 and word not in exclude:
            words.add(word)
    return sorted(words)


def practice_words(tokenizer, seed: int, n_pseudo: int = 3000) -> list[str]:
    """Every alphabetic token plus made-up words: what the word skills practise on besides real words."""
    _, heldout, coverage = word_pools(tokenizer)
    return coverage + pseudo_words(coverage, n_pseudo, seed, exclude=set(heldout))
