"""The engine benchmark's row for today's nanochat: our engine against nanochat's own ``Engine``.

nanochat's package at 92d63d4 (``../shared/reference/nanochat/92d63d4``, beside the source
tree; ``--reference`` points elsewhere) builds a d12 model of that generation — vocabulary
32768, window pattern SSSL, sequence 2048, value embeddings, lambdas, smear, backout — with
every tensor and scalar random. Our model is made from its state dict by the importer's own
detection (``model.nanochat_import.detect``), so the row also checks that the conversion is
right: the greedy tokens of both engines must be identical. nanochat's ``Engine.generate``
yields one token column per step, so it decodes in lockstep with ours.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench.machine import NANOCHAT_REFERENCE

COMMIT = "92d63d4"
SIZES = dict(sequence_len=2048, vocab_size=32768, n_layer=12, n_head=6, n_kv_head=6, n_embd=768, window_pattern="SSSL")
DEFAULT_REFERENCE = NANOCHAT_REFERENCE


def reference_folder(reference: str | os.PathLike | None) -> Path | None:
    """The 92d63d4 folder, or None where it is missing."""
    folder = Path(reference or DEFAULT_REFERENCE) / COMMIT
    return folder if (folder / "nanochat" / "engine.py").is_file() else None


def build_models(folder: Path) -> dict:
    """nanochat's GPT and Engine at ``folder``, and ours made from the same weights."""
    import torch

    from bench.engine import synthetic_tokenizer
    from model.engine import Engine
    from model.checkpoint import gpt_from_weights
    from model.nanochat_import import detect

    os.environ.setdefault("NANOCHAT_BASE_DIR", tempfile.mkdtemp(prefix="glasschat-bench-nanochat-"))
    sys.path.insert(0, str(folder))
    from nanochat.engine import Engine as NanochatEngine
    from nanochat.gpt import GPT as NanochatGPT
    from nanochat.gpt import GPTConfig as NanochatConfig

    tokenizer = synthetic_tokenizer(SIZES["vocab_size"])
    with torch.device("meta"):
        theirs = NanochatGPT(NanochatConfig(**SIZES))
    theirs.to_empty(device="cpu")
    theirs.init_weights()
    randomize(theirs, tokenizer, torch.Generator().manual_seed(0))
    theirs.eval()
    state = dict(theirs.state_dict())
    model_config = {k: v for k, v in SIZES.items()}
    detected = detect(state, model_config, Path("<nanochat meta>"), Path("<nanochat state dict>"))
    ours = gpt_from_weights(detected.config, {name: t.detach() for name, t in state.items()}).eval()
    return {"gpt": ours, "tokenizer": tokenizer, "engine": Engine(ours, tokenizer),
            "nanochat_engine": NanochatEngine(theirs, _NanochatTokenizer(tokenizer)), "generation": detected.generation.commit}


def randomize(model, tokenizer, generator) -> None:
    """Every parameter random, at scales that keep activations near 1 and the logits several
    units apart (so greedy decoding has no near-ties); the special tokens never win."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "resid_lambdas":
                values = 0.6 + 0.8 * torch.rand(p.shape, generator=generator)
            elif name in ("x0_lambdas", "smear_lambda", "backout_lambda"):
                values = 0.2 + 0.6 * torch.rand(p.shape, generator=generator)
            elif "wte" in name or "value_embeds" in name:
                values = torch.randn(p.shape, generator=generator)
            else:
                values = torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5
            if name == "lm_head.weight":
                values *= 6
                values[list(tokenizer.special_ids.values())] = 0
            p.copy_(values.to(p.dtype))


class _NanochatTokenizer:
    """The four calls nanochat's Engine makes, answered by our tokenizer."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def encode_special(self, name: str) -> int:
        return self._tokenizer.encode_special(name)

    def get_bos_token_id(self) -> int:
        return self._tokenizer.bos_id

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids)


def token_stream(models: dict, prompt: list[int], tokens: int):
    """nanochat's Engine, greedy, one token per ``next``."""
    columns = models["nanochat_engine"].generate(prompt, num_samples=1, max_tokens=tokens, temperature=0.0)
    return (column[0] for column, _ in columns)
