"""``glasschat bench train``: seconds per optimizer step of a recipe's model, on 1 and 2 threads,
and the training stages' wall time that follows (``pretrain_steps`` and ``sft_steps`` times the
step), beside the first shipped model's shape (4 layers, width 256, 16 rows of 512 tokens) as
the baseline — so a recipe's budget is estimated from a few timed steps, not from a full run.

Steps run the real loop (``training.loop.train``: Muon + AdamW, fp32 on the CPU) on random
tokens, after two untimed warm-up steps. The machine's load average is printed with each
row: on a shared machine the figures are only as good as the load was low.
"""

from __future__ import annotations

HELP = "seconds per training step of a recipe on 1 and 2 threads, and the stage times that follow"


def add_arguments(parser) -> None:
    from training.recipe import RECIPES

    parser.add_argument("--recipe", action="append", choices=list(RECIPES),
                        help="recipe to time, repeatable (default: default and quick)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (default 5)")
    parser.add_argument("--threads", type=int, action="append", help="thread counts, repeatable (default 1 and 2)")


def step_seconds(n_layer: int, n_embd: int, n_head: int, seq_len: int, batch_size: int, steps: int,
                 vocab_size: int = 1024) -> float:
    """Mean seconds per step of the training loop for this shape (on the threads already set)."""
    import tempfile
    import time

    import torch

    from model.gpt import GPT, GPTConfig
    from training.batches import Batches, Rows
    from training.loop import LoopConfig, train

    config = GPTConfig(sequence_len=seq_len, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                       n_kv_head=n_head, n_embd=n_embd)
    model = GPT(config).init_weights(seed=0)
    ids = torch.randint(0, vocab_size, (batch_size * 4, seq_len), generator=torch.Generator().manual_seed(0))
    rows = Rows(ids, torch.ones_like(ids))
    quiet = dict(log_every=10**6, eval_every=10**6, save_every=10**6, warmup_steps=1)
    with tempfile.TemporaryDirectory() as scratch:
        train(model, Batches(rows, batch_size, seed=0), LoopConfig(steps=2, **quiet), f"{scratch}/warm",
              log=lambda _: None, resume=False)
        started = time.perf_counter()
        train(model, Batches(rows, batch_size, seed=0), LoopConfig(steps=steps, **quiet), f"{scratch}/timed",
              log=lambda _: None, resume=False)
        return (time.perf_counter() - started) / steps


def run(args) -> int:
    import os

    from model.threads import set_threads
    from training.recipe import RECIPES

    if args.steps < 1:
        print("glasschat: error: --steps must be at least 1")
        return 2
    shapes = [("first model (baseline)", 4, 256, 4, 512, 16, 150, 900)]
    for name in args.recipe or ["default", "quick"]:
        r = RECIPES[name]
        shapes.append((f"recipe {name}", r.n_layer, r.n_embd, r.n_head, r.train_seq_len, r.batch_size,
                       r.pretrain_steps, r.sft_steps))
    print(f"{'shape':28s}{'threads':>8s}{'s/step':>8s}{'pretrain':>10s}{'sft':>9s}{'load':>6s}")
    for label, layers, width, heads, seq, batch, pretrain, sft in shapes:
        for threads in args.threads or [1, 2]:
            set_threads(threads)
            seconds = step_seconds(layers, width, heads, seq, batch, args.steps)
            print(f"{label:28s}{threads:8d}{seconds:8.2f}{pretrain * seconds / 60:9.1f}m{sft * seconds / 60:8.1f}m"
                  f"{os.getloadavg()[0]:6.2f}", flush=True)
    return 0
