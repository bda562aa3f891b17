"""The ``glasschat`` subcommands of the ``model`` package: ``ask``, ``import-nanochat``,
``export-hf``."""

from model.events import SamplingParams

_DEFAULTS = SamplingParams()


def add_sampling_arguments(parser, seed_default: int | None = None, seed_help: str = "seed for reproducible output") -> None:
    """``--checkpoint`` and the sampling options every generating command takes."""
    parser.add_argument("--checkpoint", metavar="DIR", default=None,
                        help="model checkpoint directory (default: the bundled model in checkpoints/default)")
    parser.add_argument("--temperature", type=float, default=_DEFAULTS.temperature, metavar="T",
                        help=f"sampling temperature, 0 = greedy (default {_DEFAULTS.temperature})")
    parser.add_argument("--top-k", type=int, default=_DEFAULTS.top_k, metavar="K",
                        help=f"sample among the K most likely tokens, 0 = off (default {_DEFAULTS.top_k})")
    parser.add_argument("--top-p", type=float, default=_DEFAULTS.top_p, metavar="P",
                        help=f"nucleus sampling, 1 = off (default {_DEFAULTS.top_p})")
    parser.add_argument("--seed", type=int, default=seed_default, metavar="S", help=seed_help)
    parser.add_argument("--max-tokens", type=int, default=_DEFAULTS.max_tokens, metavar="N",
                        help=f"the most tokens in one reply (default {_DEFAULTS.max_tokens})")


def add_server_arguments(parser) -> None:
    """``--server URL`` and ``--api-key``: generate on a vLLM server or ``glasschat serve``
    instead of in this process (``--checkpoint`` then only names the tokenizer to render with)."""
    parser.add_argument("--server", metavar="URL", default=None,
                        help="generate on this OpenAI/vLLM-style server (e.g. http://127.0.0.1:8000) instead of locally")
    parser.add_argument("--api-key", metavar="KEY", default=None,
                        help="API key for --server (default: $GLASSCHAT_API_KEY)")


def sampling_params(args) -> SamplingParams:
    """The ``SamplingParams`` of options added by ``add_sampling_arguments`` (checked)."""
    return SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed, max_tokens=args.max_tokens)


def register(subparsers) -> None:
    """Add this package's subcommands to the top-level parser."""
    ask = subparsers.add_parser(
        "ask", help="Ask the model one question and stream its answer to stdout.",
        description="Render PROMPT as a one-turn conversation and stream the model's reply as it is generated; "
        "calculator calls show as [calculator: ...] [result: ...].")
    ask.add_argument("prompt", metavar="PROMPT", help="what to ask")
    add_sampling_arguments(ask, seed_help="seed for a reproducible answer (default: a new one each time)")
    add_server_arguments(ask)
    ask.add_argument("--json", action="store_true",
                     help='print {"text", "ids", "stop_reason", "ttft_ms", "tokens_per_s"} instead of streaming')
    ask.set_defaults(func=_run_ask)

    importer = subparsers.add_parser(
        "import-nanochat", help="Convert a nanochat checkpoint directory to a glasschat checkpoint.",
        description="Read model_NNNNNN.pt, meta_NNNNNN.json and tokenizer.pkl from SRC (weights with "
        "torch.load(weights_only=True), the tokenizer through a restricted unpickler) and write a checkpoint to DIR.")
    importer.add_argument("source", metavar="SRC", help="nanochat checkpoint directory")
    importer.add_argument("--out", metavar="DIR", required=True, help="glasschat checkpoint directory to write")
    importer.add_argument("--step", type=int, default=None, metavar="N", help="training step to import (default: the highest)")
    importer.add_argument("--tokenizer", metavar="PKL", default=None,
                          help="nanochat tokenizer.pkl (default: SRC/tokenizer.pkl)")
    importer.set_defaults(func=_run_import)

    exporter = subparsers.add_parser(
        "export-hf", help="Export a checkpoint as a Hugging Face transformers model (NanoChatForCausalLM).",
        description="Write DIR with config.json, generation_config.json and model.safetensors under transformers' "
        "names, loadable with AutoModelForCausalLM.from_pretrained(DIR).")
    exporter.add_argument("checkpoint", metavar="CKPT", help="glasschat checkpoint directory")
    exporter.add_argument("--out", metavar="DIR", required=True, help="directory to write")
    exporter.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                          help="weight dtype in the export (default float32)")
    exporter.set_defaults(func=_run_export)


def _run_ask(args) -> int:
    from model.ask import run_ask

    return run_ask(args)


def _run_import(args) -> int:
    from model.nanochat_import import import_nanochat

    out = import_nanochat(args.source, args.out, step=args.step, tokenizer_path=args.tokenizer)
    print(f"wrote {out}")
    return 0


def _run_export(args) -> int:
    import torch

    from model.hf_export import export_hf

    out = export_hf(args.checkpoint, args.out, dtype=getattr(torch, args.dtype))
    print(f"wrote {out}")
    return 0
