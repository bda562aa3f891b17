"""``glasschat bench tui``: the chat app in a real pseudo-terminal, against the headless engine.

Same model, prompt, seed and sampling parameters on both sides, measured in the same run:

- **tokens/s reaching the screen**: the app runs in a child process on a pseudo-terminal with
  Textual's real driver (this process reads the terminal's output, as a terminal would). The
  rate is tokens over the time from the first to the last text handed to the reply's Markdown
  widget, the last one after its stream is flushed. The baseline is the engine's own rate, the
  same ``Engine.stream`` consumed in a plain loop here, measured right before and right after
  each app run (the ratio divides by their mean). Target: at least 95% of it.
- **key-press delay while streaming**: this process types ``x`` into the terminal every few
  ms while the reply streams; the app notes when the message box has taken each key (its
  ``Changed`` message). Both sides read ``time.monotonic()``, one system-wide clock. Target:
  95th percentile at most 50 ms.

Without ``--checkpoint`` the model is a random-weight d4 GPT (4 layers, 256 wide) with the
bundled model's tokenizer when there is one (else 4096 tokens trained on offline text): a fast model streams the
most tokens per second, the hardest case for the UI. Four cases: the chat alone, with the token
pane open (F2: live preview and the pane following the reply), and each with the confidence
colours on (F8: every token coloured by its probability, in the chat and the pane).
``--profile DIR`` runs the app under cProfile and writes one ``.pstats`` per case there (the
timings of a profiled run are slower: take the ratios from a run without it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HELP = "The chat app in a pseudo-terminal vs the headless engine: tokens/s on screen, key-press delay."

PROMPT = "Tell me a long story about a fox, a dog and a number."
CASES = {"chat": (False, False), "chat + token pane": (True, False),  # (token pane open, confidence colours)
         "chat + colours": (False, True), "pane + colours": (True, True)}


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", metavar="DIR", default=None,
                        help="model to use (default: a random-weight d4 model, the hardest case for the UI)")
    parser.add_argument("--tokens", type=int, default=512, metavar="N", help="tokens per reply (default 512)")
    parser.add_argument("--runs", type=int, default=3, metavar="R", help="runs per case (default 3)")
    parser.add_argument("--key-interval-ms", type=float, default=50.0, metavar="MS",
                        help="time between typed keys while a reply streams (default 50: a very fast typist)")
    parser.add_argument("--size", default="120x40", metavar="COLSxROWS", help="terminal size (default 120x40)")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="profile the app (cProfile) and write CASE.pstats files to DIR")


def run(args) -> int:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="glasschat-bench-tui-") as tmp:
        tmp = Path(tmp)
        checkpoint, backend = _model(args.checkpoint, tmp / "random-d4")
        prompt_ids = backend.tokenizer.render_for_completion({"messages": [{"role": "user", "content": PROMPT}]})
        params = _pick_params(backend, prompt_ids, args.tokens)
        print(f"model: {backend.info.name} ({backend.info.size_label} parameters), prompt {len(prompt_ids)} tokens, "
              f"reply {args.tokens} tokens at most, seed {params.seed}, {args.runs} runs per case")

        headless: list[float] = [_headless_rate(backend, prompt_ids, params)]
        cases = {case: [] for case in CASES}
        for r in range(args.runs):  # interleaved, so machine noise hits every case and the baseline alike
            for c, (case, results) in enumerate(cases.items()):
                pane, colours = CASES[case]
                profile = str(Path(args.profile) / f"{case.replace(' ', '').replace('+', '-')}.pstats") \
                    if args.profile else None
                before = headless[-1]
                result = _app_run(checkpoint, params, tmp / f"run-{r}-case-{c}", pane=pane, colours=colours,
                                  interval_s=args.key_interval_ms / 1000, size=args.size, profile=profile)
                headless.append(_headless_rate(backend, prompt_ids, params))
                # the machine's speed drifts by tens of percent within a minute here: each app run is
                # divided by the engine measured right before and right after it, not by a median of
                # engine runs from other moments
                engine = (before + headless[-1]) / 2
                result["ratio"] = result["screen_rate"] / engine
                # the ratio's two parts: the engine's own speed in the app, and the screen keeping up with it
                result["engine_ratio"] = result["engine_rate"] / engine
                results.append(result)
        _report(headless, cases)
    return 0


# ---- the model

def _model(checkpoint: str | None, directory: Path):
    """``(checkpoint directory, Backend)``; a random d4 model is saved to ``directory`` first."""
    from tui.backend import load_backend

    if checkpoint is not None:
        return checkpoint, load_backend(checkpoint, in_process=True)
    from glasschat.errors import UserError
    from glasschat.paths import default_checkpoint_dir
    from model.checkpoint import save_checkpoint
    from model.gpt import GPT, GPTConfig
    from tokenizer import Tokenizer

    try:
        tokenizer = Tokenizer.load(default_checkpoint_dir() / "tokenizer")
    except UserError:  # no bundled model yet: a 4096-token tokenizer trained on offline text
        tokenizer = _train_tokenizer(directory.parent / "tokenizer")
    config = GPTConfig(sequence_len=1024, vocab_size=tokenizer.vocab_size, n_layer=4, n_head=2, n_kv_head=2,
                       n_embd=256)
    gpt = GPT(config).init_weights(seed=0, zero_outputs=False)
    save_checkpoint(directory, gpt, tokenizer)
    return str(directory), load_backend(str(directory), in_process=True)


def _train_tokenizer(directory: Path):
    from bench.corpus import build_corpus
    from tokenizer import Tokenizer
    from tokenizer.trainer import train_tokenizer

    corpus = build_corpus(1.0)
    train_tokenizer([str(corpus.train)], 4096, directory, workers=1, progress=False)
    return Tokenizer.load(directory)


def _pick_params(backend, prompt_ids, tokens: int):
    """Sampling parameters whose reply runs the full length (a random model may stop early)."""
    from model.events import SamplingParams

    best = None
    for seed in range(8):
        params = SamplingParams(temperature=1.0, top_k=0, seed=seed, max_tokens=tokens, top_alternatives=5)
        produced = sum(1 for event in backend.stream(prompt_ids, params) if hasattr(event, "forced"))
        if best is None or produced > best[0]:
            best = (produced, params)
        if produced >= tokens:
            break
    return best[1]


def _headless_rate(backend, prompt_ids, params) -> float:
    with _placed(_cpus("engine")):
        times = [time.perf_counter() for event in backend.stream(prompt_ids, params) if hasattr(event, "forced")]
    return (len(times) - 1) / (times[-1] - times[0])


# The app gives its engine a CPU of its own and keeps the other CPUs for the UI
# (``tui.engine_process.split_cpus``). This process stands in for the terminal, which is the
# UI's side of that split: left free, Linux can run its reader and typist on the engine's CPU
# while the UI's is busy, and each such wake-up takes the engine's core from it, a cost no real
# terminal on a machine with spare cores puts on the engine. So the headless engine runs on the
# engine's CPU, and the terminal on the app's CPUs while the app runs.


def _cpus(side: str) -> set[int] | None:
    """The CPUs of ``side`` ("engine" or "app") as the app splits them; None on one CPU."""
    from tui.engine_process import split_cpus

    placement = split_cpus()
    return None if placement is None else {placement[0]} if side == "engine" else placement[1]


@contextlib.contextmanager
def _placed(cpus: set[int] | None):
    """Run this thread (and the threads it starts) on ``cpus`` inside the block; None: unchanged."""
    if not cpus:  # one CPU, or no CPU affinity on this system (``split_cpus`` gave None)
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ---- the app in a pseudo-terminal

def _app_run(checkpoint: str, params, workdir: Path, *, pane: bool, colours: bool, interval_s: float, size: str,
             profile: str | None = None) -> dict:
    import fcntl
    import pty
    import struct
    import termios
    from dataclasses import asdict

    workdir.mkdir(parents=True)
    config = {"checkpoint": checkpoint, "params": asdict(params), "prompt": PROMPT, "pane": pane,
              "colours": colours, "dir": str(workdir), "profile": profile}
    (workdir / "config.json").write_text(json.dumps(config))
    cols, rows = (int(n) for n in size.lower().split("x"))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "XDG_DATA_HOME": str(workdir / "data")}
    # Textual draws on stderr: the pseudo-terminal gets it, so drawing costs what it costs on a terminal
    child = subprocess.Popen([sys.executable, "-m", "bench.tui", str(workdir / "config.json")],
                             stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    received = [0, b""]
    sent: list[float] = []
    # the app splits the CPUs it was started with (all of them); the terminal then takes the app's side
    with _placed(_cpus("app")):
        reader = threading.Thread(target=_drain_terminal, args=(master, received), daemon=True)
        reader.start()
        try:
            _wait_for(workdir / "ready", child, timeout_s=120)
            while not (workdir / "done").exists() and child.poll() is None:
                sent.append(time.monotonic())
                os.write(master, b"x")
                time.sleep(interval_s)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
            os.close(master)
    if child.returncode != 0 or not (workdir / "results.json").exists():
        shown = re.sub(r"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07]*\x07|.)", "", received[1].decode(errors="replace"))
        raise RuntimeError(f"the app exited with {child.returncode}: {shown[-2000:]}")
    results = json.loads((workdir / "results.json").read_text())
    handled = results["keys"]
    delays = [(t - s) * 1000 for s, (t, streaming) in zip(sent, handled) if streaming]
    shown = results["shown"]
    (t0, n0), (t1, n1) = shown[0], shown[-1]
    return {"screen_rate": (n1 - n0) / (t1 - t0), "tokens": n1, "delays_ms": delays,
            "terminal_bytes": received[0], "engine_rate": results["engine_tokens_per_s"],
            "ui_cpu": results["ui_cpu"], "engine_cpu": results["engine_cpu"],
            "ui_ms_per_100": results["ui_cpu_s"] * 1000 * 100 / max(1, n1)}


def _drain_terminal(master: int, received: list) -> None:
    """Read everything the app writes, as a terminal would (the app blocks if nobody reads):
    ``received`` is [bytes so far, the last 16 KB] (the end of it tells why an app failed)."""
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            return
        if not data:
            return
        received[0] += len(data)
        received[1] = (received[1] + data)[-(1 << 14):]


def _wait_for(path: Path, child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start streaming (exit code {child.poll()})")
        time.sleep(0.002)


def _report(headless: list[float], cases: dict[str, list[dict]]) -> None:
    base = statistics.median(headless)
    load = os.getloadavg()[0]
    print(f"\n{'case':<20}{'tok/s':>9}{'vs engine':>11}{'key p50':>10}{'key p95':>10}{'key max':>10}{'keys':>7}")
    print(f"{'engine (headless)':<20}{base:>9.1f}{'1.000':>11}")
    for case, runs in cases.items():
        rate = statistics.median(r["screen_rate"] for r in runs)
        delays = sorted(d for r in runs for d in r["delays_ms"])
        p50 = statistics.median(delays) if delays else float("nan")
        p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))] if delays else float("nan")
        top = delays[-1] if delays else float("nan")
        ratio = statistics.median(r["ratio"] for r in runs)
        print(f"{case:<20}{rate:>9.1f}{ratio:>11.3f}{p50:>8.1f}ms{p95:>8.1f}ms{top:>8.1f}ms{len(delays):>7}")
        engine_in_app = statistics.median(r["engine_rate"] for r in runs)
        ui_cpu = statistics.median(r["ui_cpu"] for r in runs)
        engine_cpu = statistics.median(r["engine_cpu"] for r in runs)
        ui_ms = statistics.median(r["ui_ms_per_100"] for r in runs)
        drawn = statistics.median(r["terminal_bytes"] * 100 / max(1, r["tokens"]) for r in runs)
        ratios = sorted(r["ratio"] for r in runs)
        engine_ratio = statistics.median(r["engine_ratio"] for r in runs)
        keeping_up = statistics.median(r["ratio"] / r["engine_ratio"] for r in runs)
        print(f"{'':<20}vs engine over the runs {ratios[0]:.3f}-{ratios[-1]:.3f}; the engine in the app ran at "
              f"{engine_ratio:.3f} of headless, the screen at {keeping_up:.3f} of the engine in the app")
        print(f"{'':<20}engine in the app {engine_in_app:.1f} tok/s; CPU while streaming: UI {ui_cpu:.0%}, "
              f"engine {engine_cpu:.0%} of a core; {statistics.median(r['tokens'] for r in runs):.0f} tokens; "
              f"UI {ui_ms:.1f} ms CPU and {drawn / 1024:.1f} KB drawn per 100 tokens")
    print(f"\n'vs engine' is the median over runs of each app run's rate over the headless engine's measured "
          f"right before and after it\n"
          f"targets: tokens/s on screen >= 0.95 x engine; key-press delay p95 <= 50 ms while streaming\n"
          f"machine: {os.cpu_count()} cores, load average {load:.2f} when the runs ended (other processes "
          f"compete for the cores the engine and the UI need)")


# ---- the child: the real app, measured from inside

def _child(config_path: str) -> int:
    from bench.machine import process_cpu_seconds
    from model.events import SamplingParams
    from tui.app import GlasschatApp
    from tui.backend import load_backend
    from tui.store import ConversationStore

    config = json.loads(Path(config_path).read_text())
    workdir = Path(config["dir"])
    backend = load_backend(config["checkpoint"])

    class MeasuredApp(GlasschatApp):
        """Notes when each typed key has been taken by the message box, and the reply's timings."""

        async def on_mount(self) -> None:
            self.keys: list[tuple[float, bool]] = []
            self.started = False
            await super().on_mount()
            if config["pane"]:
                self.action_toggle_tokens()
            if config["colours"]:
                await self.action_toggle_confidence()
            self.set_interval(0.02, self._watch)
            await self.send(config["prompt"])
            self.started = True

        def cpu_seconds(self) -> tuple[float, float]:
            """CPU time so far of this process (the UI) and of the engine process."""
            own = resource.getrusage(resource.RUSAGE_SELF)
            return own.ru_utime + own.ru_stime, process_cpu_seconds(self.backend.pid)

        def on_text_area_changed(self) -> None:
            self.keys.append((time.monotonic(), self.live_reply is not None))

        def _watch(self) -> None:
            streaming = self.live_reply is not None and self.live_reply.shown
            if (streaming or (self.started and self.live_reply is None)) and not (workdir / "ready").exists():
                (workdir / "ready").touch()
                self.cpu_start = (time.monotonic(), *self.cpu_seconds())
            if self.started and self.live_reply is None:
                turn = self.session.turn(1)
                end = (time.monotonic(), *self.cpu_seconds())
                wall = max(end[0] - self.cpu_start[0], 1e-9)
                results = {"keys": self.keys, "shown": self.last_reply_shown,
                           "engine_tokens_per_s": turn.tokens_per_s if turn else 0.0,
                           "ui_cpu": (end[1] - self.cpu_start[1]) / wall, "ui_cpu_s": end[1] - self.cpu_start[1],
                           "engine_cpu": (end[2] - self.cpu_start[2]) / wall}
                (workdir / "results.json").write_text(json.dumps(results))
                (workdir / "done").touch()
                self.exit()

    app = MeasuredApp(backend, store=ConversationStore(workdir / "store"), params=SamplingParams(**config["params"]))
    if config["profile"]:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(app.run)
        Path(config["profile"]).parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(config["profile"])
    else:
        app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
