"""``glasschat bench engine --weights``: decode speed and peak memory per weight format, for
nanochat-sized models, each engine loading a checkpoint in a process of its own.

For each model (``d12``: nanochat's d12 shape, 186M parameters; ``d20``: its d20 shape, 561M;
both V65536, random fp32 weights whose special tokens never win) the benchmark writes an fp32
checkpoint and its ``glasschat quantize`` copy to a temporary directory, then, per repeat, runs
one process per row, in turn:

- ``nanochat``: nanochat's own ``Engine.generate`` (the late-2025 generation glasschat loads,
  imported from ``../shared/reference/nanochat/16788ee``; skipped with a note when absent), its
  GPT built the way nanochat's checkpoint manager builds one, fp32;
- ``fp32``: what ``glasschat ask`` runs: ``load_engine`` on the fp32 checkpoint;
- ``int8``: the same on the int8 checkpoint;
- ``int8@load``: ``--quantize int8`` on the fp32 checkpoint (quantized as it loads).

Each process greedily decodes ``--tokens`` tokens after a ``--prompt``-token prompt and reports
decode tok/s (from the median time between tokens), its load time, the greedy ids and its peak
resident memory (``VmHWM``: everything the process ever held resident since it started —
interpreter, torch, the mapped file's resident pages, the weights; read by the process itself,
as a child's ``ru_maxrss`` would count the parent's pages it was forked with). Ratios are medians of
same-repeat ratios. Processes cannot decode in lockstep, so the rows of a repeat run back to
back and the repeats interleave them; the load average is printed before and after, as the
machine may be shared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import machine

NANOCHAT_REFERENCE = machine.NANOCHAT_REFERENCE / "16788ee"
MODELS = {"d12": 12, "d20": 20}
ROWS = ("nanochat", "fp32", "int8", "int8@load")
GB = 1e9


def run(args) -> int:
    import torch

    torch.set_num_threads(1)
    rows = [r for r in args.weight_rows if r != "nanochat" or NANOCHAT_REFERENCE.is_dir()]
    if "nanochat" in args.weight_rows and "nanochat" not in rows:
        print(f"nanochat's Engine: skipped ({NANOCHAT_REFERENCE} is absent)")
    print(f"1 torch thread; {args.prompt}-token prompt, {args.tokens} tokens per run; medians of {args.repeat}; "
          f"one process per row and run; CPU {machine.cpu_name()}; load average {_load()} at the start")
    results = {}
    with tempfile.TemporaryDirectory(prefix="glasschat-bench-weights-", dir=args.workdir) as work:
        for name in args.models:
            fp32_dir, int8_dir, params = write_checkpoints(Path(work), name, args.vocab)
            runs = {row: [] for row in rows}
            for _ in range(args.repeat):
                for row in rows:
                    runs[row].append(run_row(row, fp32_dir, int8_dir, args))
            results[name] = (params, runs)
            print_model(name, args.vocab, params, runs)
            for directory in (fp32_dir, int8_dir):
                for path in sorted(directory.rglob("*"), reverse=True):
                    path.rmdir() if path.is_dir() else path.unlink()
    print(f"\nload average {_load()} at the end")
    print_targets(results)
    return 0


# ---- checkpoints


def write_checkpoints(work: Path, name: str, vocab: int) -> tuple[Path, Path, int]:
    """An fp32 checkpoint of random weights (specials never win greedily) and its int8 copy."""
    import torch

    from bench.engine import synthetic_tokenizer
    from model.checkpoint import quantize_checkpoint, save_checkpoint
    from model.gpt import GPT, GPTConfig

    depth = MODELS[name]
    n_embd = 64 * depth
    heads = max(1, (n_embd + 127) // 128)
    config = GPTConfig(sequence_len=2048, vocab_size=vocab, n_layer=depth, n_head=heads, n_kv_head=heads, n_embd=n_embd)
    tokenizer = synthetic_tokenizer(vocab)
    started = time.perf_counter()
    gpt = GPT(config).init_weights(seed=0, zero_outputs=False)
    with torch.no_grad():
        gpt.lm_head.weight[list(tokenizer.special_ids.values())] = 0
    params = gpt.num_parameters()
    fp32_dir, int8_dir = work / f"{name}-fp32", work / f"{name}-int8"
    save_checkpoint(fp32_dir, gpt, tokenizer)
    del gpt
    quantize_checkpoint(fp32_dir, int8_dir)
    print(f"\n{name}: wrote {params / 1e6:.0f}M parameters as fp32 ({_size(fp32_dir) / GB:.2f} GB) and int8 "
          f"({_size(int8_dir) / GB:.2f} GB) in {time.perf_counter() - started:.0f}s")
    return fp32_dir, int8_dir, params


def _size(directory: Path) -> int:
    return (directory / "model.safetensors").stat().st_size


# ---- one row, one process


def run_row(row: str, fp32_dir: Path, int8_dir: Path, args) -> dict:
    """Run one row in a child process and return its report."""
    checkpoint = int8_dir if row == "int8" else fp32_dir
    command = [sys.executable, "-m", "bench.engine_weights", row, str(checkpoint), str(args.prompt), str(args.tokens)]
    env = dict(os.environ, OMP_NUM_THREADS="1", NANOCHAT_BASE_DIR=tempfile.gettempdir())
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{row} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def child(row: str, checkpoint: str, prompt_len: int, tokens: int) -> None:
    """In the child: load, decode greedily, print the report as JSON."""
    import torch

    from model.checkpoint import read_config

    torch.set_num_threads(1)
    vocab = read_config(checkpoint)[0].vocab_size - 9  # ordinary tokens only
    prompt = torch.randint(vocab, (prompt_len,), generator=torch.Generator().manual_seed(prompt_len)).tolist()
    started = time.perf_counter()
    if row == "nanochat":
        stream, weight_bytes = _nanochat_stream(checkpoint, prompt, tokens)
    else:
        from model.checkpoint import load_engine
        from model.events import SamplingParams, TokenEvent

        engine, _ = load_engine(checkpoint, "int8" if row == "int8@load" else None)
        weight_bytes = engine.weight_bytes
        events = engine.stream(prompt, SamplingParams(temperature=0, top_k=0, max_tokens=tokens))
        stream = (e.id for e in events if isinstance(e, TokenEvent))
    load_s = time.perf_counter() - started
    ids, times = [], []
    for token in stream:
        ids.append(token)
        times.append(time.perf_counter())
    gaps = [b - a for a, b in zip(times, times[1:])]
    print(json.dumps({"ids": ids, "load_s": load_s, "ttft": times[0] - started - load_s,
                      "decode": 1 / statistics.median(gaps), "weight_bytes": weight_bytes, "peak_rss": _peak_rss()}))


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux ``VmHWM``)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _nanochat_stream(checkpoint: str, prompt: list[int], tokens: int):
    """nanochat's Engine on the checkpoint's weights, its GPT built as nanochat's checkpoint
    manager builds one (on the meta device, then ``to_empty``, ``init_weights``, the state
    dict assigned)."""
    import torch
    from safetensors.torch import load_file

    from model.checkpoint import read_config
    from tokenizer import Tokenizer

    sys.path.insert(0, str(NANOCHAT_REFERENCE))
    from nanochat.engine import Engine
    from nanochat.gpt import GPT, GPTConfig

    config, _ = read_config(checkpoint)
    state = load_file(Path(checkpoint) / "model.safetensors")
    with torch.device("meta"):
        # the benchmark's models are of nanochat's first generation: its config has the six size fields
        known = set(GPTConfig.__dataclass_fields__)
        gpt = GPT(GPTConfig(**{k: v for k, v in config.to_dict().items() if k in known}))
    gpt.to_empty(device="cpu")
    gpt.init_weights()
    gpt.load_state_dict(state, strict=True, assign=True)
    gpt.eval()
    del state
    engine = Engine(gpt, _NanochatTokenizer(Tokenizer.load(Path(checkpoint) / "tokenizer")))
    columns = engine.generate(prompt, num_samples=1, max_tokens=tokens, temperature=0.0)
    weight_bytes = sum(p.numel() * p.element_size() for p in gpt.parameters())
    return (column[0] for column, _ in columns), weight_bytes


class _NanochatTokenizer:
    """The few tokenizer methods nanochat's Engine calls, on glasschat's tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode_special(self, name: str) -> int:
        return self.tokenizer.special_ids[name]

    def get_bos_token_id(self) -> int:
        return self.tokenizer.bos_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


# ---- report


def print_model(name: str, vocab: int, params: int, runs: dict) -> None:
    fp32_bytes = 4 * params
    base = runs.get("nanochat")
    print(f"{'model':>5} {'vocab':>6}  {'row':<10} {'decode tok/s':>12} {'x nanochat':>10} {'x fp32':>7} {'load s':>7} "
          f"{'weights GB':>10} {'peak RSS GB':>11} {'RSS / fp32 w':>12} {'same ids':>8}")
    for row, reports in runs.items():
        decode = statistics.median(r["decode"] for r in reports)
        x_nano = _ratio(reports, base)
        x_fp32 = _ratio(reports, runs.get("fp32"))
        rss = statistics.median(r["peak_rss"] for r in reports)
        reference = base or runs.get("fp32")
        same = "-" if reference is None else ("yes" if all(r["ids"] == b["ids"] for r, b in zip(reports, reference)) else "no")
        print(f"{name:>5} {vocab:>6}  {row:<10} {decode:>12.1f} {x_nano:>10} {x_fp32:>7} "
              f"{statistics.median(r['load_s'] for r in reports):>7.1f} {reports[0]['weight_bytes'] / GB:>10.2f} "
              f"{rss / GB:>11.2f} {rss / fp32_bytes:>12.2f} {same:>8}")


def _ratio(reports: list[dict], base: list[dict] | None) -> str:
    if not base:
        return "-"
    return f"{statistics.median(r['decode'] / b['decode'] for r, b in zip(reports, base)):.2f}x"


def print_targets(results: dict) -> None:
    print("\ntargets (same run):")
    for name, (params, runs) in results.items():
        fp32_bytes = 4 * params
        goals = []
        if "int8" in runs and "nanochat" in runs:
            goals.append(("int8 decode >= 3x nanochat's Engine", _median_ratio(runs["int8"], runs["nanochat"]), 3.0, "x"))
        if "int8" in runs and "fp32" in runs:
            goals.append(("int8 decode >= 2x glasschat fp32", _median_ratio(runs["int8"], runs["fp32"]), 2.0, "x"))
        for row, share in (("fp32", 1.25), ("int8", 0.3), ("int8@load", 0.3)):
            if row in runs:
                rss = statistics.median(r["peak_rss"] for r in runs[row])
                limit = share * fp32_bytes + 0.5 * GB
                goals.append((f"{row} peak RSS <= {share}x fp32 weights + 0.5 GB = {limit / GB:.2f} GB", rss / GB,
                              limit / GB, "GB"))
        for label, value, goal, unit in goals:
            met = value <= goal if unit == "GB" else value >= goal
            print(f"  {name}: {label}: {value:.2f}{unit} {'met' if met else 'MISSED'}")


def _median_ratio(reports: list[dict], base: list[dict]) -> float:
    return statistics.median(r["decode"] / b["decode"] for r, b in zip(reports, base))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
