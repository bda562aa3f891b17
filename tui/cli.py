"""``glasschat chat`` (the app; also what bare ``glasschat`` runs) and ``glasschat replay``."""

from __future__ import annotations

from model.cli import add_sampling_arguments, add_server_arguments, sampling_params


def register(subparsers) -> None:
    chat = subparsers.add_parser(
        "chat", help="Chat with a model in the terminal app (the default command).",
        description="Chat with a model and watch its tokens: F1 lists the keys, F2 shows the tokens.")
    add_sampling_arguments(chat, None, "fixed seed for reproducible replies (default: a new seed each reply)")
    add_server_arguments(chat)
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
    add_sampling_arguments(replay, 0, "seed for every reply (default 0)")
    add_server_arguments(replay)
    replay.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="conversations replayed at once (with --server; default 1). The transcript "
                        "stays in script order and, with a seed, equals the serial one")
    replay.set_defaults(func=run_replay)


def run_chat(args) -> int:
    from glasschat.errors import UserError
    from tui.backend import load_backend
    from tui.records import read_lines
    from tui.store import ConversationStore

    params = sampling_params(args)
    store = ConversationStore()
    resume = None
    if args.resume:
        resume = store.latest()
        if resume is None:
            raise UserError(f"--resume: no saved conversation in {store.root}")
    script = read_lines(args.replay) if args.replay else None
    if script is not None and not script:
        raise UserError(f"{args.replay}: no conversations in the script")
    backend = load_backend(args.checkpoint, server=args.server, api_key=args.api_key)

    from tui.app import GlasschatApp

    try:
        GlasschatApp(backend, store=store, params=params, resume=resume, replay=script).run()
    finally:
        backend.engine.close()
    return 0


def run_replay(args) -> int:
    from tui.replay import replay_command

    args.params = sampling_params(args)
    return replay_command(args)
