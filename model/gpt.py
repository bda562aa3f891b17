"""The nanochat GPT, every generation of it: the model definition and its init (its config,
``GPTConfig``, lives in ``model.config``, which needs no torch).

Token embedding -> RMSNorm -> blocks of [RMSNorm -> attention -> residual, RMSNorm -> MLP ->
residual] -> RMSNorm -> untied lm_head -> logit softcap ``s·tanh(x/s)`` in fp32. RMSNorm has no
parameters, linears have no biases. Attention uses rotary embeddings (rotate-half layout,
rotation by -θ) applied *before* the QK RMSNorm, and grouped-query attention (``n_kv_head``
divides ``n_head``). The MLP is ``relu(x)²`` with a 4× hidden layer.

That is the late-2025 architecture, and a config with only the six size fields describes it.
nanochat's 2026 generations add features that the config carries as plain fields (the importer
fills them from a checkpoint's keys and meta; this module never asks which generation it is):

- ``vocab_pad_to``: embedding and lm_head rows padded to a multiple; the logits are sliced back
  to ``vocab_size``.
- ``windows``: per layer, how many earlier positions a position may attend to (sliding-window
  attention; a value of at least ``sequence_len - 1`` is full attention). Empty: all full.
- ``lambdas``: before block i, ``x = resid_lambdas[i]·x + x0_lambdas[i]·x0`` (x0: the normed,
  smeared embedding).
- ``value_embed_layers``: layers whose values get ``ve_gate_scale·sigmoid(ve_gate(x[:, :c]))·ve``
  added, ``ve`` a per-layer embedding of the token (``c = ve_gate_channels``).
- ``qk_scale``: q and k multiplied after the QK norm; ``rotary_base``; ``rotary_bf16`` (tables
  rounded to bf16, as nanochat keeps them until it computes in fp32 on a CPU); ``softcap``.
- ``smear_channels``: each position adds ``smear_lambda·sigmoid(smear_gate(x[:, :c]))`` times the
  previous position's normed embedding.
- ``backout_layer``: the residual after that block, times ``backout_lambda``, is subtracted
  before the final norm (-1: none).

Parameter names are nanochat's (``transformer.wte``, ``transformer.h.{i}.attn.c_q`` …,
``lm_head``, ``value_embeds.{i}``, ``resid_lambdas`` …) so its checkpoints map one to one. This
forward is the reference and the training path; ``model.engine`` runs the same math with a KV
cache for generation.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import ROTARY_BASE, SOFTCAP, SIZE_FIELDS, GPTConfig  # noqa: F401  (their home is model.config)


def norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dimension (eps = torch's default for the dtype)."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float = ROTARY_BASE, bf16: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of shape ``(seq_len, head_dim // 2)``, computed in fp32, rounded to bf16
    when ``bf16``.

    The rounding is part of the model: nanochat keeps its tables in its compute dtype (bf16 up
    to early 2026; fp32 on a CPU since), so a checkpoint only decodes token for token like
    nanochat with the same rounded angles. Always on the CPU, so a model built on the meta
    device still gets real tables.
    """
    channels = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu")
    inv_freq = 1.0 / (base ** (channels / head_dim))
    t = torch.arange(seq_len, dtype=torch.float32, device="cpu")
    freqs = torch.outer(t, inv_freq)
    cos, sin = freqs.cos(), freqs.sin()
    return (cos.bfloat16(), sin.bfloat16()) if bf16 else (cos, sin)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of shape ``(B, T, heads, head_dim)`` by -θ in the rotate-half layout."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat([y1, y2], dim=-1).to(x.dtype)


def softcap(logits: torch.Tensor, cap: float = SOFTCAP) -> torch.Tensor:
    """``cap·tanh(x/cap)`` in fp32: bounds the logits smoothly."""
    logits = logits.float()
    return cap * torch.tanh(logits / cap)


def window_mask(T: int, window: int, device=None) -> torch.Tensor | None:
    """The (T, T) attention mask of a causal window (position i sees j with i-window <= j <= i),
    or None where the window does not bind and plain causal attention is the same."""
    if window >= T - 1:
        return None
    i = torch.arange(T, device=device).unsqueeze(1)
    j = torch.arange(T, device=device).unsqueeze(0)
    return (j <= i) & (i - j <= window)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.qk_scale = config.qk_scale
        self.c_q = nn.Linear(config.n_embd, config.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        if layer in config.value_embed_layers:
            self.ve_gate_channels, self.ve_gate_scale = config.ve_gate_channels, config.ve_gate_scale
            self.ve_gate = nn.Linear(config.ve_gate_channels, config.n_kv_head, bias=False)

    def qkv(self, x, cos, sin, ve=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, n_head, T, D), keys and values (B, n_kv_head, T, D) as attention reads
        them: rotated, QK-normed and scaled, the values with their value embedding. One method
        for the forward and for ``model.attention``'s probe, so the probe's weights are the
        model's own."""
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:  # value embedding, mixed in by a per-head gate that reads the input's first channels
            gate = self.ve_gate_scale * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
        if self.qk_scale != 1:
            q, k = q * self.qk_scale, k * self.qk_scale
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, x, cos, sin, mask=None, ve=None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x, cos, sin, ve)
        gqa = self.n_head != self.n_kv_head
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int = 0):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask=None, ve=None) -> torch.Tensor:
        x = x + self.attn(norm(x), cos, sin, mask, ve)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """``gpt(ids)`` -> ``(B, T, vocab)`` fp32 logits; ``gpt(ids, targets, loss_mask)`` -> mean loss.

    Construction leaves torch's default init; call ``init_weights`` for nanochat's.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        rows = c.padded_vocab_size
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(rows, c.n_embd),
                "h": nn.ModuleList(Block(c, i) for i in range(c.n_layer)),
            }
        )
        self.lm_head = nn.Linear(c.n_embd, rows, bias=False)
        if c.lambdas:
            self.resid_lambdas = nn.Parameter(torch.ones(c.n_layer))
            self.x0_lambdas = nn.Parameter(torch.zeros(c.n_layer))
        if c.smear_channels:
            self.smear_gate = nn.Linear(c.smear_channels, 1, bias=False)
            self.smear_lambda = nn.Parameter(torch.zeros(1))
        if c.backout_layer >= 0:
            self.backout_lambda = nn.Parameter(torch.full((1,), 0.2))
        if c.value_embed_layers:
            self.value_embeds = nn.ModuleDict(
                {str(i): nn.Embedding(rows, c.n_kv_head * c.head_dim) for i in sorted(c.value_embed_layers)}
            )
        cos, sin = rotary_tables(c.sequence_len, c.head_dim, c.rotary_base, c.rotary_bf16)
        # derived from the config, so not saved; buffers so that .to(device) moves them
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for ``ids`` (B, T), or with ``targets`` (B, T) the mean cross-entropy.

        The loss counts only positions where ``loss_mask`` is 1 (all positions when it is None)
        and targets are not -1; the others contribute nothing, to the value or the gradient.
        With no counted position the loss is 0.
        """
        logits = self.head(self.final_hidden(ids))
        if targets is None:
            return logits
        if loss_mask is not None:
            targets = targets.masked_fill(loss_mask == 0, -1)
        total = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, reduction="sum")
        return total / (targets != -1).sum().clamp(min=1)

    def final_hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """The normalised residual stream after the last block, (B, T, n_embd): what the lm_head
        reads. ``head(final_hidden(ids))`` is ``forward(ids)``; split so that a caller who needs
        the logits of many positions (bits per byte) can take the lm_head a chunk at a time
        instead of holding (B, T, vocab) fp32 at once."""
        c = self.config
        B, T = ids.shape
        if T > c.sequence_len:
            raise ValueError(f"sequence of {T} tokens is longer than the model's sequence_len {c.sequence_len}")
        cos, sin = self.cos[None, :T, None, :], self.sin[None, :T, None, :]
        masks = {w: window_mask(T, w, ids.device) for w in {c.window(i) for i in range(c.n_layer)}}
        x = norm(self.transformer.wte(ids))
        if c.smear_channels and T > 1:  # each position takes a gated share of the previous one's embedding
            gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[:, 1:, : c.smear_channels]))
            x = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1)
        x0, x_backout = x, None
        for i, block in enumerate(self.transformer.h):
            if c.lambdas:
                x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](ids).to(x.dtype) if i in c.value_embed_layers else None
            x = block(x, cos, sin, masks[c.window(i)], ve)
            if i == c.backout_layer:
                x_backout = x
        if x_backout is not None:
            x = x - self.backout_lambda * x_backout
        return norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """fp32 logits for rows of ``final_hidden``'s output (any leading shape), ``vocab_size``
        wide: the padded vocabulary's extra rows are cut before the softcap, so no softmax or
        loss ever sees them."""
        c = self.config
        logits = self.lm_head(hidden)[..., : c.vocab_size]
        if torch.is_grad_enabled():
            return softcap(logits, c.softcap)
        # no graph to keep: squash the fresh logits in place instead of allocating two more
        # (B, T, vocab) tensors, the largest in the forward
        return logits.float().div_(c.softcap).tanh_().mul_(c.softcap)

    @torch.no_grad()
    def init_weights(self, seed: int | None = None, zero_outputs: bool = True) -> GPT:
        """nanochat's init: linears ``N(0, 1/sqrt(fan_in) · min(1, sqrt(fan_out/fan_in)))``,
        embeddings ``N(0, 1)``; lambdas at their neutral values (1, 0), backout 0.2.

        ``zero_outputs`` (nanochat's choice for training) zeroes ``lm_head`` and every ``c_proj``,
        so each block starts as the identity and the first logits are uniform. Tests and
        benchmarks pass ``zero_outputs=False`` to draw those from the same rule instead: a model
        with zero outputs predicts nothing, and any test on it would pass trivially.
        """
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed if seed is not None else torch.seed())
        for module in self.modules():
            if isinstance(module, nn.Linear):
                fan_out, fan_in = module.weight.shape
                std = 1.0 / math.sqrt(fan_in) * min(1.0, math.sqrt(fan_out / fan_in))
                _fill_normal(module.weight, std, generator)
            elif isinstance(module, nn.Embedding):
                _fill_normal(module.weight, 1.0, generator)
        if self.config.lambdas:
            self.resid_lambdas.fill_(1.0)
            self.x0_lambdas.zero_()
        if self.config.smear_channels:
            self.smear_lambda.zero_()
        if self.config.backout_layer >= 0:
            self.backout_lambda.fill_(0.2)
        if zero_outputs:
            self.lm_head.weight.zero_()
            for block in self.transformer.h:
                block.attn.c_proj.weight.zero_()
                block.mlp.c_proj.weight.zero_()
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _fill_normal(weight: torch.Tensor, std: float, generator: torch.Generator) -> None:
    # drawn on the CPU so the same seed gives the same weights on every device
    weight.copy_(torch.empty(weight.shape, dtype=torch.float32).normal_(0.0, std, generator=generator))
