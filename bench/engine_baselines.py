"""Reference generation loops the engine benchmark compares against, kept plain on purpose.

- ``recompute_greedy``: no cache at all; every step runs ``GPT.forward`` on the whole sequence.
- ``dynamic_cache_greedy``: the way nanochat's engine generates. The GPT's own modules run
  with a KV cache that grows by concatenation in chunks of 1024 positions; the prompt's
  forward computes the lm_head at every position and keeps the last; each step builds the
  rotary rows, q/k/v with three linears, the rotation with ``torch.cat``, and so on.

Both are greedy generators of token ids, so the benchmark can step them token by token in
lockstep with the engine and check that every engine produces the same tokens in fp32.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from model.gpt import GPT, apply_rotary, norm, softcap


@torch.inference_mode()
def recompute_greedy(gpt: GPT, prompt: list[int], max_tokens: int) -> Iterator[int]:
    ids = torch.tensor([prompt])
    for _ in range(max_tokens):
        token = int(gpt(ids)[:, -1].argmax(dim=-1))
        yield token
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)


class DynamicKVCache:
    """nanochat's cache: ``(layers, 2, B, heads, T, head_dim)``, grown by ``torch.cat``."""

    def __init__(self, n_layer: int, n_kv_head: int, head_dim: int):
        self.shape = [n_layer, 2, 1, n_kv_head, 0, head_dim]
        self.kv: torch.Tensor | None = None
        self.pos = 0

    def insert(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kv is None:
            self.kv = torch.empty(self.shape, dtype=k.dtype)
        t0, t1 = self.pos, self.pos + k.size(2)
        if t1 > self.kv.size(4):
            needed = (t1 + 1024 + 1023) & ~1023
            extra = list(self.kv.shape)
            extra[4] = needed - self.kv.size(4)
            self.kv = torch.cat([self.kv, torch.empty(extra, dtype=k.dtype)], dim=4).contiguous()
        self.kv[layer, 0, :, :, t0:t1] = k
        self.kv[layer, 1, :, :, t0:t1] = v
        if layer == self.kv.size(0) - 1:
            self.pos = t1
        return self.kv[layer, 0, :, :, :t1], self.kv[layer, 1, :, :, :t1]


def _forward_with_cache(gpt: GPT, ids: torch.Tensor, cache: DynamicKVCache) -> torch.Tensor:
    """``GPT.forward`` with a cache, module by module, as nanochat's model does it."""
    B, T = ids.shape
    t0 = cache.pos
    cos, sin = gpt.cos[None, t0 : t0 + T, None, :], gpt.sin[None, t0 : t0 + T, None, :]
    x = norm(gpt.transformer.wte(ids))
    for i, block in enumerate(gpt.transformer.h):
        attn = block.attn
        h = norm(x)
        q = attn.c_q(h).view(B, T, attn.n_head, attn.head_dim)
        k = attn.c_k(h).view(B, T, attn.n_kv_head, attn.head_dim)
        v = attn.c_v(h).view(B, T, attn.n_kv_head, attn.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        k, v = cache.insert(i, k, v)
        gqa = attn.n_head != attn.n_kv_head
        if T == k.size(2):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:  # one new token attends to everything before it
            y = F.scaled_dot_product_attention(q, k, v, is_causal=False, enable_gqa=gqa)
        x = x + attn.c_proj(y.transpose(1, 2).reshape(B, T, -1))
        x = x + block.mlp(norm(x))
    return softcap(gpt.lm_head(norm(x)))  # every position, as nanochat computes it


@torch.inference_mode()
def dynamic_cache_greedy(gpt: GPT, prompt: list[int], max_tokens: int) -> Iterator[int]:
    c = gpt.config
    cache = DynamicKVCache(c.n_layer, c.n_kv_head, c.head_dim)
    logits = _forward_with_cache(gpt, torch.tensor([prompt]), cache)[:, -1, :]
    for step in range(max_tokens):
        token = int(torch.argmax(logits, dim=-1))
        yield token
        if step + 1 < max_tokens:
            logits = _forward_with_cache(gpt, torch.tensor([[token]]), cache)[:, -1, :]
