"""``Tokenizer``: the runtime over ``tiktoken.Encoding`` — encode, decode, render conversations.

``encode`` treats its input as ordinary text only: a user who types ``<|assistant_end|>`` gets the
ordinary tokens of those characters, never the special id. Special tokens enter a sequence only
through ``encode_special`` and conversation rendering.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import tiktoken

from glasschat.errors import UserError
from tokenizer import conversation as conv
from tokenizer.files import load_tokenizer_files, save_tokenizer_files
from tokenizer.patterns import pattern_problem
from tokenizer.specials import SPECIAL_TOKENS, special_ids
from tokenizer.stream import StreamDecoder


class Tokenizer:
    def __init__(self, ranks: dict[bytes, int], pattern: str, name: str = "glasschat", source: str = "tokenizer"):
        # checked here, the one door every tokenizer comes through (files, nanochat pickles,
        # training): tiktoken panics on first use, not at construction, on either problem
        problem = pattern_problem(pattern)
        if problem is None:
            missing = [b for b in range(256) if bytes([b]) not in ranks]
            if missing:
                problem = (f"lacks the single-byte token(s) {', '.join(f'0x{b:02X}' for b in missing[:4])}"
                           f"{' …' if len(missing) > 4 else ''}: every byte needs a token of its own")
        if problem is not None:
            raise UserError(f"{source}: {problem}")
        self.pattern = pattern
        self.special_ids = special_ids(len(ranks))
        self._ranks = ranks
        self._encoding = tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=self.special_ids
        )
        self._special_names = {i: name for name, i in self.special_ids.items()}
        self._threads = max(1, min(8, os.cpu_count() or 1))

    # ---- construction and files

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], pattern: str) -> Tokenizer:
        return cls(dict(ranks), pattern)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        ranks, pattern, _ = load_tokenizer_files(directory)
        return cls(ranks, pattern, name=Path(directory).name or "glasschat", source=str(Path(directory)))

    @classmethod
    def from_nanochat_pickle(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a nanochat ``tokenizer.pkl`` without unpickling arbitrary objects."""
        from tokenizer.nanochat_pickle import load_encoding_state

        state = load_encoding_state(path)
        ranks = state["mergeable_ranks"]
        if state["special_tokens"] != special_ids(len(ranks)):
            raise UserError(f"{path}: special tokens must be exactly {', '.join(SPECIAL_TOKENS)} "
                            f"with ids {len(ranks)}..{len(ranks) + len(SPECIAL_TOKENS) - 1}")
        return cls(ranks, state["pat_str"], name=state["name"], source=str(path))

    def save(self, directory: str | os.PathLike) -> None:
        save_tokenizer_files(directory, self._ranks, self.pattern)

    # ---- vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._ranks) + len(SPECIAL_TOKENS)

    @property
    def bos_id(self) -> int:
        return self.special_ids["<|bos|>"]

    def encode_special(self, name: str) -> int:
        try:
            return self.special_ids[name]
        except KeyError:
            raise UserError(f"unknown special token {name!r}; known: {', '.join(SPECIAL_TOKENS)}") from None

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_names

    def special_name(self, token_id: int) -> str | None:
        """The name of a special token id, or None for an ordinary token."""
        return self._special_names.get(token_id)

    @property
    def ranks(self) -> dict[bytes, int]:
        """The BPE tokens: token bytes -> id (``0..n-1``). Read it, never change it."""
        return self._ranks

    def decode_single_token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token's bytes are its name)."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} out of range 0..{self.vocab_size - 1}")
        return self._encoding.decode_single_token_bytes(token_id)

    @functools.cached_property
    def token_bytes(self) -> tuple[int, ...]:
        """Bytes per token id, the way nanochat counts them for bits per byte: 0 for a special
        token, else the UTF-8 length of the token decoded to text. A token holding only part of
        a multi-byte character decodes to U+FFFD and so counts 3, as in nanochat's
        ``token_bytes.pt`` — the same definition keeps bits per byte comparable with nanochat's."""
        lengths = []
        for token_id in range(self.vocab_size):
            if token_id in self._special_names:
                lengths.append(0)
            else:
                raw = self._encoding.decode_single_token_bytes(token_id)
                lengths.append(len(raw) if raw.isascii() else len(raw.decode("utf-8", "replace").encode("utf-8")))
        return tuple(lengths)

    # ---- text

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._encoding.encode_ordinary_batch(texts, num_threads=self._threads)

    def decode(self, ids: list[int]) -> str:
        return self._encoding.decode(ids, errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self._encoding.decode_single_token_bytes, self._special_names)

    # ---- conversations

    def render_conversation(self, conversation: dict, max_tokens: int | None = None) -> conv.Rendered:
        """``(ids, mask)`` of a whole conversation; see ``tokenizer.conversation`` for the rules."""
        return conv.render(conv.normalize(conversation), self.encode, self.encode_special, max_tokens)

    def render_for_completion(self, conversation: dict) -> list[int]:
        """The prompt for the next assistant reply: drops a final assistant turn, ends with
        ``<|assistant_start|>``."""
        messages = conv.normalize(conversation)
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        ids = conv.render(messages, self.encode, self.encode_special).ids
        return ids + [self.encode_special("<|assistant_start|>")]

    def regions(self, ids: list[int]) -> list[str]:
        """Per token: ``none``, ``user``, ``assistant``, ``python`` or ``output``."""
        return conv.regions(ids, self._special_names)

    def parse_assistant(self, ids: list[int]) -> str | list[dict]:
        """The content of one generated assistant turn: a string, or parts when it used the tool."""
        return conv.parse_assistant(ids, self._special_names, self.decode)
