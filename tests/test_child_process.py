"""The child processes behind the app's engine and the server's decode loop: a child that ends
before its hello is one line naming why, never a traceback."""

from __future__ import annotations

import pytest

from glasschat.child_process import ChildProcess
from glasschat.errors import UserError


def test_a_child_that_ends_before_its_hello_is_one_line_naming_why():
    child = ChildProcess("glasschat.no_such_module", what="the engine process")
    with pytest.raises(UserError) as error:
        child.hello(timeout_s=60)
    message = str(error.value)
    assert message.startswith("the engine process ended (exit code 1): ")
    assert "No module named glasschat.no_such_module" in message and "\n" not in message
    assert child.process.poll() == 1
