"""Bits per byte: nanochat's vocabulary-independent loss, for any model glasschat loads, on any text.

A document is ``<|bos|>`` + its ordinary tokens, cut into consecutive non-overlapping windows of
``sequence_len + 1`` tokens (a last, shorter window counts if it has at least 2). A window's
inputs are its tokens but the last, its targets its tokens but the first. Then

    bpb = Σ nats over targets with a nonzero byte length / (ln 2 · Σ their byte lengths)

with byte lengths from ``Tokenizer.token_bytes`` (special tokens count 0 and are left out), the
sum nanochat's ``evaluate_bpb`` computes. Per-token loss depends on the vocabulary; loss per
byte of text does not, so two models with different tokenizers compare fairly.

The math is the model's own: ``GPT.final_hidden`` for the residual stream, ``GPT.head`` for the
logits. What this module adds is the shape that runs fast on a CPU: one forward per batch of
whole windows (no KV cache: every position is scored), and the lm_head taken a few rows at a
time, each chunk's softcap and cross-entropy computed while its logits are still in
cache, instead of materialising (B, T, vocab) fp32 and walking it several times in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# tokens per forward: several short windows share one forward, a long one runs alone
BATCH_TOKENS = 4096
# logits per chunk of the lm_head, in floats: 8 M floats is 32 MB, 128 rows at vocab 65536
CHUNK_LOGITS = 1 << 23


@dataclass
class ByteLoss:
    """Running sums of one measurement: ``nats`` over targets with a nonzero byte length,
    ``bytes`` those targets stand for, and ``tokens`` the targets scored (all of them)."""

    nats: float = 0.0
    bytes: int = 0
    tokens: int = 0

    @property
    def bpb(self) -> float:
        return self.nats / (math.log(2) * self.bytes) if self.bytes else math.inf

    def add(self, other: ByteLoss) -> None:
        self.nats += other.nats
        self.bytes += other.bytes
        self.tokens += other.tokens


def document_ids(tokenizer, text: str) -> list[int]:
    """A document as bits per byte reads it: ``<|bos|>`` then the text as ordinary tokens."""
    return [tokenizer.bos_id, *tokenizer.encode(text)]


def windows(ids: list[int], sequence_len: int) -> list[list[int]]:
    """Consecutive non-overlapping windows of ``sequence_len + 1`` tokens; a shorter last one
    only if it has at least 2 tokens (one input, one target)."""
    size = sequence_len + 1
    return [ids[i : i + size] for i in range(0, len(ids), size) if len(ids) - i >= 2]


@torch.inference_mode()
def target_nats(gpt, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-log p(target | inputs up to it)`` in nats, fp32, shape of ``targets`` (B, T)."""
    hidden = gpt.final_hidden(inputs)
    hidden = hidden.reshape(-1, hidden.size(-1))
    flat = targets.reshape(-1).to(hidden.device)
    nats = torch.empty(flat.numel(), dtype=torch.float32, device=hidden.device)
    rows = max(1, CHUNK_LOGITS // gpt.config.vocab_size)
    for start in range(0, flat.numel(), rows):
        end = start + rows
        logits = gpt.head(hidden[start:end])  # fp32 (rows, vocab)
        nats[start:end] = F.cross_entropy(logits, flat[start:end], reduction="none")
    return nats.view(targets.shape)


def token_bytes_tensor(tokenizer, device: torch.device | str = "cpu") -> torch.Tensor:
    """``Tokenizer.token_bytes`` as an int64 tensor, indexable by target ids."""
    return torch.tensor(tokenizer.token_bytes, dtype=torch.int64, device=device)


def _batches(windows_: list[list[int]], batch_tokens: int) -> Iterator[list[list[int]]]:
    """Windows of equal length grouped so that a batch holds about ``batch_tokens`` tokens."""
    i = 0
    while i < len(windows_):
        length = len(windows_[i])
        per_batch = max(1, batch_tokens // length)
        j = i
        while j < len(windows_) and j - i < per_batch and len(windows_[j]) == length:
            j += 1
        yield windows_[i:j]
        i = j


def measure_ids(
    model,
    token_bytes: torch.Tensor,
    ids: list[int],
    batch_tokens: int = BATCH_TOKENS,
    progress: Callable[[int], None] | None = None,
) -> ByteLoss:
    """The bits-per-byte sums of one tokenized document (``document_ids``), window by window.

    ``model`` is a ``GPT`` (several windows per forward), an ``Engine`` (its packed weights, int8
    included: what the chat runs) or a backend that scores given tokens with windows of its own
    (``RemoteBackend``: ``prompt_logprobs`` and ``score_window``), one window at a time.
    ``token_bytes`` comes from ``token_bytes_tensor``; ``progress`` is called with the number of
    targets scored after each batch."""
    device = token_bytes.device
    total, span = ByteLoss(), score_span(model) - 1
    if not isinstance(model, torch.nn.Module):
        for window in windows(ids, span):
            targets = torch.tensor(window[1:], dtype=torch.long, device=device)
            total.add(_byte_loss(_window_nats(model, window).to(device), targets, token_bytes))
            if progress is not None:
                progress(len(window) - 1)
        return total
    for batch in _batches(windows(ids, span), batch_tokens):
        window = torch.tensor(batch, dtype=torch.long, device=device)
        inputs, targets = window[:, :-1], window[:, 1:]
        total.add(_byte_loss(target_nats(model, inputs, targets), targets, token_bytes))
        if progress is not None:
            progress(targets.numel())
    return total


def _byte_loss(nats: torch.Tensor, targets: torch.Tensor, token_bytes: torch.Tensor) -> ByteLoss:
    """The sums of targets scored ``nats``: only those with a nonzero byte length carry loss."""
    lengths = token_bytes[targets]
    return ByteLoss(float((nats * (lengths > 0)).sum(dtype=torch.float64)), int(lengths.sum()), targets.numel())


def score_span(model) -> int:
    """Tokens per scored window: ``sequence_len + 1`` for a model run here (``sequence_len``
    inputs), or the ``score_window`` a backend that scores on a server says."""
    return model.score_window if hasattr(model, "score_window") else model.config.sequence_len + 1


def measure_text(gpt, tokenizer, text: str, **kwargs) -> ByteLoss:
    """Bits-per-byte sums of ``text`` as one document."""
    device = next(gpt.parameters()).device
    return measure_ids(gpt, token_bytes_tensor(tokenizer, device), document_ids(tokenizer, text), **kwargs)


def surprisal(model, ids: list[int]) -> list[float]:
    """Per token of ``ids`` after the first: its surprisal ``-log2 p`` given every token before
    it in its window (the windows ``windows`` cuts, so a sequence longer than the model's
    context restarts its context at each window; the first token of each window has no
    prediction and gets ``nan``). ``model`` is a ``GPT``, an ``Engine`` (its packed weights,
    int8 included: what the chat runs) or a backend that scores on a server (``RemoteBackend``),
    each in windows of its ``score_span``."""
    bits = []
    for window in windows(ids, score_span(model) - 1):
        if bits:
            bits.append(math.nan)  # this window's first token: predicted by nothing
        bits.extend((_window_nats(model, window) / math.log(2)).tolist())
    return bits + [math.nan] * (len(ids) - 1 - len(bits))  # a last window of one token


def _window_nats(model, window: list[int]) -> torch.Tensor:
    """-ln p of each token of ``window`` after the first, given the ones before it."""
    if isinstance(model, torch.nn.Module):
        tensor = torch.tensor([window], dtype=torch.long, device=next(model.parameters()).device)
        return target_nats(model, tensor[:, :-1], tensor[:, 1:])[0]
    if hasattr(model, "prompt_logprobs"):  # a backend that scores on a server
        return -torch.tensor(model.prompt_logprobs(window), dtype=torch.float64)
    logits = model.logits(window[:-1]).float()  # an Engine: (T-1, V)
    targets = torch.tensor(window[1:], dtype=torch.long, device=logits.device)
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
