"""glasschat: a terminal chat app that lets you see through a chat model.

This package holds the command line (``glasschat.cli``, ``glasschat.command_group``), the one
error type every package raises for mistakes a user can fix (``glasschat.errors``), atomic
writes and where the bundled files are (``glasschat.paths``). The product lives in the sibling
packages ``tokenizer``, ``model``, ``training`` and ``tui``.
"""

__version__ = "0.1.0"
