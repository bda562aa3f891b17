"""``glasschat chat`` (the app; also what bare ``glasschat`` runs) and ``glasschat replay``."""

from __future__ import annotations

from model.events import SamplingParams

_DEFAULTS = SamplingParams()


def _add_sampling(parser, seed_default, seed_help: str) -> None:
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


def register(subparsers) -> None:
    chat = subparsers.add_parser(
        "chat", help="Chat with a model in the terminal app (the default command).",
        description="Chat with a model and watch its tokens: F1 lists the keys, F2 shows the tokens.")
    _add_sampling(chat, None, "fixed seed for reproducible replies (default: a new seed each reply)")
    chat.add_argument("--resume", action="store_true", help="continue the most recent saved conversation")
    chat.add_argument("--replay", metavar="SCRIPT", default=None,
                      help="play a conversation script (JSONL) turn by turn, then hand over to you")
    chat.set_defaults(func=run_chat)

    replay = subparsers.add_parser(
        "replay", help="Replay scripted conversations headless and write a transcript.",
        description="Feed each user message of each conversation in SCRIPT (JSONL, one "
        '{"messages": [...]} per line, or a JSON list) to the model, generate every assistant reply, '
        "and write a transcript JSONL: the messages with the generated replies and, per reply, its "
        "ids, stop reason, time to first token and tokens/s, compared with the script's reply when it "
        "has one. The same seed and parameters give the same transcript (timings aside).")
    replay.add_argument("script", metavar="SCRIPT", help="conversation script (JSONL or a JSON list)")
    replay.add_argument("--out", metavar="FILE", default=None, help="transcript file (default: stdout)")
    _add_sampling(replay, 0, "seed for every reply (default 0)")
    replay.set_defaults(func=run_replay)


def _params(args) -> SamplingParams:
    return SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed, max_tokens=args.max_tokens)


def run_chat(args) -> int:
    from glasschat.errors import UserError
    from tui.backend import load_backend
    from tui.records import read_lines
    from tui.store import ConversationStore

    params = _params(args)
    store = ConversationStore()
    resume = None
    if args.resume:
        resume = store.latest()
        if resume is None:
            raise UserError(f"--resume: no saved conversation in {store.root}")
    script = read_lines(args.replay) if args.replay else None
    if script is not None and not script:
        raise UserError(f"{args.replay}: no conversations in the script")
    backend = load_backend(args.checkpoint)

    from tui.app import GlasschatApp

    try:
        GlasschatApp(backend, store=store, params=params, resume=resume, replay=script).run()
    finally:
        backend.engine.close()
    return 0


def run_replay(args) -> int:
    from tui.replay import replay_command

    args.params = _params(args)
    return replay_command(args)
