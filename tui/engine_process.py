"""The engine in a process of its own, behind the same ``stream`` as ``model.Engine``.

The chat's UI and the engine are both Python: in one process they share one interpreter lock,
and every torch call of the engine gives the lock up and waits to get it back while the UI
parses Markdown and paints the screen. Measured on this 2-core machine with a fast model
(``glasschat bench tui``), the engine in a thread of the app ran at about a third of its
headless speed. In its own process it keeps a core to itself and the app only reads its events.

The app still consumes the stream from a thread worker, as with an in-process engine: this
class is a drop-in ``engine`` for ``tui.backend.Backend``. Events cross a pipe in small
batches (a few ms each), which costs the engine almost nothing and the screen nothing (it
repaints at 30 Hz). Cancellation goes through a shared event the engine checks every token.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

from glasschat.errors import UserError
from model.events import SamplingParams, Stop, TokenEvent

BATCH_S = 0.004  # the engine process sends its events at least this often
POLL_S = 0.01  # how often a waiting reader checks for a cancel request


class EngineProcessError(RuntimeError):
    """The engine process failed or went away."""


class EngineProcess:
    """Loads a checkpoint in a child process and streams from it."""

    def __init__(self, checkpoint: str | None, start_timeout_s: float = 300.0) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads forked
        self._conn, child_conn = context.Pipe()
        self._cancel = context.Event()
        self._process = context.Process(target=serve, args=(checkpoint, child_conn, self._cancel),
                                        name="glasschat-engine", daemon=True)
        self._process.start()
        child_conn.close()
        self._lock = threading.Lock()
        self._request = 0
        if not self._conn.poll(start_timeout_s):
            self.close()
            raise EngineProcessError("the engine process did not start")
        hello = self._receive()
        if "error" in hello:
            self.close()
            raise UserError(hello["error"])
        self.directory: str = hello["directory"]
        self.tokenizer_directory: str = hello["tokenizer"]
        self.parameters: int = hello["parameters"]
        self.sequence_len: int = hello["sequence_len"]

    def stream(self, prompt_ids: list[int], params: SamplingParams = SamplingParams(),
               cancel: threading.Event | None = None) -> Iterator[TokenEvent | Stop]:
        with self._lock:  # one reply at a time
            self._request += 1
            request = self._request
            self._cancel.clear()
            self._conn.send((request, list(prompt_ids), params))
            try:
                yield from self._events(request, cancel)
            except GeneratorExit:
                self._cancel.set()  # the reader went away: stop generating for it
                raise

    def _events(self, request: int, cancel: threading.Event | None) -> Iterator[TokenEvent | Stop]:
        while True:
            if cancel is not None and cancel.is_set():
                self._cancel.set()
            if not self._conn.poll(POLL_S):
                if not self._process.is_alive():
                    raise EngineProcessError(f"the engine process ended (exit code {self._process.exitcode})")
                continue
            answer, payload = self._receive()
            if answer != request:
                continue  # the tail of a reply whose reader went away
            if isinstance(payload, str):
                raise EngineProcessError(payload)
            for event in payload:
                yield event
                if isinstance(event, Stop):
                    return

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise EngineProcessError(f"the engine process ended (exit code {self._process.exitcode})") from None

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._process.join(timeout=2)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()


def serve(checkpoint: str | None, conn, cancel) -> None:
    """The engine process: load the model, then answer ``(request, prompt, params)`` messages
    with batches of events until ``None`` arrives or the app goes away."""
    try:
        from model import load_model, resolve_checkpoint_dir
        from model.checkpoint import TOKENIZER_DIR
        from model.engine import Engine

        directory = resolve_checkpoint_dir(checkpoint)
        gpt, tokenizer = load_model(directory)
        engine = Engine(gpt, tokenizer)
    except UserError as error:
        conn.send({"error": str(error)})
        return
    conn.send({"directory": str(directory), "tokenizer": str(directory / TOKENIZER_DIR),
               "parameters": sum(p.numel() for p in gpt.parameters()),
               "sequence_len": gpt.config.sequence_len})
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        request, prompt, params = message
        try:
            batch, sent_at = [], time.perf_counter()
            for event in engine.stream(prompt, params, cancel=cancel):
                batch.append(event)
                if isinstance(event, Stop) or time.perf_counter() - sent_at >= BATCH_S:
                    conn.send((request, batch))
                    batch, sent_at = [], time.perf_counter()
            if batch:
                conn.send((request, batch))
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as error:  # reported to the app as a notification, the process goes on
            conn.send((request, f"{type(error).__name__}: {error}"))
