"""The app's safety net: a bug met in an action, a slash command, a message handler, a timer or
a screen's callback becomes a notification, and the conversation and the draft stay as they
were. Textual would end the app on any of them (an exception that reaches its message loop
stops that loop), so the net sits in the app's own code, around each way in:
``GlasschatApp.run_action`` (keys, the palette, widgets' actions) and the methods marked
``@guarded`` (handlers, timers, screen callbacks).

A mistake by the user (a ``UserError``) is its message; anything else is reported as a bug,
with its traceback appended to ``errors.log`` in the data directory for a report.
"""

from __future__ import annotations

import functools
import inspect
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from glasschat.errors import UserError


def guarded(method: Callable) -> Callable:
    """Wrap an app method (sync or async) so that an exception is reported, not fatal."""
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def guarded_async(self, *args, **kwargs):
            try:
                return await method(self, *args, **kwargs)
            except Exception as error:
                self.report_error(method.__name__, error)
        return guarded_async

    @functools.wraps(method)
    def guarded_sync(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:
            self.report_error(method.__name__, error)
    return guarded_sync


def describe(where: str, error: Exception, log: Path | None) -> str:
    """The notification for ``error`` met in ``where``."""
    if isinstance(error, UserError):
        return str(error)
    detail = f" (details in {log})" if log is not None else ""
    return (f"Something went wrong ({where}: {type(error).__name__}: {error}). "
            f"The conversation and your draft are kept{detail}.")


def log_error(log: Path, where: str, error: BaseException) -> bool:
    """Append ``error``'s traceback to ``log``; False when it cannot be written."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8", errors="replace") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} in {where}\n")
            f.write("".join(traceback.format_exception(error)))
        return True
    except OSError:
        return False
