"""The ``glasschat`` subcommands of the ``model`` package: ``ask``, ``import-nanochat``,
``export-hf``."""

from model.sampling_options import add_sampling_arguments, sampling_params


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
    from model.ask import ask
    from model.threads import set_threads

    params = sampling_params(args)
    set_threads()
    return ask(args.prompt, params, checkpoint=args.checkpoint, as_json=args.json)


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
