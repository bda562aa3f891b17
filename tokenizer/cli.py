"""``glasschat tokenizer train|encode|render|stats|export-nanochat``."""

import json
import sys

from glasschat.command_group import add_group
from glasschat.errors import UserError
from glasschat.paths import default_tokenizer_dir


def register(subparsers) -> None:
    group = add_group(subparsers, "tokenizer", "Train, inspect and use BPE tokenizers.")
    _register_train(group)
    _register_encode(group)
    _register_render(group)
    _register_stats(group)
    _register_export_nanochat(group)


def _add_tokenizer_option(parser) -> None:
    parser.add_argument("--tokenizer", metavar="DIR", default=None,
                        help="tokenizer directory (default: the bundled default model's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the coloured view")


def _load_tokenizer(directory: str | None):
    from tokenizer.runtime import Tokenizer

    if directory is None:
        directory = default_tokenizer_dir()
        if not directory.is_dir():
            raise UserError(f"no bundled default model at {directory.parent}; pass --tokenizer DIR")
    return Tokenizer.load(directory)


def _register_encode(group) -> None:
    p = group.add_parser("encode", help="Show how a text splits into tokens.",
                         description="Encode TEXT as ordinary text (special-token strings stay text) and show "
                         "the tokens; --json prints the ids as a JSON list.")
    p.add_argument("text", metavar="TEXT", help="the text to encode; - reads standard input")
    _add_tokenizer_option(p)

    def run(args):
        tok = _load_tokenizer(args.tokenizer)
        ids = tok.encode(sys.stdin.read() if args.text == "-" else args.text)
        if args.json:
            print(json.dumps(ids))
        else:
            from tokenizer.display import print_tokens

            print_tokens(tok, ids)
        return 0

    p.set_defaults(func=run)


def _register_render(group) -> None:
    p = group.add_parser("render", help="Show a conversation as the token ids and loss mask a model sees.",
                         description="Render a conversation JSON file ({\"messages\": [...]}) to token ids and "
                         "loss mask; --json prints {\"ids\": [...], \"mask\": [...]}.")
    p.add_argument("conversation", metavar="CONVERSATION.json", help="the conversation file; - reads standard input")
    _add_tokenizer_option(p)

    def run(args):
        tok = _load_tokenizer(args.tokenizer)
        conversation = _read_json(args.conversation)
        try:
            ids, mask = tok.render_conversation(conversation)
        except UserError as error:
            raise UserError(f"{args.conversation}: {error}") from None
        if args.json:
            print(json.dumps({"ids": ids, "mask": mask}))
        else:
            from tokenizer.display import print_tokens

            print_tokens(tok, ids, mask)
        return 0

    p.set_defaults(func=run)


def _read_json(path: str):
    from glasschat.loading import read_json

    return read_json(path)


def _register_stats(group) -> None:
    p = group.add_parser(
        "stats", help="Bytes per token on your texts, per input, and the token-length histogram.",
        description="Encode each TEXT with the tokenizer in DIR (a tokenizer directory, or a checkpoint holding "
        "one) and report its bytes, tokens and bytes per token — per file, a directory's files grouped by "
        "extension, and over all — with a bar chart, then the token-length histogram over the vocabulary and "
        "as used on these texts. Files in a directory that are not UTF-8 text are skipped and counted.")
    p.add_argument("directory", metavar="DIR", help="tokenizer or checkpoint directory")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="text files or directories (e.g. one per language)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (no terminal charts)")
    p.add_argument("--chart", metavar="FILE.png", help="also write both charts to this PNG image")
    p.add_argument("--no-plot", action="store_true", help="the table only, no terminal charts")
    p.set_defaults(func=_stats)


def _stats(args) -> int:
    from glasschat.atomic import check_file_target
    from tokenizer.runtime import Tokenizer
    from tokenizer.stats import bytes_per_token_chart, format_table, length_chart, measure, tokenizer_dir

    if args.chart:
        check_file_target(_png_name(args.chart))
    directory = tokenizer_dir(args.directory)
    stats = measure(Tokenizer.load(directory), str(directory), args.texts)
    charts = [bytes_per_token_chart(stats), length_chart(stats)]
    if args.json:
        print(json.dumps(stats.to_json(), indent=2))
    else:
        print(format_table(stats))
        if not args.no_plot:
            from glasschat.term_chart import render

            color = sys.stdout.isatty()
            for chart in charts:
                print()
                print(render(chart, color=color))
    if args.chart:
        from glasschat.image_chart import write_png

        write_png(args.chart, charts)
        print(f"wrote {args.chart}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _png_name(path: str) -> str:
    """A chart file's name must say PNG: what is written is one."""
    if not path.lower().endswith(".png"):
        raise UserError(f"--chart {path}: the chart is a PNG image; give a name ending in .png")
    return path


def _register_train(group) -> None:
    p = group.add_parser(
        "train",
        help="Train a byte-level BPE tokenizer on text files.",
        description="Train a byte-level BPE tokenizer (regex pre-split, then merges) on text. "
        "The nine special tokens are appended after the learned tokens. nanochat's tokenizer is trained on "
        "its pretraining shards but the last (kept for validation) with --vocab-size 65536 "
        "--max-chars 2000000000 --doc-cap 10000.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text files, .jsonl files (a 'text' field per line), .parquet shards (a 'text' column), "
                   "directories (recursively), or - for stdin")
    p.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="total vocabulary size including the 9 special tokens (at least 265)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="counting processes (default: one per 64 MB of text, up to all cores; at most 4 per core)")
    p.add_argument("--pattern", default="nanochat", metavar="nanochat|gpt4|REGEX", help="split pattern (default: nanochat)")
    p.add_argument("--max-chars", type=int, default=None, metavar="N",
                   help="stop after the document that takes the total past N characters")
    p.add_argument("--doc-cap", type=int, default=None, metavar="N", help="use at most N characters of each document")
    p.add_argument("--column", default="text", metavar="NAME",
                   help="the .jsonl field and .parquet column holding the text (default: text)")
    p.add_argument("--split-lines", action="store_true",
                   help="treat each line of a plain text file (or of stdin) as a document")

    p.set_defaults(func=_train)


def _train(args) -> int:
    """``glasschat tokenizer train``: train, showing the trainer's warnings as one line each, then
    print a one-line summary."""
    import warnings

    from tokenizer.specials import NUM_SPECIAL_TOKENS
    from tokenizer.trainer import TrainingWarning, train_tokenizer

    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        warnings.simplefilter("always", TrainingWarning)
        previous = warnings.showwarning

        def show(message, category, *rest, **kwargs):
            if issubclass(category, TrainingWarning):
                print(f"glasschat: warning: {message}", file=sys.stderr)
            else:
                previous(message, category, *rest, **kwargs)

        warnings.showwarning = show
        result = train_tokenizer(args.inputs, args.vocab_size, args.out, workers=args.workers, pattern=args.pattern,
                                 max_chars=args.max_chars, doc_cap=args.doc_cap, split_lines=args.split_lines,
                                 column=args.column)
    print(
        f"trained {result.vocab_size} tokens ({result.num_bpe_tokens} BPE + {NUM_SPECIAL_TOKENS} special) "
        f"on {result.documents:,} documents, {result.chars:,} characters, {result.unique_chunks:,} unique chunks "
        f"in {result.seconds_counting + result.seconds_merging:.1f}s "
        f"(counting {result.seconds_counting:.1f}s, merging {result.seconds_merging:.1f}s) -> {result.out_dir}"
    )
    return 0


def _register_export_nanochat(group) -> None:
    p = group.add_parser(
        "export-nanochat",
        help="Write a tokenizer as nanochat's tokenizer.pkl and token_bytes.pt.",
        description="Write the tokenizer in DIR as nanochat reads it: tokenizer.pkl (a pickled tiktoken "
        "Encoding) and token_bytes.pt (bytes per token id, 0 for the special tokens) in the directory PATH, "
        "e.g. $NANOCHAT_BASE_DIR/tokenizer.",
    )
    p.add_argument("directory", metavar="DIR", help="a glasschat tokenizer directory (from `tokenizer train`)")
    p.add_argument("--out", required=True, metavar="PATH", help="directory to write the two files into")

    def run(args):
        from tokenizer.nanochat_export import export_nanochat
        from tokenizer.runtime import Tokenizer

        tokenizer = Tokenizer.load(args.directory)
        pickle_path, bytes_path = export_nanochat(tokenizer, args.out)
        print(f"wrote {pickle_path} and {bytes_path} ({tokenizer.vocab_size} tokens)")
        return 0

    p.set_defaults(func=run)
