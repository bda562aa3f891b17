"""The nanochat GPT (late-2025 architecture): the model definition, its config and its init.

Token embedding -> RMSNorm -> blocks of [RMSNorm -> attention -> residual, RMSNorm -> MLP ->
residual] -> RMSNorm -> untied lm_head -> logit softcap ``15·tanh(x/15)`` in fp32. RMSNorm has no
parameters, linears have no biases. Attention uses rotary embeddings (base 10000, rotate-half
layout, rotation by -θ, cos/sin tables rounded to bf16) applied *before* the QK RMSNorm, and
grouped-query attention (``n_kv_head`` divides ``n_head``). The MLP is ``relu(x)²`` with a 4×
hidden layer.

Parameter names are nanochat's (``transformer.wte``, ``transformer.h.{i}.attn.c_q`` …,
``lm_head``) so its checkpoints map one to one. This forward is the reference and the training
path; ``model.engine`` runs the same math with a KV cache for generation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from glasschat.errors import UserError

ROTARY_BASE = 10000
SOFTCAP = 15.0


@dataclass(frozen=True)
class GPTConfig:
    sequence_len: int = 1024
    vocab_size: int = 65536
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 1:
                raise UserError(f"model config field {field.name!r} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise UserError(f"model config: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise UserError(f"model config: n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}")
        if self.head_dim % 2:
            raise UserError(f"model config: head dimension n_embd/n_head={self.head_dim} must be even (rotary)")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, source: str = "model config") -> GPTConfig:
        """Build from a dict such as ``config.json``'s ``model`` field; ``source`` names it in errors."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: must be an object with fields {', '.join(f.name for f in fields(cls))}")
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise UserError(f"{source}: missing field(s) {', '.join(missing)}")
        try:
            return cls(**{name: data[name] for name in names})
        except UserError as error:
            raise UserError(f"{source}: {error}") from None


def norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dimension (eps = torch's default for the dtype)."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float = ROTARY_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of shape ``(seq_len, head_dim // 2)``, computed in fp32 and rounded to bf16.

    The rounding is part of the model: nanochat keeps its tables in bf16, so a checkpoint only
    decodes token for token like nanochat with the same rounded angles. Always on the CPU, so a
    model built on the meta device still gets real tables.
    """
    channels = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu")
    inv_freq = 1.0 / (base ** (channels / head_dim))
    t = torch.arange(seq_len, dtype=torch.float32, device="cpu")
    freqs = torch.outer(t, inv_freq)
    return freqs.cos().bfloat16(), freqs.sin().bfloat16()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of shape ``(B, T, heads, head_dim)`` by -θ in the rotate-half layout."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat([y1, y2], dim=-1).to(x.dtype)


def softcap(logits: torch.Tensor) -> torch.Tensor:
    """``15·tanh(x/15)`` in fp32: bounds the logits smoothly."""
    logits = logits.float()
    return SOFTCAP * torch.tanh(logits / SOFTCAP)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.c_q = nn.Linear(config.n_embd, config.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_head != self.n_kv_head)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """``gpt(ids)`` -> ``(B, T, vocab)`` fp32 logits; ``gpt(ids, targets, loss_mask)`` -> mean loss.

    Construction leaves torch's default init; call ``init_weights`` for nanochat's.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),
                "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            }
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        cos, sin = rotary_tables(config.sequence_len, config.head_dim)
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
        total = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, reduction="sum")
        return total / (targets != -1).sum().clamp(min=1)

    def final_hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """The normalised residual stream after the last block, (B, T, n_embd): what the lm_head
        reads. ``head(final_hidden(ids))`` is ``forward(ids)``; split so that a caller who needs
        the logits of many positions (bits per byte) can take the lm_head a chunk at a time
        instead of holding (B, T, vocab) fp32 at once."""
        B, T = ids.shape
        if T > self.config.sequence_len:
            raise ValueError(f"sequence of {T} tokens is longer than the model's sequence_len {self.config.sequence_len}")
        cos, sin = self.cos[None, :T, None, :], self.sin[None, :T, None, :]
        x = norm(self.transformer.wte(ids))
        for block in self.transformer.h:
            x = block(x, cos, sin)
        return norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """fp32 logits for rows of ``final_hidden``'s output (any leading shape)."""
        logits = self.lm_head(hidden)
        if torch.is_grad_enabled():
            return softcap(logits)
        # no graph to keep: squash the fresh logits in place instead of allocating two more
        # (B, T, vocab) tensors, the largest in the forward
        return logits.float().div_(SOFTCAP).tanh_().mul_(SOFTCAP)

    @torch.no_grad()
    def init_weights(self, seed: int | None = None, zero_outputs: bool = True) -> GPT:
        """nanochat's init: linears ``N(0, 1/sqrt(fan_in) · min(1, sqrt(fan_out/fan_in)))``,
        embedding ``N(0, 1)``.

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
