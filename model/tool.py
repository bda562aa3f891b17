"""The calculator's forcing rule, for every backend: watch a row's sampled tokens and, when a
``<|python_start|> expression <|python_end|>`` block closes, evaluate the expression with
``model.calculator`` and queue ``<|output_start|> result <|output_end|>`` as forced tokens.

The calculator always answers — its result, or an ``error: ...`` text — and the answer is
forced either way, so the model sees what became of its call. A model that does not take the
error in and makes the same failing call again would loop until ``max_tokens``: the second
identical failing call gets its error once more and then a forced ``<|assistant_end|>``, which
ends the reply (a backend stops on a forced ``<|assistant_end|>`` as on a sampled one).

The rule is host-side and torch-free, so the in-process engine and a backend that samples
elsewhere apply the same one. One ``ToolState`` per sample row: ``feed`` every sampled token
(never a forced one), then take the queued tokens from ``forced`` before sampling again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from model.calculator import calculate, is_error

MAX_TOOL_EXPRESSION_TOKENS = 256  # a python block longer than this is not evaluated


@dataclass
class ToolState:
    """One row's tool call in progress and the tokens it has queued."""

    tokenizer: object  # tokenizer.Tokenizer: special ids, decode, encode
    forced: deque = field(default_factory=deque)  # tokens to emit before sampling again
    python: list[int] | None = None  # tokens of an open <|python_start|> block
    failed: set[str] = field(default_factory=set)  # expressions whose call failed in this reply

    def __post_init__(self) -> None:
        special = self.tokenizer.special_ids
        self._python_start, self._python_end = special["<|python_start|>"], special["<|python_end|>"]
        self._output_start, self._output_end = special["<|output_start|>"], special["<|output_end|>"]
        self._assistant_end = special["<|assistant_end|>"]

    def feed(self, token: int) -> None:
        """Follow one sampled token; a closed, well-formed call queues its answer in ``forced``."""
        if token == self._python_start:
            self.python = []
        elif self.python is not None and token == self._python_end:
            expression, self.python = self.tokenizer.decode(self.python), None
            result = calculate(expression)
            self.forced.extend([self._output_start, *self.tokenizer.encode(result), self._output_end])
            if is_error(result):
                key = "".join(expression.split())
                if key in self.failed:
                    self.forced.append(self._assistant_end)  # the same failing call again: end the reply
                self.failed.add(key)
        elif self.python is not None:
            if self.tokenizer.is_special(token) or len(self.python) >= MAX_TOOL_EXPRESSION_TOKENS:
                self.python = None  # not a well-formed call: evaluate nothing
            else:
                self.python.append(token)
