"""The error type for mistakes a user can fix.

Anything raised as a ``UserError`` (or a subclass) is shown by the CLI as one line on stderr
with exit code 2 — never a traceback. Its message must name the file, field or line at fault.
Bugs stay ordinary exceptions so that they do show a traceback.
"""


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed conversation, an invalid option."""
