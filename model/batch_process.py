"""The batcher in a process of its own, behind the batcher's own ``submit``/``wake``/``score``.

``glasschat serve`` runs its event loop (HTTP, JSON, the streams) and the batched decode loop.
In one process they share one interpreter lock: measured under 16 clients, the server used
1.03 cores (the decode loop 0.83, the event loop 0.2) while the second core stood three
quarters idle, each side waiting for the lock the other held. In a process of its own the
decode loop has the lock to itself, and the server only reads its events.

The child is ``python -m model.batch_process`` on a socket pair (``glasschat.child_process``,
as the app's engine process). Its events cross once per decode step, all rows' in one message
(``Batcher``'s ``flush``); a cancel reaches the decode loop within a step. If the child dies,
every open request gets the error and later ones are refused.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from glasschat.child_process import ChildProcess, progress_reporter
from glasschat.errors import UserError
from model.batch_stream import Streams
from model.events import SamplingParams, Stop, TokenEvent


@dataclass(eq=False)
class _Open:
    put: object
    cancel: threading.Event
    cancel_sent: bool = False


class BatcherProcess(Streams):
    """A ``model.batching.Batcher`` over ``checkpoint`` (the bundled model when None) in a child
    process: ``stream``, ``submit``, ``wake``, ``waiting``, ``score`` and ``close`` as the batcher
    has them. ``name``, ``sequence_len`` and ``tokenizer_directory`` describe the model loaded."""

    def __init__(self, checkpoint: str | None, max_batch: int = 16, quantize: str | None = None,
                 threads: int = 1, progress=None, start_timeout_s: float = 600.0) -> None:
        self._child = ChildProcess("model.batch_process", checkpoint or "", quantize or "", str(threads),
                                   str(max_batch), what="the engine process")
        self._conn, self._process = self._child.conn, self._child.process
        self.max_batch = max_batch
        hello = self._child.hello(start_timeout_s, progress)
        self.name: str = hello["name"]
        self.sequence_len: int = hello["sequence_len"]
        self.tokenizer_directory: str = hello["tokenizer"]
        self._send_lock = threading.Lock()
        self._open: dict[int, _Open] = {}
        self._scores: dict[int, list] = {}  # request -> [threading.Event, answer]
        self._next = 0
        self._failed: str | None = None
        self._reader = threading.Thread(target=self._read, name="glasschat-batch-reader", daemon=True)
        self._reader.start()

    # ---- the batcher's interface

    def submit(self, prompt_ids: list[int], params: SamplingParams, put, cancel: threading.Event,
               stop_ids: dict[int, str] | None = None, tools: bool = True) -> None:
        """As ``Batcher.submit``: ``put`` is called (on this object's reader thread) with each
        event, the ``Stop`` last, or an exception if the engine fails."""
        request = self._register(self._open, _Open(put, cancel))
        self._send(("submit", request, list(prompt_ids), params, stop_ids, tools))
        if cancel.is_set():  # stopped before it started: the cancel follows it
            self.wake()

    def wake(self) -> None:
        """Pass on the cancels set since the last call (the batcher's callers set the event,
        then call ``wake``)."""
        for request, entry in list(self._open.items()):
            if entry.cancel.is_set() and not entry.cancel_sent:
                entry.cancel_sent = True
                self._send(("cancel", request), quiet=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def waiting(self) -> int:
        """Requests beyond the batch's rows (those wait for a row)."""
        return max(0, len(self._open) - self.max_batch)

    def score(self, prompt_ids: list[int], alternatives: int) -> tuple[list, list, list, list]:
        """``Batcher.score``, computed in the child (beside the decode loop)."""
        answer = [threading.Event(), None]
        request = self._register(self._scores, answer)
        self._send(("score", request, list(prompt_ids), alternatives))
        answer[0].wait()
        if isinstance(answer[1], str):
            raise RuntimeError(answer[1])
        return answer[1]

    def close(self) -> None:
        self._child.close()

    # ---- the parent's side of the connection

    def _register(self, table: dict, entry) -> int:
        """A new request number, with ``entry`` under it in ``table`` (open replies or scores)
        for the reader to answer; refused once the child has gone. Checked after the entry is
        in, so that a child going away meanwhile either finds it there or is seen here."""
        with self._send_lock:
            self._next += 1
            request = self._next
        table[request] = entry
        if self._failed is not None:
            table.pop(request, None)
            raise RuntimeError(self._failed)
        return request

    def _send(self, message, quiet: bool = False) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except OSError:
            if not quiet:
                raise RuntimeError(self._failed or self._child.ended()) from None

    def _read(self) -> None:
        """Hand each event to its request; when the child goes away, fail every open request."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "events":
                for request, item in message[1]:
                    entry = self._open.get(request)
                    if entry is None:
                        continue
                    if type(item) is tuple:
                        item = TokenEvent(*item)
                    elif isinstance(item, (Stop, BaseException)):
                        del self._open[request]
                    entry.put(item)
            else:  # ("score", request, answer)
                answer = self._scores.pop(message[1])
                answer[1] = message[2]
                answer[0].set()
        self._failed = self._child.ended()
        for request in list(self._open):
            self._open.pop(request).put(RuntimeError(self._failed))
        for request in list(self._scores):
            answer = self._scores.pop(request)
            answer[1] = self._failed
            answer[0].set()


def serve(conn: Connection, checkpoint: str | None, quantize: str | None, threads: int, max_batch: int) -> None:
    """The child: load the model (``{"progress": (done, total)}`` as it packs), say hello, then
    run ``("submit", request, prompt, params, stop_ids, tools)``, ``("cancel", request)`` and
    ``("score", request, prompt, alternatives)`` until ``None`` arrives or the server goes away."""
    from model.backend import load_local_backend
    from model.batching import Batcher
    from model.checkpoint import TOKENIZER_DIR
    from model.threads import set_threads

    # Ctrl+C in the server's terminal reaches this process too: the server ends it (``close``)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    try:
        local = load_local_backend(checkpoint, quantize, progress_reporter(conn))
    except UserError as error:
        conn.send({"error": str(error)})
        return
    send_lock = threading.Lock()  # the batcher's thread, score threads and this one all send
    outbox: list = []  # (request, event), filled on the batcher's thread

    def send(message) -> None:
        try:
            with send_lock:
                conn.send(message)
        except OSError:  # the server went away: the loop ends with the next message
            pass

    def flush() -> None:  # on the batcher's thread, once per step
        if outbox:
            batch = outbox.copy()
            outbox.clear()
            send(("events", batch))

    cancels: dict[int, threading.Event] = {}

    def putter(request: int):
        def put(item) -> None:
            if type(item) is TokenEvent:  # a token crosses as a plain tuple: a sixth of the pickling
                item = (item.id, item.text, item.forced, item.prob, item.top)
            elif isinstance(item, (Stop, BaseException)):
                cancels.pop(request, None)
                if isinstance(item, BaseException):  # any exception crosses as a plain one
                    item = RuntimeError(str(item))
            outbox.append((request, item))
        return put

    def score(request: int, prompt: list[int], alternatives: int) -> None:
        try:
            answer = batcher.score(prompt, alternatives)
        except Exception as error:
            answer = f"{type(error).__name__}: {error}"
        send(("score", request, answer))

    batcher = Batcher(local.engine, max_batch, flush=flush)
    conn.send({"name": local.info.name, "sequence_len": local.info.sequence_len,
               "tokenizer": str(local.directory / TOKENIZER_DIR)})
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message is None:
                break
            kind, request, *arguments = message
            if kind == "submit":
                cancel = cancels[request] = threading.Event()
                try:
                    batcher.submit(*arguments[:2], putter(request), cancel, *arguments[2:])
                except Exception as error:  # checked by the server first: should not happen
                    cancels.pop(request, None)
                    send(("events", [(request, RuntimeError(f"{type(error).__name__}: {error}"))]))
            elif kind == "cancel":
                event = cancels.get(request)
                if event is not None:
                    event.set()
                    batcher.wake()
            else:  # "score": beside the decode loop, as the server ran it on a thread before
                threading.Thread(target=score, args=(request, *arguments), daemon=True).start()
    finally:
        batcher.close()


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])), sys.argv[2] or None, sys.argv[3] or None, int(sys.argv[4]), int(sys.argv[5]))
    os._exit(0)  # no interpreter teardown: nothing is left to flush
