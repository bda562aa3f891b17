"""The streaming generation engine: a static KV cache, sampling on the device, the calculator tool.

``Engine(gpt, tokenizer).stream(prompt_ids, params, cancel)`` yields ``TokenEvent``s as tokens
are produced and one ``Stop`` per row (see ``model.events``). The model's math is
``model.gpt``'s; this module runs it in the shape that decodes fast on a CPU:

- The KV cache is allocated once per call, sized to the prompt plus ``max_tokens`` (at most
  ``sequence_len``), and written in place. Prefill runs the prompt once and computes the lm_head
  for its last position only. ``num_samples`` rows share one prefill and then decode as a batch.
- Few torch calls per layer: at batch 1 a small model's decode step costs its weights'
  bandwidth plus a few microseconds per call, more than the arithmetic. The weights are re-laid
  out once, when the engine is made: q, k and v fused into one matrix, each matrix packed by
  ``model.weights`` in the engine's weight format (fp32: every matrix with at least as many
  outputs as inputs stored transposed, the layout a matrix-vector product streams fastest;
  int8: ``model.int8``'s kernel, a quarter of the bytes per step). The forward only asks a
  packed matrix for ``x @ W``. Within each q/k head the two rotary halves are interleaved, so
  the rotation is one complex multiply (attention scores and the QK norm do not depend on the
  order of a head's channels). A layer writes only into buffers made once per call (``_Scratch``: the fused q/k/v
  projection, rotated and normalised in place, and the MLP's hidden layer) and into the residual
  stream, which the output projections update in place.
- RMSNorm runs as ``x/|x|``, its ``sqrt(n)`` folded into the weights that read the result (and
  into the attention scale for q and k); the softcap's ``1/15`` is folded into the lm_head. The
  residual stream runs at ``1/sqrt(C)`` of nanochat's scale (the output projections add into it
  with that factor), which every reader normalises away, and it carries one extra channel
  holding ``sqrt(eps)``: its norm is then RMSNorm's ``sqrt(|x|² + eps)``, never zero, so its
  norms need no clamp. A token's embedding row is normalised when it is looked up (C numbers:
  cheaper than keeping a normalised copy of the table). In fp32 the logits are those of
  ``GPT.forward`` to fp32 rounding; the tests hold greedy decoding to it token for token.
- Sampling (temperature, top-k, top-p) runs on the device with a per-call ``torch.Generator``;
  the only host transfer per step is the chosen ids and their probabilities.

``Engine(gpt, tokenizer)`` packs copies of a ``GPT``'s weights (make a new engine after changing
them); ``Engine.from_weights`` packs from a state source with no ``GPT`` at all, which is how
``model.checkpoint.load_engine`` loads a checkpoint for generation with one copy in memory.
``torch.set_num_threads`` is process-wide; the engine sets it (to 1 unless told otherwise)
when it is made, because two threads on a shared two-core machine run slower than one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from glasschat.errors import UserError
from model.calculator import calculate
from model.events import GenerationStats, SamplingParams, Stop, TokenEvent
from model.gpt import GPT, SOFTCAP, GPTConfig, rotary_tables
from model.weights import DTYPES, Rows, StateSource, format_of, pack_matrix, pack_table

MAX_TOOL_EXPRESSION_TOKENS = 256  # a python block longer than this is not evaluated


class Generation(NamedTuple):
    """One finished row of ``Engine.generate``."""

    ids: list[int]
    forced: list[bool]
    text: str
    stop: Stop


class _Layer(NamedTuple):
    """One block's matrices, each packed by ``model.weights`` for ``x @ W``."""

    wqkv: object  # (C, (H + 2·Hkv)·D), q/k rotary halves interleaved per head
    wo: object  # (C, C): attention output
    wfc: object  # (C, 4C): MLP up
    wproj: object  # (4C, C): MLP down


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
    forced: deque = field(default_factory=deque)  # tokens the tool queued for the next steps
    python: list[int] | None = None  # tokens of an open <|python_start|> block
    ids: list[int] = field(default_factory=list)
    ttft_s: float = 0.0
    done: bool = False


class Engine:
    """Generates from ``gpt`` with ``tokenizer``'s special tokens and streaming decoder.

    ``threads`` sets torch's (process-wide) thread count; None leaves it alone. One engine may
    serve several ``stream`` calls, one after another or from different threads: each call has
    its own cache and generator, and the weights are only read.
    """

    def __init__(self, gpt: GPT, tokenizer, threads: int | None = 1, weight_format: str | None = None):
        """Pack ``gpt``'s weights (copies: ``gpt`` keeps its own) in ``weight_format`` (default:
        the model's dtype)."""
        self.gpt = gpt
        head = gpt.lm_head.weight
        self._setup(gpt.config, StateSource(gpt.state_dict()), tokenizer, threads,
                    weight_format or format_of(head.dtype), head.device, None)

    @classmethod
    def from_weights(cls, config: GPTConfig, source: StateSource, tokenizer, weight_format: str,
                     threads: int | None = 1, progress: Callable[[int, int], None] | None = None) -> Engine:
        """An engine packed straight from ``source`` (e.g. a mapped checkpoint, which drops each
        tensor's pages once it is packed), with no ``GPT`` built: the packed weights are the one
        copy. ``progress(done_bytes, total_bytes)`` is called as the weights are packed."""
        engine = cls.__new__(cls)
        engine.gpt = None
        engine._setup(config, source, tokenizer, threads, weight_format, torch.device("cpu"), progress)
        return engine

    def _setup(self, config: GPTConfig, source: StateSource, tokenizer, threads, weight_format: str, device, progress) -> None:
        if tokenizer.vocab_size != config.vocab_size:
            raise UserError(f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {config.vocab_size}")
        if weight_format == "int8" and device.type != "cpu":
            raise UserError("int8 weights run on the CPU only")
        if threads is not None:
            torch.set_num_threads(threads)
        self.tokenizer, self.config, self.device = tokenizer, config, device
        self.weight_format = weight_format
        self.dtype = torch.float32 if weight_format == "int8" else DTYPES[weight_format]  # of the activations
        special = tokenizer.special_ids
        self._stop_ids = {special["<|assistant_end|>"]: "assistant_end", special["<|bos|>"]: "bos"}
        self._python_start, self._python_end = special["<|python_start|>"], special["<|python_end|>"]
        self._output_start, self._output_end = special["<|output_start|>"], special["<|output_end|>"]
        c = self.config
        # RMSNorm runs as x/|x| (one reduction instead of five ops); its sqrt(n) goes into the
        # weights that read the normalised vector, or into the attention scale for q and k
        sqrt_c = c.n_embd**0.5
        self._attention_scale = c.head_dim**0.5  # (sqrt(D) q) . (sqrt(D) k) / sqrt(D)
        self._residual_scale = 1 / sqrt_c  # the residual stream's scale relative to nanochat's
        self._fp32 = self.dtype == torch.float32  # complex64 exists for fp32 only
        self._eps = torch.finfo(self.dtype).eps  # RMSNorm's default
        names = [f"transformer.h.{i}.{m}.weight" for i in range(c.n_layer)
                 for m in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
        names += ["transformer.wte.weight", "lm_head.weight"]
        total, done = sum(source.nbytes(n) for n in names), 0

        def packed(used: list[str], *parts) -> None:
            # the source may drop what was copied; report progress
            nonlocal done
            source.release(used, keep=[t for part in parts for t in part.views])
            done += sum(source.nbytes(n) for n in used)
            if progress is not None:
                progress(done, total)

        with torch.no_grad():
            self._layers = []
            for i in range(c.n_layer):
                used = names[6 * i : 6 * i + 6]
                self._layers.append(_pack_layer(source, i, c, weight_format))
                packed(used, *self._layers[-1])
            # a row is looked up per token and normalised then (cheaper than a normalised copy)
            self._wte = pack_table(source.rows("transformer.wte.weight"), weight_format)
            packed(["transformer.wte.weight"], self._wte)
            # (C, V), holding the final norm's sqrt(C) and the softcap's 1/15
            self._lm_head = pack_matrix(source.rows("lm_head.weight"), weight_format, sqrt_c / SOFTCAP)
            packed(["lm_head.weight"], self._lm_head)
            # e^{-iθ}: nanochat rotates by -θ, with its bf16-rounded tables; (T, 1, D/2) for a
            # prefill, and one tensor per position for decode steps (indexing a list is free)
            cos, sin = rotary_tables(c.sequence_len, c.head_dim)
            self._rotation = torch.complex(cos.float(), -sin.float()).unsqueeze(1).to(self.device)
            self._rotations = list(self._rotation.unsqueeze(1).unbind(0))

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights as the engine holds them."""
        return sum(m.nbytes for layer in self._layers for m in layer) + self._wte.nbytes + self._lm_head.nbytes

    # ---- public

    def stream(
        self, prompt_ids: list[int], params: SamplingParams = SamplingParams(), cancel: threading.Event | None = None
    ) -> Iterator[TokenEvent | Stop]:
        """Generate a reply to ``prompt_ids``, yielding events as tokens are produced."""
        start = time.perf_counter()
        prompt = self._check_prompt(prompt_ids)
        rows = [_Row(self.tokenizer.stream_decoder()) for _ in range(params.num_samples)]
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
                forced = bool(row.forced)
                token = row.forced.popleft() if forced else chosen[r]
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
                    self._run_tool(row, token)
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
        x_eps = self._embed(ids)  # (B·T, C + 1): the residual stream and its sqrt(eps) channel
        x = h = x_eps.narrow(1, 0, c.n_embd)  # the first layer's input: the rows are normalised already
        for layer, slot, k, v in zip(self._layers, slots, window[0::2], window[1::2]):
            layer.wqkv.mm(h, out=s.qkv)
            _rotate_(s.pairs, rotation)
            s.qk.div_(torch.linalg.vector_norm(s.qk, dim=-1, keepdim=True).clamp_min_(1e-30))  # a zero head stays zero
            slot.copy_(s.kv)
            y = F.scaled_dot_product_attention(s.q, k, v, is_causal=T > 1, scale=self._attention_scale,
                                               enable_gqa=c.n_head != c.n_kv_head)
            layer.wo.addmm_(x, y.transpose(1, 2).reshape(B * T, -1), alpha=self._residual_scale)
            h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
            layer.wfc.mm(h, out=s.hidden)
            layer.wproj.addmm_(x, s.hidden.relu_().square_(), alpha=self._residual_scale)
            h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
        if T > 1:
            h = h.view(B, T, -1).select(1, T - 1)
        logits = self._lm_head.mm(h)  # already divided by the softcap's 15
        return torch.tanh_(logits if self._fp32 else logits.float()).mul_(SOFTCAP)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The first residual of each token: its embedding RMS-normalised (at the residual's
        scale), then the sqrt(eps) channel."""
        c = self.config
        rows = self._wte.rows(ids).float()
        rows = rows / (rows.square().sum(dim=1, keepdim=True) + c.n_embd * self._eps).sqrt()
        x_eps = torch.empty((ids.numel(), c.n_embd + 1), dtype=self.dtype, device=self.device)
        x_eps.narrow(1, 0, c.n_embd).copy_(rows)
        x_eps.narrow(1, c.n_embd, 1).fill_(self._eps**0.5)
        return x_eps

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
        top = None
        if params.top_alternatives:
            values, ids = probs.topk(min(params.top_alternatives, logits.shape[-1]), dim=-1)
            top = [tuple(zip(i, p)) for i, p in zip(ids.tolist(), values.tolist())]
        return chosen, chosen.tolist(), best.tolist(), top

    # ---- host-side rules: tool, stops

    def _run_tool(self, row: _Row, token: int) -> None:
        if token == self._python_start:
            row.python = []
        elif row.python is not None and token == self._python_end:
            expression, row.python = self.tokenizer.decode(row.python), None
            result = calculate(expression)
            if result is not None:
                row.forced.extend([self._output_start, *self.tokenizer.encode(result), self._output_end])
        elif row.python is not None:
            if self.tokenizer.is_special(token) or len(row.python) >= MAX_TOOL_EXPRESSION_TOKENS:
                row.python = None  # not a well-formed call: evaluate nothing
            else:
                row.python.append(token)

    def _stop_reason(self, row: _Row, token: int, forced: bool, prompt_len: int, max_tokens: int) -> str | None:
        if not forced and token in self._stop_ids:
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


def _pack_layer(source: StateSource, i: int, config: GPTConfig, weight_format: str) -> _Layer:
    """The engine's layout of block ``i``'s weights (see the module docstring)."""
    H, Hkv, D = config.n_head, config.n_kv_head, config.head_dim
    prefix = f"transformer.h.{i}."
    # within each head, put channel i and its rotary partner i + D/2 side by side
    interleave = torch.stack([torch.arange(D // 2), torch.arange(D // 2, D)], dim=1).flatten()
    q = source.rows(prefix + "attn.c_q.weight").take((torch.arange(H)[:, None] * D + interleave).flatten())
    k = source.rows(prefix + "attn.c_k.weight").take((torch.arange(Hkv)[:, None] * D + interleave).flatten())
    sqrt_c = config.n_embd**0.5
    return _Layer(
        pack_matrix(Rows.cat([q, k, source.rows(prefix + "attn.c_v.weight")]), weight_format, sqrt_c),
        pack_matrix(source.rows(prefix + "attn.c_proj.weight"), weight_format),
        pack_matrix(source.rows(prefix + "mlp.c_fc.weight"), weight_format, sqrt_c),
        pack_matrix(source.rows(prefix + "mlp.c_proj.weight"), weight_format),
    )


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
    """
    scaled = logits / params.temperature
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
    choice = torch.searchsorted(cumulative, u)
    return choice if ids is None else ids.gather(-1, choice)


def _is_set(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()
