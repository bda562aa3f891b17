"""The calculator's forcing rule, for every backend: watch a row's sampled tokens and, when a
``<|python_start|> expression <|python_end|>`` block closes, evaluate the expression with
``model.calculator`` and queue ``<|output_start|> result <|output_end|>`` as forced tokens.

The rule is host-side and torch-free, so the in-process engine and a backend that samples
elsewhere apply the same one. One ``ToolState`` per sample row: ``feed`` every sampled token
(never a forced one), then take the queued tokens from ``forced`` before sampling again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from model.calculator import calculate

MAX_TOOL_EXPRESSION_TOKENS = 256  # a python block longer than this is not evaluated


@dataclass
class ToolState:
    """One row's tool call in progress and the tokens it has queued."""

    tokenizer: object  # tokenizer.Tokenizer: special ids, decode, encode
    forced: deque = field(default_factory=deque)  # tokens to emit before sampling again
    python: list[int] | None = None  # tokens of an open <|python_start|> block

    def __post_init__(self) -> None:
        special = self.tokenizer.special_ids
        self._python_start, self._python_end = special["<|python_start|>"], special["<|python_end|>"]
        self._output_start, self._output_end = special["<|output_start|>"], special["<|output_end|>"]

    def feed(self, token: int) -> None:
        """Follow one sampled token; a closed, well-formed call queues its result in ``forced``."""
        if token == self._python_start:
            self.python = []
        elif self.python is not None and token == self._python_end:
            expression, self.python = self.tokenizer.decode(self.python), None
            result = calculate(expression)
            if result is not None:
                self.forced.extend([self._output_start, *self.tokenizer.encode(result), self._output_end])
        elif self.python is not None:
            if self.tokenizer.is_special(token) or len(self.python) >= MAX_TOOL_EXPRESSION_TOKENS:
                self.python = None  # not a well-formed call: evaluate nothing
            else:
                self.python.append(token)
