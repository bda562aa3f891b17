"""``glasschat train`` (the staged recipe that makes the default model) and ``glasschat eval``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from glasschat.errors import UserError
from model.sampling_options import add_quantize_argument, add_server_arguments
from training.eval_prompts import SKILLS
from training.recipe import RECIPES
from training.stages import STAGES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _thread_count(text: str) -> int:
    value = _positive_int(text)
    if value > 1024:
        raise argparse.ArgumentTypeError(f"at most 1024, got {value}")
    return value


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)


def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="Train a chat model from scratch on this machine (the default model's recipe).",
        description="Run a training recipe: data -> tokenizer -> pretrain -> sft -> checkpoint -> eval, "
        "writing everything under --out. Finished stages are skipped on a rerun; an interrupted training "
        "stage (Ctrl+C saves) resumes from its last state. The model ends up in OUT/checkpoint.")
    p.add_argument("--recipe", default="default", choices=list(RECIPES),
                   help="default (the shipped model, up to 2 hours on 2 cores), quick (under 20 minutes: a smaller "
                   "model of your own) or tiny (seconds; for trying the pipeline)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--stage", action="append", choices=STAGES, metavar="STAGE",
                   help=f"run only this stage (repeatable): {', '.join(STAGES)}; default: all")
    p.add_argument("--force", action="store_true", help="rerun the chosen stages even if they are done")
    p.add_argument("--threads", type=_thread_count, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine 2 threads can be slower)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (auto: CUDA in bf16 when present, else the CPU in fp32)")
    group = p.add_argument_group("recipe overrides")
    group.add_argument("--seed", type=int)
    group.add_argument("--vocab-size", type=_positive_int)
    group.add_argument("--n-layer", type=_positive_int, help="transformer blocks")
    group.add_argument("--pretrain-steps", type=_positive_int)
    group.add_argument("--sft-steps", type=_positive_int)
    group.add_argument("--batch-size", type=_positive_int)
    group.add_argument("--sft-conversations", type=_positive_int)
    group.add_argument("--eval-per-skill", type=_positive_int)
    p.set_defaults(func=_train)


def _register_eval(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="Score a model on held-out prompts, per skill (greedy and sampled).",
        description="Generate held-out prompts (words, numbers and phrasings never seen in training), run "
        "them through the engine with the calculator tool, and print per-skill accuracy, the stop rate, the "
        "mean reply length and the decode speed, for each temperature.")
    p.add_argument("--checkpoint", metavar="DIR", help="checkpoint directory (default: the bundled default model)")
    p.add_argument("--per-skill", type=_positive_int, default=200, help="prompts per skill (default 200)")
    p.add_argument("--temperature", type=float, action="append",
                   help="pure temperature sampling (no top-k, no top-p), repeatable; 0 is greedy")
    p.add_argument("--sampling", choices=("greedy", "default"), action="append",
                   help="greedy, or the app's default sampling settings (temperature and top-k of chat/ask), "
                   "repeatable (default, with no --temperature: both)")
    p.add_argument("--skills", metavar="LIST", default=None,
                   help=f"comma-separated rows to score (default: all: {','.join(SKILLS)})")
    p.add_argument("--seed", type=int, default=1234, help="seed of the held-out prompts and of sampling")
    p.add_argument("--threads", type=_thread_count, default=1, help="torch CPU threads (default 1)")
    add_quantize_argument(p)
    add_server_arguments(p)
    p.add_argument("--json", action="store_true", help="print the full report (with failures) as JSON")
    p.add_argument("--plot", action="store_true", help="also draw the per-skill accuracy as a bar chart in the terminal")
    p.add_argument("--chart", metavar="FILE.png", help="also write the per-skill accuracy as a bar chart to this PNG")
    p.add_argument("--bpb", nargs="+", metavar="FILE",
                   help="instead: bits per byte on these text files (each one document, nanochat's measure), per file "
                   "and over all, with the tokens scored (all but each window's first) and the bytes they stand for; "
                   "exit 1 if some file was skipped, 2 if none could be measured")
    p.set_defaults(func=_eval)


def recipe_from_args(args):
    """The named recipe with the command line's overrides applied."""
    return RECIPES[args.recipe].overridden(
        seed=args.seed, vocab_size=args.vocab_size, n_layer=args.n_layer, pretrain_steps=args.pretrain_steps,
        sft_steps=args.sft_steps, batch_size=args.batch_size, sft_conversations=args.sft_conversations,
        eval_per_skill=args.eval_per_skill)


def _train(args) -> int:
    import torch

    from model.threads import set_threads
    from training.run import Run
    from training.stages import run_stages

    recipe = recipe_from_args(args)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    set_threads(args.threads)
    # on a terminal the training stages draw their loss live; in a pipe or a log file, lines only
    run = Run(recipe, out, device=device, threads=args.threads, log=lambda line: print(line, flush=True),
              live=sys.stdout.isatty())
    run_stages(run, args.stage or list(STAGES), force=args.force)
    return 0


def _eval(args) -> int:
    from glasschat.progress import LoadProgress
    from model import resolve_checkpoint_dir
    from model.threads import set_threads
    from training.evaluate import GREEDY, Sampling, app_default, evaluate_checkpoint, format_report

    if any(t < 0 for t in args.temperature or ()):
        raise UserError("--temperature: must be >= 0")
    if args.chart:  # refused before minutes of evaluation, not after
        from glasschat.atomic import check_file_target

        if not args.chart.lower().endswith(".png"):
            raise UserError(f"--chart {args.chart}: the chart is a PNG image; give a name ending in .png")
        check_file_target(args.chart)
    set_threads(args.threads)
    checkpoint = resolve_checkpoint_dir(args.checkpoint)
    if args.bpb:
        if args.chart or args.plot:
            raise UserError("--chart and --plot draw the per-skill table, which --bpb does not make")
        from model.bpb_report import evaluate_files

        return evaluate_files(args.bpb, checkpoint, as_json=args.json, threads=args.threads, quantize=args.quantize,
                              server=args.server, api_key=args.api_key)
    log = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    samplings = [GREEDY if name == "greedy" else app_default() for name in args.sampling or ()]
    samplings += [Sampling(t) for t in args.temperature or ()]
    skills = SKILLS
    if args.skills:
        skills = tuple(s.strip() for s in args.skills.split(",") if s.strip())
        unknown = [s for s in skills if s not in SKILLS]
        if unknown or not skills:
            raise UserError(f"--skills: unknown {', '.join(unknown) or 'empty list'} (known: {', '.join(SKILLS)})")
    report = evaluate_checkpoint(checkpoint, args.per_skill, seed=args.seed, log=log, quantize=args.quantize,
                                 progress=LoadProgress(), server=args.server, api_key=args.api_key,
                                 samplings=samplings or [GREEDY, app_default()], skills=skills)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.plot or args.chart:
        from training.evaluate import skill_chart

        chart = skill_chart(report)
        if args.plot:
            from glasschat.term_chart import render

            print()
            print(render(chart, color=sys.stdout.isatty()))
        if args.chart:
            from glasschat.image_chart import write_png

            write_png(args.chart, [chart])
            print(f"wrote {args.chart}", file=sys.stderr if args.json else sys.stdout)
    return 0
