"""``glasschat tokenizer train|encode|render``."""

from glasschat.cli import add_group


def register(subparsers) -> None:
    group = add_group(subparsers, "tokenizer", "Train, inspect and use BPE tokenizers.")
    _register_train(group)


def _register_train(group) -> None:
    p = group.add_parser(
        "train",
        help="Train a byte-level BPE tokenizer on text files.",
        description="Train a byte-level BPE tokenizer (regex pre-split, then merges) on text. "
        "The nine special tokens are appended after the learned tokens.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text files, .jsonl files (a 'text' field per line), directories (recursively), or - for stdin")
    p.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="total vocabulary size including the 9 special tokens (at least 265)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--workers", type=int, default=None, metavar="K", help="counting processes (default: all cores)")
    p.add_argument("--pattern", default="nanochat", metavar="nanochat|gpt4|REGEX", help="split pattern (default: nanochat)")
    p.add_argument("--max-chars", type=int, default=None, metavar="N", help="stop reading after N characters in total")
    p.add_argument("--doc-cap", type=int, default=None, metavar="N", help="use at most N characters of each document")
    p.add_argument("--split-lines", action="store_true", help="treat each line of a plain text file as a document")

    def run(args):
        from tokenizer.trainer import train_command

        return train_command(args)

    p.set_defaults(func=run)
