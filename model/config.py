"""The GPT's config: its six size fields and the feature fields of nanochat's generations (see
``model.gpt`` for what each means), bounded when made.

A module of its own, without torch, so that what only reads or checks a config (the recipes
behind ``glasschat train``, the command line, ``glasschat tokenizer``) starts without importing
torch, which takes the better part of a second.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from glasschat.errors import UserError

ROTARY_BASE = 10000  # the late-2025 defaults
SOFTCAP = 15.0
SIZE_FIELDS = ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")


# The largest model shapes glasschat accepts: well above any model that runs on one machine
# (nanochat's d32 has 32 layers, a 2048 context and 65536 tokens; the largest open models have
# ~128 layers and 128k contexts), well below what would exhaust memory before a check fires.
CONFIG_LIMITS = {"sequence_len": 2**17, "vocab_size": 2**21, "n_layer": 256, "n_head": 1024, "n_kv_head": 1024,
                 "n_embd": 2**15, "vocab_pad_to": 2**16}
MAX_PARAMETERS = 2 * 10**11  # ~800 GB in fp32: a bound on the product of the fields above


@dataclass(frozen=True)
class GPTConfig:
    sequence_len: int = 1024
    vocab_size: int = 65536
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    # the generation's features (see the module docstring); the defaults are the late-2025 model
    vocab_pad_to: int = 1
    windows: tuple[int, ...] = ()
    lambdas: bool = False
    value_embed_layers: tuple[int, ...] = ()
    ve_gate_channels: int = 0
    ve_gate_scale: float = 0.0
    qk_scale: float = 1.0
    rotary_base: float = float(ROTARY_BASE)
    rotary_bf16: bool = True
    softcap: float = SOFTCAP
    smear_channels: int = 0
    backout_layer: int = -1

    def __post_init__(self) -> None:
        # bounded before anything is sized from them: a typo (n_layer 1000000, sequence_len
        # 10**12) must be an error, not minutes of allocating
        for name in SIZE_FIELDS + ("vocab_pad_to",):
            value, most = getattr(self, name), CONFIG_LIMITS[name]
            if type(value) is not int or not 1 <= value <= most:
                raise UserError(f"model config field {name!r} must be an integer from 1 to {most:,}, got {value!r}")
        if self.n_embd % self.n_head:
            raise UserError(f"model config: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise UserError(f"model config: n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}")
        if self.head_dim % 2:
            raise UserError(f"model config: head dimension n_embd/n_head={self.head_dim} must be even (rotary)")
        for name in ("windows", "value_embed_layers"):
            value = getattr(self, name)
            if isinstance(value, list):  # from JSON
                object.__setattr__(self, name, value := tuple(value))
            if not isinstance(value, tuple) or not all(type(v) is int for v in value):
                raise UserError(f"model config field {name!r} must be a list of integers, got {value!r}")
        if self.windows and (len(self.windows) != self.n_layer or min(self.windows) < 1):
            raise UserError(f"model config field 'windows' must hold one positive window per layer ({self.n_layer}), "
                            f"got {list(self.windows)}")
        if any(not 0 <= i < self.n_layer for i in self.value_embed_layers):
            raise UserError(f"model config field 'value_embed_layers' names layers outside 0..{self.n_layer - 1}")
        for name in ("lambdas", "rotary_bf16"):
            if type(getattr(self, name)) is not bool:
                raise UserError(f"model config field {name!r} must be true or false, got {getattr(self, name)!r}")
        for name in ("ve_gate_scale", "qk_scale", "rotary_base", "softcap"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0 or (name != "ve_gate_scale" and value == 0):
                raise UserError(f"model config field {name!r} must be a finite positive number, got {value!r}")
        for name, top in (("ve_gate_channels", self.n_embd), ("smear_channels", self.n_embd)):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= top:
                raise UserError(f"model config field {name!r} must be an integer in 0..{top}, got {value!r}")
        if self.value_embed_layers and not self.ve_gate_channels:
            raise UserError("model config: value_embed_layers need ve_gate_channels")
        if type(self.backout_layer) is not int or not -1 <= self.backout_layer < self.n_layer:
            raise UserError(f"model config field 'backout_layer' must be -1 or a layer, got {self.backout_layer!r}")
        if self.parameters > MAX_PARAMETERS:
            raise UserError(f"model config: {self.parameters:,} parameters, more than the {MAX_PARAMETERS:,} glasschat runs")

    @property
    def parameters(self) -> int:
        """How many weights a GPT of this config holds (embedding, value embeddings, blocks,
        lm_head; the gates and lambdas are too small to matter for the bound)."""
        c, kv, rows = self.n_embd, self.n_kv_head * self.head_dim, self.padded_vocab_size
        return (2 * rows * c + len(self.value_embed_layers) * rows * kv
                + self.n_layer * (2 * c * c + 2 * c * kv + 8 * c * c))

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and the lm_head."""
        return -(-self.vocab_size // self.vocab_pad_to) * self.vocab_pad_to

    def window(self, layer: int) -> int:
        """How many earlier positions ``layer`` attends to."""
        return self.windows[layer] if self.windows else self.sequence_len

    def to_dict(self) -> dict:
        data = asdict(self)
        return {name: list(v) if isinstance(v, tuple) else v for name, v in data.items()}

    @classmethod
    def from_dict(cls, data: object, source: str = "model config") -> GPTConfig:
        """Build from a dict such as ``config.json``'s ``model`` field; ``source`` names it in
        errors. The feature fields may be absent (a late-2025 checkpoint's config has none)."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: must be an object with fields {', '.join(SIZE_FIELDS)}")
        missing = [name for name in SIZE_FIELDS if name not in data]
        if missing:
            raise UserError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"{source}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except UserError as error:
            raise UserError(f"{source}: {error}") from None
