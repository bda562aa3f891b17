"""A scripted backend for the app's tests: a ``model.backend.Backend`` whose ``stream`` yields the
real engine's events, replying with given texts (or parts, for tool calls) token by token."""

from __future__ import annotations

import threading
import time

from model.events import GenerationStats, Stop, TokenEvent
from model.backend import ModelInfo


class ScriptedBackend:
    """Replies with ``replies`` in turn (the last one repeats).

    ``hold_after``: after that many tokens, wait until cancelled (a reply caught mid-stream).
    ``fail_after``: raise after that many tokens. ``delay_s``: sleep before each token.
    ``timings``: report these ``(ttft_s, total_s)`` instead of measured ones (for snapshots).
    ``probs``: the sampled tokens' probabilities, in turn (repeating); 0.5 each without.
    """

    def __init__(self, tokenizer, replies, *, hold_after: int | None = None, fail_after: int | None = None,
                 delay_s: float = 0.0, timings: tuple[float, float] | None = None,
                 info: ModelInfo = ModelInfo("scripted", 1234, 512), probs: list[float] | None = None) -> None:
        self.tokenizer = tokenizer
        self.info = info
        self.closed = False
        self.replies = list(replies)
        self.hold_after = hold_after
        self.fail_after = fail_after
        self.delay_s = delay_s
        self.timings = timings
        self.probs = probs or [0.5]
        self.calls: list[tuple[list[int], object]] = []  # (prompt ids, params) of every call
        self.surprisal_calls: list[list[int]] = []  # the ids of every surprisal request
        self.attention_calls: list[tuple[list[int], int]] = []  # (ids, position) of every attention request
        self.holding = threading.Event()

    def tokens(self, reply) -> list[tuple[int, bool]]:
        tok = self.tokenizer
        special = tok.encode_special
        if isinstance(reply, str):
            reply = [{"type": "text", "text": reply}]
        out: list[tuple[int, bool]] = []
        for part in reply:
            if part["type"] == "text":
                out += [(i, False) for i in tok.encode(part["text"])]
            elif part["type"] == "python":
                out += [(special("<|python_start|>"), False)] + [(i, False) for i in tok.encode(part["text"])]
                out += [(special("<|python_end|>"), False)]
            else:
                out += [(special("<|output_start|>"), True)] + [(i, True) for i in tok.encode(part["text"])]
                out += [(special("<|output_end|>"), True)]
        return out + [(special("<|assistant_end|>"), False)]

    def stream(self, prompt_ids, params, cancel=None):
        self.calls.append((list(prompt_ids), params))
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        decoder = self.tokenizer.stream_decoder()
        start = time.perf_counter()
        first = None

        def stop(reason, produced):
            now = time.perf_counter()
            ttft, total = self.timings or ((first or now) - start, now - start)
            stats = GenerationStats(len(prompt_ids), produced, ttft, total)
            return Stop(reason, stats)

        for n, (token, forced) in enumerate(self.tokens(reply)):
            if self.hold_after is not None and n == self.hold_after:
                self.holding.set()
                while cancel is not None and not cancel.wait(0.01):
                    pass
            if self.fail_after is not None and n == self.fail_after:
                raise RuntimeError("scripted engine failure")
            if cancel is not None and cancel.is_set():
                yield stop("cancelled", n)
                return
            if n >= params.max_tokens:
                yield stop("max_tokens", n)
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            first = first or time.perf_counter()
            bpe = self.tokenizer.vocab_size - 9
            top = () if forced else tuple(((token if k == 0 else (token + k) % bpe), 0.5 / (k + 1))
                                          for k in range(params.top_alternatives))
            prob = self.probs[n % len(self.probs)]
            yield TokenEvent(token, decoder.feed(token), forced, None if forced else prob, top)
        yield stop("assistant_end", len(self.tokens(reply)))

    def surprisal(self, ids):
        """Made-up but fixed: token id ``t`` is ``1 + t % 5`` bits surprising."""
        self.surprisal_calls.append(list(ids))
        return [float(1 + token % 5) for token in ids[1:]]

    def attention(self, ids, position):
        """Made-up but fixed, 2 layers of 2 heads: key j gets weight in proportion to
        ``(1 + (3·ids[j] + layer + 2·head) % 7)²``."""
        self.attention_calls.append((list(ids), position))
        weights = []
        for layer in range(2):
            heads = []
            for head in range(2):
                raw = [(1.0 + (3 * token + layer + 2 * head) % 7) ** 2 for token in ids[: position + 1]]
                heads.append([w / sum(raw) for w in raw])
            weights.append(heads)
        return weights

    def close(self) -> None:
        self.closed = True


def scripted_backend(tokenizer, replies, sequence_len: int = 512, **options) -> ScriptedBackend:
    return ScriptedBackend(tokenizer, replies, info=ModelInfo("scripted", 1234, sequence_len), **options)


async def wait_until(pilot, predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached in time")
