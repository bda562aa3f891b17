"""glasschat: a terminal chat app that lets you see through a chat model.

This package holds only the command line (``glasschat.cli``) and the one error type every
package raises for mistakes a user can fix (``glasschat.errors``). The product lives in the
sibling packages ``tokenizer``, ``model`` and ``tui``.
"""

__version__ = "0.1.0"
