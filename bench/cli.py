"""``glasschat bench NAME``: one subcommand per benchmark module in this package.

Each module ``bench/<name>.py`` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, and imports torch or other heavy libraries only inside ``run``.
"""

import importlib

from glasschat.command_group import add_group

BENCHMARKS = ("tokenizer", "engine", "int8", "tui", "serve", "context", "bpb", "attention", "train")


def register(subparsers) -> None:
    group = add_group(subparsers, "bench", "Run a benchmark side by side with its baseline and print ratios.")
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"bench.{name}":
                raise
            continue  # not written yet
        parser = group.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)
