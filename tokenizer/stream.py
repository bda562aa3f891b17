"""Streaming decoding: token ids in, text out, one token at a time.

A BPE token can end in the middle of a multi-byte UTF-8 character (CJK, emoji); decoding each
token on its own would print U+FFFD for both halves. The decoder feeds each token's bytes to an
incremental UTF-8 decoder, so a character comes out whole with the token that completes it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Container


class StreamDecoder:
    """Turn a stream of token ids into text deltas.

    ``feed(id)`` returns the text this token completes ('' while a character is still partial,
    and always '' for a special token: specials never come out as text). A special token ends
    any partial character first (its bytes become U+FFFD), so text never joins across it.
    ``flush()`` returns what is left at the end of the stream.
    """

    def __init__(self, token_bytes: Callable[[int], bytes], special_ids: Container[int]):
        self._token_bytes = token_bytes
        self._special_ids = special_ids
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        if token_id in self._special_ids:
            return self.flush()
        return self._decoder.decode(self._token_bytes(token_id))

    def flush(self) -> str:
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text
