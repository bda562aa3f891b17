"""A Python child process on a socket pair: how the app's engine (``tui.engine_process``) and
the server's decode loop (``model.batch_process``) each get an interpreter and a core.

The child is a plain ``python -m MODULE FD ARGS...`` (not ``multiprocessing``, whose "spawn"
re-imports the parent's ``__main__``), talking over its end of a socket pair (``FD``) with
``multiprocessing.connection`` framing. Its stderr goes to a temporary file, never to the
terminal, where it would tear a full-screen app; the file's last line says why a child ended.
A child loads first, sending ``{"progress": (done, total)}`` as it goes, then one hello (a
dict) or ``{"error": message}``; ``None`` from the parent asks it to end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection

from glasschat.errors import UserError


class ChildProcess:
    """``python -m module FD *args``; ``what`` names it in messages ("the engine process")."""

    def __init__(self, module: str, *args: str, what: str) -> None:
        self.what = what
        ours, theirs = socket.socketpair()
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno()), *args], pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        theirs.close()
        self.conn = Connection(ours.detach())

    def hello(self, timeout_s: float, progress=None) -> dict:
        """The child's hello, passing its progress reports to ``progress(done, total)`` first. A
        child that reports an error, ends, or says nothing for ``timeout_s`` is closed and a
        ``UserError`` says why in one line."""
        while True:
            if not self.conn.poll(timeout_s):
                self.close()
                raise UserError(f"{self.what} did not start within {timeout_s:g} s")
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # it failed as it loaded: its last line of stderr says why
                ended = self.ended()
                self.close()
                raise UserError(ended) from None
            if "progress" not in message:
                break
            if progress is not None:
                progress(*message["progress"])
        if "error" in message:
            self.close()
            raise UserError(message["error"])
        return message

    def ended(self) -> str:
        """Why the child ended: its exit code and the last line it wrote to stderr."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self._log.seek(0)
            tail = self._log.read().decode("utf-8", "replace").strip().splitlines()[-1:]
        except ValueError:  # the log is closed: the parent is closing it
            tail = []
        return f"{self.what} ended (exit code {self.process.poll()})" + (f": {tail[0]}" if tail else "")

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the child to end, and kill it if it has not after ``timeout_s``."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.conn.close()
        self._log.close()


def progress_reporter(conn: Connection):
    """The child's side: a ``progress(done, total)`` that sends a few reports a second at most
    (and always the last)."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] >= 0.1 or done >= total:
            last[0] = time.perf_counter()
            conn.send({"progress": (done, total)})

    return progress
