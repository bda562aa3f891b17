"""``glasschat chat`` (the app; also what bare ``glasschat`` runs) and ``glasschat replay``."""

from __future__ import annotations

from model.sampling_options import add_sampling_arguments, add_server_arguments, sampling_params


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
    from tui.chat_file import read_lines
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
    from glasschat.progress import LoadProgress

    backend = load_backend(args.checkpoint, quantize=args.quantize, progress=LoadProgress(), server=args.server,
                           api_key=args.api_key)

    from tui import terminal_input
    from tui.app import GlasschatApp

    terminal_input.install()  # keys in a burst and pastes reach the draft as typed
    app = GlasschatApp(backend, store=store, params=params, resume=resume, replay=script)
    try:
        app.run()
    finally:
        backend.close()
    # Textual ends the app on an unhandled exception and prints it, but returns normally:
    # its return code is what tells the shell that it crashed
    return app.return_code or 0


def run_replay(args) -> int:
    """``glasschat replay SCRIPT``: write the transcript to ``--out`` (or stdout)."""
    import sys
    from dataclasses import asdict

    from glasschat.atomic import check_file_target
    from glasschat.errors import UserError
    from tui.backend import load_backend
    from tui.chat_file import dumps_line, read_lines, write_records
    from model.threads import set_threads
    from tui.replay import replay_script

    set_threads()
    params = sampling_params(args)
    entries = read_lines(args.script)
    if not entries:
        raise UserError(f"{args.script}: no conversations in the script")
    if args.concurrency < 1:
        raise UserError("--concurrency: must be >= 1")
    if args.out is not None:
        check_file_target(args.out)  # before the generating, not after it
    from glasschat.progress import LoadProgress

    backend = load_backend(args.checkpoint, in_process=True, quantize=args.quantize, progress=LoadProgress(),
                           server=args.server, api_key=args.api_key)
    meta = {"model": backend.info.name, "params": asdict(params)}
    records, failed = [], 0
    try:
        for record in replay_script(backend, entries, params, args.concurrency):
            record["meta"] = meta
            if "error" in record:
                failed += 1
                print(f"glasschat: {args.script}: line {record['line']}: {record['error']}", file=sys.stderr)
            if args.out is None:
                sys.stdout.write(dumps_line(record))
                sys.stdout.flush()
            elif "error" not in record:
                count = len(record["turns"])
                print(f"line {record['line']}: {count} {'reply' if count == 1 else 'replies'}", file=sys.stderr)
            records.append(record)
    finally:
        backend.close()
    if args.out is not None:
        write_records(args.out, records)
        print(f"transcript: {args.out} ({len(records) - failed} conversations, {failed} failed)", file=sys.stderr)
    return 2 if failed else 0
