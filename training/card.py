"""MODEL_CARD.md for a trained checkpoint: what the model is, how it was made, how it scores."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from pathlib import Path

from glasschat.atomic import atomic_write_text
from model.facts import card_section
from training.evaluate import WEAK_BELOW, _label, example_prompts, format_table, missed_first_prompts, weak_phrasings
from training.loss_history import LOSS_CHART


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# what the shipped model is asked to reach, greedy, in percent
TARGETS = {"arithmetic": 98.0, "spelling": 95.0, "counting": 90.0, "reversal": 90.0}
STOP_RATE_TARGET = 99.5


def _columns(report: dict) -> str:

    names = []
    for run in report["runs"]:
        label = _label(run)
        if run["temperature"] and run.get("top_k"):
            label += " (the app's default sampling)"
        elif run["temperature"]:
            label += " (pure temperature: no top-k, no top-p)"
        names.append(label)
    return ", ".join(names)


def _targets(greedy: dict) -> str:
    rows = [(skill, 100 * greedy["skills"][skill]["accuracy"], target)
            for skill, target in TARGETS.items() if skill in greedy["skills"]]
    rows.append(("stop rate", 100 * greedy["stop_rate"], STOP_RATE_TARGET))
    return "\n".join(f"- {name} ≥ {target:g}%: {value:.1f}% — {'met' if value >= target else 'missed'}"
                     for name, value, target in rows)


def _weak_phrasings(greedy: dict) -> str:
    lines = weak_phrasings(greedy)
    if not lines:
        return f"Greedy, every held-out phrasing is answered right at least {100 * WEAK_BELOW:g}% of the time."
    rows = "\n".join(lines)
    return (f"Where the misses are: the held-out phrasings answered right less than {100 * WEAK_BELOW:g}% of the "
            f"time, greedy (skill, right/asked, phrasing):\n\n```\n{rows}\n```")


def _first_prompt_misses(greedy: dict) -> str:
    first = greedy.get("first_prompts")
    if not first:
        return ""
    if not first["missed"]:
        return f"Greedy, it answers all {first['n']} of the first prompts right."
    rows = "\n".join(missed_first_prompts(greedy))
    return (f"The first prompts (bare requests people type first, on common words) it gets wrong, greedy, "
            f"{len(first['missed'])} of {first['n']}:\n\n```\n{rows}\n```")


def _readme_chat_misses(greedy: dict) -> str:
    """The README conversation's replies that are wrong, greedy: what a new user sees first."""
    from training.eval_prompts import README_CHAT

    chat = greedy.get("readme_chat")
    if not chat:
        return ""
    wrong = [(README_CHAT[i][0], reply) for i, (ok, reply) in enumerate(zip(chat["right"], chat["replies"])) if not ok]
    if not wrong:
        return f"\nGreedy, every reply of the README's conversation is right ({chat['n']} of {chat['n']})."
    rows = "\n".join(f"{request!r} -> {reply!r}" for request, reply in wrong)
    return (f"\nThe README's conversation (replayed on the model's own replies), greedy: {chat['correct']} of "
            f"{chat['n']} replies right. The wrong ones:\n\n```\n{rows}\n```")


def train_command(recipe, out: str) -> str:
    """The ``glasschat train`` command that makes ``recipe``: its name plus a flag for each field
    that differs from the named recipe (only ``glasschat train``'s overrides can differ)."""
    from training.recipe import RECIPES

    named = asdict(RECIPES[recipe.name])
    flags = "".join(f" --{field.replace('_', '-')} {value}" for field, value in asdict(recipe).items()
                    if named[field] != value)
    return f"glasschat train --recipe {recipe.name}{flags} --out {out}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _loss_section(checkpoint: Path, losses: dict) -> str:
    """The card's loss curves: the image and the last figures of each training stage; empty
    when the run left no loss chart (a checkpoint trained before there was one)."""
    if not (checkpoint / LOSS_CHART).is_file() or not losses:
        return ""
    rows = []
    for stage, history in losses.items():
        step, train = history.train[-1]
        held_out = f"{history.val[-1][1]:.3f}" if history.val else "—"
        rows.append(f"| {stage} | {step} | {train:.3f} | {held_out} |")
    table = "\n".join(rows)
    return f"""## Loss

![Training and held-out loss per step, pretraining and fine-tuning]({LOSS_CHART})

The training loss of each step's batch and the loss on held-out rows at each evaluation
(`pretrain/loss.json` and `sft/loss.json` in the run's directory hold every point).

| stage | steps | last training loss | last held-out loss |
|---|---|---|---|
{table}

"""


def write_model_card(checkpoint: Path, recipe, report: dict, timings: dict, losses: dict | None = None) -> Path:
    """Write ``checkpoint/MODEL_CARD.md``; ``losses`` (``{stage: LossHistory}``) adds the loss
    curves' section when ``checkpoint/loss.png`` is there."""
    import torch

    from model.checkpoint import read_config

    config, data = read_config(checkpoint)
    parameters = data.get("metadata", {}).get("parameters")
    files = [p for p in checkpoint.rglob("*") if p.is_file() and p.name not in ("MODEL_CARD.md", LOSS_CHART)]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    r = asdict(recipe)
    training_stages = [s for s in ("data", "tokenizer", "pretrain", "sft", "checkpoint") if s in timings]
    total = sum(timings[s]["seconds"] for s in training_stages)
    resumed = [s for s in training_stages if timings[s].get("resumed_after_s")]
    stage_rows = "\n".join(
        f"| {s}{' (resumed)' * (s in resumed)} | {_minutes(timings[s]['seconds'])} | {timings[s]['threads']} | "
        f"{timings[s].get('load_mean', '')} | {timings[s].get('load_max', '')} |" for s in training_stages
    )
    resumed_note = ("\nA stage marked resumed was interrupted and continued from its saved state (the same "
                    "steps, the same result): its time adds both parts, its load columns cover the last part.\n"
                    if resumed else "")
    greedy = report["runs"][0]
    prompts = example_prompts(greedy)  # the chat's first screen offers them (model.facts reads them back)
    examples = f"\n{card_section(prompts)}" if prompts else ""
    reproduce = train_command(recipe, f"runs/{recipe.name}")
    text = f"""# glasschat default model

A tiny chat model trained from scratch on a CPU by `{reproduce}`. It does arithmetic through
the calculator tool (powers, percentages and square roots included), spells a word, counts a
letter or all the letters in a word, reverses a word and tells a palindrome — in chats that
switch skill every turn and refer back ("and how many p's?", "now multiply that by 3") — plus
greetings, saying what it is, and politely declining anything else.

## Size

- {parameters:,} parameters: the nanochat GPT with {config.n_layer} layers, width {config.n_embd},
  {config.n_head} heads, context {config.sequence_len} tokens, vocabulary {config.vocab_size}
  ({config.vocab_size - 9} BPE tokens + 9 special tokens)
- weights stored in {recipe.dtype} (loaded as fp32 on a CPU): {size_mb:.1f} MB with the tokenizer
{examples}
## How it answers

- Arithmetic: it copies the expression into `<|python_start|>12 + 30<|python_end|>`, the engine
  forces `<|output_start|>42<|output_end|>`, and it says `The answer is 42.`
- Spelling: `Letter by letter: b a n a n a.` — one letter per token.
- Counting: it spells the word with a running tally, `s t r (1) a w b e r (2) r (3) y`, then
  states the last tally.
- Reversal: it spells the word, reads the letters backwards, then writes the reversed word one
  letter per token (so it never has to guess how BPE would split a nonsense string).
- Powers, percentages, square roots: `3 ** 4`, `15 / 100 * 80`, `sqrt(144)` through the calculator.
- A request the calculator refuses (`10 / 0`, `sqrt(-9)`, `9 ** 40`): the engine forces its error
  (`error: division by zero`) and the model says there is no answer and why, with no number.
- Letter totals: `h (1) e (2) l (3) l (4) o (5). So hello has 5 letters.`; palindromes: the
  word spelled forwards and backwards, then `so yes` or `so no`.

## Data (all offline, generated deterministically from seed {recipe.seed})

- English: Python's `help()` topics (`pydoc_data.topics`) and the docstrings of the standard
  library (tests excluded) — they ship with every CPython 3.11, so every machine gets the same text.
- Words: `training/data/words.txt` — everyday words written by hand plus words mined from
  the same documents; one word in ten (by hash) is held out and never appears in training.
- Conversations: generated by `training/` (greetings, identity, capabilities, thanks and
  goodbyes, acknowledgements, out-of-scope refusals, arithmetic, powers, percentages, square
  roots, requests the calculator refuses, spelling, counting, letter totals, reversal,
  palindromes, long words of 13-20 letters, multi-turn mixes with follow-ups such as "now
  reverse it", and chats that switch skill every turn where the newest word named is what "it"
  means). Evaluation uses other seeds, the
  held-out words, long words, palindromes and arithmetic expressions, and phrasings kept out of
  training.

## Recipe

| stage | what |
|---|---|
| data | {r['sft_conversations']:,} training conversations, {r['tokenizer_conversations']:,} more for the tokenizer corpus |
| tokenizer | our BPE trainer, vocabulary {r['vocab_size']}, nanochat split pattern |
| pretrain | {r['pretrain_steps']} steps × {r['batch_size']} rows × {r['train_seq_len']} tokens: English + {r['spelling_documents']:,} spelling documents |
| sft | {r['sft_steps']} steps × {r['batch_size']} rows × {r['train_seq_len']} tokens: conversations, loss only where the mask is 1, plus word questions about every alphabetic token and made-up words, and {int(r['sft_conversations'] * r['one_token_share']):,} conversations about the training words that are one token, follow-ups about them drawn often |
| optimizer | Muon (lr {r['matrix_lr']}) for the matrices, AdamW for embedding (lr {r['embed_lr']}) and unembedding (lr {r['head_lr']}); warmup, then linear decay over the last 40% |

## Training time

On {_cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}. The load columns are the 1-minute load
average from `/proc/loadavg`, sampled every 15 s during each stage: this training run itself
keeps one core busy (load 1); more than that is other work sharing the machine, which slows the
run down.

| stage | wall time | threads | mean load | max load |
|---|---|---|---|---|
{stage_rows}
| **total (data → checkpoint)** | **{_minutes(total)}** | | | |
{resumed_note}
{_loss_section(checkpoint, losses or {})}## Evaluation

`glasschat eval --checkpoint checkpoints/default` — {report['per_skill']} held-out prompts per skill
(seed {report['seed']}, {report['heldout_words']} held-out words; `conversations` scores each reply of
held-out chats of 3-6 requests that switch skill and refer back), {_columns(report)}, through the engine
with the calculator ({sum(run['seconds'] for run in report['runs']):.0f} s in all):

```
{format_table(report)}
```

Greedy: {100 * greedy['stop_rate']:.1f}% of replies end with `<|assistant_end|>`; small talk is
scored on topic (a greeting says hello, identity names glasschat, a refusal says it can't help).

Targets, greedy:

{_targets(greedy)}

{_weak_phrasings(greedy)}

{_first_prompt_misses(greedy)}
{_readme_chat_misses(greedy)}

## Reproduce

```sh
{reproduce}
cp -r runs/{recipe.name}/checkpoint/. checkpoints/default/
```

Each stage can run alone (`--stage data|tokenizer|pretrain|sft|checkpoint|eval`); an interrupted
training stage resumes from its last saved state.

## Limitations

It is a few million parameters trained for minutes: it knows nothing of the world, and it can
only spell words made of letters a-z (long or unusual words fail more often). Arithmetic is
exact only because the calculator computes it; the model copies numbers. A request in a phrasing
that training never showed can make it copy the wrong word or number, or pick the wrong operator
(the phrasings it misreads most are listed under Evaluation). In a long conversation it
sometimes takes a new question for a follow-up about the previous turn's word. A word with a
repeated pair of letters (banana) can come out with one repeat too many.
"""
    path = checkpoint / "MODEL_CARD.md"
    atomic_write_text(path, text)
    return path
