"""What the engine says while it generates: the contract between ``model.Engine`` and its users
(the TUI, ``glasschat ask``, replay, evaluation, benchmarks).

``Engine.stream(prompt_ids, params, cancel=None)`` yields ``TokenEvent``s as tokens are produced
and ends each row with one ``Stop``. A stop token the model samples (``<|assistant_end|>`` or
``<|bos|>``) is yielded as a ``TokenEvent`` first, then the ``Stop``; a cancelled or truncated
reply ends with the ``Stop`` alone. This module has no torch import, so the TUI and tests can
build fake streams from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from glasschat.errors import UserError

StopReason = Literal["assistant_end", "bos", "max_tokens", "context_full", "cancelled"]
STOP_REASONS: tuple[str, ...] = ("assistant_end", "bos", "max_tokens", "context_full", "cancelled")


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token.

    temperature 0 is greedy; top_k 0 and top_p 1.0 turn those filters off; seed None draws a
    fresh seed per call, an int makes the call reproducible (same seed + prompt = same tokens);
    max_tokens bounds sampled + forced tokens per row; num_samples > 1 samples several rows in
    one batch from one prefill; top_alternatives > 0 reports that many most likely tokens with
    every sampled token (the TUI's token inspector asks for 5).
    """

    temperature: float = 0.6
    top_k: int = 50
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int = 256
    num_samples: int = 1
    top_alternatives: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("temperature", _is_real(self.temperature) and 0 <= self.temperature < math.inf,
             "must be a finite number >= 0 (0 is greedy)"),
            ("top_k", _is_int(self.top_k) and self.top_k >= 0, "must be an integer >= 0 (0 turns it off)"),
            ("top_p", _is_real(self.top_p) and 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("seed", self.seed is None or (_is_int(self.seed) and 0 <= self.seed <= MAX_SEED),
             f"must be an integer from 0 to {MAX_SEED}"),
            ("max_tokens", _is_int(self.max_tokens) and 1 <= self.max_tokens <= MAX_TOKENS,
             f"must be an integer from 1 to {MAX_TOKENS:,}"),
            ("num_samples", _is_int(self.num_samples) and 1 <= self.num_samples <= MAX_SAMPLES,
             f"must be an integer from 1 to {MAX_SAMPLES}"),
            ("top_alternatives", _is_int(self.top_alternatives) and self.top_alternatives >= 0, "must be >= 0"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise UserError(f"sampling parameter {name}={getattr(self, name)!r} {rule}")


MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed takes
MAX_TOKENS = 2**20  # a reply never exceeds the context (at most 2**17), so this only refuses nonsense
MAX_SAMPLES = 1024  # rows of one batch; each holds a KV cache


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One token produced by the engine.

    ``text`` is what this token adds to the reply's visible text, from the streaming UTF-8
    decoder: empty for special tokens and for a token that ends inside a multi-byte character
    (its bytes come out with a later token). ``forced`` is True for tokens the engine inserted
    (the calculator's ``<|output_start|> result <|output_end|>``), False for sampled ones.
    ``prob`` is the token's probability under the model (softmax of the logits at temperature
    1, before any filtering), None for forced tokens. ``top`` holds ``(id, prob)`` of the most
    likely tokens at that position, most likely first, when ``top_alternatives`` asked for them.
    ``row`` is the sample index when ``num_samples > 1``.
    """

    id: int
    text: str
    forced: bool
    prob: float | None = None
    top: tuple[tuple[int, float], ...] = ()
    row: int = 0


@dataclass(frozen=True, slots=True)
class GenerationStats:
    """Timings of one row. ``ttft_s``: from the call to the first token (prefill included)."""

    prompt_tokens: int
    generated_tokens: int
    ttft_s: float
    total_s: float

    @property
    def tokens_per_s(self) -> float:
        """Decode speed: tokens after the first over the time after the first."""
        decode_s = self.total_s - self.ttft_s
        if self.generated_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.generated_tokens - 1) / decode_s


@dataclass(frozen=True, slots=True)
class Stop:
    """The end of one row of generation, and why."""

    reason: StopReason
    stats: GenerationStats
    row: int = 0
