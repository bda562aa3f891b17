"""The engine in a process of its own, behind the same ``stream`` as ``model.Engine``.

The chat's UI and the engine are both Python: in one process they share one interpreter lock,
and every torch call of the engine gives the lock up and waits to get it back while the UI
parses Markdown and paints the screen. Measured on this 2-core machine with a fast model
(``glasschat bench tui``), the engine in a thread of the app ran at about a third of its
headless speed. In its own process it has a core to itself and the app only reads its events.

The app still consumes the stream from a thread worker, as with an in-process engine: this
class is a ``model.backend.Backend`` like ``LocalBackend``. The child is ``python -m
tui.engine_process`` on a socket pair (``glasschat.child_process``). Events cross in batches
(the first token at once, then about 60 a second), which costs the engine almost nothing and the
screen nothing (it repaints at 30 Hz). A cancel request reaches the
engine within one token. The engine gets a CPU of its own where there are two or more.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

from glasschat.child_process import ChildProcess, progress_reporter
from glasschat.errors import UserError
from model.backend import ModelInfo, model_name
from model.events import SamplingParams, Stop, TokenEvent
from tokenizer import Tokenizer

# The engine process sends its events in batches, the first token at once and then at most
# every BATCH_S: twice the screen's 30 Hz, so text never waits a frame, while each send (pickling
# and a system call) stays rare: sending much more often costs a fast model a visible share of its
# speed (`glasschat bench tui` compares the engine in the app with the engine headless).
BATCH_S = 1 / 60
POLL_S = 0.01  # how often a waiting reader checks for a cancel request


def split_cpus() -> tuple[int, set[int]] | None:
    """``(engine CPU, the app's CPUs)`` when this process may run on two CPUs or more, else None.

    The engine gets a CPU of its own and the app the others. Left to itself, Linux wakes the
    app's reader on the CPU of the engine that woke it, and the two then take turns on one core
    while the other idles, and a fast model in the app falls well behind its headless speed;
    placed apart, it comes close (`glasschat bench tui` measures both).
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    return allowed[-1], set(allowed[:-1])


class EngineProcessError(RuntimeError):
    """The engine process failed or went away."""


class EngineProcess:
    """Loads a checkpoint (or the default model) in a child process and streams from it: a
    ``model.backend.Backend``."""

    def __init__(self, checkpoint: str | None, start_timeout_s: float = 300.0, place_cpus: bool = True,
                 quantize: str | None = None, progress=None) -> None:
        """``place_cpus``: give the engine a CPU of its own and keep this process on the others
        (see ``split_cpus``; this changes the calling process's CPU affinity). ``quantize``: run
        the weights int8. ``progress(done_bytes, total_bytes)`` follows the child's load."""
        placement = split_cpus() if place_cpus else None
        self._child = ChildProcess("tui.engine_process", checkpoint or "", str(placement[0]) if placement else "",
                                   quantize or "", what="the engine process")
        self._conn, self._process = self._child.conn, self._child.process
        self._lock = threading.Lock()
        self._request = 0
        hello = self._child.hello(start_timeout_s, progress)
        self.directory: str = hello["directory"]
        self.tokenizer_directory: str = hello["tokenizer"]
        self.parameters: int = hello["parameters"]
        self.sequence_len: int = hello["sequence_len"]
        self.weight_format: str = hello["weight_format"]
        self.tokenizer = Tokenizer.load(self.tokenizer_directory)
        self.info = ModelInfo(model_name(self.directory), self.parameters, self.sequence_len, self.weight_format,
                              hello["runs_on"], hello["source"], hello["stored_as"], tuple(hello["example_prompts"]))
        if placement:  # only once the engine runs: a failed start leaves this process as it was
            os.sched_setaffinity(0, placement[1])

    @property
    def pid(self) -> int:
        return self._process.pid

    def stream(self, prompt_ids: list[int], params: SamplingParams = SamplingParams(),
               cancel: threading.Event | None = None) -> Iterator[TokenEvent | Stop]:
        with self._lock:  # one reply at a time
            self._request += 1
            request = self._request
            if cancel is not None and cancel.is_set():
                # stopped before it started: the cancel goes first, so the engine process knows
                # it when the request arrives instead of racing the reply's first tokens
                self._send_cancel(request)
            self._conn.send((request, list(prompt_ids), params))
            finished = False
            try:
                for event in self._events(request, cancel):
                    finished = isinstance(event, Stop)
                    yield event
            finally:
                if not finished:  # the reader went away or failed: stop generating for it
                    self._send_cancel(request)

    def _events(self, request: int, cancel: threading.Event | None) -> Iterator[TokenEvent | Stop]:
        cancel_sent = False
        while True:
            if cancel is not None and cancel.is_set() and not cancel_sent:
                cancel_sent = self._send_cancel(request)
            if not self._conn.poll(POLL_S):
                if self._process.poll() is not None:
                    raise EngineProcessError(self._child.ended())
                continue
            answer, payload = self._receive()
            if answer != request:
                continue  # the tail of an earlier reply whose reader went away
            if isinstance(payload, str):
                raise EngineProcessError(payload)
            for event in payload:
                yield event
                if isinstance(event, Stop):
                    return

    def surprisal(self, ids: list[int]) -> list[float]:
        """Surprisal in bits of each token of ``ids`` after the first (``model.bpb.surprisal``):
        one forward over them in the engine process, after any reply in progress."""
        return self._ask("surprisal", list(ids))["surprisal"]

    def attention(self, ids: list[int], position: int) -> list[list[list[float]]]:
        """``weights[layer][head][key]`` of the token at ``position`` (``model.attention``),
        computed in the engine process after any reply in progress; its notice (a model too
        large, a conversation too long) as a ``UserError``."""
        answer = self._ask("attention", list(ids), int(position))
        if "notice" in answer:
            raise UserError(answer["notice"])
        return answer["attention"]

    def _ask(self, kind: str, *arguments) -> dict:
        """One request that is not a reply: ``(kind, request, *arguments)``, one answer."""
        with self._lock:
            self._request += 1
            request = self._request
            self._conn.send((kind, request, *arguments))
            while True:
                if not self._conn.poll(POLL_S):
                    if self._process.poll() is not None:
                        raise EngineProcessError(self._child.ended())
                    continue
                answer, payload = self._receive()
                if answer != request:
                    continue  # the tail of an earlier reply whose reader went away
                if isinstance(payload, str):
                    raise EngineProcessError(payload)
                return payload

    def _send_cancel(self, request: int) -> bool:
        try:
            self._conn.send(("cancel", request))
        except OSError:
            pass
        return True

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise EngineProcessError(self._child.ended()) from None

    def close(self) -> None:
        self._child.close(timeout_s=2)


def serve(conn: Connection, checkpoint: str | None, quantize: str | None = None) -> None:
    """The engine process: load the model (sending ``{"progress": (done, total)}`` as it
    packs), then answer ``(request, prompt, params)`` with batches of events,
    ``("surprisal", request, ids)`` with ``{"surprisal": bits}`` and ``("attention", request, ids,
    position)`` with ``{"attention": weights}`` (or ``{"notice": why not}``), in the order they
    come, until ``None`` arrives or the app goes away."""
    try:
        from model.attention import engine_probe
        from model.bpb import surprisal
        from model.checkpoint import TOKENIZER_DIR, load_engine, parameter_count, resolve_checkpoint_dir
        from model.facts import checkpoint_facts
        from model.threads import set_threads

        set_threads()
        directory = resolve_checkpoint_dir(checkpoint)
        engine, tokenizer = load_engine(directory, quantize, progress=progress_reporter(conn))
        facts = checkpoint_facts(directory)  # the first screen's: where it came from, its example prompts
    except UserError as error:
        conn.send({"error": str(error)})
        return
    conn.send({"directory": str(directory), "tokenizer": str(directory / TOKENIZER_DIR),
               "parameters": parameter_count(engine.config), "sequence_len": engine.config.sequence_len,
               "weight_format": engine.weight_format, "runs_on": engine.device.type,
               "source": facts.source, "stored_as": facts.stored_as, "example_prompts": list(facts.example_prompts)})

    probe = engine_probe(engine, directory)  # loads the weights for it on its first request
    requests: queue.Queue = queue.Queue()
    cancel = threading.Event()
    current = [0]
    cancelled: set[int] = set()

    def listen() -> None:  # requests queue up; a cancel acts at once
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                requests.put(None)
                return
            if message[0] == "cancel":
                cancelled.add(message[1])
                if message[1] == current[0]:
                    cancel.set()
            else:
                requests.put(message)

    threading.Thread(target=listen, daemon=True).start()
    while (message := requests.get()) is not None:
        if message[0] in ("surprisal", "attention"):  # (kind, request, ...): one forward, one answer
            kind, request, *arguments = message
            try:
                if kind == "surprisal":
                    answer = {"surprisal": surprisal(engine, *arguments)}
                else:
                    try:
                        answer = {"attention": probe.attention(*arguments)}
                    except UserError as notice:
                        answer = {"notice": str(notice)}
                conn.send((request, answer))
            except OSError:
                return
            except Exception as error:
                conn.send((request, f"{type(error).__name__}: {error}"))
            continue
        request, prompt, params = message
        current[0] = request
        cancel.clear()
        if request in cancelled:
            cancel.set()
        try:
            batch, sent_at = [], float("-inf")  # the first token goes out at once
            for event in engine.stream(prompt, params, cancel=cancel):
                batch.append(event)
                if isinstance(event, Stop) or time.perf_counter() - sent_at >= BATCH_S:
                    conn.send((request, batch))
                    batch, sent_at = [], time.perf_counter()
            if batch:
                conn.send((request, batch))
        except OSError:
            return
        except Exception as error:  # reported to the app as a notification; the process goes on
            conn.send((request, f"{type(error).__name__}: {error}"))


if __name__ == "__main__":
    if sys.argv[3]:
        os.sched_setaffinity(0, {int(sys.argv[3])})
    serve(Connection(int(sys.argv[1])), sys.argv[2] or None, sys.argv[4] or None)
    os._exit(0)  # no interpreter teardown: nothing is left to flush
