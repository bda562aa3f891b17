"""The recipes behind ``glasschat train``: named settings and the stages that run them.

Stages, in order, each reading what the earlier ones wrote under ``OUT``:

``data``        English documents and skill conversations          -> data/*.jsonl
``tokenizer``   our BPE trainer on English + skill text              -> tokenizer/
``pretrain``    next-token loss on English + spelling documents      -> pretrain/train_state.pt
``sft``         loss only where the rendered mask is 1               -> sft/train_state.pt
``checkpoint``  the fine-tuned weights in 16 bits + the tokenizer    -> checkpoint/
``eval``        held-out prompts through the engine; MODEL_CARD.md   -> eval.json, checkpoint/MODEL_CARD.md

A finished stage is skipped when the whole recipe runs again; an interrupted training stage
resumes from its last saved state. Every random choice comes from the recipe's seed, so the
same recipe on the same machine and thread count produces the same model.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError

STAGES = ("data", "tokenizer", "pretrain", "sft", "checkpoint", "eval")


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: int = 0
    # data
    sft_conversations: int = 110_000
    val_conversations: int = 1_000
    tokenizer_conversations: int = 20_000  # skill conversations whose text joins the tokenizer corpus
    spelling_documents: int = 4_000  # pretraining documents of spelled words (16 lines each)
    coverage_share: float = 0.3  # share of word questions asked about alphabetic tokens and made-up words
    # tokenizer
    vocab_size: int = 1024
    # model
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_kv_head: int = 4
    sequence_len: int = 512  # the longest context the model supports
    # training
    train_seq_len: int = 512  # rows of packed conversations / text: as long as the model's context
    batch_size: int = 16
    pretrain_steps: int = 150
    sft_steps: int = 900
    matrix_lr: float = 0.02
    embed_lr: float = 0.05
    head_lr: float = 0.004
    # shipping and evaluation
    dtype: str = "float16"
    eval_per_skill: int = 200
    eval_temperature: float = 0.7

    def overridden(self, **changes) -> Recipe:
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes)


RECIPES: dict[str, Recipe] = {
    "default": Recipe("default"),
    # a few seconds per stage: for tests and for trying the pipeline
    "tiny": Recipe(
        "tiny", sft_conversations=400, val_conversations=40, tokenizer_conversations=200, spelling_documents=20,
        vocab_size=300, n_layer=1, n_embd=64, n_head=1, n_kv_head=1, sequence_len=256, train_seq_len=128,
        batch_size=4, pretrain_steps=6, sft_steps=6, eval_per_skill=2,
    ),
}


# ---- bookkeeping


@dataclass
class Run:
    """One ``glasschat train`` invocation: the recipe, the output directory and the settings of
    this machine (device, thread count), plus a log function."""

    recipe: Recipe
    out: Path
    device: str = "cpu"
    threads: int = 1
    log: Callable[[str], None] = print

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    # timings.json: per stage, wall time and machine load, so the card can say how long it took
    def timings(self) -> dict:
        path = self.path("timings.json")
        return json.loads(path.read_text()) if path.is_file() else {}

    def record(self, stage: str, seconds: float, load_before: str, **more) -> None:
        timings = self.timings()
        timings[stage] = {"seconds": round(seconds, 1), "threads": self.threads, "device": self.device,
                          "loadavg_before": load_before, "loadavg_after": loadavg(), **more}
        atomic_write_text(self.path("timings.json"), json.dumps(timings, indent=2) + "\n")

    def done(self, stage: str) -> bool:
        return stage in self.timings()


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds while a stage runs, so the
    timings say how busy the machine was during the stage, not only at its ends."""

    def __init__(self, every: float = 15.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            value = loadavg().split(" ")[0]
            if value != "unknown":
                self.samples.append(float(value))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        return {"load_mean": round(sum(self.samples) / len(self.samples), 2), "load_max": max(self.samples)}


def _write_jsonl(path: Path, records) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: missing — run the earlier stages first (glasschat train --stage data ...)")
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise UserError(f"{path}: line {line_no}: not valid JSON: {error}") from None
    return records


def conversation_text(conversation: dict) -> str:
    """The visible text of a conversation, for the tokenizer corpus."""
    texts = []
    for message in conversation["messages"]:
        content = message["content"]
        texts.extend([content] if isinstance(content, str) else [p["text"] for p in content])
    return "\n".join(texts)


# ---- stages


def stage_data(run: Run) -> None:
    from model.training.conversations import ConversationSource
    from model.training.sources import english_documents
    from model.training.words import split_words

    r = run.recipe
    data = run.path("data")
    n_docs = _write_jsonl(data / "english.jsonl", ({"text": d} for d in english_documents()))
    train_words, _ = split_words()
    source = ConversationSource("train", train_words)
    n_train = _write_jsonl(data / "sft_train.jsonl", source.conversations(r.sft_conversations, seed=r.seed * 10 + 1))
    _write_jsonl(data / "sft_val.jsonl", source.conversations(r.val_conversations, seed=r.seed * 10 + 2))
    skill_texts = source.conversations(r.tokenizer_conversations, seed=r.seed * 10 + 3)
    _write_jsonl(data / "skill_text.jsonl", ({"text": conversation_text(c)} for c in skill_texts))
    run.log(f"data: {n_docs} English documents, {n_train} training conversations, {len(train_words)} training words")


def stage_tokenizer(run: Run) -> None:
    from tokenizer.trainer import train_tokenizer

    data = run.path("data")
    inputs = [data / "english.jsonl", data / "skill_text.jsonl"]
    for path in inputs:
        if not path.is_file():
            raise UserError(f"{path}: missing — run the data stage first")
    result = train_tokenizer(inputs, run.recipe.vocab_size, run.path("tokenizer"), workers=max(1, run.threads),
                             progress=False)
    run.log(f"tokenizer: {result.vocab_size} tokens ({result.num_merges} merges) in "
            f"{result.seconds_counting + result.seconds_merging:.1f}s")


def load_tokenizer(run: Run):
    from tokenizer import Tokenizer

    directory = run.path("tokenizer")
    if not directory.is_dir():
        raise UserError(f"{directory}: missing — run the tokenizer stage first")
    return Tokenizer.load(directory)


def alphabetic_tokens(tokenizer) -> list[str]:
    """Every token that is letters only (with or without a leading space), as a pseudo-word."""
    words = set()
    for token_id in range(tokenizer.vocab_size):
        if tokenizer.is_special(token_id):
            continue
        raw = tokenizer.decode_single_token_bytes(token_id)
        if re.fullmatch(rb" ?[A-Za-z]+", raw):
            words.add(raw.decode("ascii").strip())
    return sorted(words)


def word_pools(tokenizer) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """``(train words, held-out words, alphabetic tokens)`` for this tokenizer; alphabetic tokens
    that spell a held-out word are left out (none do: such a word is a single token, so trains)."""
    from model.training.words import single_token_rule, split_words

    train, heldout = split_words(single_token_rule(tokenizer))
    held = set(heldout)
    coverage = [w for w in alphabetic_tokens(tokenizer) if w.lower() not in held]
    return train, heldout, coverage


def pseudo_words(pieces: list[str], n: int, seed: int, exclude: set[str]) -> list[str]:
    """``n`` made-up words glued from alphabetic tokens (``ban`` + ``ory``), a third of them with
    a doubled letter where two pieces meet, and some strings of random letters: practice in
    spelling any sequence of tokens, not only the words of the list. None is in ``exclude``."""
    rng = random.Random(seed)
    pieces = sorted({p.lower() for p in pieces})
    by_first: dict[str, list[str]] = {}
    for piece in pieces:
        by_first.setdefault(piece[0], []).append(piece)
    words: set[str] = set()
    while len(words) < n:
        if rng.random() < 0.15:
            word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
        else:
            word = rng.choice(pieces)
            for _ in range(rng.randint(1, 2)):
                follow = by_first.get(word[-1]) if rng.random() < 0.35 else None
                word += rng.choice(follow or pieces)
        if 3 <= len(word) <= 12 and word not in exclude:
            words.add(word)
    return sorted(words)


def practice_words(tokenizer, seed: int, n_pseudo: int = 3000) -> list[str]:
    """Every alphabetic token plus made-up words: what the word skills practise on besides real words."""
    _, heldout, coverage = word_pools(tokenizer)
    return coverage + pseudo_words(coverage, n_pseudo, seed, exclude=set(heldout))


def new_model(run: Run, vocab_size: int):
    import torch

    from model.gpt import GPT, GPTConfig

    r = run.recipe
    config = GPTConfig(sequence_len=r.sequence_len, vocab_size=vocab_size, n_layer=r.n_layer,
                       n_head=r.n_head, n_kv_head=r.n_kv_head, n_embd=r.n_embd)
    torch.manual_seed(r.seed)
    return GPT(config).init_weights(seed=r.seed).to(run.device)


def _loop_config(run: Run, steps: int):
    from model.training.loop import LoopConfig

    r = run.recipe
    every = max(1, steps // 10)
    return LoopConfig(steps=steps, matrix_lr=r.matrix_lr, embed_lr=r.embed_lr, head_lr=r.head_lr,
                      warmup_steps=max(1, min(20, steps // 10)), log_every=max(1, min(10, steps // 20)),
                      eval_every=every, save_every=every)


def stage_pretrain(run: Run) -> float:
    from model.training.batches import Batches, Rows, pack_text
    from model.training.loop import train
    from model.training.pretrain_text import spelling_documents

    r = run.recipe
    tok = load_tokenizer(run)
    english = [d["text"] for d in read_jsonl(run.path("data", "english.jsonl"))]
    train_words, _, _ = word_pools(tok)
    practice = practice_words(tok, seed=r.seed * 10 + 3)
    spelled = list(spelling_documents(list(train_words) + practice, r.spelling_documents, seed=r.seed * 10 + 4))
    documents = english + spelled
    random.Random(r.seed * 10 + 5).shuffle(documents)
    rows = pack_text(tok.encode_batch(documents), r.train_seq_len, tok.bos_id)
    n_val = max(r.batch_size, len(rows) // 50)  # the last rows are held back for the validation loss
    val = Rows(rows.ids[-n_val:], rows.mask[-n_val:])
    rows = Rows(rows.ids[:-n_val], rows.mask[:-n_val])
    run.log(f"pretrain: {len(rows)} rows of {r.train_seq_len} tokens ({len(english)} English, "
            f"{len(spelled)} spelling documents); {r.pretrain_steps} steps of {r.batch_size} rows")
    model = new_model(run, tok.vocab_size)
    result = train(model, Batches(rows, r.batch_size, seed=r.seed * 10 + 6), _loop_config(run, r.pretrain_steps),
                   run.path("pretrain"), val_batches=Batches(val, r.batch_size, seed=0), name="pretrain", log=run.log)
    run.log(f"pretrain: loss {result.train_loss:.3f}, val loss {result.val_loss:.3f}")
    return result.earlier_seconds


def _weights_from(run: Run, stage: str, model) -> None:
    import torch

    from model.training.loop import STATE_FILE

    path = run.path(stage, STATE_FILE)
    if not path.is_file():
        raise UserError(f"{path}: missing — run the {stage} stage first")
    model.load_state_dict(torch.load(path, map_location=run.device, weights_only=True)["model"])


def sft_conversations(run: Run, tok) -> list[dict]:
    """The fine-tuning set: the data stage's conversations plus word questions about every
    alphabetic token of the tokenizer (so no token's letters are left unlearned) and about
    made-up words, shuffled."""
    from model.training.conversations import ConversationSource

    r = run.recipe
    conversations = read_jsonl(run.path("data", "sft_train.jsonl"))
    n_practice = int(len(conversations) * r.coverage_share * 0.5)
    words_only = {"spell": 1.0, "count": 1.0, "reverse": 1.0, "multi_turn": 0.3}
    practice = practice_words(tok, seed=r.seed * 10 + 3)
    extra = ConversationSource("train", practice, mixture=words_only).conversations(n_practice, seed=r.seed * 10 + 7)
    conversations = conversations + extra
    random.Random(r.seed * 10 + 8).shuffle(conversations)
    return conversations


def stage_sft(run: Run) -> float:
    from model.training.batches import Batches, pack_conversations
    from model.training.loop import train

    r = run.recipe
    tok = load_tokenizer(run)
    conversations = sft_conversations(run, tok)
    rows = pack_conversations((tok.render_conversation(c) for c in conversations), r.train_seq_len, tok.bos_id)
    val_rows = pack_conversations((tok.render_conversation(c) for c in read_jsonl(run.path("data", "sft_val.jsonl"))),
                                  r.train_seq_len, tok.bos_id)
    run.log(f"sft: {len(conversations)} conversations in {len(rows)} rows, {rows.counted_tokens()} tokens with loss; "
            f"{r.sft_steps} steps of {r.batch_size} rows")
    model = new_model(run, tok.vocab_size)
    _weights_from(run, "pretrain", model)
    result = train(model, Batches(rows, r.batch_size, seed=r.seed * 10 + 9), _loop_config(run, r.sft_steps),
                   run.path("sft"), val_batches=Batches(val_rows, min(r.batch_size, len(val_rows)), seed=0),
                   name="sft", log=run.log)
    run.log(f"sft: loss {result.train_loss:.3f}, val loss {result.val_loss:.3f}")
    return result.earlier_seconds


def stage_checkpoint(run: Run) -> None:
    import torch

    from model import save_checkpoint

    r = run.recipe
    tok = load_tokenizer(run)
    model = new_model(run, tok.vocab_size)
    _weights_from(run, "sft", model)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[r.dtype]
    metadata = {"recipe": asdict(r), "parameters": model.num_parameters()}
    save_checkpoint(run.path("checkpoint"), model, tok, metadata, dtype=dtype)
    size = sum(p.stat().st_size for p in run.path("checkpoint").rglob("*") if p.is_file())
    run.log(f"checkpoint: {model.num_parameters():,} parameters in {r.dtype}, {size / 1e6:.1f} MB "
            f"in {run.path('checkpoint')}")


def stage_eval(run: Run) -> None:
    from model.training.card import write_model_card
    from model.training.evaluate import evaluate_checkpoint, format_report

    r = run.recipe
    report = evaluate_checkpoint(run.path("checkpoint"), per_skill=r.eval_per_skill,
                                 temperatures=(0.0, r.eval_temperature), seed=r.seed + 1234, log=run.log)
    atomic_write_text(run.path("eval.json"), json.dumps(report, indent=2) + "\n")
    run.log(format_report(report))
    write_model_card(run.path("checkpoint"), r, report, run.timings())


STAGE_FUNCTIONS = {
    "data": stage_data, "tokenizer": stage_tokenizer, "pretrain": stage_pretrain, "sft": stage_sft,
    "checkpoint": stage_checkpoint, "eval": stage_eval,
}


def run_stages(run: Run, stages: list[str], force: bool = False) -> None:
    """Run ``stages`` in order; a stage finished earlier is skipped unless ``force``."""
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.path("recipe.json"), json.dumps(asdict(run.recipe), indent=2) + "\n")
    for stage in stages:
        if run.done(stage) and not force:
            run.log(f"{stage}: already done in {run.out} (see timings.json); skipping")
            continue
        before, started = loadavg(), time.perf_counter()
        run.log(f"== {stage} (load average {before}, {run.threads} thread{'s' * (run.threads > 1)}, {run.device})")
        with LoadSampler() as load:
            earlier = STAGE_FUNCTIONS[stage](run) or 0.0  # training stages: time before a resume
        resumed = {"resumed_after_s": round(earlier, 1)} if earlier else {}
        run.record(stage, time.perf_counter() - started + earlier, before, **load.summary(), **resumed)
