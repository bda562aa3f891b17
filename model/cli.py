"""The ``glasschat`` subcommands of the ``model`` package: ``ask``, ``quantize``,
``import-nanochat``, ``export-hf``."""

from model.sampling_options import add_sampling_arguments, add_server_arguments, sampling_params


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

    quantizer = subparsers.add_parser(
        "quantize", help="Write an int8 copy of a checkpoint (about a quarter of the fp32 size, decodes faster).",
        description="Quantize every matrix and embedding table of CKPT to int8 with one scale per output row, "
        "and write the result as a new checkpoint directory DIR, usable wherever --checkpoint is.")
    quantizer.add_argument("checkpoint", metavar="CKPT", help="glasschat checkpoint directory")
    quantizer.add_argument("--out", metavar="DIR", required=True, help="directory to write (must not exist)")
    quantizer.set_defaults(func=_run_quantize)

    importer = subparsers.add_parser(
        "import-nanochat", help="Convert a nanochat checkpoint (any generation) to a glasschat checkpoint.",
        description="Find a nanochat checkpoint in SRC: nanochat's base directory ($NANOCHAT_BASE_DIR), one checkpoints "
        "folder (tokenizer at ../../tokenizer/tokenizer.pkl) or a hub-style folder (model_*.pt, meta_*.json, "
        "tokenizer.pkl). Read the weights with torch.load(weights_only=True) and the tokenizer through a restricted "
        "unpickler, recognise the nanochat generation, print what was found and write a checkpoint to DIR.")
    importer.add_argument("source", metavar="SRC", help="nanochat base directory or checkpoint folder")
    importer.add_argument("--out", metavar="DIR", required=True, help="glasschat checkpoint directory to write")
    importer.add_argument("--source", dest="kind", choices=("base", "mid", "sft", "rl"), default=None,
                          help="in a base directory: which training stage (default: the most finished one present)")
    importer.add_argument("--tag", default=None, metavar="TAG",
                          help="in a base directory: the model tag, e.g. d20 (default: the deepest, as nanochat picks)")
    importer.add_argument("--step", type=int, default=None, metavar="N", help="training step to import (default: the last)")
    importer.add_argument("--tokenizer", metavar="PKL", default=None,
                          help="nanochat tokenizer.pkl (default: found beside the checkpoint, as nanochat lays it out)")
    importer.add_argument("--softcap", type=float, default=None, metavar="S",
                          help="logit softcap, where the keys cannot tell (a 32-wide value-embedding gate: 15 "
                          "from 2026-01-17, 20 by 2026-03-02; default 15)")
    importer.add_argument("--window-pattern", default=None, metavar="PATTERN",
                          help="sliding-window pattern such as SSSL, where the meta has none (default: the "
                          "generation's own default)")
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
    return ask(args.prompt, params, checkpoint=args.checkpoint, as_json=args.json, quantize=args.quantize,
               server=args.server, api_key=args.api_key)


def _run_quantize(args) -> int:
    from model.checkpoint import quantize_checkpoint

    out = quantize_checkpoint(args.checkpoint, args.out)
    print(f"wrote {out}")
    return 0


def _run_import(args) -> int:
    from model.nanochat_import import import_nanochat

    out = import_nanochat(args.source, args.out, step=args.step, tokenizer_path=args.tokenizer, kind=args.kind, tag=args.tag,
                          softcap=args.softcap, window_pattern=args.window_pattern, report=print)
    print(f"wrote {out}")
    return 0


def _run_export(args) -> int:
    import torch

    from model.hf_export import export_hf

    out = export_hf(args.checkpoint, args.out, dtype=getattr(torch, args.dtype))
    print(f"wrote {out}")
    return 0
