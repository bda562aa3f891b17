"""The streaming generation engine: a static KV cache, sampling on the device, the calculator tool.

``Engine(gpt, tokenizer).stream(prompt_ids, params, cancel)`` yields ``TokenEvent``s as tokens
are produced and one ``Stop`` per row (see ``model.events``). The model's math is
``model.gpt``'s; this module runs it in the shape that decodes fast on a CPU:

- The KV cache is allocated once per call, sized to the prompt plus ``max_tokens`` (at most
  ``sequence_len``), and written in place. A sliding-window layer keeps only its window (plus
  the current position) as a ring: the keys are rotated before they are cached and attention
  does not depend on their order, so a ring needs no mask once it is full. A decode step
  attends with two batched matrix products (scores as keys times queries, then values), which
  read the cache about twice as fast as ``scaled_dot_product_attention`` does for one query.
  Both are dot products along contiguous rows, the fastest way to stream the cache: the keys
  are stored a position per row, the values a channel per row (``_values``). Prefill runs the
  prompt once and computes the lm_head for its last position only.
  ``num_samples`` rows share one prefill and then decode as a batch.
- Few torch calls per layer: at batch 1 a small model's decode step costs its weights'
  bandwidth plus a few microseconds per call, more than the arithmetic. The weights are re-laid
  out once, when the engine is made: q, k and v fused into one matrix, each matrix packed by
  ``model.weights`` in the engine's weight format (fp32: every matrix with at least as many
  outputs as inputs stored transposed, the layout a matrix-vector product streams fastest;
  int8: ``model.int8``'s kernel, a quarter of the bytes per step). The forward only asks a
  packed matrix for ``x @ W``. Within each q/k head the two rotary halves are interleaved, so the rotation is one
  complex multiply (attention scores and the QK norm do not depend on the order of a head's
  channels). A layer writes only into buffers made once per call (``_Scratch``: the fused q/k/v
  projection, rotated and normalised in place, and the MLP's hidden layer) and into the residual
  stream, which the output projections update in place.
- RMSNorm runs as ``x/|x|``, its ``sqrt(n)`` folded into the weights that read the result (and
  into the attention scale for q and k); the softcap's ``1/cap`` is folded into the lm_head. The
  residual stream runs at ``1/sqrt(C)`` of nanochat's scale (the output projections add into it
  with that factor), which every reader normalises away, and it carries one extra channel
  holding ``sqrt(eps)``: its norm is then RMSNorm's ``sqrt(|x|² + eps)``, never zero, so its
  norms need no clamp. A token's embedding row is normalised when it is looked up (C numbers:
  cheaper than keeping a normalised copy of the table).
- The 2026 generations' features run on the same stream. The per-layer lambdas are linear, so
  they apply to the scaled stream as they are (the sqrt(eps) channel left alone); the value
  embedding's gate and the smear gate read the normalised input, so their weights hold
  sqrt(C); q/k scaling goes into the attention scale; backout subtracts a copy of the stream.
  The smear needs the previous position's embedding: the cache keeps it per row.
- In fp32 the logits are those of ``GPT.forward`` to fp32 rounding; the tests hold greedy
  decoding to it token for token.
- Sampling (temperature, top-k, top-p) runs on the device with a per-call ``torch.Generator``;
  the only host transfer per step is the chosen ids and their probabilities.

``Engine(gpt, tokenizer)`` packs copies of a ``GPT``'s weights (make a new engine after changing
them); ``Engine.from_weights`` packs from a state source with no ``GPT`` at all, which is how
``model.checkpoint.load_engine`` loads a checkpoint for generation with one copy in memory.
The engine leaves torch's thread count (process-wide) to the program's entry point
(``model.threads``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from glasschat.errors import UserError
from model.events import GenerationStats, SamplingParams, Stop, TokenEvent
from model.gpt import GPT, GPTConfig, rotary_tables, window_mask
from model.tool import ToolState
from model.weights import DTYPES, Rows, StateSource, format_of, pack_matrix, pack_table


class ModelOutputError(UserError):
    """The model's output cannot be sampled from (NaN logits): a broken checkpoint, not a bug."""


class Completion(NamedTuple):
    """One finished row of ``Engine.generate``: its tokens (and which the tool forced), their
    text, and why it stopped."""

    ids: list[int]
    forced: list[bool]
    text: str
    stop: Stop


class _Layer(NamedTuple):
    """One block's weights, each matrix and table packed by ``model.weights``."""

    wqkv: object  # (C, (H + 2·Hkv)·D), q/k rotary halves interleaved per head
    wo: object  # (C, C): attention output
    wfc: object  # (C, 4C): MLP up
    wproj: object  # (4C, C): MLP down
    window: int  # how many earlier positions the layer attends to
    ve: object | None  # (rows, Hkv·D) table: the value embedding, or None
    wgate: torch.Tensor | None  # (gate channels, Hkv): its gate, transposed, times sqrt(C) (tiny: always dense)

    def packed(self) -> tuple:
        """The packed matrices and tables (for their bytes and the views they keep)."""
        return tuple(m for m in (self.wqkv, self.wo, self.wfc, self.wproj, self.ve) if m is not None)


class _Cache(NamedTuple):
    """One call's cache. Per layer the keys (times the attention scale, which a decode step
    then need not apply) and the values, seen as ``(B, Hkv, L, D)`` each (the values may be
    stored ``(D, L)`` per head: ``Engine._allocate_cache``), where a layer whose window is
    shorter than the call keeps ``L = window + 1`` positions, position p at p mod L; and for
    the smear, the previous position's embedding per row (else None)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    prev: torch.Tensor | None

    def row0(self) -> _Cache:
        return self.rows(0, 1)

    def rows(self, start: int, count: int) -> _Cache:
        """Rows ``start..start+count-1``: views, written in place."""
        return _Cache([k.narrow(0, start, count) for k in self.keys], [v.narrow(0, start, count) for v in self.values],
                      None if self.prev is None else self.prev.narrow(0, start, count))

    def move_row(self, source: int, target: int, filled: int) -> None:
        """Copy row ``source``'s first ``filled`` positions (and its smear embedding) into row ``target``."""
        for k, v in zip(self.keys, self.values):
            n = min(filled, k.shape[2])  # a ring holds at most its length
            k[target, :, :n] = k[source, :, :n]
            v[target, :, :n] = v[source, :, :n]
        if self.prev is not None:
            self.prev[target] = self.prev[source]


class _Scratch(NamedTuple):
    """The buffers of a forward of T positions in B rows, shared by its layers, and the views of
    them that a layer reads, made once so that a layer makes none."""

    batch: int
    T: int
    qkv: torch.Tensor  # (B·T, (H + 2·Hkv)·D): the fused projection; q and k rotated and normalised in place
    qk: torch.Tensor  # (B, T, H + Hkv, D) view: queries and keys, for the QK norm
    pairs: torch.Tensor  # view of qk's rotary pairs: complex (B, T, H + Hkv, D/2) in fp32, else real (..., D/2, 2)
    q: torch.Tensor  # (B, H, T, D) view: attention's queries
    q_groups: torch.Tensor | None  # for T = 1, (B, Hkv, H/Hkv, D) view: the queries grouped by their kv head
    kv: torch.Tensor  # (2, B, Hkv, T, D) view: keys and values, laid out as the cache holds them
    v: torch.Tensor  # (B·T, Hkv, D) view: the values, for a value embedding
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

    One engine may serve several ``stream`` calls, one after another or from different threads:
    each call has its own cache and generator, and the weights are only read.
    """

    def __init__(self, gpt: GPT, tokenizer, weight_format: str | None = None):
        """Pack ``gpt``'s weights (copies: ``gpt`` keeps its own) in ``weight_format`` (default:
        the model's dtype)."""
        self.gpt = gpt
        head = gpt.lm_head.weight
        self._setup(gpt.config, StateSource(gpt.state_dict()), tokenizer, weight_format or format_of(head.dtype),
                    head.device, None)

    @classmethod
    def from_weights(cls, config: GPTConfig, source: StateSource, tokenizer, weight_format: str,
                     progress: Callable[[int, int], None] | None = None) -> Engine:
        """An engine packed straight from ``source`` (e.g. a mapped checkpoint, which drops each
        tensor's pages once it is packed), with no ``GPT`` built: the packed weights are the one
        copy. ``progress(done_bytes, total_bytes)`` is called as the weights are packed."""
        engine = cls.__new__(cls)
        engine.gpt = None
        engine._setup(config, source, tokenizer, weight_format, torch.device("cpu"), progress)
        return engine

    def _setup(self, config: GPTConfig, source: StateSource, tokenizer, weight_format: str, device, progress) -> None:
        if tokenizer.vocab_size != config.vocab_size:
            raise UserError(f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {config.vocab_size}")
        if weight_format == "int8" and device.type != "cpu":
            raise UserError("int8 weights run on the CPU only")
        self.tokenizer, self.config, self.device = tokenizer, config, device
        self.weight_format = weight_format
        self.dtype = torch.float32 if weight_format == "int8" else DTYPES[weight_format]  # of the activations
        special = tokenizer.special_ids
        self._stop_ids = {special["<|assistant_end|>"]: "assistant_end", special["<|bos|>"]: "bos"}
        c = self.config
        # RMSNorm runs as x/|x| (one reduction instead of five ops); its sqrt(n) goes into the
        # weights that read the normalised vector, or into the attention scale for q and k
        sqrt_c = c.n_embd**0.5
        self._attention_scale = c.head_dim**0.5 * c.qk_scale**2  # (s·sqrt(D) q) . (s·sqrt(D) k) / sqrt(D)
        self._residual_scale = 1 / sqrt_c  # the residual stream's scale relative to nanochat's
        self._fp32 = self.dtype == torch.float32  # complex64 exists for fp32 only
        self._eps = torch.finfo(self.dtype).eps  # RMSNorm's default
        big = [name for name in source.state if not name.endswith("_scale") and source.state[name].dim() == 2]
        total, done = sum(source.nbytes(n) for n in big), 0

        def packed(used: list[str], *parts) -> None:
            # the source may drop what was copied; report progress
            nonlocal done
            source.release(used, keep=[t for part in parts for t in part.views])
            done += sum(source.nbytes(n) for n in used)
            if progress is not None:
                progress(done, total)

        def scalars(name: str) -> list[float]:
            return source.state[name].float().view(-1).tolist()

        with torch.no_grad():
            self._layers = []
            for i in range(c.n_layer):
                layer, used = _pack_layer(source, i, c, weight_format, self.dtype)
                self._layers.append(layer)
                packed(used, *layer.packed())
            # per layer (resid, x0) lambdas as floats; None where the model has none
            self._lambdas = list(zip(scalars("resid_lambdas"), scalars("x0_lambdas"))) if c.lambdas else None
            self._smear_gate = None
            if c.smear_channels:
                self._smear_gate = (source.rows("smear_gate.weight").dense(torch.float32).t() * sqrt_c).to(self.dtype)
            self._smear_lambda = scalars("smear_lambda")[0] if c.smear_channels else 0.0
            self._backout_lambda = scalars("backout_lambda")[0] if c.backout_layer >= 0 else 0.0
            # the embedding rows are the first layer's normalised input unless lambdas or the smear change it
            self._first_input_normed = not c.lambdas and not c.smear_channels
            # a row is looked up per token and normalised then (cheaper than a normalised copy)
            self._wte = pack_table(source.rows("transformer.wte.weight"), weight_format)
            packed(["transformer.wte.weight"], self._wte)
            # (C, V), holding the final norm's sqrt(C) and the softcap's 1/cap; padded rows dropped
            self._softcap = c.softcap
            self._lm_head = pack_matrix(source.rows("lm_head.weight").head(c.vocab_size), weight_format, sqrt_c / c.softcap)
            packed(["lm_head.weight"], self._lm_head)
            # e^{-iθ}: nanochat rotates by -θ, with the model's (maybe bf16-rounded) tables; (T, 1, D/2) for a
            # prefill, and one tensor per position for decode steps (indexing a list is free)
            cos, sin = rotary_tables(c.sequence_len, c.head_dim, c.rotary_base, c.rotary_bf16)
            self._rotation = torch.complex(cos.float(), -sin.float()).unsqueeze(1).to(self.device)
            self._rotations = list(self._rotation.unsqueeze(1).unbind(0))

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights as the engine holds them."""
        return sum(m.nbytes for layer in self._layers for m in layer.packed()) + self._wte.nbytes + self._lm_head.nbytes

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
    ) -> list[Completion]:
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
        return [Completion(ids[r], forced[r], "".join(texts[r]), stops[r]) for r in range(params.num_samples)]

    # ---- the model, with a KV cache

    @torch.inference_mode()
    def logits(self, ids: list[int]) -> torch.Tensor:
        """Logits (T, V) at every position of ``ids`` (at most ``sequence_len`` tokens), one
        forward from an empty cache: what scoring given text needs (``model.bpb.surprisal``), on
        the same packed weights, int8 included, that generate."""
        ids = self._check_prompt(ids)
        T = len(ids)
        tensor = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self._forward(tensor, 0, self._allocate_cache(1, T), self._scratch(1, T), every_position=True)

    def _allocate_cache(self, batch: int, length: int, values_by_slot: bool = False) -> _Cache:
        """Keys and values per layer for ``L`` positions: ``length``, or ``window + 1`` for a
        layer whose window is shorter.

        The values are seen as ``(B, Hkv, L, D)`` either way; stored ``(D, L)`` per head by
        default, ``(L, D)`` with ``values_by_slot`` (``_values`` says which is faster when)."""
        c = self.config
        Hkv, D = c.n_kv_head, c.head_dim
        with torch.inference_mode():
            lengths = [min(length, layer.window + 1) for layer in self._layers]
            keys = [torch.empty((batch, Hkv, L, D), dtype=self.dtype, device=self.device) for L in lengths]
            if values_by_slot:
                values = [torch.empty((batch, Hkv, L, D), dtype=self.dtype, device=self.device) for L in lengths]
            else:
                values = [torch.empty((batch, Hkv, D, L), dtype=self.dtype, device=self.device).transpose(2, 3)
                          for L in lengths]
            prev = torch.empty((batch, c.n_embd), dtype=self.dtype, device=self.device) if c.smear_channels else None
            return _Cache(keys, values, prev)

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
                qk.narrow(2, 0, H).view(batch, Hkv, H // Hkv, D) if T == 1 else None,
                qkv.narrow(1, H * D, 2 * Hkv * D).view(batch, T, 2, Hkv, D).permute(2, 0, 3, 1, 4),
                qkv.narrow(1, (H + Hkv) * D, Hkv * D).view(batch * T, Hkv, D),
                torch.empty((batch * T, 4 * c.n_embd), dtype=self.dtype, device=self.device),
            )

    def _prefill(self, ids: torch.Tensor, cache: _Cache, batch: int) -> torch.Tensor:
        """Run the prompt (T,) through row 0 of the cache, copy it to the other rows, return
        the last position's logits repeated per row."""
        T = ids.shape[0]
        logits = self._forward(ids, 0, cache.row0() if batch > 1 else cache, self._scratch(1, T))
        if batch > 1:
            for k, v in zip(cache.keys, cache.values):
                n = min(T, k.shape[2])
                k[1:, :, :n] = k[:1, :, :n]
                v[1:, :, :n] = v[:1, :, :n]
            if cache.prev is not None:
                cache.prev[1:] = cache.prev[:1]
            logits = logits.expand(batch, -1)
        return logits

    def _forward(self, ids: torch.Tensor, pos: int | torch.Tensor, cache: _Cache, s: _Scratch,
                 end: int | None = None, every_position: bool = False, prompts: tuple[int, ...] = ()) -> torch.Tensor:
        """Logits (B, V) of the last of the ``s.T`` positions per row (``every_position``: (B·T, V)
        of them all), for ``ids`` (B·T,) placed at ``pos``; writes the cache at ``pos:pos+T``. A
        chunk of more than one token must start at position 0.

        ``pos`` may instead be a tensor (B,) of each token's own position, one token per row
        (continuous batching, ``model.batching``), with ``end`` one past the largest position of
        those rows. Its last tokens may then be new requests' prompts instead, one after another
        (``prompts``: their lengths), each at positions 0, 1, ... in a cache row of its own after
        the others' (a prefill inside the decode step: its tokens share the step's matrix
        products). A prompt must fit every layer's cache, a window's ring included, so that no
        two of its tokens share a slot. The logits are then the rows' and each prompt's last
        token's, (B - sum(prompts) + len(prompts), V)."""
        c = self.config
        B, T = s.batch, s.T
        rows_apart = isinstance(pos, torch.Tensor)
        if rows_apart:
            rotation = self._rotation[pos].unsqueeze(1)  # (B, 1, 1, D/2): each token at its own position
            plans: dict = {}  # cache length -> where the new keys go and the masks: the same in every layer
        else:
            end = pos + T
            rotation = self._rotations[pos] if T == 1 else self._rotation[:T]
        x_eps = self._embed(ids)  # (B·T, C + 1): the residual stream and its sqrt(eps) channel
        x = x_eps.narrow(1, 0, c.n_embd)  # the rows are normalised already
        if self._smear_gate is not None:
            if prompts:  # the rows' previous tokens are in the cache; a prompt's are in the prompt
                rows = B - sum(prompts)
                self._smear(x.narrow(0, 0, rows), 1, cache.prev.narrow(0, 0, rows))
                start = rows
                for j, length in enumerate(prompts):
                    self._smear(x.narrow(0, start, length), length, cache.prev.narrow(0, rows + j, 1), from_start=True)
                    start += length
            else:  # a chunk at position 0, one token long included, has no previous position
                self._smear(x, T, cache.prev, from_start=not rows_apart and pos == 0)
        x0 = x.clone() if self._lambdas is not None else None
        h = x if self._first_input_normed else None
        x_backout = None
        for i, (layer, k_cache, v_cache) in enumerate(zip(self._layers, cache.keys, cache.values)):
            if x0 is not None:
                resid, mix = self._lambdas[i]
                x.mul_(resid).add_(x0, alpha=mix)
                h = None
            if h is None:
                h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
            layer.wqkv.mm(h, out=s.qkv)
            if layer.ve is not None:  # v += scale·sigmoid(gate(h))·ve[ids], per kv head
                gate = torch.mm(h.narrow(1, 0, layer.wgate.shape[0]), layer.wgate).sigmoid_()
                s.v.addcmul_(gate.unsqueeze(-1), layer.ve.rows(ids).view(B * T, c.n_kv_head, c.head_dim),
                             value=c.ve_gate_scale)
            _rotate_(s.pairs, rotation)
            s.qk.div_(torch.linalg.vector_norm(s.qk, dim=-1, keepdim=True).clamp_min_(1e-30))  # a zero head stays zero
            if rows_apart:
                y = self._attend_rows(k_cache, v_cache, pos, end, s, plans, prompts)
            else:
                y = self._attend(layer, k_cache, v_cache, pos, end, s)
            layer.wo.addmm_(x, y.transpose(1, 2).reshape(B * T, -1), alpha=self._residual_scale)
            h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
            layer.wfc.mm(h, out=s.hidden)
            layer.wproj.addmm_(x, s.hidden.relu_().square_(), alpha=self._residual_scale)
            if i == c.backout_layer:
                x_backout = x.clone()
            h = None
        if x_backout is not None:
            x.add_(x_backout, alpha=-self._backout_lambda)
        h = x / torch.linalg.vector_norm(x_eps, dim=-1, keepdim=True)
        if T > 1 and not every_position:
            h = h.view(B, T, -1).select(1, T - 1)
        elif prompts:  # the rows, and each prompt's last token
            last = B - sum(prompts)
            picked = [h.narrow(0, 0, last)]
            for length in prompts:
                last += length
                picked.append(h.narrow(0, last - 1, 1))
            h = torch.cat(picked)
        logits = self._lm_head.mm(h)  # already divided by the softcap
        return torch.tanh_(logits if self._fp32 else logits.float()).mul_(self._softcap)

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

    def _attend(self, layer: _Layer, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: int, end: int,
                s: _Scratch) -> torch.Tensor:
        """Write the new keys and values into the layer's cache and attend: (B, H, T, D)."""
        c = self.config
        L, T = k_cache.shape[2], s.T
        k, v = s.kv.unbind(0)  # (B, Hkv, T, D)
        if T > 1:  # a prefill from position 0: its own keys are all there are
            mask = window_mask(T, layer.window, self.device)
            y = F.scaled_dot_product_attention(s.q, k, v, attn_mask=mask, is_causal=mask is None,
                                               scale=self._attention_scale, enable_gqa=c.n_head != c.n_kv_head)
            n = min(T, L)  # a ring keeps the prompt's last L positions, each at its position mod L
            slots = torch.arange(T - n, T, device=self.device) % L
            k_cache.index_copy_(2, slots, k.narrow(2, T - n, n) * self._attention_scale)
            v_cache.index_copy_(2, slots, v.narrow(2, T - n, n))
            return y
        # one position: attention as two batched matrix products, which stream the cache faster
        # on a CPU than scaled_dot_product_attention does for a single query: the scores as keys
        # (n, D) @ queries (D, G), dot products along the cache's rows, the fastest way to read
        # it; then weights (G, n) @ values (n, D)
        torch.mul(k, self._attention_scale, out=k_cache.narrow(2, pos % L, 1))
        v_cache.narrow(2, pos % L, 1).copy_(v)
        n = min(end, L)
        scores = torch.matmul(k_cache.narrow(2, 0, n), s.q_groups.transpose(2, 3))
        weights = torch.softmax(scores.transpose(2, 3), dim=-1)  # (B, Hkv, G, n)
        return _values(weights, v_cache.narrow(2, 0, n)).reshape(s.batch, c.n_head, 1, c.head_dim)

    def _attend_rows(self, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor, end: int,
                     s: _Scratch, plans: dict, prompts: tuple[int, ...] = ()) -> torch.Tensor:
        """``_attend`` for one token per row, each row at its own position: each row's key and
        value go to its own slot, and attention masks out the slots a row has not filled (or,
        in a ring, has overwritten: a full ring holds exactly the window). The last tokens may
        be new requests' ``prompts``, each from position 0 in a cache row of its own after the
        others' (``_forward``): their keys and values go to that row, and they attend to it
        causally.

        The slots and the masks depend only on the positions and the cache's length, so they are
        worked out once per step (``plans``) and shared by every layer of that length. With one
        query per kv head, the rows' attention is elementwise products summed: each (row, kv
        head) reads a short span of its cache, and a batched matrix product's per-pair calls
        read those spans slower here than one pass over them all (a decode step about 5-10%
        faster at 16 rows); with several (GQA), two batched matrix products, queries times
        keys in this order. The mask is added to the scores."""
        c = self.config
        N, Hkv, G, D = s.q_groups.shape
        L = k_cache.shape[2]
        rows = N - sum(prompts)
        plan = plans.get(L)
        if plan is None:
            n = min(end, L) if rows else 0
            # each (token, kv head)'s new slot, in the cache seen as (cache rows·Hkv·L, D) rows
            row = torch.arange(N, device=self.device)
            if prompts:  # a prompt's tokens all go to its own row
                lengths = torch.tensor(prompts, device=self.device)
                row[rows:] = torch.repeat_interleave(rows + torch.arange(len(prompts), device=self.device), lengths)
            heads = (row[:, None] * Hkv + torch.arange(Hkv, device=self.device)) * L
            index = (heads + (positions % L)[:, None]).view(-1)
            unfilled = torch.arange(n, device=self.device) >= (positions[:rows] + 1).clamp(max=L)[:, None]
            bias = torch.zeros((rows, 1, 1, n), dtype=self.dtype, device=self.device)
            bias.view(rows, n).masked_fill_(unfilled, float("-inf"))
            causal = {}  # a prompt's length -> its G queries per kv head and token see slots 0..token
            for length in prompts:
                if length not in causal:
                    mask = torch.full((length, length), float("-inf"), dtype=self.dtype, device=self.device).triu_(1)
                    causal[length] = mask.repeat_interleave(G, dim=0)  # (length·G, length)
            plan = plans[L] = (index, bias, n, causal)
        index, bias, n, causal = plan
        k, v = s.kv.unbind(0)  # (N, Hkv, 1, D)
        k_cache.view(-1, D).index_copy_(0, index, (k * self._attention_scale).reshape(-1, D))
        v_cache.view(-1, D).index_copy_(0, index, v.reshape(-1, D))
        q = s.q_groups.narrow(0, 0, rows)
        keys, values = k_cache.narrow(0, 0, rows).narrow(2, 0, n), v_cache.narrow(0, 0, rows).narrow(2, 0, n)
        if G == 1:
            scores = (keys * q).sum(-1, keepdim=True).transpose(2, 3).add_(bias)  # (rows, Hkv, 1, n)
            y = (values * torch.softmax(scores, dim=-1).transpose(2, 3)).sum(2).view(rows, c.n_head, 1, D)
        else:
            scores = torch.matmul(q, keys.transpose(2, 3)).add_(bias)  # (rows, Hkv, G, n)
            y = torch.matmul(torch.softmax(scores, dim=-1), values).view(rows, c.n_head, 1, D)
        if not prompts:
            return y
        parts, start = [y], rows
        for j, length in enumerate(prompts):  # per kv head, the prompt's queries (length·G, D) against its row
            q = s.q_groups.narrow(0, start, length).permute(1, 0, 2, 3).reshape(Hkv, length * G, D)
            keys, values = k_cache[rows + j].narrow(1, 0, length), v_cache[rows + j].narrow(1, 0, length)
            scores = torch.matmul(q, keys.transpose(1, 2)).add_(causal[length])
            mine = torch.matmul(torch.softmax(scores, dim=-1), values)  # (Hkv, length·G, D)
            parts.append(mine.view(Hkv, length, G, D).permute(1, 0, 2, 3).reshape(length, c.n_head, 1, D))
            start += length
        return torch.cat(parts)

    def _smear(self, x: torch.Tensor, T: int, prev: torch.Tensor, from_start: bool = False) -> None:
        """Add to each position its gated share of the previous position's embedding, in place;
        ``prev`` (B, C) holds the embedding before this chunk and gets the chunk's last one. A
        chunk of one row from position 0 (``from_start``, or T > 1) has none before it."""
        if T == 1 and not from_start:
            gate = torch.mm(x.narrow(1, 0, self._smear_gate.shape[0]), self._smear_gate).sigmoid_().mul_(self._smear_lambda)
            last = x.clone()
            x.addcmul_(gate, prev)
            prev.copy_(last)
            return
        # a prefill (one row): position 0 has no previous position
        prev.copy_(x.narrow(0, T - 1, 1))
        before = x.narrow(0, 0, T - 1).clone()
        rest = x.narrow(0, 1, T - 1)
        gate = torch.mm(rest.narrow(1, 0, self._smear_gate.shape[0]), self._smear_gate).sigmoid_().mul_(self._smear_lambda)
        rest.addcmul_(gate, before)

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


def _pack_layer(source: StateSource, i: int, config: GPTConfig, weight_format: str,
                dtype: torch.dtype) -> tuple[_Layer, list[str]]:
    """The engine's layout of block ``i``'s weights (see the module docstring), and the names
    of the tensors it read."""
    H, Hkv, D = config.n_head, config.n_kv_head, config.head_dim
    prefix = f"transformer.h.{i}."
    names = [prefix + m for m in ("attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight", "attn.c_proj.weight",
                                  "mlp.c_fc.weight", "mlp.c_proj.weight")]
    # within each head, put channel i and its rotary partner i + D/2 side by side
    interleave = torch.stack([torch.arange(D // 2), torch.arange(D // 2, D)], dim=1).flatten()
    q = source.rows(names[0]).take((torch.arange(H)[:, None] * D + interleave).flatten())
    k = source.rows(names[1]).take((torch.arange(Hkv)[:, None] * D + interleave).flatten())
    sqrt_c = config.n_embd**0.5
    ve = wgate = None
    if i in config.value_embed_layers:
        names += [f"value_embeds.{i}.weight", prefix + "attn.ve_gate.weight"]
        ve = pack_table(source.rows(names[-2]), weight_format)
        wgate = (source.rows(names[-1]).dense(torch.float32).t() * sqrt_c).to(dtype).contiguous()
    layer = _Layer(
        pack_matrix(Rows.cat([q, k, source.rows(names[2])]), weight_format, sqrt_c),
        pack_matrix(source.rows(names[3]), weight_format),
        pack_matrix(source.rows(names[4]), weight_format, sqrt_c),
        pack_matrix(source.rows(names[5]), weight_format),
        config.window(i), ve, wgate,
    )
    return layer, names


def _values(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``weights @ values`` for (..., G, n) weights and a cache's (..., n, D) values.

    Stored (D, L), as values^T @ weights^T: dot products along the storage's rows, which here
    stream a long cache 1.5-2x as fast as the (L, D) layout's weighted sum of rows (d12, 500-700
    positions: about 1 ms of a 30 ms decode step)."""
    if values.stride(-2) == 1:
        return torch.matmul(values.transpose(-2, -1), weights.transpose(-2, -1)).transpose(-2, -1)
    return torch.matmul(weights, values)


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
