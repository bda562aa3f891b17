"""The streaming generation engine: a static KV cache, sampling on the device, the calculator tool.

``Engine(gpt, tokenizer).stream(prompt_ids, params, cancel)`` yields ``TokenEvent``s as tokens
are produced and one ``Stop`` per row (see ``model.events``). The model's math is
``model.gpt``'s; this module runs it in the shape that decodes fast on a CPU:

- The KV cache is allocated once per call, sized to the prompt plus ``max_tokens`` (at most
  ``sequence_len``), and written in place. Prefill runs the prompt once and computes the lm_head
  for its last position only. ``num_samples`` rows share one prefill and then decode as a batch.
- Few torch calls per layer: at batch 1 a small model's decode step costs its weights'
  bandwidth plus a few microseconds per call, more than the arithmetic. The weights are re-laid
  out once, when the engine is made: q, k and v fused into one matrix, and every matrix with at
  least as many outputs as inputs stored transposed, the layout a matrix-vector product streams
  fastest. Within each q/k head the two rotary halves are interleaved, so the rotation is one
  complex multiply (attention scores and the QK norm do not depend on the order of a head's
  channels). A layer writes only into buffers made once per call (``_Scratch``: the fused q/k/v
  projection, rotated and normalised in place, and the MLP's hidden layer) and into the residual
  stream, which the output projections update in place.
- RMSNorm runs as ``x/|x|``, its ``sqrt(n)`` folded into the weights that read the result (and
  into the attention scale for q and k); the softcap's ``1/15`` is folded into the lm_head. The
  residual stream runs at ``1/sqrt(C)`` of nanochat's scale (the output projections add into it
  with that factor), which every reader normalises away, and it carries one extra channel
  holding ``sqrt(eps)``: its norm is then RMSNorm's ``sqrt(|x|² + eps)``, never zero, so its
  norms need no clamp. The embedding table is normalised once, when the engine is made. The
  logits are those of ``GPT.forward`` to fp32 rounding; the tests hold greedy decoding to it
  token for token.
- Sampling (temperature, top-k, top-p) runs on the device with a per-call ``torch.Generator``;
  the only host transfer per step is the chosen ids and their probabilities.

The re-laid-out weights are copies: make a new ``Engine`` after changing the model's weights.
``torch.set_num_threads`` is process-wide; the engine sets it (to 1 unless told otherwise)
when it is made, because two threads on a shared two-core machine run slower than one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from glasschat.errors import UserError
from model.events import GenerationStats, SamplingParams, Stop, TokenEvent
from model.gpt import GPT, SOFTCAP
from model.tool import ToolState


class ModelOutputError(UserError):
    """The model's output cannot be sampled from (NaN logits): a broken checkpoint, not a bug."""


class Generation(NamedTuple):
    """One finished row of ``Engine.generate``."""

    ids: list[int]
    forced: list[bool]
    text: str
    stop: Stop


class _Layer(NamedTuple):
    wqkv: torch.Tensor  # (C, (H + 2·Hkv)·D), q/k rotary halves interleaved per head
    wo: torch.Tensor  # (C, C): attention output, transposed
    wfc: torch.Tensor  # (C, 4C): MLP up, transposed
    wproj: torch.Tensor  # (4C, C) view of nn.Linear's (C, 4C) layout: more inputs than outputs


class _Scratch(NamedTuple):
    """The buffers of a forward of T positions in B rows, shared by its layers, and the views of
    them that a layer reads, made once so that a layer makes none."""

    batch: int
    T: int
    qkv: torch.Tensor  # (B·T, (H + 2·Hkv)·D): the fused projection; q and k rotated and normalised in place
    qk: torch.Tensor  # (B, T, H + Hkv, D) view: queries and keys, for the QK norm
    pairs: torch.Tensor  # view of qk's rotary pairs: complex (B, T, H + Hkv, D/2) in fp32, else real (..., D/2, 2)
    q: torch.Tensor  # (B, H, T, D) view: attention's queries
    kv: torch.Tensor  # (2, B, Hkv, T, D) view: keys and values, laid out as the cache holds them
    hidden: torch.Tensor  # (B·T, 4C): the MLP's hidden layer


@dataclass
class _Row:
    """Host-side state of one sample row."""

    decoder: object
    tool: ToolState  # the calculator call in progress and the tokens it queued for the next steps
    ids: list[int] = field(default_factory=list)
    ttft_s: float = 0.0
    done: bool = False


class Engine:
    """Generates from ``gpt`` with ``tokenizer``'s special tokens and streaming decoder.

    ``threads`` sets torch's (process-wide) thread count; None leaves it alone. One engine may
    serve several ``stream`` calls, one after another or from different threads: each call has
    its own cache and generator, and the weights are only read.
    """

    def __init__(self, gpt: GPT, tokenizer, threads: int | None = 1):
        if tokenizer.vocab_size != gpt.config.vocab_size:
            raise UserError(f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {gpt.config.vocab_size}")
        if threads is not None:
            torch.set_num_threads(threads)
        self.gpt, self.tokenizer, self.config = gpt, tokenizer, gpt.config
        self.device, self.dtype = gpt.lm_head.weight.device, gpt.lm_head.weight.dtype
        special = tokenizer.special_ids
        self._stop_ids = {special["<|assistant_end|>"]: "assistant_end", special["<|bos|>"]: "bos"}
        c = self.config
        # RMSNorm runs as x/|x| (one reduction instead of five ops); its sqrt(n) goes into the
        # weights that read the normalised vector, or into the attention scale for q and k
        sqrt_c = c.n_embd**0.5
        self._attention_scale = c.head_dim**0.5  # (sqrt(D) q) . (sqrt(D) k) / sqrt(D)
        self._residual_scale = 1 / sqrt_c  # the residual stream's scale relative to nanochat's
        self._fp32 = self.dtype == torch.float32  # complex64 exists for fp32 only
        eps = torch.finfo(self.dtype).eps  # RMSNorm's default
        with torch.no_grad():
            self._layers = [_pack_layer(block, c) for block in gpt.transformer.h]
            # a row is a token's first residual: its embedding RMS-normalised (at the residual's
            # scale), then the sqrt(eps) channel
            wte = gpt.transformer.wte.weight.detach().float()
            wte = wte / (wte.square().sum(dim=1, keepdim=True) + c.n_embd * eps).sqrt()
            self._wte = torch.cat([wte, torch.full_like(wte[:, :1], eps**0.5)], dim=1).to(self.dtype)
            # (C, V), holding the final norm's sqrt(C) and the softcap's 1/15
            self._lm_head = (gpt.lm_head.weight.t() * (sqrt_c / SOFTCAP)).contiguous()
            # e^{-iθ}: nanochat rotates by -θ, with its bf16-rounded tables; (T, 1, D/2) for a
            # prefill, and one tensor per position for decode steps (indexing a list is free)
            self._rotation = torch.complex(gpt.cos.float(), -gpt.sin.float()).unsqueeze(1).to(self.device)
            self._rotations = list(self._rotation.unsqueeze(1).unbind(0))

    # ---- public

    def stream(
        self, prompt_ids: list[int], params: SamplingParams = SamplingParams(), cancel: threading.Event | None = None
    ) -> Iterator[TokenEvent | Stop]:
        """Generate a reply to ``prompt_ids``, yielding events as tokens are produced."""
        start = time.perf_counter()
        prompt = self._check_prompt(prompt_ids)
        rows = [_Row(self.tokenizer.stream_decoder(), ToolState(self.tokenizer)) for _ in range(params.num_samples)]
        room = self.config.sequence_len - len(prompt)  # tokens that fit after the prompt
        if room == 0 or _is_set(cancel):
            reason = "context_full" if room == 0 else "cancelled"
            for r, row in enumerate(rows):
                yield self._finish(row, r, reason, len(prompt), start)
            return

        generator = torch.Generator(device=self.device)
        generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        cache = self._allocate_cache(params.num_samples, min(self.config.sequence_len, len(prompt) + params.max_tokens))
        with torch.inference_mode():
            logits = self._prefill(torch.tensor(prompt, device=self.device), cache, params.num_samples)
            sampled, chosen, probs, top = self._sample(logits, params, generator)
        scratch = self._scratch(params.num_samples, 1)
        pos = len(prompt)
        while True:
            if _is_set(cancel):
                for r, row in enumerate(rows):
                    if not row.done:
                        yield self._finish(row, r, "cancelled", len(prompt), start)
                return
            next_ids, feed_sampled = [], True
            for r, row in enumerate(rows):
                if row.done:
                    next_ids.append(row.ids[-1])  # a finished row keeps step with the batch; its output is ignored
                    continue
                forced = bool(row.tool.forced)
                token = row.tool.forced.popleft() if forced else chosen[r]
                feed_sampled &= not forced
                row.ids.append(token)
                if len(row.ids) == 1:
                    row.ttft_s = time.perf_counter() - start
                yield TokenEvent(
                    id=token,
                    text=row.decoder.feed(token),
                    forced=forced,
                    prob=None if forced else probs[r],
                    top=() if forced or top is None else top[r],
                    row=r,
                )
                if not forced:
                    row.tool.feed(token)
                reason = self._stop_reason(row, token, forced, len(prompt), params.max_tokens)
                if reason is not None:
                    yield self._finish(row, r, reason, len(prompt), start)
                next_ids.append(token)
            if all(row.done for row in rows):
                return
            with torch.inference_mode():
                # the sampled ids are already on the device unless a row took a forced token
                ids = sampled if feed_sampled else torch.tensor(next_ids, device=self.device)
                logits = self._forward(ids, pos, cache, scratch)
                sampled, chosen, probs, top = self._sample(logits, params, generator)
            pos += 1

    def generate(
        self, prompt_ids: list[int], params: SamplingParams = SamplingParams(), cancel: threading.Event | None = None
    ) -> list[Generation]:
        """Run ``stream`` to the end and return each row's tokens, text and stop."""
        ids = [[] for _ in range(params.num_samples)]
        forced = [[] for _ in range(params.num_samples)]
        texts = [[] for _ in range(params.num_samples)]
        stops: list[Stop | None] = [None] * params.num_samples
        for event in self.stream(prompt_ids, params, cancel):
            if isinstance(event, Stop):
                stops[event.row] = event
            else:
                ids[event.row].append(event.id)
                forced[event.row].append(event.forced)
                texts[event.row].append(event.text)
        return [Generation(ids[r], forced[r], "".join(texts[r]), stops[r]) for r in range(params.num_samples)]

    # ---- the model, with a KV cache

    def _allocate_cache(self, batch: int, length: int) -> torch.Tensor:
        """Keys and values of every layer: ``(n_layer, 2, batch, n_kv_head, length, head_dim)``."""
        c = self.config
        with torch.inference_mode():
            return torch.empty((c.n_layer, 2, batch, c.n_kv_head, length, c.head_dim), dtype=self.dtype, device=self.device)

    def _scratch(self, batch: int, T: int) -> _Scratch:
        c = self.config
        H, Hkv, D = c.n_head, c.n_kv_head, c.head_dim
        with torch.inference_mode():
            qkv = torch.empty((batch * T, (H + 2 * Hkv) * D), dtype=self.dtype, device=self.device)
            qk = qkv.narrow(1, 0, (H + Hkv) * D).view(batch, T, H + Hkv, D)
            pairs = qk.view(batch, T, H + Hkv, D // 2, 2)
            return _Scratch(
                batch,
                T,
                qkv,
                qk,
                torch.view_as_complex(pairs) if self._fp32 else pairs,
                qk.narrow(2, 0, H).transpose(1, 2),
                qkv.narrow(1, H * D, 2 * Hkv * D).view(batch, T, 2, Hkv, D).permute(2, 0, 3, 1, 4),
                torch.empty((batch * T, 4 * c.n_embd), dtype=self.dtype, device=self.device),
            )

    def _prefill(self, ids: torch.Tensor, cache: torch.Tensor, batch: int) -> torch.Tensor:
        """Run the prompt (T,) through row 0 of the cache, copy it to the other rows, return
        the last position's logits repeated per row."""
        T = ids.shape[0]
        logits = self._forward(ids, 0, cache.narrow(2, 0, 1), self._scratch(1, T))
        if batch > 1:
            cache[:, :, 1:, :, :T] = cache[:, :, :1, :, :T]
            logits = logits.expand(batch, -1)
        return logits

    def _forward(self, ids: torch.Tensor, pos: int, cache: torch.Tensor, s: _Scratch) -> torch.Tensor:
        """Logits (B, V) of the last of the ``s.T`` positions per row, for ``ids`` (B·T,) placed
        at ``pos``; writes the cache at ``pos:pos+T``. A chunk of more than one token must start
        at position 0."""
        c = self.config
        B, T, end = s.batch, s.T, pos + s.T
        rotation = self._rotations[pos] if T == 1 else self._rotation[:T]
        slots = cache.narrow(4, pos, T).unbind(0)  # per layer (2, B, Hkv, T, D): where the new keys and values go
        window = cache.narrow(4, 0, end).flatten(0, 1).unbind(0)  # keys, values, keys, ... of positions 0..end
        x_eps = torch.embedding(self._wte, ids)  # (B·T, C + 1): the residual stream and its sqrt(eps) channel
        x = h = x_eps.narrow(1, 0, c.n_embd)  # the first layer's input: the rows are normalised already
        for layer, slot, k, v in zip(self._layers, slots, window[0::2], window[1::2]):
            torch.mm(h, layer.wqkv, out=s.qkv)
            _rotate_(s.pairs, rotation)
            s.qk.div_(torch.linalg.vector_norm(s.qk, dim=-1, keepdim=True).clamp_min_(1e-30))  # a zero head stays zero
            slot.copy_(s.kv)
            y = F.scaled_dot_product_attention(s.q, k, v, is_causal=T > 1, scale=self._attention_scale,
                                               enable_gqa=c.n_head != c.n_kv_head)
            x.addmm_(y.transpose(1, 2).reshape(B * T, -1), layer.wo, alpha=self._residual_scale)
            h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
            torch.mm(h, layer.wfc, out=s.hidden)
            x.addmm_(s.hidden.relu_().square_(), layer.wproj, alpha=self._residual_scale)
            h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
        if T > 1:
            h = h.view(B, T, -1).select(1, T - 1)
        logits = torch.mm(h, self._lm_head)  # already divided by the softcap's 15
        return torch.tanh_(logits if self._fp32 else logits.float()).mul_(SOFTCAP)

    # ---- sampling

    def _sample(self, logits: torch.Tensor, params: SamplingParams, generator: torch.Generator):
        """Choose a token per row: ``(ids on the device, ids, probs, top)``, the last three as
        Python lists. ``probs`` and ``top`` are under the model's own distribution (temperature
        1, no filtering)."""
        probs = torch.softmax(logits, dim=-1)
        if params.temperature == 0:
            best, chosen = probs.max(dim=-1)
        else:
            chosen = _sample_filtered(logits, params, generator)
            best = probs.gather(-1, chosen).view(-1)
            chosen = chosen.view(-1)
        best_list = best.tolist()
        if any(p != p for p in best_list):  # NaN: the host already holds these, so the check is free
            raise ModelOutputError("the model produced NaN (its weights hold NaN or inf, or its activations "
                                   "overflowed): no token can be chosen")
        top = None
        if params.top_alternatives:
            values, ids = probs.topk(min(params.top_alternatives, logits.shape[-1]), dim=-1)
            top = [tuple(zip(i, p)) for i, p in zip(ids.tolist(), values.tolist())]
        return chosen, chosen.tolist(), best_list, top

    # ---- host-side rules: stops (the tool's rule is model.tool's)

    def _stop_reason(self, row: _Row, token: int, forced: bool, prompt_len: int, max_tokens: int) -> str | None:
        if token in self._stop_ids and (not forced or self._stop_ids[token] == "assistant_end"):
            # a forced <|assistant_end|> is the tool ending a reply that repeats a failing call
            return self._stop_ids[token]
        if len(row.ids) >= max_tokens:
            return "max_tokens"
        if prompt_len + len(row.ids) >= self.config.sequence_len:
            return "context_full"
        return None

    def _finish(self, row: _Row, r: int, reason: str, prompt_len: int, start: float) -> Stop:
        row.done = True
        total = time.perf_counter() - start
        stats = GenerationStats(prompt_len, len(row.ids), row.ttft_s if row.ids else total, total)
        return Stop(reason, stats, row=r)

    def _check_prompt(self, prompt_ids) -> list[int]:
        prompt = list(prompt_ids)
        if not prompt:
            raise UserError("the prompt is empty: it needs at least one token")
        if not all(type(t) is int and 0 <= t < self.config.vocab_size for t in prompt):
            raise UserError(f"the prompt holds token ids outside 0..{self.config.vocab_size - 1}")
        if len(prompt) > self.config.sequence_len:
            raise UserError(f"the prompt is {len(prompt)} tokens, longer than the model's context of {self.config.sequence_len}")
        return prompt


def _pack_layer(block, config) -> _Layer:
    """The engine's layout of one block's weights (see the module docstring)."""
    H, Hkv, D = config.n_head, config.n_kv_head, config.head_dim
    attn, mlp = block.attn, block.mlp
    # within each head, put channel i and its rotary partner i + D/2 side by side
    interleave = torch.stack([torch.arange(D // 2), torch.arange(D // 2, D)], dim=1).flatten()
    q = attn.c_q.weight.view(H, D, -1)[:, interleave].flatten(0, 1)
    k = attn.c_k.weight.view(Hkv, D, -1)[:, interleave].flatten(0, 1)
    sqrt_c = config.n_embd**0.5
    wqkv = (torch.cat([q, k, attn.c_v.weight]).t() * sqrt_c).contiguous()
    wfc = (mlp.c_fc.weight.t() * sqrt_c).contiguous()
    return _Layer(wqkv, attn.c_proj.weight.t().contiguous(), wfc, mlp.c_proj.weight.t())


def _rotate_(pairs: torch.Tensor, rotation: torch.Tensor) -> None:
    """Multiply the rotary pairs in place by the complex ``rotation``."""
    if pairs.is_complex():
        pairs.mul_(rotation)
    else:  # complex numbers exist for fp32 and fp64 only: 16-bit weights rotate in fp32
        pairs.copy_(torch.view_as_real(torch.view_as_complex(pairs.float()) * rotation))


def _sample_filtered(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> torch.Tensor:
    """Sample (B, 1) ids at ``temperature`` from the top-k / top-p filtered distribution.

    Inverse-CDF sampling: one uniform number per row against the cumulative probabilities.
    ``u`` lies in ``(0, total]`` and the search takes the first index whose cumulative sum
    reaches it, so a token of probability 0 (filtered out, or underflowed) is never chosen.

    The logits are shifted so that the largest is 0 before dividing by the temperature: any
    positive temperature, however small (1e-300), then gives finite or -inf scores, never inf
    or NaN, and the distribution tends to greedy as it should (ties shared evenly).
    """
    # a temperature below the smallest normal number of the logits' dtype (1.2e-38 in fp32) would
    # become 0 there: it samples as at that number, which is greedy with ties shared
    temperature = max(params.temperature, torch.finfo(logits.dtype).tiny)
    scaled = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    ids = None
    if 0 < params.top_k < scaled.shape[-1]:
        scaled, ids = scaled.topk(params.top_k, dim=-1)  # sorted, most likely first
    elif params.top_p < 1:
        scaled, ids = scaled.sort(dim=-1, descending=True)
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1:
        # keep the smallest prefix whose mass reaches top_p (always the most likely token)
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= params.top_p, 0.0)
    cumulative = probs.cumsum(-1)
    u = (1 - torch.rand(cumulative.shape[0], 1, generator=generator, device=cumulative.device)) * cumulative[:, -1:]
    # NaN logits make every cumulative sum NaN and the search run off the end: stay in range, and
    # let the caller see the NaN probability
    choice = torch.searchsorted(cumulative, u).clamp_(max=cumulative.shape[-1] - 1)
    return choice if ids is None else ids.gather(-1, choice)


def _is_set(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()
