"""The ``glasschat`` subcommands of the ``model`` package: ``ask``, ``quantize``,
``import-nanochat``, ``export-hf``."""

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
    add_quantize_argument(parser)


def add_quantize_argument(parser) -> None:
    """``--quantize int8``: run the weights int8, quantized as the model loads (nothing written)."""
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="run the weights as int8, quantized at load time (an int8 checkpoint runs int8 anyway)")


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
    ask.add_argument("--json", action="store_true",
                     help='print {"text", "ids", "stop_reason", "ttft_ms", "tokens_per_s"} instead of streaming')
    ask.set_defaults(func=_run_ask)

    quantizer = subparsers.add_parser(
        "quantize", help="Write an int8 copy of a checkpoint (about a quarter of the fp32 size, decodes faster).",
        description="Quantize every matrix and embedding table of CKPT to int8 with one scale per output row, "
        "and write the result as a new checkpoint directory DIR, usable wherever --checkpoint is.")
    quantizer.add_argument("checkpoint", metavar="CKPT", help="glasschat checkpoint directory")
    quantizer.add_argument("--out", metavar="DIR", required=True, help="directory to write (must not exist)")
    quantizer.set_defaults(func=_run_quantize)

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


def _run_quantize(args) -> int:
    from model.checkpoint import quantize_checkpoint

    out = quantize_checkpoint(args.checkpoint, args.out)
    print(f"wrote {out}")
    return 0


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
