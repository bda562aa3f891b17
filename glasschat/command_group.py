"""Command groups (``glasschat tokenizer ...``, ``glasschat bench ...``): a subcommand with
subcommands of its own. Its own module so that a package's ``cli`` can add a group without
importing ``glasschat.cli``, which imports every package's ``cli``."""

import argparse


def add_group(subparsers, name: str, help: str) -> argparse._SubParsersAction:
    """Add a command group (``glasschat NAME SUBCOMMAND``) and return its subparsers."""
    group = subparsers.add_parser(name, help=help, description=help)
    group.set_defaults(func=None, parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
