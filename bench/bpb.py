"""``glasschat bench bpb``: bits-per-byte throughput of ``glasschat eval --bpb``'s path against
nanochat's own ``evaluate_bpb`` loop, same weights, same windows, same CPU, one torch thread.

The text is one document of about ``--size-mb`` MB built from local text (``bench.corpus``: man
pages, Python sources, documentation; nothing is downloaded), written to
``.cache/bench-bpb/`` so that ``glasschat eval --bpb`` can be run on it by hand too. The model is
a d12 (12 layers, n_embd 768, heads of 128, sequence_len 2048) with random weights drawn by
glasschat's init, saved as a glasschat checkpoint with a 65,536-token tokenizer trained on that
text by glasschat's trainer (both cached there).

- ``ours``: the checkpoint through ``model.load_model`` and ``model.bpb.measure_ids``, which is
  what ``glasschat eval --bpb`` runs per file;
- ``nanochat``: nanochat's ``GPT`` (late-2025 generation, imported from
  ``../shared/reference/nanochat/16788ee``) holding the same tensors, fed the same windows one
  at a time to its ``loss_eval.evaluate_bpb``, the loop nanochat evaluates with.

A d12 scores a few hundred tokens a second here, so a run scores the document's first
``--windows`` windows (``--full``: all of them, hours). The two score each window back to back,
in alternating order; printed are the median tokens/s of each, the median of the per-window
ratios, both bpb figures over the windows (they must agree within 1e-4) and the load average.

A window is scored by matrix products, so the run also measures an arithmetic ceiling: the model's
own matrix products for one full window (every ``nn.Linear`` at ``sequence_len`` rows, the lm_head
included, and per layer the two attention products, counted at half because a causal kernel can
skip the masked half), each timed alone on random data with torch's matrix multiply, the fastest
of five timings. No fp32 path that computes every logit can score a window faster than that sum,
whatever it does around the products, so the ceiling divided by nanochat's tokens/s is the most
any such path can gain over nanochat's loop on this CPU.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path

from bench.machine import NANOCHAT_REFERENCE, cpu_name

HELP = "Bits-per-byte tokens/s of glasschat eval --bpb vs nanochat's evaluate_bpb loop, same d12 weights and windows."
CACHE = Path(".cache") / "bench-bpb"
REFERENCE = NANOCHAT_REFERENCE / "16788ee"
TARGET = 2.0


def add_arguments(parser) -> None:
    parser.add_argument("--size-mb", type=float, default=10.0, help="size of the text in MB (default 10)")
    parser.add_argument("--windows", type=int, default=2, metavar="N",
                        help="windows of sequence_len + 1 tokens scored per run (default 2)")
    parser.add_argument("--full", action="store_true", help="score the whole text in every run (hours for a d12)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs of each; medians are shown (default 3)")
    parser.add_argument("--n-layer", type=int, default=12, help="layers (default 12: d12, n_embd 768)")
    parser.add_argument("--vocab-size", type=int, default=65536, help="tokenizer and model vocabulary (default 65536)")
    parser.add_argument("--sequence-len", type=int, default=2048, help="the model's context (default 2048)")


def run(args) -> int:
    import torch

    from glasschat.errors import UserError

    torch.set_num_threads(1)
    if not (REFERENCE / "nanochat" / "loss_eval.py").is_file():
        raise UserError(f"nanochat's reference code is not at {REFERENCE.resolve()}: this benchmark races its evaluate_bpb")
    text_path = _text(args.size_mb)
    checkpoint = _checkpoint(text_path, args)
    from model import load_model
    from model.bpb import ByteLoss, document_ids, measure_ids, token_bytes_tensor

    gpt, tokenizer = load_model(checkpoint)
    text = text_path.read_text(encoding="utf-8")
    start = time.perf_counter()
    ids = document_ids(tokenizer, text)
    encode_s = time.perf_counter() - start
    size = gpt.config.sequence_len + 1
    if not args.full:
        ids = ids[: args.windows * size]
    windows = [ids[i : i + size] for i in range(0, len(ids), size) if len(ids) - i >= 2]
    targets = sum(len(w) - 1 for w in windows)
    token_bytes = token_bytes_tensor(tokenizer)
    nanochat_gpt, evaluate_bpb = _nanochat(gpt)

    print(f"CPU: {cpu_name()}; torch {torch.__version__}, 1 thread; load average before: {_load()}")
    print(f"text: {text_path} ({len(text.encode()) / 1e6:.1f} MB, {len(document_ids(tokenizer, text)):,} tokens; "
          f"tokenized in {encode_s:.1f} s, not counted below)")
    print(f"model: {checkpoint} (n_layer {gpt.config.n_layer}, n_embd {gpt.config.n_embd}, vocab {gpt.config.vocab_size}, "
          f"{gpt.num_parameters() / 1e6:.0f}M parameters, fp32); scoring {len(windows)} window(s) of up to {size} tokens = "
          f"{targets:,} targets per run, {args.repeat} repeats")
    ceiling = arithmetic_ceiling(gpt, gpt.config.sequence_len)
    rates = {"ours": [], "nanochat": []}
    ratios, totals = [], {"ours": ByteLoss(), "nanochat": ByteLoss()}
    for repeat in range(args.repeat):
        for i, window in enumerate(windows):
            # the two run on the same window back to back, in alternating order, so that a burst
            # of load from other processes lands on both alike; the ratio is taken per pair
            timed = {}
            for name in (("ours", "nanochat") if (repeat + i) % 2 == 0 else ("nanochat", "ours")):
                start = time.perf_counter()
                loss = (measure_ids(gpt, token_bytes, window) if name == "ours"
                        else _nanochat_loss(evaluate_bpb, nanochat_gpt, window, token_bytes))
                timed[name] = time.perf_counter() - start
                rates[name].append((len(window) - 1) / timed[name])
                if repeat == 0:
                    totals[name].add(loss)
            ratios.append(timed["nanochat"] / timed["ours"])
        print(f"  repeat {repeat + 1}: ours {statistics.median(rates['ours'][-len(windows):]):,.1f} tokens/s, nanochat "
              f"{statistics.median(rates['nanochat'][-len(windows):]):,.1f} tokens/s, median ratio of this repeat's "
              f"pairs {statistics.median(ratios[-len(windows):]):.2f}x; load average {_load()}", flush=True)
    print(f"\n{'path':<10} {'tokens/s':>10} {'x nanochat':>10} {'ceiling':>8} {'bpb':>12}   "
          f"(medians over {len(ratios)} window pairs)")
    for name in ("ours", "nanochat"):
        ratio = statistics.median(ratios) if name == "ours" else 1.0
        rate = statistics.median(rates[name])
        print(f"{name:<10} {rate:>10,.1f} {ratio:>9.2f}x {rate / ceiling:>8.0%} {totals[name].bpb:>12.6f}")
    print(f"{'ceiling':<10} {ceiling:>10,.1f} {ceiling / statistics.median(rates['nanochat']):>9.2f}x"
          f"   (the model's matrix products alone: the most any fp32 path can reach here)")
    difference = abs(totals["ours"].bpb - totals["nanochat"].bpb)
    met = statistics.median(ratios) >= TARGET
    bound = ceiling / statistics.median(rates["nanochat"])
    print(f"\nsame bpb: |difference| {difference:.2e} ({'within' if difference <= 1e-4 else 'NOT within'} 1e-4)")
    print(f"target: ours >= {TARGET:g}x nanochat's evaluate_bpb loop: {'met' if met else 'missed'} "
          f"(median same-pair ratio {statistics.median(ratios):.2f}x); load average after: {_load()}")
    if bound < TARGET:
        print(f"the arithmetic ceiling is {bound:.2f}x nanochat's loop on this CPU: no fp32 path reaches {TARGET:g}x here")
    return 0


def arithmetic_ceiling(gpt, T: int, timings: int = 5) -> float:
    """Tokens/s of one window of ``T`` inputs if scoring cost nothing but the model's matrix
    products (see the module docstring): every ``nn.Linear`` of ``gpt`` as a ``(T, in) @ (in,
    out)`` product, and per layer the scores ``(H, T, D) @ (H, D, T)`` and the weighted sum
    ``(H, T, T) @ (H, T, D)`` at half their time (the causal half). Each product is timed alone,
    the fastest of ``timings``, on random data."""
    import torch

    def fastest(product) -> float:
        product()  # warm up: first-touch of the output
        seconds = []
        for _ in range(timings):
            start = time.perf_counter()
            product()
            seconds.append(time.perf_counter() - start)
        return min(seconds)

    c = gpt.config
    total = 0.0
    with torch.inference_mode():
        for module in gpt.modules():
            if isinstance(module, torch.nn.Linear):
                out_features, in_features = module.weight.shape
                x, w = torch.randn(T, in_features), torch.randn(in_features, out_features)
                out = torch.empty(T, out_features)
                total += fastest(lambda: torch.mm(x, w, out=out))
        q, k = torch.randn(c.n_head, T, c.head_dim), torch.randn(c.n_head, c.head_dim, T)
        scores, v = torch.empty(c.n_head, T, T), torch.randn(c.n_head, T, c.head_dim)
        y = torch.empty(c.n_head, T, c.head_dim)
        attention = fastest(lambda: torch.bmm(q, k, out=scores)) + fastest(lambda: torch.bmm(scores, v, out=y))
        total += c.n_layer * attention / 2
    return T / total


def _text(size_mb: float) -> Path:
    """One document of about ``size_mb`` MB of local text, cached."""
    from bench.corpus import build_corpus, iter_texts
    from glasschat.atomic import atomic_write_text

    path = CACHE / f"text-{size_mb:g}mb.txt"
    if not path.is_file():
        corpus = build_corpus(size_mb)
        atomic_write_text(path, "\n\n".join(iter_texts(corpus.train)))
    return path


def _checkpoint(text_path: Path, args) -> Path:
    """A random-weight GPT with a tokenizer trained on the text, cached by its shape."""
    import torch

    from model import save_checkpoint
    from model.gpt import GPT, GPTConfig
    from tokenizer import Tokenizer
    from tokenizer.trainer import train_tokenizer

    tokenizer_dir = CACHE / f"tokenizer-{text_path.stem}-v{args.vocab_size}"
    if not (tokenizer_dir / "tokenizer.tiktoken").is_file():
        print(f"training a {args.vocab_size}-token tokenizer on {text_path} (once; cached)", flush=True)
        train_tokenizer([str(text_path)], args.vocab_size, tokenizer_dir, progress=False)
    directory = CACHE / f"d{args.n_layer}-v{args.vocab_size}-s{args.sequence_len}-{text_path.stem}"
    if not (directory / "config.json").is_file():
        tokenizer = Tokenizer.load(tokenizer_dir)
        config = GPTConfig(sequence_len=args.sequence_len, vocab_size=tokenizer.vocab_size, n_layer=args.n_layer,
                           n_head=max(1, args.n_layer * 64 // 128), n_kv_head=max(1, args.n_layer * 64 // 128),
                           n_embd=args.n_layer * 64)
        with torch.device("cpu"):
            gpt = GPT(config).init_weights(seed=0, zero_outputs=False)
        save_checkpoint(directory, gpt, tokenizer, {"made_by": "glasschat bench bpb (random weights)"})
    return directory


def _nanochat(gpt):
    """nanochat's GPT of the same config holding the same tensors, and its evaluate_bpb."""
    os.environ.setdefault("NANOCHAT_BASE_DIR", str((CACHE / "nanochat-base").resolve()))
    sys.path.insert(0, str(REFERENCE))
    try:
        from nanochat.gpt import GPT, GPTConfig
        from nanochat.loss_eval import evaluate_bpb
    finally:
        sys.path.remove(str(REFERENCE))
    from model.gpt import SIZE_FIELDS

    # the late-2025 generation: the six size fields (glasschat's model here has no 2026 features)
    model = GPT(GPTConfig(**{name: getattr(gpt.config, name) for name in SIZE_FIELDS}))
    model.load_state_dict(gpt.state_dict())
    return model.eval(), evaluate_bpb


def _nanochat_loss(evaluate_bpb, model, window: list[int], token_bytes):
    """nanochat's evaluate_bpb on one window, as sums (its bpb times ln 2 and the targets' bytes)."""
    import torch

    from model.bpb import ByteLoss

    ids = torch.tensor([window])
    bpb = evaluate_bpb(model, iter([(ids[:, :-1], ids[:, 1:])]), 1, token_bytes)
    counted = int(token_bytes[ids[0, 1:]].sum())
    return ByteLoss(bpb * math.log(2) * counted, counted, len(window) - 1)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
