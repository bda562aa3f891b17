"""The ``glasschat`` subcommands of the ``tui`` package."""


def register(subparsers) -> None:
    """Add this package's subcommands to the top-level parser."""
