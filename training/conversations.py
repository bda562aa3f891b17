"""The mixture of skill conversations the chat model is fine-tuned on, single- and multi-turn.

``ConversationSource(split, words, extra_words)`` draws conversations deterministically from
a seeded ``random.Random``: the same seed gives the same conversations. Multi-turn
conversations mix skills and include follow-ups that only make sense with the earlier turns
("now reverse it", "multiply that by 3"), so the model learns to use its context.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from training import arithmetic, calc_errors, chats, math_skills, small_talk, word_extras, word_skills
from training.phrasing import Split
from training.word_skills import WORD_SKILLS

# single-turn kinds and their share of conversations (multi-turn has its own share)
MIXTURE: dict[str, float] = {
    "greeting": 3, "identity": 3, "capabilities": 3, "how_are_you": 1.5, "thanks": 1.5, "goodbye": 1.5,
    "out_of_scope": 6, "arithmetic": 18, "spell": 14, "count": 16, "reverse": 14, "multi_turn": 18.5,
    # issue 17: the skills people try first, and chats that switch skill every turn
    "power": 4, "percent": 4, "sqrt": 3, "letters": 5, "palindrome": 4, "long_word": 6, "acknowledge": 1.5,
    "chat": 24,
    # a request the calculator refuses, answered honestly (no invented number, no second call)
    "calc_error": 2,
}
LONG_WORD_SHARE = 0.15  # of the words in a chat: long words (13-20 letters)


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(content) -> dict:
    return {"role": "assistant", "content": content}


class ConversationSource:
    """Draws conversations of one split.

    ``words`` are the words the word skills ask about; ``extra_words`` (optional) are pseudo-words
    — every alphabetic token of the tokenizer — that the word skills also practise on, drawn for
    a share ``extra_share`` of word questions, so the model learns the letters of every token.
    """

    def __init__(self, split: Split, words: Sequence[str], extra_words: Sequence[str] = (),
                 extra_share: float = 0.2, mixture: dict[str, float] | None = None):
        if not words:
            raise ValueError("no words to ask about")
        self.split = split
        self.words = list(words)
        self.extra_words = list(extra_words)
        self.extra_share = extra_share if extra_words else 0.0
        mixture = mixture or MIXTURE
        self.kinds, self.weights = list(mixture), list(mixture.values())

    def word(self, rng: random.Random) -> str:
        if self.extra_words and rng.random() < self.extra_share:
            return rng.choice(self.extra_words)
        return rng.choice(self.words)

    def conversation(self, rng: random.Random, kind: str | None = None) -> dict:
        kind = kind or rng.choices(self.kinds, weights=self.weights)[0]
        if kind == "multi_turn":
            return {"messages": self._multi_turn(rng)}
        if kind == "chat":
            # mostly 3-6 requests like the eval's chats, some longer: a chat in the app keeps going
            turns = rng.choice((3, 4, 4, 5, 5, 6, 6, 8, 10))
            return {"messages": chats.chat(rng, self.split, self.chat_word, turns)[0]}
        return {"messages": self._exchange(rng, kind)[0]}

    def chat_word(self, rng: random.Random) -> str:
        """A word for a chat: mostly this source's words, some long words of the split."""
        long_words = word_extras.long_words()[0 if self.split == "train" else 1]
        return rng.choice(long_words) if rng.random() < LONG_WORD_SHARE else self.word(rng)

    def conversations(self, n: int, seed: int) -> list[dict]:
        rng = random.Random(seed)
        return [self.conversation(rng) for _ in range(n)]

    # ---- pieces

    def _exchange(self, rng: random.Random, kind: str) -> tuple[list[dict], dict]:
        """Messages of one exchange and what a follow-up could refer to."""
        if kind == "arithmetic":
            user, parts, problem = arithmetic.exchange(rng, self.split)
            return [_user(user), _assistant(parts)], {"value": problem.value}
        if kind in WORD_SKILLS:
            word = self.word(rng)
            turn = word_skills.exchange(rng, kind, word, self.split)
            return [_user(turn.user), _assistant(turn.reply)], {"word": word}
        if kind == "calc_error":  # nothing for "that" to refer to afterwards: there was no result
            user, parts, _ = calc_errors.exchange(rng, self.split)
            return [_user(user), _assistant(parts)], {}
        if kind in math_skills.MATH_SKILLS:
            user, parts, problem = math_skills.exchange(rng, kind, self.split)
            return [_user(user), _assistant(parts)], {"value": problem.value}
        if kind == "long_word":
            word = rng.choice(word_extras.long_words()[0 if self.split == "train" else 1])
            turn = word_skills.exchange(rng, rng.choice(WORD_SKILLS), word, self.split)
            return [_user(turn.user), _assistant(turn.reply)], {"word": word}
        if kind in word_extras.EXTRA_SKILLS:
            word = self.word(rng)
            if kind == "palindrome":
                word = word_extras.palindrome_word(rng, [word], self.split)
            turn = word_extras.exchange(rng, kind, word, self.split)
            return [_user(turn.user), _assistant(turn.reply)], {"word": word}
        user, reply = small_talk.exchange(rng, kind, self.split)
        return [_user(user), _assistant(reply)], {}

    def _multi_turn(self, rng: random.Random) -> list[dict]:
        messages: list[dict] = []
        context: dict = {}
        if rng.random() < 0.25:
            messages += self._exchange(rng, "greeting")[0]
        # mostly short chats, some long ones: a chat in the app keeps going for many turns
        for _ in range(rng.choices((2, 3, 4, 5, 6, 7), weights=(30, 25, 18, 12, 9, 6))[0]):
            value, word = context.get("value"), context.get("word")
            if isinstance(value, int) and abs(value) < 10**6 and rng.random() < 0.6:
                user, parts, problem = arithmetic.follow_up(rng, value, self.split)
                turn, context = [_user(user), _assistant(parts)], {"value": problem.value}
            elif word is not None and rng.random() < 0.6:
                follow = word_skills.follow_up(rng, word, self.split)
                turn = [_user(follow.user), _assistant(follow.reply)]
            else:
                kind = rng.choices(("arithmetic", *WORD_SKILLS, "out_of_scope", "identity", "thanks", "capabilities"),
                                   weights=(30, 20, 20, 20, 5, 3, 3, 2))[0]
                turn, found = self._exchange(rng, kind)
                context = found or context  # small talk in between keeps what "it" refers to
            messages += turn
        if rng.random() < 0.3:
            messages += self._exchange(rng, rng.choice(("thanks", "goodbye")))[0]
        return messages
