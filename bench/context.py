"""``glasschat bench context``: fitting a long chat into the model's context, per turn.

Same tokenizer, conversation and context window on both sides, in the same run:

- **baseline**: render the conversation whole, and again with each further pair of oldest
  messages dropped, until the prompt fits — the straightforward way, one full rendering per
  dropped pair.
- **glasschat**: ``tui.context.fit_prompt``, which renders each message once and counts the
  drops on their lengths; measured cold (a resumed chat's first turn) and warm (the next turn,
  its messages' tokens already in the session's ``RenderCache``).

Both must give the same prompt. Prints medians and the baseline/glasschat ratios.
"""

from __future__ import annotations

import statistics
import time

HELP = "Context fitting of long chats: glasschat's per-message fitting vs re-rendering per dropped pair."


def add_arguments(parser) -> None:
    parser.add_argument("--messages", default="100,500,2000", metavar="N,N",
                        help="conversation lengths in messages (default 100,500,2000)")
    parser.add_argument("--repeat", type=int, default=3, metavar="R", help="runs per case (default 3)")
    parser.add_argument("--context", type=int, default=512, metavar="T", help="context window (default 512)")


def run(args) -> int:
    from glasschat import paths
    from tokenizer import Tokenizer
    from tui.chat_file import Entry
    from tui.chat_tokens import RenderCache, prompt_ids
    from tui.context import Prompt, fit_prompt, reply_room, without_oldest

    tokenizer = Tokenizer.load(paths.default_tokenizer_dir())

    def baseline(entries: list[Entry]) -> Prompt:
        budget = args.context - reply_room(args.context, 256)
        dropped = 0
        while True:
            ids = prompt_ids(tokenizer, without_oldest(entries, dropped))
            if len(ids) <= budget or dropped + 1 >= len(entries):
                return Prompt(ids, dropped)
            dropped += 2

    print(f"tokenizer: {tokenizer.vocab_size} tokens; context {args.context}, reply room 256; "
          f"median of {args.repeat} runs")
    print(f"{'messages':>8}  {'baseline':>10}  {'cold':>9}  {'warm':>9}  {'base/cold':>9}  {'base/warm':>9}")
    for n in (int(x) for x in args.messages.split(",")):
        entries = []
        for i in range(n // 2):
            entries += [Entry({"role": "user", "content": f"what is {i} + {i}? and tell me about {i}"}),
                        Entry({"role": "assistant", "content": f"The answer is {2 * i}. The number {i} is fine."})]
        entries.append(Entry({"role": "user", "content": "and the last question?"}))
        base_s, expected = _median(lambda: baseline(entries), args.repeat)
        cold_s, cold = _median(lambda: fit_prompt(tokenizer, entries, args.context, 256), args.repeat)
        cache = RenderCache()
        fit_prompt(tokenizer, entries, args.context, 256, cache)
        warm_s, warm = _median(lambda: fit_prompt(tokenizer, entries, args.context, 256, cache), args.repeat)
        if not (expected == cold == warm):
            raise RuntimeError(f"{n} messages: the fitted prompts differ")
        print(f"{n:>8}  {base_s * 1000:>8.1f}ms  {cold_s * 1000:>7.1f}ms  {warm_s * 1000:>7.2f}ms  "
              f"{base_s / cold_s:>8.0f}x  {base_s / warm_s:>8.0f}x")
    return 0


def _median(work, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
