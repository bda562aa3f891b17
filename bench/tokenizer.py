"""``glasschat bench tokenizer``: our BPE trainer side by side with rustbpe (and HF tokenizers).

Builds deterministic corpora from text installed on this machine (see ``bench.corpus``), then
trains each trainer on the same corpus, pattern and vocabulary size, each run in its own process,
and prints training wall time and peak memory of the whole process tree (sampled every 20 ms,
helper processes included), both as ratios to rustbpe, bytes per token on held-out text, and
whether the learned tokens equal rustbpe's (bytes per token: the trained tokens run through
tiktoken, HF's through its own encoder). Memory is shown two ways: the sum of the processes'
resident sets (RSS, which counts pages a forked helper shares with its parent once per process)
and the sum of their proportional sets (PSS, which splits shared pages between the processes
sharing them); for a single process the two agree. Runs alternate between trainers and repeat
``--repeat`` times; figures are medians.
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

HELP = "Train glasschat's BPE and rustbpe (and HF tokenizers) side by side; print time, memory, ratios."
SAMPLE_SECONDS = 0.02


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 100], metavar="MB",
                        help="corpus sizes in MB (default: 10 100)")
    parser.add_argument("--vocabs", type=int, nargs="+", default=[4096, 32768], metavar="N",
                        help="vocabulary sizes, specials included (default: 4096 32768)")
    parser.add_argument("--trainers", nargs="+", default=["glasschat", "rustbpe", "hf"],
                        choices=["glasschat", "rustbpe", "hf"], help="which trainers (default: all installed)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per trainer; medians are shown")
    parser.add_argument("--workers", type=int, default=0, metavar="K",
                        help="glasschat counting workers (default: all cores)")


def run(args) -> int:
    from bench.corpus import build_corpus, describe_sources

    trainers = [t for t in args.trainers if t != "hf" or _has_hf()]
    print(f"corpora: {describe_sources()}; cached in .cache/bench-corpus/")
    print(f"machine: {os.cpu_count()} cores; each run in its own process; medians of {args.repeat}")
    for size in args.sizes:
        corpus = build_corpus(size)
        print(f"\ncorpus {corpus.train_bytes / 1e6:.1f} MB ({corpus.train})")
        print(f"{'vocab':>6}  {'trainer':<10} {'wall s':>7} {'x rust':>6} {'RSS MB':>7} {'x rust':>6} "
              f"{'PSS MB':>7} {'x rust':>6} {'bytes/tok':>9}  same tokens as rustbpe")
        for vocab in args.vocabs:
            runs: dict[str, list[dict]] = {t: [] for t in trainers}
            tokens: dict[str, list[str]] = {}
            for _ in range(args.repeat):
                for trainer in trainers:
                    result, tokens[trainer] = _run_one(trainer, corpus, vocab, args.workers)
                    runs[trainer].append(result)

            def median(trainer: str, field: str) -> float | None:
                return statistics.median(r[field] for r in runs[trainer]) if trainer in runs else None

            for trainer in trainers:
                wall, rss, pss = (median(trainer, f) for f in ("seconds", "peak_rss", "peak_pss"))
                bpt = runs[trainer][0]["bytes_per_token"]
                same = _same_tokens(tokens[trainer], tokens.get("rustbpe")) if trainer != "rustbpe" else ""
                print(f"{vocab:>6}  {trainer:<10} {wall:>7.2f} {_ratio(wall, median('rustbpe', 'seconds')):>6} "
                      f"{rss / 1e6:>7.0f} {_ratio(rss, median('rustbpe', 'peak_rss')):>6} "
                      f"{pss / 1e6:>7.0f} {_ratio(pss, median('rustbpe', 'peak_pss')):>6} "
                      f"{bpt:>9.3f}  {same}", flush=True)
    return 0


def _has_hf() -> bool:
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _ratio(x: float, base: float | None) -> str:
    return f"{x / base:.2f}x" if base else "-"


def _same_tokens(ours: list[str], theirs: list[str] | None) -> str:
    if theirs is None:
        return "-"
    # the 256 byte tokens may come in another order (HF sorts its byte alphabet its own way)
    if sorted(ours[:256]) != sorted(theirs[:256]):
        return "no: different byte tokens"
    ours, theirs = ours[256:], theirs[256:]
    if ours == theirs:
        return f"yes (all {len(ours)} merges)"
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"no: merge {first} differs ({len(ours)} vs {len(theirs)} merges)"


def _run_one(trainer: str, corpus, vocab: int, workers: int) -> tuple[dict, list[str]]:
    with tempfile.TemporaryDirectory(prefix="glasschat-bench-") as out:
        command = [sys.executable, "-m", "bench.train_one", trainer, str(corpus.train), str(corpus.heldout),
                   str(vocab), out, str(workers)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        process = subprocess.Popen(command, env=env)
        peak_rss = peak_pss = 0
        while process.poll() is None:
            rss, pss = _tree_memory(process.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(SAMPLE_SECONDS)
        if process.returncode != 0:
            raise RuntimeError(f"{trainer} run failed with exit code {process.returncode}")
        result = json.loads((Path(out) / "result.json").read_text())
        result["peak_rss"], result["peak_pss"] = peak_rss, peak_pss
        tokens = (Path(out) / "tokens.txt").read_text().split()
    return result, tokens


def _tree_memory(pid: int) -> tuple[int, int]:
    """Resident and proportional bytes of ``pid`` and all its descendants (0 if it is gone)."""
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return rss, pss
