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

``--shapes`` runs corpus shapes instead (see ``bench.corpus.SHAPES``: many small files, a few
large files, CJK-heavy text, source code, parquet shards, the largest corpus this machine's text
gives): the ``glasschat tokenizer train`` command against rustbpe fed the same documents in the
same order as nanochat feeds it (``bench.train_rustbpe``), each a whole process timed from
outside — start-up, reading and writing included —, alternating, medians of ``--repeat``; with
the load average before and after each row (same-run ratios are what to compare on a shared
machine), and how the time per MB changes from the smallest row to the largest.
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

from bench.machine import children, cpu_name

SHAPES = ("small-files", "large-files", "cjk", "code", "parquet", "largest")  # as in bench.corpus
SHAPE_MB = 40.0
LARGEST_MB = 1000.0  # more than this machine has: all of it
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
                        help="glasschat counting workers (default: the trainer's own choice, one per 64 MB up to all cores)")
    parser.add_argument("--shapes", nargs="*", default=None, metavar="SHAPE[=MB]",
                        help="run corpus shapes instead of --sizes: " + ", ".join(SHAPES) + " (all when none "
                        f"named), each of {SHAPE_MB:g} MB unless =MB is given (largest: {LARGEST_MB:g} MB)")


def run(args) -> int:
    if args.shapes is not None:
        return run_shapes(args)
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
            todo.extend(children(p))
        except (OSError, ValueError):
            continue
    return rss, pss


# -- corpus shapes: whole commands, glasschat against rustbpe ---------------------------------


def run_shapes(args) -> int:
    from bench.corpus import build_shape

    wanted = args.shapes or list(SHAPES)
    rows = []
    workers = args.workers or "its default (one per 64 MB of text, up to all cores)"
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; glasschat workers: {workers}; "
          f"rustbpe: its own threads; medians of {args.repeat} alternating runs; each a whole process")
    print(f"{'shape':<12} {'MB':>6} {'docs':>7} {'vocab':>6} {'glass s':>8} {'rust s':>8} {'x rust':>6} "
          f"{'RSS MB':>7} {'rust':>6} {'x rust':>6} {'PSS x':>6}  load before/after  same merges")
    for spec in wanted:
        name, _, mb = spec.partition("=")
        if name not in SHAPES:
            raise SystemExit(f"glasschat: error: --shapes: unknown shape {name!r} (known: {', '.join(SHAPES)})")
        shape = build_shape(name, float(mb) if mb else LARGEST_MB if name == "largest" else SHAPE_MB)
        for vocab in args.vocabs:
            load_before = os.getloadavg()[0]
            runs: dict[str, list[dict]] = {"glasschat": [], "rustbpe": []}
            tokens: dict[str, list[str]] = {}
            for _ in range(args.repeat):
                for trainer in runs:
                    result, tokens[trainer] = _run_shape(trainer, shape, vocab, args.workers)
                    runs[trainer].append(result)
            load_after = os.getloadavg()[0]
            med = {t: {f: statistics.median(r[f] for r in rs) for f in ("seconds", "peak_rss", "peak_pss")}
                   for t, rs in runs.items()}
            g, r = med["glasschat"], med["rustbpe"]
            rows.append((shape, vocab, g["seconds"]))
            print(f"{shape.name:<12} {shape.text_bytes / 1e6:>6.1f} {shape.documents:>7} {vocab:>6} "
                  f"{g['seconds']:>8.2f} {r['seconds']:>8.2f} {_ratio(g['seconds'], r['seconds']):>6} "
                  f"{g['peak_rss'] / 1e6:>7.0f} {r['peak_rss'] / 1e6:>6.0f} {_ratio(g['peak_rss'], r['peak_rss']):>6} "
                  f"{_ratio(g['peak_pss'], r['peak_pss']):>6}  {load_before:>5.2f} / {load_after:<5.2f}  "
                  f"{_same_tokens(tokens['glasschat'], tokens['rustbpe'])}", flush=True)
            print(f"{'':<12} walls glasschat {_walls(runs['glasschat'])}, rustbpe {_walls(runs['rustbpe'])}")
    for vocab in args.vocabs:
        sized = sorted((s.text_bytes, seconds, s.name) for s, v, seconds in rows if v == vocab)
        if len(sized) > 1 and sized[0][0] < sized[-1][0]:
            (small_b, small_s, small_n), (large_b, large_s, large_n) = sized[0], sized[-1]
            per_small, per_large = small_s / (small_b / 1e6), large_s / (large_b / 1e6)
            print(f"vocab {vocab}: glasschat {per_small:.3f} s/MB on {small_n} ({small_b / 1e6:.0f} MB), "
                  f"{per_large:.3f} s/MB on {large_n} ({large_b / 1e6:.0f} MB): "
                  f"{per_large / per_small:.2f}x the time per MB for {large_b / small_b:.1f}x the text")
    return 0


def _walls(results: list[dict]) -> str:
    return " ".join(f"{r['seconds']:.2f}" for r in results)


def _run_shape(trainer: str, shape, vocab: int, workers: int) -> tuple[dict, list[str]]:
    import base64

    from tokenizer.files import load_tokenizer_files

    with tempfile.TemporaryDirectory(prefix="glasschat-bench-") as out:
        if trainer == "glasschat":
            command = [sys.executable, "-m", "glasschat", "tokenizer", "train", *map(str, shape.inputs),
                       "--vocab-size", str(vocab), "--out", out]
            if workers:
                command += ["--workers", str(workers)]
        else:
            root = shape.inputs[0].parent  # the shape's directory: its manifest says how to read it
            command = [sys.executable, "-m", "bench.train_rustbpe", str(root), str(vocab), str(Path(out) / "tokens.txt")]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        peak_rss = peak_pss = 0
        while process.poll() is None:
            rss, pss = _tree_memory(process.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"{trainer} run on {shape.name} failed with exit code {process.returncode}")
        if trainer == "glasschat":
            ranks, _, _ = load_tokenizer_files(out)
            tokens = [base64.b64encode(t).decode() for t in sorted(ranks, key=ranks.__getitem__)]
        else:
            tokens = (Path(out) / "tokens.txt").read_text().split()
    return {"seconds": seconds, "peak_rss": peak_rss, "peak_pss": peak_pss}, tokens
