"""What a token looked at: the attention weights of one query position, by an exact reference forward.

For a query position ``p`` of a sequence, ``weights[layer][head][key]`` is the softmax over keys
``0..p`` of ``q_p · k_key / sqrt(head_dim)``, the keys outside the layer's sliding window given
no weight: the probabilities the model's attention mixed its values with. The queries and keys
are the model's own (``CausalSelfAttention.qkv``, recorded while ``GPT.final_hidden`` runs), so
rotary, QK norm, the q/k scaling, value embeddings, smear and lambdas upstream of each layer are
whatever the model's generation does; grouped-query heads read their kv head as the forward's
attention does (each kv head serves ``n_head / n_kv_head`` consecutive query heads).

This is a slow path on purpose, never used to generate: the forward runs in fp32 on the
checkpoint's weights (``model.checkpoint.load_model``), once per conversation, and keeps the
queries and keys of every position, so another query position of the same tokens costs one row
of scores. Past ``MAX_COST`` (parameters × tokens) it refuses with a notice instead of tying the
CPU up for many seconds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from glasschat.errors import UserError
from model.gpt import GPT, GPTConfig

# parameters × tokens beyond which the probe says no: about 2·4e10 FLOPs, a second or two of a
# CPU core. The bundled model over 500 tokens is ~2e9; nanochat's d20 (~560M) passes up to ~70.
MAX_COST = 4e10


class AttentionTooCostly(UserError):
    """The model and the conversation are too large to compute attention quickly."""


def cost(config: GPTConfig, tokens: int) -> float:
    """What the probe's forward over ``tokens`` costs, in parameters × tokens."""
    return float(config.parameters) * tokens


def check_request(config: GPTConfig, ids: list[int], position: int) -> None:
    """A one-line ``UserError`` for a request the probe cannot or will not answer."""
    if not ids:
        raise UserError("attention: no tokens")
    if not 0 <= position < len(ids):
        raise UserError(f"attention: position {position} is outside the {len(ids)} tokens")
    if len(ids) > config.sequence_len:
        raise UserError(f"attention: the conversation is {len(ids)} tokens, longer than the model's "
                        f"{config.sequence_len}-token context")
    if cost(config, len(ids)) > MAX_COST:
        raise AttentionTooCostly(
            f"attention: this model ({config.parameters / 1e6:.0f}M parameters) over {len(ids)} tokens is too large "
            f"to compute quickly here ({cost(config, len(ids)):.1e} parameters × tokens, the limit is {MAX_COST:.0e})")


@dataclass(frozen=True)
class QueriesKeys:
    """Per layer, the queries (n_head, T, D) and keys (n_kv_head, T, D) of one forward over ``ids``."""

    ids: tuple[int, ...]
    queries: list[torch.Tensor]
    keys: list[torch.Tensor]


@torch.inference_mode()
def queries_and_keys(gpt: GPT, ids: list[int]) -> QueriesKeys:
    """One forward of ``gpt`` over ``ids`` that records what each layer's attention read."""
    queries, keys = [], []
    attns = [block.attn for block in gpt.transformer.h]

    def recording(attn):
        def qkv(*args, **kwargs):
            q, k, v = type(attn).qkv(attn, *args, **kwargs)
            queries.append(q[0].float())
            keys.append(k[0].float())
            return q, k, v
        return qkv

    device = next(gpt.parameters()).device
    try:
        for attn in attns:  # an instance attribute shadows the method for this forward only
            attn.qkv = recording(attn)
        gpt.final_hidden(torch.tensor([ids], dtype=torch.long, device=device))
    finally:
        for attn in attns:
            attn.__dict__.pop("qkv", None)
    return QueriesKeys(tuple(ids), queries, keys)


def weights_at(qk: QueriesKeys, config: GPTConfig, position: int) -> torch.Tensor:
    """(n_layer, n_head, position + 1) fp32: each head's softmax over the keys up to ``position``."""
    rows = []
    group = config.n_head // config.n_kv_head
    for layer, (q, k) in enumerate(zip(qk.queries, qk.keys)):
        keys = k[:, : position + 1].repeat_interleave(group, dim=0)  # (n_head, P, D): head h reads kv head h // group
        scores = torch.einsum("hd,hpd->hp", q[:, position], keys) / math.sqrt(config.head_dim)
        window = config.window(layer)
        if position - window > 0:  # keys more than ``window`` positions back are outside the window
            scores[:, : position - window] = float("-inf")
        rows.append(torch.softmax(scores, dim=-1))
    return torch.stack(rows)


class AttentionProbe:
    """Answers ``attention(ids, position)`` for one model, loading its ``GPT`` (``load_gpt``) on the
    first request and keeping the last forward's queries and keys: moving to another token of
    the same conversation, or of one that only grew after it, needs no forward."""

    def __init__(self, config: GPTConfig, load_gpt: Callable[[], GPT]) -> None:
        self.config = config
        self._load_gpt = load_gpt
        self._gpt: GPT | None = None
        self._last: QueriesKeys | None = None
        self._lock = threading.Lock()  # one forward at a time; the recording hooks are per instance

    def attention(self, ids: list[int], position: int) -> list[list[list[float]]]:
        """``weights[layer][head][key]`` for the token at ``position`` of ``ids``, keys ``0..position``."""
        ids = [int(i) for i in ids]
        check_request(self.config, ids, position)
        with self._lock:
            last = self._last
            if last is None or len(last.ids) <= position or list(last.ids[: position + 1]) != ids[: position + 1]:
                if self._gpt is None:
                    self._gpt = self._load_gpt()
                last = self._last = queries_and_keys(self._gpt, ids)
            return weights_at(last, self.config, position).tolist()


def engine_probe(engine, directory) -> AttentionProbe:
    """A probe for the model an ``Engine`` runs: its ``GPT`` where it was built from one, else the
    checkpoint in ``directory`` loaded in fp32 (an int8 checkpoint dequantized)."""
    def load() -> GPT:
        if engine.gpt is not None:
            return engine.gpt
        if directory is None:
            raise UserError("attention needs the model's weights: this backend was not loaded from a checkpoint")
        from model.checkpoint import load_model

        return load_model(directory)[0]

    return AttentionProbe(engine.config, load)
