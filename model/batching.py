"""Continuous batching: many replies to different prompts, decoded together one step at a time.

``Batcher(engine, max_batch)`` owns one thread and one KV cache of ``max_batch`` rows.
``Batcher.stream(prompt_ids, params, cancel, stop_ids, tools)`` may be called from any number of
threads at once; each call gets its own ``TokenEvent``/``Stop`` stream, exactly as
``Engine.stream`` yields for one row. Between two decode steps the thread admits waiting
requests into free cache rows and drops finished or cancelled ones, so a short reply never
waits for a long one and a new request never waits for the batch to drain. A request admitted
while rows decode runs its prompt inside their next step (its tokens share the step's matrix
products: a prefill of its own would cost a pass over the weights); one admitted to an idle
batch, with a prompt longer than a window's ring or ``JOIN_MAX`` tokens, or on int8 weights runs
its prompt alone.

Rows sit at different positions: a decode step is ``Engine._forward`` given each row's own
position, where each row's rotation is taken at its position, its new key and value go to its
own slot in its cache row (a sliding-window layer's ring included), and attention masks out the
slots a row has not filled. Everything else is the engine's own forward (the same packed
weights, fp32 or int8, the same order of operations); a test holds every batched reply to the
engine's serial greedy reply.

Each request keeps its own ``torch.Generator`` seeded as ``Engine.stream`` seeds it and draws
from it in the same order, so a seeded reply does not depend on what else is in the batch. (With
int8 weights it does, at rounding level: ``model.int8``'s kernel quantizes its input with one
scale per call, which the rows of a batch share, so greedy replies can part at a near-tie.)
Active rows are kept in cache rows ``0..n-1``: when a row leaves, the last row's cache moves
into its place (one copy of one row), and every step runs on a contiguous slice.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from glasschat.errors import UserError
from model.batch_stream import Streams
from model.engine import Engine, _sample_filtered
from model.events import GenerationStats, SamplingParams, Stop, TokenEvent
from model.tool import ToolState


# A longer prompt runs alone: its own products are wide enough already, and a joined prompt's
# attention scores (all its positions against all, per kv head) grow as its length squared.
JOIN_MAX = 512


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    params: SamplingParams
    stop_ids: dict[int, str]  # token id -> stop reason
    tools: bool
    cancel: threading.Event
    put: object  # called (on the batcher's thread) with each TokenEvent, the Stop, or an exception
    start: float = field(default_factory=time.perf_counter)
    decoder: object = None
    tool: ToolState | None = None
    ids: list[int] = field(default_factory=list)
    ttft_s: float = 0.0
    generator: torch.Generator | None = None
    pos: int = 0  # where the next fed token goes
    chosen: int = 0  # the token sampled for the next step, its probability and alternatives
    prob: float = 0.0
    top: tuple = ()


class Batcher(Streams):
    """Serves ``stream`` calls from many threads with one batched decode loop (see the module
    docstring). ``close()`` stops the loop; streams still open end with ``cancelled``."""

    def __init__(self, engine: Engine, max_batch: int = 16, flush=None):
        """``flush()``, when given, is called on the batcher's thread after each round of events
        (every request's token of a step, and the stops): a caller that carries the events
        elsewhere (``model.batch_process``) sends them then, once per step, not once per event."""
        self.engine, self.max_batch = engine, max_batch
        self._flush = flush if flush is not None else (lambda: None)
        self.config = engine.config
        special = engine.tokenizer.special_ids
        self.default_stops = {special["<|assistant_end|>"]: "assistant_end", special["<|bos|>"]: "bos"}
        # values a slot per row: rows apart attend over short spans of many small blocks, which
        # the (D, L) layout's many short rows read slower (``Engine._allocate_cache``)
        self._cache = engine._allocate_cache(max_batch, self.config.sequence_len, values_by_slot=True)
        with torch.inference_mode():
            # a row attends over slots it has not filled yet (masked out, weight 0); an empty
            # tensor's garbage there could be NaN, and 0 · NaN poisons the sum: start from zeros
            for tensor in (*self._cache.keys, *self._cache.values):
                tensor.zero_()
        # batch size -> the engine's scratch buffers for a step of that many rows, and the cache's first rows
        self._views: dict = {}
        self._waiting: deque[_Request] = deque()
        self._joining: deque[_Request] = deque()  # admitted; each joins a decode step with its prompt
        # the longest prompt that can join a step: one that fits every layer's cache, a ring's
        # included, and at most JOIN_MAX tokens. 0 (none joins) with int8 weights: the int8 kernel
        # scales its input once per call, so a joined prompt would be rounded at the rows' scale;
        # alone, its first token is exact
        self._join_max = min(JOIN_MAX, *(k.shape[2] for k in self._cache.keys)) if engine.weight_format != "int8" else 0
        self.joined = 0  # prompts that joined a decode step
        self._active: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self.steps = 0  # decode steps run, and rows decoded in them: the mean batch is their ratio
        self.rows_decoded = 0
        self._thread = threading.Thread(target=self._loop, name="glasschat-batcher", daemon=True)
        self._thread.start()

    # ---- the callers' side

    def submit(self, prompt_ids: list[int], params: SamplingParams, put, cancel: threading.Event,
               stop_ids: dict[int, str] | None = None, tools: bool = True) -> None:
        """Queue one reply; ``put`` is called from the batcher's thread with each event, the
        ``Stop`` last (or an exception if the engine fails). Setting ``cancel`` ends it with a
        ``cancelled`` stop within one step. For callers that are not threads (an event loop)."""
        if params.num_samples != 1:
            raise UserError("num_samples must be 1 for a batched request")
        request = _Request(self.engine._check_prompt(prompt_ids), params,
                           self.default_stops if stop_ids is None else stop_ids, tools, cancel, put)
        with self._wake:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._waiting.append(request)
            self._wake.notify()

    def wake(self) -> None:
        """Have the loop look at its requests now (after a cancel, so an idle wait ends)."""
        with self._wake:
            self._wake.notify()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)

    @property
    def active(self) -> int:
        return len(self._active)

    # ---- the loop

    def _loop(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._closed and not self._waiting and not self._active and not self._joining:
                        self._wake.wait()
                    if self._closed:
                        break
                    admitted = []
                    while self._waiting and len(self._active) + len(self._joining) + len(admitted) < self.max_batch:
                        admitted.append(self._waiting.popleft())
                with torch.inference_mode():  # the cache is an inference tensor
                    decoding = bool(self._active)
                    for request in admitted:
                        self._admit(request, decoding)
                    self._emit()
                    self._flush()
                    if self._active or self._joining:
                        self._step()
        except BaseException as error:  # a failure reaches every waiting caller, none hangs
            for request in [*self._active, *self._joining, *self._waiting]:
                request.put(RuntimeError(f"the batched engine failed: {type(error).__name__}: {error}"))
            self._flush()
            raise
        for request in [*self._active, *self._joining, *self._waiting]:
            request.put(self._stop(request, "cancelled"))
        self._flush()

    def score(self, prompt_ids: list[int], alternatives: int) -> tuple[list, list, list, list]:
        """A prompt scored by the engine (``Engine.logits``: one forward from an empty cache, on
        the weights that generate; safe beside the loop, which has a cache of its own): for each
        token after the first, its log probability and rank, and the ``alternatives`` most likely
        tokens there with theirs, as ``(logprobs, ranks, top_ids, top_logprobs)`` lists."""
        with torch.inference_mode():
            logprobs = torch.log_softmax(self.engine.logits(prompt_ids).float(), dim=-1)[:-1]
            chosen = logprobs.gather(1, torch.tensor(prompt_ids[1:], dtype=torch.long)[:, None])
            ranks = (logprobs > chosen).sum(dim=1) + 1
            top = logprobs.topk(alternatives, dim=1) if alternatives else None
            return (chosen[:, 0].tolist(), ranks.tolist(), top.indices.tolist() if top is not None else [],
                    top.values.tolist() if top is not None else [])

    def _admit(self, request: _Request, decoding: bool) -> None:
        """Set a request up. While rows decode, a prompt that fits every layer's cache joins the
        next step (``_step``); otherwise it is run through the model on its own now."""
        engine, params = self.engine, request.params
        request.decoder, request.tool = engine.tokenizer.stream_decoder(), ToolState(engine.tokenizer)
        if len(request.prompt) >= self.config.sequence_len or request.cancel.is_set():
            request.put(self._stop(request, "cancelled" if request.cancel.is_set() else "context_full"))
            return
        request.generator = torch.Generator(device=engine.device)
        request.generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        if decoding and len(request.prompt) <= self._join_max:
            self._joining.append(request)
        else:
            self._prefill(request)

    def _prefill(self, request: _Request) -> None:
        """Run a prompt through the model on its own, into the next free cache row."""
        slot = len(self._active)
        logits = self.engine._prefill(torch.tensor(request.prompt, device=self.engine.device),
                                      self._cache.rows(slot, 1), 1)
        self._sample([request], logits)
        request.pos = len(request.prompt)
        self._active.append(request)

    def _emit(self) -> None:
        """Hand every active row its next token (the engine's rules: forced tool tokens first,
        then the sampled one), and drop the rows that stop."""
        for request in list(self._active):
            if request.cancel.is_set():
                self._finish(request, "cancelled")
                continue
            tool = request.tool
            forced = bool(tool.forced)
            token = tool.forced.popleft() if forced else request.chosen
            request.ids.append(token)
            if len(request.ids) == 1:
                request.ttft_s = time.perf_counter() - request.start
            request.put(TokenEvent(id=token, text=request.decoder.feed(token), forced=forced,
                                   prob=None if forced else request.prob, top=() if forced else request.top))
            if not forced and request.tools:
                tool.feed(token)
            request.chosen = token  # what the next step feeds
            reason = None
            if not forced and token in request.stop_ids:
                reason = request.stop_ids[token]
            elif len(request.ids) >= request.params.max_tokens:
                reason = "max_tokens"
            elif len(request.prompt) + len(request.ids) >= self.config.sequence_len:
                reason = "context_full"
            if reason is not None:
                self._finish(request, reason)

    def _finish(self, request: _Request, reason: str) -> None:
        slot, last = self._active.index(request), len(self._active) - 1
        if slot != last:  # the last row moves into the freed cache row
            moved = self._active[last]
            self._cache.move_row(last, slot, moved.pos)
            self._active[slot] = moved
        self._active.pop()
        # the row is freed before its stop goes out: whoever reads the stop finds it gone
        request.put(self._stop(request, reason))

    @staticmethod
    def _stop(request: _Request, reason: str) -> Stop:
        total = time.perf_counter() - request.start
        stats = GenerationStats(len(request.prompt), len(request.ids), request.ttft_s if request.ids else total, total)
        return Stop(reason, stats)

    def _step(self) -> None:
        joining = []
        while self._joining:
            request = self._joining.popleft()
            if request.cancel.is_set():
                request.put(self._stop(request, "cancelled"))
            else:
                joining.append(request)
        if joining and not self._active:
            # nothing left to decode beside them: the first runs alone, the others join the next
            # step (its first token must be emitted before it decodes the one after)
            self._prefill(joining.pop(0))
            self._joining.extendleft(reversed(joining))
            return
        if joining:
            self._step_joined(joining)
            return
        if not self._active:
            return
        rows = self._active
        engine, n = self.engine, len(rows)
        views = self._views.get(n)
        if views is None:
            views = self._views[n] = (engine._scratch(n, 1), self._cache.rows(0, n))
        scratch, cache = views
        with torch.inference_mode():
            ids = torch.tensor([r.chosen for r in rows], device=engine.device)
            if n == 1:  # one row alone: the engine's own serial step (no per-row positions, no mask)
                logits = engine._forward(ids, rows[0].pos, cache, scratch)
            else:
                positions = torch.tensor([r.pos for r in rows], device=engine.device)
                end = max(r.pos for r in rows) + 1
                logits = engine._forward(ids, positions, cache, scratch, end)
        self._sample(rows, logits)
        for r in rows:
            r.pos += 1
        self.steps += 1
        self.rows_decoded += len(rows)

    def _step_joined(self, joining: list[_Request]) -> None:
        """One decode step of the active rows with the ``joining`` requests' prompts in the same
        forward: their tokens share the step's matrix products, where a prefill of their own
        would cost each a pass over the weights and a forward's fixed costs (``Engine._forward``'s
        ``prompts``). Each takes the next cache row and joins the rows with its first token chosen."""
        rows, engine = self._active, self.engine
        n, lengths = len(rows), tuple(len(r.prompt) for r in joining)
        device = engine.device
        ids = torch.tensor([r.chosen for r in rows] + [t for r in joining for t in r.prompt], device=device)
        positions = torch.tensor([r.pos for r in rows] + [p for length in lengths for p in range(length)], device=device)
        logits = engine._forward(ids, positions, self._cache.rows(0, n + len(joining)),
                                 engine._scratch(n + sum(lengths), 1), max(r.pos for r in rows) + 1, prompts=lengths)
        self._sample(rows, logits[:n])
        self._sample(joining, logits[n:])
        for r in rows:
            r.pos += 1
        for r in joining:
            r.pos = len(r.prompt)
        rows.extend(joining)
        self.joined += len(joining)
        self.steps += 1
        self.rows_decoded += n

    def _sample(self, rows: list[_Request], logits: torch.Tensor) -> None:
        """Each row's next token as ``Engine._sample`` chooses it, with the row's own generator
        and parameters; probabilities and alternatives under the model's own distribution."""
        with torch.inference_mode():
            probs = torch.softmax(logits, dim=-1)
            best, chosen = probs.max(dim=-1)
            k = max(r.params.top_alternatives for r in rows)
            top = probs.topk(min(k, logits.shape[-1]), dim=-1) if k else None
            sampled = [i for i, r in enumerate(rows) if r.params.temperature != 0]
            for i in sampled:
                r = rows[i]
                choice = _sample_filtered(logits[i:i + 1], r.params, r.generator).view(-1)
                chosen[i] = choice[0]
                best[i] = probs[i, choice[0]]
            chosen, best = chosen.tolist(), best.tolist()
            top_ids, top_probs = (top.indices.tolist(), top.values.tolist()) if top is not None else (None, None)
        for i, r in enumerate(rows):
            r.chosen, r.prob = chosen[i], best[i]
            n = r.params.top_alternatives
            r.top = tuple(zip(top_ids[i][:n], top_probs[i][:n])) if n else ()

