"""``glasschat bench serve``: N concurrent clients against ``glasschat serve``, beside the
single-stream local engine.

The server runs as its own process (``glasschat serve --port 0``, one torch thread, its decode
loop in a child process of its own: ``model.batch_process``); the clients are threads of this
process, each a ``model.remote.RemoteBackend`` stream (the remote backend as ``ask``/replay use
it: HTTP, SSE parsing, decoding the ids). Every client asks greedy questions in turn (the README
conversation's single-turn prompts); per client count the bench prints the aggregate tokens/s
(all tokens over the wall time), p50/p95 time to first token (client-side, from the request to
the first token), how many replies differ from the local engine's serial greedy run (the target
is none), and the cores the server process and its engine process used (CPU time over wall
time). The baseline, measured in the same run before
and after the clients, is the local engine streaming the same questions one after another in
this process: its aggregate tokens/s is the "single-stream" figure the ratios divide by. Medians
over ``--repeat`` runs.

Beside each client count, the same clients as threads calling the server's batcher
(``model.batching.Batcher``) in this process, with no HTTP in between, and the mean batch it
decoded: what the batched engine gives on this machine before the protocol, the event loop and
the clients' parsing take their share of the cores.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time

from bench.machine import children, cpu_name, process_cpu_seconds

HELP = "Aggregate tokens/s and time to first token of 1/4/16 concurrent clients of glasschat serve vs one local stream."
QUESTIONS = ["hi", "who are you?", "what can you do?", "What is 12 + 30?", "spell banana",
             "how many r's in strawberry?", "reverse the word house", "write me a poem about the sea",
             "what is 7 * 8?", "spell strawberry", "reverse the word garden", "thanks, bye!"]
TARGET, TARGET_CLIENTS = 3.0, 16  # the aggregate at 16 clients over the single-stream figure


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", metavar="DIR", default=None, help="model (default: the bundled one)")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16], metavar="N",
                        help="concurrent client counts (default 1 4 16)")
    # 12 requests for each of 16 clients: with 3 each, most of a run was the batch filling up and
    # draining (a mean batch of 11 at 16 clients), not 16 clients being served
    parser.add_argument("--requests", type=int, default=192, metavar="N",
                        help="requests per client count, shared among the clients (default 192)")
    parser.add_argument("--max-tokens", type=int, default=128, metavar="N", help="tokens per reply at most (default 128)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs per client count (default 3)")


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _start_server(checkpoint: str | None, max_batch: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "glasschat", "serve", "--port", "0", "--max-batch", str(max_batch)]
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.search(r"(http://\S+)/v1", line)
    if not found:
        process.kill()
        raise RuntimeError(f"glasschat serve did not start: {line}{process.stderr.read()}")
    return process, found.group(1)


def _median_or_dash(values) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def _cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and of each of its children (Linux ``/proc``; {} elsewhere)."""
    try:
        return {p: process_cpu_seconds(p) for p in (pid, *children(pid))}
    except (OSError, ValueError):
        return {}


def run(args) -> int:
    import torch

    from glasschat.errors import UserError
    from model import load_model, resolve_checkpoint_dir
    from model.batching import Batcher
    from model.engine import Engine
    from model.events import SamplingParams, Stop, TokenEvent
    from model.remote import RemoteBackend

    if min(args.clients) < 1 or args.requests < 1 or args.repeat < 1:
        raise UserError("--clients, --requests and --repeat must be >= 1")
    torch.set_num_threads(1)
    directory = resolve_checkpoint_dir(args.checkpoint)
    gpt, tokenizer = load_model(directory)
    engine = Engine(gpt, tokenizer)
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    prompts = [tokenizer.render_for_completion({"messages": [{"role": "user", "content": q}]}) for q in QUESTIONS]
    expected = [engine.generate(p, params)[0].ids for p in prompts]

    def local_run() -> float:
        start, tokens = time.perf_counter(), 0
        for i in range(args.requests):
            tokens += sum(isinstance(e, TokenEvent) for e in engine.stream(prompts[i % len(prompts)], params))
        return tokens / (time.perf_counter() - start)

    def clients_run(remote, clients: int, server_pid: int | None = None) -> dict:
        """``clients`` threads streaming the requests from ``remote`` (the HTTP client, or the
        batcher in this process: both have ``stream(prompt, params)``)."""
        jobs = list(range(args.requests))
        lock = threading.Lock()
        ttfts, tokens, wrong = [], [0], [0]
        steps = (remote.steps, remote.rows_decoded) if isinstance(remote, Batcher) else None

        def client() -> None:
            while True:
                with lock:
                    if not jobs:
                        return
                    i = jobs.pop()
                ids, stop = [], None
                for event in remote.stream(prompts[i % len(prompts)], params):
                    if isinstance(event, Stop):
                        stop = event
                    else:
                        ids.append(event.id)
                with lock:
                    ttfts.append(stop.stats.ttft_s)
                    tokens[0] += len(ids)
                    wrong[0] += ids != expected[i % len(prompts)]

        cpu = _cpu_seconds(server_pid) if server_pid else {}
        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        # cores used over the run by the server process, and by its engine process (its child)
        after = _cpu_seconds(server_pid) if server_pid else {}
        server_cores = (after[server_pid] - cpu[server_pid]) / wall if server_pid in after and cpu else None
        engine_cores = sum(t - cpu.get(p, 0.0) for p, t in after.items() if p != server_pid) / wall \
            if len(after) > 1 else None
        batch = (remote.rows_decoded - steps[1]) / max(1, remote.steps - steps[0]) if steps else None
        return {"tok_s": tokens[0] / wall, "p50": _percentile(ttfts, 0.5) * 1000, "p95": _percentile(ttfts, 0.95) * 1000,
                "server_cores": server_cores, "engine_cores": engine_cores,
                "wrong": wrong[0], "batch": batch}

    cpu = cpu_name()
    print(f"bench serve: {directory}, {args.requests} greedy requests per run (max {args.max_tokens} tokens), "
          f"{args.repeat} runs, medians; CPU {cpu}, {os.cpu_count()} cores, 1 torch thread per process, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    process, url = _start_server(args.checkpoint, max(args.clients))
    remote = batcher = None
    try:  # the server must not outlive the run, whatever fails
        remote = RemoteBackend(url, tokenizer, max_connections=max(args.clients) + 4)
        batcher = Batcher(engine, max(args.clients))
        local, rows, alone = [], {c: [] for c in args.clients}, {c: [] for c in args.clients}
        for _ in range(args.repeat):  # interleaved, so load from other processes falls on all alike
            local.append(local_run())
            for clients in args.clients:
                rows[clients].append(clients_run(remote, clients, process.pid))
                alone[clients].append(clients_run(batcher, clients))
        local.append(local_run())
    finally:
        for started in (batcher, remote):
            if started is not None:
                started.close()
        process.terminate()
        process.wait(timeout=20)
    single = statistics.median(local)
    print(f"{'clients':>8} {'tok/s':>9} {'x local':>8} {'TTFT p50':>9} {'TTFT p95':>9} {'differ':>7} "
          f"{'cores: server':>13} {'engine':>7}   {'no HTTP: tok/s':>14} {'x local':>8} {'mean batch':>10}")
    print(f"{'local':>8} {single:>9.0f} {1.0:>8.2f} {'':>9} {'':>9} {'':>7}")
    figures = {}
    for clients, runs in rows.items():
        tok_s = statistics.median(r["tok_s"] for r in runs)
        figures[clients] = tok_s
        bare = statistics.median(r["tok_s"] for r in alone[clients])
        print(f"{clients:>8} {tok_s:>9.0f} {tok_s / single:>8.2f} {statistics.median(r['p50'] for r in runs):>7.1f}ms "
              f"{statistics.median(r['p95'] for r in runs):>7.1f}ms {sum(r['wrong'] for r in runs):>7} "
              f"{_median_or_dash(r['server_cores'] for r in runs):>13} "
              f"{_median_or_dash(r['engine_cores'] for r in runs):>7}   "
              f"{bare:>14.0f} {bare / single:>8.2f} {statistics.median(r['batch'] for r in alone[clients]):>10.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end; cores: CPU time over wall time of the server "
          f"process (HTTP) and of its engine process (the decode loop)")
    differ = sum(r["wrong"] for runs in (*rows.values(), *alone.values()) for r in runs)
    if TARGET_CLIENTS in figures:
        ratio = figures[TARGET_CLIENTS] / single
        verdict = f"{ratio:.2f}x ({'met' if ratio >= TARGET else 'missed'})"
    else:
        verdict = "not run"
    print(f"target: {TARGET_CLIENTS} clients >= {TARGET:g}x the single local stream: {verdict}; "
          f"replies differing from serial greedy: {differ}")
    return 0
