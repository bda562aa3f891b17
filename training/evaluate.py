"""``glasschat eval``: held-out prompts through the engine, scored per skill.

Each prompt goes through ``Engine.stream`` exactly as a user's message does — the calculator
runs and its output is forced — so the figures measure what a user gets. Reported per sampling
temperature: accuracy per skill (and per held-out phrasing, to show which requests it
misreads), the stop rate (the reply ended with ``<|assistant_end|>``
within the token budget), the mean reply length in tokens, and the decode speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.eval_prompts import (FIRST_PROMPTS, README_CHAT, SKILLS, EvalItem, eval_items, first_prompt_items,
                                   readme_item, score)

MAX_REPLY_TOKENS = 200  # the longest correct reply (reversing a 12-letter word) is about 60 tokens
FAILURES_KEPT = 5  # per skill and temperature, to show in the report
RIGHT_KEPT = 20  # one-message prompts answered right, per skill and temperature: the card's example prompts
# the skills whose right answers make the best example prompts, best first: each shows a skill
# the model has (small talk only shows it can chat, and a follow-up needs the turn before it)
EXAMPLE_SKILLS = ("arithmetic", "counting", "reversal", "spelling", "small_talk")
# the same order for the first prompts' kinds (``FIRST_PROMPTS``), which are preferred
EXAMPLE_KINDS = ("arithmetic", "count", "reverse", "spell", "palindrome", "letters")


@dataclass(frozen=True)
class Sampling:
    """One column of the eval: how every reply is sampled."""

    temperature: float
    top_k: int = 0
    top_p: float = 1.0

    @property
    def label(self) -> str:
        return _label({"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p})


GREEDY = Sampling(0.0)


def app_default() -> Sampling:
    """The sampling a user of the app gets without touching a setting (``SamplingParams``'s
    defaults): what "at the default settings" means in the targets."""
    from model.events import SamplingParams

    defaults = SamplingParams()
    return Sampling(defaults.temperature, defaults.top_k, defaults.top_p)


def context_length(engine) -> int | None:
    """The model's context, from a backend's info or an engine's config (None if neither says)."""
    info = getattr(engine, "info", None)
    if info is not None and getattr(info, "sequence_len", 0):
        return info.sequence_len
    config = getattr(engine, "config", None)
    return getattr(config, "sequence_len", None)


def fitted_prompt(tokenizer, conversation: dict, sequence_len: int | None) -> list[int]:
    """The prompt as the app would send it: the oldest exchanges dropped until half the context
    (or ``MAX_REPLY_TOKENS``) is left for the reply, so a long chat is scored on what a user's
    model would see, not cut off mid-reply."""
    messages = conversation["messages"]
    prompt = tokenizer.render_for_completion({"messages": messages})
    if sequence_len:
        budget = sequence_len - max(1, min(MAX_REPLY_TOKENS, sequence_len // 2))
        while len(prompt) > budget and len(messages) > 2:
            messages = messages[2:]  # one user message and the reply that followed it
            prompt = tokenizer.render_for_completion({"messages": messages})
    return prompt


def run_item(engine, tokenizer, item: EvalItem, temperature: float, seed: int, top_k: int = 0,
             top_p: float = 1.0) -> dict:
    from model.events import SamplingParams, Stop

    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, max_tokens=MAX_REPLY_TOKENS)
    ids, stop = [], None
    for event in engine.stream(fitted_prompt(tokenizer, item.conversation, context_length(engine)), params):
        if isinstance(event, Stop):
            stop = event
        else:
            ids.append(event.id)
    reply = tokenizer.parse_assistant(ids)
    return {
        "ok": score(item, reply),
        "parsed": reply,
        "stop": stop.reason,
        "tokens": stop.stats.generated_tokens,
        "decode_s": max(0.0, stop.stats.total_s - stop.stats.ttft_s),
        "reply": tokenizer.decode(ids),
    }


def readme_chat(engine, tokenizer, temperature: float, seed: int, top_k: int = 0, top_p: float = 1.0) -> dict:
    """The README's conversation replayed on the model's own replies: which replies are right."""
    messages: list[dict] = []
    right, replies = [], []
    for turn in range(len(README_CHAT)):
        item = readme_item(turn, messages)
        result = run_item(engine, tokenizer, item, temperature, seed + turn, top_k, top_p)
        right.append(bool(result["ok"]))
        replies.append(result["reply"])
        messages = [*item.conversation["messages"], {"role": "assistant", "content": result["parsed"]}]
    return {"correct": sum(right), "n": len(right), "right": right, "replies": replies}


def first_prompts(engine, tokenizer, temperature: float, seed: int, top_k: int = 0, top_p: float = 1.0) -> dict:
    """The bare requests people type first (``FIRST_PROMPTS``), each a new chat: how many are
    right, and the ones that are not with their replies."""
    items, missed = first_prompt_items(), []
    for index, item in enumerate(items):
        result = run_item(engine, tokenizer, item, temperature, seed + index, top_k, top_p)
        if not result["ok"]:
            missed.append({"prompt": item.phrasing, "expected": item.expected, "reply": result["reply"]})
    return {"correct": len(items) - len(missed), "n": len(items), "missed": missed}


def evaluate(engine, tokenizer, items: Sequence[EvalItem], temperature: float, seed: int,
             log: Callable[[str], None] = print, top_k: int = 0, top_p: float = 1.0) -> dict:
    """Run ``items`` at ``temperature`` (and ``top_k``/``top_p``); per-skill accuracy and the reply statistics."""
    skills: dict[str, dict] = {}
    stops = tokens = decoded = 0
    decode_s = 0.0
    started = time.perf_counter()
    for index, item in enumerate(items):
        result = run_item(engine, tokenizer, item, temperature, seed + index, top_k, top_p)
        row = skills.setdefault(item.skill, {"n": 0, "correct": 0, "failures": [], "right": [], "phrasings": {}})
        row["n"] += 1
        row["correct"] += result["ok"]
        phrasing = row["phrasings"].setdefault(item.phrasing, {"n": 0, "correct": 0})
        phrasing["n"] += 1
        phrasing["correct"] += result["ok"]
        if result["ok"] and len(item.conversation["messages"]) == 1 and len(row["right"]) < RIGHT_KEPT:
            row["right"].append(item.conversation["messages"][0]["content"])
        if not result["ok"] and len(row["failures"]) < FAILURES_KEPT:
            row["failures"].append({"prompt": item.conversation["messages"][-1]["content"],
                                    "expected": item.expected, "reply": result["reply"]})
        stops += result["stop"] == "assistant_end"
        tokens += result["tokens"]
        if result["tokens"] > 1:
            decoded += result["tokens"] - 1
            decode_s += result["decode_s"]
        if (index + 1) % 100 == 0:
            log(f"eval {_label({'temperature': temperature, 'top_k': top_k, 'top_p': top_p})}: {index + 1}/{len(items)} prompts, {time.perf_counter() - started:.0f}s")
    for row in skills.values():
        row["accuracy"] = row["correct"] / row["n"]
    readme = readme_chat(engine, tokenizer, temperature, seed, top_k, top_p)
    return {
        "readme_chat": readme,
        "first_prompts": first_prompts(engine, tokenizer, temperature, seed, top_k, top_p),
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "skills": {s: skills[s] for s in SKILLS if s in skills},
        "prompts": len(items),
        "stop_rate": stops / len(items),
        "mean_reply_tokens": tokens / len(items),
        "tokens_per_s": decoded / decode_s if decode_s else 0.0,
        "seconds": time.perf_counter() - started,
    }


def evaluate_checkpoint(checkpoint: str | Path, per_skill: int, temperatures: Sequence[float] = (0.0, 0.7),
                        seed: int = 1234, log: Callable[[str], None] = print, quantize: str | None = None,
                        progress=None, server: str | None = None, api_key: str | None = None,
                        samplings: Sequence[Sampling] | None = None, skills: Sequence[str] = SKILLS) -> dict:
    """Load a checkpoint (``quantize="int8"``: run it int8; ``progress`` follows the load), or
    with ``server`` the model served there (the checkpoint then gives the tokenizer), and
    evaluate it on the same held-out prompts of ``skills`` at each of ``samplings`` (default:
    pure ``temperatures``), on the torch threads its caller set."""
    from model.backend import open_backend
    from model.events import SamplingParams

    samplings = list(samplings or [Sampling(t) for t in temperatures])
    for s in samplings:  # every item's sampling parameters, checked before the model loads
        SamplingParams(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=seed)
    SamplingParams(seed=seed + (per_skill + 10) * len(SKILLS))  # the item seeds run from seed upwards
    backend = open_backend(checkpoint, server=server, api_key=api_key, quantize=quantize, progress=progress)
    try:
        return _evaluate_backend(backend, backend.info.name if server else str(checkpoint), per_skill, samplings,
                                 seed, log, skills)
    finally:
        backend.close()


def _evaluate_backend(engine, label: str, per_skill: int, samplings: Sequence[Sampling], seed: int, log,
                      skills: Sequence[str] = SKILLS) -> dict:
    from training.word_pools import word_pools

    tokenizer = engine.tokenizer
    _, heldout_words, _ = word_pools(tokenizer)
    items = eval_items(heldout_words, per_skill, seed=seed, skills=skills)
    log(f"eval: {len(items)} held-out prompts ({per_skill} per skill, {len(heldout_words)} held-out words) "
        f"at {', '.join(s.label for s in samplings)}")
    runs = [evaluate(engine, tokenizer, items, s.temperature, seed, log, s.top_k, s.top_p) for s in samplings]
    return {"checkpoint": label, "per_skill": per_skill, "seed": seed,
            "heldout_words": len(heldout_words), "runs": runs}


def example_prompts(run: dict, count: int = 3) -> list[str]:
    """Up to ``count`` prompts ``run`` (one temperature) answered right, for the model card's
    ``## Example prompts`` (the chat's first screen offers them). First the first prompts it got
    right, one per kind of ``EXAMPLE_KINDS`` in turn: what people type first, on common words, so
    the screen shows "what is 12 + 30?" rather than a held-out phrasing about an unseen word. Then,
    to fill up (or for a report from before the first prompts), held-out prompts answered right:
    one per skill of ``EXAMPLE_SKILLS`` in turn, the shortest of each first (the plain request,
    without "hey, ... for me please")."""
    chosen: list[str] = []
    if "first_prompts" in run:
        missed = {m["prompt"] for m in run["first_prompts"]["missed"]}
        for kind in EXAMPLE_KINDS:
            right = [prompt for prompt, k, _ in FIRST_PROMPTS if k == kind and prompt not in missed]
            if right and len(chosen) < count:
                chosen.append(right[0])
    pools = [sorted(run["skills"][skill].get("right", []), key=len) for skill in EXAMPLE_SKILLS
             if skill in run["skills"]]
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(pool.pop(0))
    return chosen


def _label(run: dict) -> str:
    """A column's name: ``greedy``, ``T=0.7`` (pure temperature), ``T=0.6 k=50`` (with top-k / top-p)."""
    if run["temperature"] == 0:
        return "greedy"
    label = f"T={run['temperature']:g}"
    if run.get("top_k"):
        label += f" k={run['top_k']}"
    if run.get("top_p", 1.0) < 1.0:
        label += f" p={run['top_p']:g}"
    return label


WEAK_BELOW = 0.9  # a held-out phrasing answered right less often than this is listed as weak


def weak_phrasings(run: dict, below: float = WEAK_BELOW) -> list[str]:
    """One line per held-out phrasing of ``run`` (one temperature) answered right less often than
    ``below``, worst first: ``skill  right/asked  phrasing`` — where a skill's misses come from."""
    weak = [(p["correct"] / p["n"], skill, phrasing, p) for skill, row in run["skills"].items()
            for phrasing, p in row["phrasings"].items() if p["correct"] < below * p["n"]]
    return [f"{skill:12s} {p['correct']:3d}/{p['n']:<3d}  {phrasing}"
            for _, skill, phrasing, p in sorted(weak, key=lambda w: w[:3])]


def format_weak_phrasings(report: dict, below: float = WEAK_BELOW) -> str:
    """``weak_phrasings`` for each temperature of ``report``, under a heading; empty if none."""
    blocks = []
    for run in report["runs"]:
        lines = weak_phrasings(run, below)
        if lines:
            heading = f"held-out phrasings right under {100 * below:g}% of the time ({_label(run)}):"
            blocks.append("\n".join([heading, *("  " + line for line in lines)]))
    for run in report["runs"]:
        lines = missed_first_prompts(run)
        if lines:
            blocks.append("\n".join([f"first prompts answered wrong ({_label(run)}):", *("  " + line for line in lines)]))
    return "\n".join(blocks)


def missed_first_prompts(run: dict) -> list[str]:
    """One line per first prompt ``run`` (one sampling column) answered wrong: ``'prompt' -> 'reply'``."""
    return [f"{m['prompt']!r} -> {m['reply']!r}" for m in run.get("first_prompts", {}).get("missed", [])]


def format_report(report: dict) -> str:
    """What ``glasschat eval`` prints and the training log shows: the table, then the weak phrasings."""
    return "\n\n".join(filter(None, (format_table(report), format_weak_phrasings(report))))


def skill_chart(report: dict):
    """The eval table as bars: accuracy per skill and the stop rate, in percent, a bar per
    sampling column (what ``eval --plot`` draws and ``eval --chart`` writes)."""
    from glasschat.charts import Bars

    runs = report["runs"]
    skills = [skill for skill in SKILLS if skill in runs[0]["skills"]]
    values = {_label(r): [round(100 * r["skills"][s]["accuracy"], 1) for s in skills]
              + [round(100 * r["stop_rate"], 1)] for r in runs}
    return Bars(f"held-out accuracy, {report['per_skill']} prompts per skill", [*skills, "stop rate"], values,
                ylabel="% right", horizontal=True, value_max=100)


def format_table(report: dict) -> str:
    """The eval table: one row per skill, one column per temperature."""
    runs = report["runs"]
    header = f"{'':18s}{'n':>5s}" + "".join(f"{_label(r):>12s}" for r in runs)
    lines = [header]
    for skill in SKILLS:
        if skill not in runs[0]["skills"]:
            continue
        n = runs[0]["skills"][skill]["n"]
        cells = "".join(f"{100 * r['skills'][skill]['accuracy']:11.1f}%" for r in runs)
        lines.append(f"{skill:18s}{n:5d}{cells}")
    if all("readme_chat" in r for r in runs):
        lines.append(f"{'README chat':18s}{runs[0]['readme_chat']['n']:5d}"
                     + "".join(f"{r['readme_chat']['correct']:>9d}/{r['readme_chat']['n']:<2d}" for r in runs))
    if all("first_prompts" in r for r in runs):
        lines.append(f"{'first prompts':18s}{runs[0]['first_prompts']['n']:5d}"
                     + "".join(f"{r['first_prompts']['correct']:>9d}/{r['first_prompts']['n']:<2d}" for r in runs))
    prompts = runs[0]["prompts"]
    lines.append(f"{'stop rate':18s}{prompts:5d}" + "".join(f"{100 * r['stop_rate']:11.1f}%" for r in runs))
    lines.append(f"{'mean reply tokens':18s}{'':5s}" + "".join(f"{r['mean_reply_tokens']:12.1f}" for r in runs))
    lines.append(f"{'decode tokens/s':18s}{'':5s}" + "".join(f"{r['tokens_per_s']:12.0f}" for r in runs))
    return "\n".join(lines)
