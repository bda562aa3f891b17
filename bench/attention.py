"""``glasschat bench attention``: how long the attention view takes to show what a token looked at.

The chat app runs headless (Textual's test driver) with the model in its engine process, as
``glasschat chat`` runs it, holding a conversation of about ``--tokens`` tokens. The view is
turned on, then the cursor is moved to token after token at random; each time is measured
from setting the cursor to the heat strip being drawn for that token (the app's own path: the
worker, the request to the engine process, the reference forward or its cached queries and
keys, the answer, the strip and the panel). Two costs are reported apart: turning the view on
(it warms the engine process up: the weights for the reference forward are loaded then) and
the first token selected (the forward over the whole conversation; later tokens of the same
conversation reuse its queries and keys). Beside it,
the same requests to the backend directly (no app) show what the app adds.
Target: median under 0.5 s on the bundled model over 500 tokens.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

HELP = "The attention view in the app: time from selecting a token to its heat strip, median and first."

SENTENCES = ["The fox jumped over the lazy dog near the river.", "What is 12 times 7, and why?",
             "Paris is the capital of France; it is known for the Eiffel Tower.",
             "Tell me a short story about a robot who learns to paint.", "The answer is 84, since 12 × 7 = 84."]


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", metavar="DIR", default=None, help="model (default: the bundled model)")
    parser.add_argument("--tokens", type=int, default=500, metavar="N", help="conversation length (default 500)")
    parser.add_argument("--selections", type=int, default=30, metavar="K", help="tokens selected (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="which tokens are selected (default 0)")


def conversation(tokenizer, tokens: int) -> list[dict]:
    """User and assistant messages whose rendering is at most ``tokens`` tokens, as close as
    whole sentences get."""
    messages, rng = [], random.Random(0)
    while True:
        role = "user" if len(messages) % 2 == 0 else "assistant"
        candidate = messages + [{"role": role, "content": " ".join(rng.sample(SENTENCES, 3))}]
        if len(tokenizer.render_conversation({"messages": candidate})[0]) > tokens:
            return messages
        messages = candidate


def run(args) -> int:
    import torch

    from tui.engine_process import EngineProcess

    torch.set_num_threads(1)
    started = time.perf_counter()
    backend = EngineProcess(args.checkpoint)
    print(f"model: {backend.info.label}, loaded in {time.perf_counter() - started:.2f} s")
    try:
        with tempfile.TemporaryDirectory(prefix="glasschat-bench-attention-") as tmp:
            app_times, warm, first = asyncio.run(_in_the_app(backend, args, Path(tmp)))
        direct = _direct(backend, args)
    finally:
        backend.close()
    print(f"turning the view on (warm-up: the engine process loads the weights for the reference forward): "
          f"{warm * 1000:.0f} ms")
    print(f"first token selected (one forward over the whole conversation): {first * 1000:.0f} ms")
    print(f"select a token -> strip drawn, in the app: median {statistics.median(app_times) * 1000:.1f} ms, "
          f"p90 {_p90(app_times) * 1000:.1f} ms, max {max(app_times) * 1000:.1f} ms over {len(app_times)} tokens")
    print(f"the backend alone (same requests, no app): median {statistics.median(direct) * 1000:.1f} ms")
    median = statistics.median(app_times)
    print(f"target: median < 500 ms: {'met' if median < 0.5 else 'NOT met'}")
    return 0


def _p90(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(0.9 * len(values)))]


async def _in_the_app(backend, args, tmp: Path) -> tuple[list[float], float, float]:
    from tui.app import GlasschatApp
    from tui.store import ConversationStore

    app = GlasschatApp(backend, store=ConversationStore(tmp / "store"))
    async with app.run_test(size=(140, 50)) as pilot:
        for message in conversation(backend.tokenizer, args.tokens):
            app.session.add_message(message)
        await pilot.press("f2")
        view = app.debug_pane.conversation_view
        ids = tuple(cell.id for cell in view.cells)
        print(f"conversation: {len(ids)} tokens")
        positions = random.Random(args.seed).sample(range(len(ids)), min(args.selections + 1, len(ids)))
        # turning the view on with no token selected warms the engine process up (loads the weights)
        start = time.perf_counter()
        app.action_attention("toggle")
        while app.attention.answer is None:
            await asyncio.sleep(0.001)
        warm = time.perf_counter() - start
        times = []
        for position in positions:
            start = time.perf_counter()
            view.cursor = position
            while app.attention.drawn is None or app.attention.drawn[0] != (ids, position):
                await asyncio.sleep(0.001)
            times.append(app.attention.drawn[1] - start)
            await pilot.pause()
        return times[1:], warm, times[0]


def _direct(backend, args) -> list[float]:
    ids = [cell_id for cell_id in _rendered_ids(backend.tokenizer, args.tokens)]
    times = []
    for position in random.Random(args.seed + 1).sample(range(len(ids)), min(args.selections, len(ids))):
        start = time.perf_counter()
        backend.attention(ids, position)
        times.append(time.perf_counter() - start)
    return times


def _rendered_ids(tokenizer, tokens: int) -> list[int]:
    return tokenizer.render_conversation({"messages": conversation(tokenizer, tokens)})[0]
