"""The ``glasschat`` command line: one parser, subcommands contributed by each package.

Each package has a ``cli`` module with ``register(subparsers)``; it adds its subcommands and
sets ``func`` (a handler taking the parsed args and returning an exit code); a command group
comes from ``glasschat.command_group``. Handlers turn the args into plain arguments for the
library functions they call (the server and the tests call those directly). They import
torch or textual inside themselves, so ``glasschat --help`` and the tokenizer commands start
fast. A ``UserError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from glasschat import __version__
from glasschat.errors import UserError

# Order here is the order of subcommands in ``glasschat --help``.
TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")
COMMAND_MODULES = ("tui.cli", "model.cli", "training.cli", "glasschat.serve", "tokenizer.cli", "bench.cli")


class OneLineParser(argparse.ArgumentParser):
    """A parser whose refusals are one line, like every other mistake (the usage is a ``--help``
    away); subcommand parsers are made of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="glasschat",
        description="A terminal chat app that shows every token of a chat model. "
        "With no command, starts the chat app on the bundled default model.",
    )
    parser.add_argument("--version", action="version", version=f"glasschat {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if "chat" in _command_names(parser) and (not argv or (argv[0].startswith("-") and argv[0] not in TOP_LEVEL_OPTIONS)):
        argv = ["chat", *argv]  # bare ``glasschat [chat options]`` is the chat app
    elif not argv:
        argv = ["--help"]
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        # a command group such as ``glasschat tokenizer`` given without its subcommand
        args.parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"glasschat: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glasschat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our stdout went away (``glasschat ... | head``): not an error
        sys.stderr.close()
        return 0


def _command_names(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices) if actions else set()

