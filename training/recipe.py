"""The recipes behind ``glasschat train``: named settings for data, tokenizer, model, training
and evaluation. ``training.stages`` runs them; a recipe's fields are the only knobs a run has
besides the machine's (device, threads)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from glasschat.errors import UserError

# bounds on the recipe's counts (the model's shape is bounded by GPTConfig): generous for a
# long run, small enough that a typo is an error rather than hours of generating data
RECIPE_LIMITS = (
    ("seed", -(2**63), 2**63 - 1), ("sft_conversations", 1, 10**8), ("val_conversations", 1, 10**7),
    ("tokenizer_conversations", 0, 10**8), ("spelling_documents", 0, 10**8), ("train_seq_len", 2, 2**17),
    ("batch_size", 1, 2**14), ("pretrain_steps", 1, 10**8), ("sft_steps", 1, 10**8), ("eval_per_skill", 1, 10**6),
)


@dataclass(frozen=True)
class Recipe:
    """The fields' defaults are the ``default`` recipe (issue 17's model: see
    docs/default-model-experiments.md for why this shape and these steps)."""

    name: str
    seed: int = 0
    # data
    sft_conversations: int = 120_000
    val_conversations: int = 1_000
    tokenizer_conversations: int = 20_000  # skill conversations whose text joins the tokenizer corpus
    spelling_documents: int = 4_000  # pretraining documents of spelled words (16 lines each)
    coverage_share: float = 0.3  # share of word questions asked about alphabetic tokens and made-up words
    # extra conversations (a share of sft_conversations) about the training words that are one
    # token (" banana"), follow-ups about them drawn often: see ``stages.sft_conversations``
    one_token_share: float = 0.06
    # tokenizer
    vocab_size: int = 1024
    # model: 6 layers (the first model had 4) and a 1024-token context, so that the app, which
    # keeps half the context for the reply, shows the model some 768 tokens of the chat, not 256
    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 4
    n_kv_head: int = 4
    sequence_len: int = 1024  # the longest context the model supports
    # training: 8 rows of 1024 tokens, the first model's 8,192 tokens a step; steps sized to the
    # 120-minute budget from timed steps (``glasschat bench train``)
    train_seq_len: int = 1024  # rows of packed conversations / text: as long as the model's context
    batch_size: int = 8
    pretrain_steps: int = 200
    sft_steps: int = 1000
    matrix_lr: float = 0.02
    embed_lr: float = 0.05
    head_lr: float = 0.004
    # shipping and evaluation
    dtype: str = "float16"
    eval_per_skill: int = 200
    eval_temperature: float = 0.7

    def __post_init__(self) -> None:
        # checked when the recipe is made (command-line overrides included), before any stage
        # generates data or sizes a model from it
        from model.config import GPTConfig

        try:
            GPTConfig(sequence_len=self.sequence_len, vocab_size=self.vocab_size, n_layer=self.n_layer,
                      n_head=self.n_head, n_kv_head=self.n_kv_head, n_embd=self.n_embd)
        except UserError as error:
            raise UserError(f"recipe {self.name}: {error}") from None
        for name, least, most in RECIPE_LIMITS:
            value = getattr(self, name)
            if type(value) is not int or not least <= value <= most:
                raise UserError(f"recipe {self.name}: {name} must be an integer from {least:,} to {most:,}, got {value!r}")
        if self.train_seq_len > self.sequence_len:
            raise UserError(f"recipe {self.name}: train_seq_len {self.train_seq_len} exceeds sequence_len {self.sequence_len}")

    def overridden(self, **changes) -> Recipe:
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes)


RECIPES: dict[str, Recipe] = {
    "default": Recipe("default"),
    # under 20 minutes on one core: the first model's 4-layer shape on fewer steps and less data,
    # for people who want to train a model of their own
    "quick": Recipe(
        "quick", sft_conversations=30_000, val_conversations=300, tokenizer_conversations=8_000, spelling_documents=1_500,
        n_layer=4, sequence_len=512, train_seq_len=512, batch_size=8, pretrain_steps=60, sft_steps=400,
        eval_per_skill=50,
    ),
    # a few seconds per stage: for tests and for trying the pipeline
    "tiny": Recipe(
        "tiny", sft_conversations=400, val_conversations=40, tokenizer_conversations=200, spelling_documents=20,
        vocab_size=300, n_layer=1, n_embd=64, n_head=1, n_kv_head=1, sequence_len=256, train_seq_len=128,
        batch_size=4, pretrain_steps=6, sft_steps=6, eval_per_skill=2,
    ),
}
