"""Converting a nanochat checkpoint directory into a glasschat checkpoint.

nanochat writes ``model_{step:06d}.pt`` (a plain dict of tensors), ``meta_{step:06d}.json``
(whose ``model_config`` is all inference needs) and keeps its tokenizer as ``tokenizer.pkl``
(a pickled ``tiktoken.Encoding``). The weights are read with ``torch.load(weights_only=True)``
and the pickle through the tokenizer's restricted unpickler: nothing in the source directory
can run code. Parameter names are the same as ours once a ``torch.compile`` prefix
(``_orig_mod.``) is stripped, and each tensor keeps its dtype (nanochat trains the embedding
in bf16 and the linears in fp32).

Only the late-2025 architecture loads here. The 2026 nanochat (value embeddings, per-layer
lambdas, sliding-window attention) computes a different function from the same names, so its
checkpoints are recognised and refused.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from glasschat.atomic import check_dir_target
from glasschat.errors import UserError
from model.checkpoint import check_weights, gpt_from_weights, read_json_file, save_checkpoint
from model.gpt import GPTConfig

COMPILE_PREFIX = "_orig_mod."
CONFIG_FIELDS = ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")
# names only the newer architecture has, in its weights or its config
NEWER_ARCHITECTURE_MARKERS = ("value_embeds", "ve_gate", "resid_lambdas", "x0_lambdas", "window_pattern", "smear", "backout")


class NanochatImportError(UserError):
    """A nanochat directory that cannot be converted."""


def find_step(source: Path, step: int | None) -> int:
    """The step to import: ``step`` if given (it must exist), else the highest one in ``source``."""
    steps = sorted(int(m.group(1)) for p in source.glob("model_*.pt") if (m := re.fullmatch(r"model_(\d+)\.pt", p.name)))
    if not steps:
        raise NanochatImportError(f"{source}: no nanochat checkpoint (model_NNNNNN.pt) found")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise NanochatImportError(f"{source}: no checkpoint for step {step} (found steps {', '.join(map(str, steps))})")
    return step


def import_nanochat(
    source: str | os.PathLike, out: str | os.PathLike, step: int | None = None, tokenizer_path: str | os.PathLike | None = None
) -> Path:
    """Convert the nanochat checkpoint in ``source`` (highest step unless ``step``) to ``out``."""
    from tokenizer import Tokenizer

    source = Path(source)
    if not source.is_dir():
        raise NanochatImportError(f"{source}: no such directory")
    check_dir_target(out)
    step = find_step(source, step)
    model_path, meta_path = source / f"model_{step:06d}.pt", source / f"meta_{step:06d}.json"
    config = _read_config(meta_path)
    tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else source / "tokenizer.pkl"
    if not tokenizer_path.is_file():
        raise NanochatImportError(f"{tokenizer_path}: missing; pass the nanochat tokenizer.pkl with --tokenizer")
    tokenizer = Tokenizer.from_nanochat_pickle(tokenizer_path)
    if tokenizer.vocab_size != config.vocab_size:
        raise NanochatImportError(
            f"{tokenizer_path}: tokenizer has {tokenizer.vocab_size} tokens but {meta_path} says vocab_size {config.vocab_size}"
        )
    state = _read_weights(model_path)
    check_weights(state, config, model_path)
    gpt = gpt_from_weights(config, state)
    metadata = {"imported_from": "nanochat", "source": str(source.resolve()), "step": step}
    save_checkpoint(out, gpt, tokenizer, metadata)
    return Path(out)


def _read_config(meta_path: Path) -> GPTConfig:
    meta = read_json_file(meta_path, NanochatImportError, "each model_NNNNNN.pt needs its meta_NNNNNN.json")
    model_config = meta.get("model_config") if isinstance(meta, dict) else None
    if not isinstance(model_config, dict):
        raise NanochatImportError(f"{meta_path}: field 'model_config' missing")
    extra = sorted(set(model_config) - set(CONFIG_FIELDS))
    if any(marker in name for name in extra for marker in NEWER_ARCHITECTURE_MARKERS):
        raise _newer_architecture(meta_path, extra)
    return GPTConfig.from_dict(model_config, f"{meta_path}: field 'model_config'")


def _read_weights(model_path: Path) -> dict[str, torch.Tensor]:
    if not model_path.is_file():  # a FIFO or device would block the reader
        raise NanochatImportError(f"{model_path}: not a regular file")
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise NanochatImportError(f"{model_path}: not a loadable weights file (it holds objects other than tensors; "
                                  "refusing to unpickle them)") from None
    except Exception as error:  # truncated zips, not a torch file at all
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise NanochatImportError(f"{model_path}: not a loadable weights file ({type(error).__name__}: {first_line})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise NanochatImportError(f"{model_path}: expected a dict of tensors")
    state = {name.removeprefix(COMPILE_PREFIX): tensor for name, tensor in state.items()}
    newer = [name for name in state if any(marker in name for marker in NEWER_ARCHITECTURE_MARKERS)]
    if newer:
        raise _newer_architecture(model_path, newer)
    return state


def _newer_architecture(path: Path, names: list[str]) -> NanochatImportError:
    return NanochatImportError(
        f"{path}: a checkpoint of the newer nanochat architecture ({', '.join(names[:3])} …: value embeddings, "
        "per-layer lambdas, sliding windows); only the late-2025 architecture can be imported"
    )
