"""The stages of ``glasschat train``, run in order, each reading what the earlier ones wrote
under ``OUT``:

``data``        English documents and skill conversations          -> data/*.jsonl
``tokenizer``   our BPE trainer on English + skill text              -> tokenizer/
``pretrain``    next-token loss on English + spelling documents      -> pretrain/train_state.pt
``sft``         loss only where the rendered mask is 1               -> sft/train_state.pt
``checkpoint``  the fine-tuned weights in 16 bits + the tokenizer,   -> checkpoint/
                the loss curves of pretrain and sft                  -> checkpoint/loss.png
``eval``        held-out prompts through the engine; MODEL_CARD.md   -> eval.json, checkpoint/MODEL_CARD.md

A finished stage is skipped when the whole recipe runs again; an interrupted training stage
resumes from its last saved state. Every random choice comes from the recipe's seed (one named
draw each, below), so the same recipe on the same machine and thread count produces the same model.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError
from training.jsonl import read_jsonl, write_jsonl
from training.run import LoadSampler, Run, loadavg
from training.word_pools import one_token_words, practice_words, word_pools

STAGES = ("data", "tokenizer", "pretrain", "sft", "checkpoint", "eval")

# Each random draw of a run is seeded with ``recipe.seed * 10 + offset`` (``draw_seed``). The
# offsets are the ones the bundled model was trained with: changing one changes its data, so the
# model card's reproduce command would no longer make that model.
SFT_TRAIN_DRAW = 1  # the data stage's training conversations
SFT_VAL_DRAW = 2  # the data stage's validation conversations
TOKENIZER_TEXT_DRAW = 3  # the skill conversations whose text joins the tokenizer corpus
# The made-up practice words (pretraining's spelled documents and sft's extra word questions use
# the same set) share offset 3 with the tokenizer text: an unrelated draw from its own
# ``random.Random``, so the two do not correlate; kept so the bundled model's data reproduces.
PRACTICE_WORDS_DRAW = TOKENIZER_TEXT_DRAW
SPELLING_DOCUMENTS_DRAW = 4  # which words the pretraining spelling documents spell
PRETRAIN_SHUFFLE_DRAW = 5  # the order of English and spelling documents before packing
PRETRAIN_BATCHES_DRAW = 6  # the order of pretraining rows
PRACTICE_CONVERSATIONS_DRAW = 7  # sft's extra word questions about practice words
SFT_SHUFFLE_DRAW = 8  # the order of sft conversations before packing
SFT_BATCHES_DRAW = 9  # the order of sft rows
ONE_TOKEN_CONVERSATIONS_DRAW = 0  # sft's extra conversations about one-token training words
EVAL_SEED_OFFSET = 1234  # the eval stage's prompts and sampling: ``recipe.seed + 1234`` (not times 10)


def draw_seed(recipe, draw: int) -> int:
    return recipe.seed * 10 + draw

def conversation_text(conversation: dict) -> str:
    """The visible text of a conversation, for the tokenizer corpus."""
    texts = []
    for message in conversation["messages"]:
        content = message["content"]
        texts.extend([content] if isinstance(content, str) else [p["text"] for p in content])
    return "\n".join(texts)


# ---- stages


def stage_data(run: Run) -> None:
    from training.conversations import ConversationSource
    from training.sources import english_documents
    from training.words import split_words

    r = run.recipe
    data = run.path("data")
    n_docs = write_jsonl(data / "english.jsonl", ({"text": d} for d in english_documents()))
    train_words, _ = split_words()
    source = ConversationSource("train", train_words)
    train_conversations = source.conversations(r.sft_conversations, seed=draw_seed(r, SFT_TRAIN_DRAW))
    n_train = write_jsonl(data / "sft_train.jsonl", train_conversations)
    write_jsonl(data / "sft_val.jsonl", source.conversations(r.val_conversations, seed=draw_seed(r, SFT_VAL_DRAW)))
    skill_texts = source.conversations(r.tokenizer_conversations, seed=draw_seed(r, TOKENIZER_TEXT_DRAW))
    write_jsonl(data / "skill_text.jsonl", ({"text": conversation_text(c)} for c in skill_texts))
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


def new_model(run: Run, vocab_size: int):
    import torch

    from model.gpt import GPT, GPTConfig

    r = run.recipe
    config = GPTConfig(sequence_len=r.sequence_len, vocab_size=vocab_size, n_layer=r.n_layer,
                       n_head=r.n_head, n_kv_head=r.n_kv_head, n_embd=r.n_embd)
    torch.manual_seed(r.seed)
    return GPT(config).init_weights(seed=r.seed).to(run.device)


def _loop_config(run: Run, steps: int):
    from training.loop import LoopConfig

    r = run.recipe
    every = max(1, steps // 10)
    return LoopConfig(steps=steps, matrix_lr=r.matrix_lr, embed_lr=r.embed_lr, head_lr=r.head_lr,
                      warmup_steps=max(1, min(20, steps // 10)), log_every=max(1, min(10, steps // 20)),
                      eval_every=every, save_every=every)


def stage_pretrain(run: Run) -> float:
    from training.batches import Batches, Rows, pack_text
    from training.live_chart import loss_display
    from training.loop import train
    from training.pretrain_text import spelling_documents

    r = run.recipe
    tok = load_tokenizer(run)
    english = [d["text"] for d in read_jsonl(run.path("data", "english.jsonl"))]
    train_words, _, _ = word_pools(tok)
    practice = practice_words(tok, seed=draw_seed(r, PRACTICE_WORDS_DRAW))
    spelled = list(spelling_documents(list(train_words) + practice, r.spelling_documents,
                                      seed=draw_seed(r, SPELLING_DOCUMENTS_DRAW)))
    documents = english + spelled
    random.Random(draw_seed(r, PRETRAIN_SHUFFLE_DRAW)).shuffle(documents)
    rows = pack_text(tok.encode_batch(documents), r.train_seq_len, tok.bos_id)
    n_val = max(r.batch_size, len(rows) // 50)  # the last rows are held back for the validation loss
    val = Rows(rows.ids[-n_val:], rows.mask[-n_val:])
    rows = Rows(rows.ids[:-n_val], rows.mask[:-n_val])
    run.log(f"pretrain: {len(rows)} rows of {r.train_seq_len} tokens ({len(english)} English, "
            f"{len(spelled)} spelling documents); {r.pretrain_steps} steps of {r.batch_size} rows")
    model = new_model(run, tok.vocab_size)
    batches = Batches(rows, r.batch_size, seed=draw_seed(r, PRETRAIN_BATCHES_DRAW))
    with loss_display("pretrain", run.log, run.live) as (log, on_history):
        result = train(model, batches, _loop_config(run, r.pretrain_steps), run.path("pretrain"),
                       val_batches=Batches(val, r.batch_size, seed=0), name="pretrain", log=log,
                       on_history=on_history)
    run.log(f"pretrain: loss {result.train_loss:.3f}, val loss {result.val_loss:.3f}")
    return result.earlier_seconds


def _weights_from(run: Run, stage: str, model) -> None:
    import torch

    from training.loop import STATE_FILE

    path = run.path(stage, STATE_FILE)
    if not path.is_file():
        raise UserError(f"{path}: missing — run the {stage} stage first")
    model.load_state_dict(torch.load(path, map_location=run.device, weights_only=True)["model"])


def sft_conversations(run: Run, tok) -> list[dict]:
    """The fine-tuning set: the data stage's conversations plus word questions about every
    alphabetic token of the tokenizer (so no token's letters are left unlearned) and about
    made-up words, plus conversations about the training words that are one token, shuffled."""
    from training.conversations import ConversationSource

    r = run.recipe
    conversations = read_jsonl(run.path("data", "sft_train.jsonl"))
    n_practice = int(len(conversations) * r.coverage_share * 0.5)
    words_only = {"spell": 1.0, "count": 1.0, "reverse": 1.0, "multi_turn": 0.3, "letters": 0.4, "chat": 0.5}
    practice = practice_words(tok, seed=draw_seed(r, PRACTICE_WORDS_DRAW))
    source = ConversationSource("train", practice, mixture=words_only)
    extra = source.conversations(n_practice, seed=draw_seed(r, PRACTICE_CONVERSATIONS_DRAW))
    # A one-token word is one of thousands of practice words, and a model recalls its letters in
    # some contexts only: the bare "spell banana" is the hardest (docs/default-model-experiments.md).
    # Practice on them alone teaches the model to spell any one-token word of the newest message,
    # and "it", "that" and "word" are one-token words too ("how do you spell that word?" came out
    # t h a t). So follow-ups are drawn three to five times as often here: "spell it" in the place
    # of "spell banana", answered with banana, is what keeps a pronoun a reference.
    one_token = one_token_words(tok)
    n_one_token = int(len(conversations) * r.one_token_share)
    if one_token and n_one_token:
        follow_up_heavy = {**words_only, "multi_turn": 1.5, "chat": 1.5}
        source = ConversationSource("train", one_token, mixture=follow_up_heavy)
        extra += source.conversations(n_one_token, seed=draw_seed(r, ONE_TOKEN_CONVERSATIONS_DRAW))
    conversations = conversations + extra
    random.Random(draw_seed(r, SFT_SHUFFLE_DRAW)).shuffle(conversations)
    return conversations


def stage_sft(run: Run) -> float:
    from training.batches import Batches, pack_conversations
    from training.live_chart import loss_display
    from training.loop import train

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
    batches = Batches(rows, r.batch_size, seed=draw_seed(r, SFT_BATCHES_DRAW))
    with loss_display("sft", run.log, run.live) as (log, on_history):
        result = train(model, batches, _loop_config(run, r.sft_steps), run.path("sft"),
                       val_batches=Batches(val_rows, min(r.batch_size, len(val_rows)), seed=0), name="sft", log=log,
                       on_history=on_history)
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
    if chart := write_loss_chart(run):
        run.log(f"checkpoint: loss curves in {chart}")


TRAINING_STAGES = ("pretrain", "sft")


def stage_losses(run: Run) -> dict:
    """``{stage: LossHistory}`` of the training stages that wrote a ``loss.json``."""
    from training.loss_history import read_loss_file

    losses = {stage: read_loss_file(run.path(stage)) for stage in TRAINING_STAGES}
    return {stage: history for stage, history in losses.items() if history and history.train}


def write_loss_chart(run: Run):
    """``checkpoint/loss.png``: a panel per training stage, train and held-out loss per step
    (the model card shows it); ``None`` when no stage left a loss history."""
    from glasschat.image_chart import write_png
    from training.loss_history import LOSS_CHART, loss_chart

    losses = stage_losses(run)
    path = run.path("checkpoint", LOSS_CHART)
    if not losses:
        path.unlink(missing_ok=True)  # a chart left from an earlier run would show other curves
        return None
    write_png(path, [loss_chart(stage, history) for stage, history in losses.items()])
    return path


def stage_eval(run: Run) -> None:
    from training.card import write_model_card
    from training.evaluate import GREEDY, Sampling, app_default, evaluate_checkpoint, format_report

    r = run.recipe
    # greedy and the app's default sampling are the targets; pure temperature compares with earlier cards
    samplings = (GREEDY, app_default(), Sampling(r.eval_temperature))
    report = evaluate_checkpoint(run.path("checkpoint"), per_skill=r.eval_per_skill, samplings=samplings,
                                 seed=r.seed + EVAL_SEED_OFFSET, log=run.log)
    atomic_write_text(run.path("eval.json"), json.dumps(report, indent=2) + "\n")
    run.log(format_report(report))
    write_model_card(run.path("checkpoint"), r, report, run.timings(), losses=stage_losses(run))


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
