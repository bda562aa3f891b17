"""Checkpoint directories: save and load a GPT with its tokenizer.

A checkpoint directory holds

- ``config.json`` — ``{"format", "model": GPTConfig fields, "dtype", "save_id", "metadata"}``;
- ``model.safetensors`` — the weights under nanochat's parameter names;
- ``tokenizer/`` — the tokenizer files (``tokenizer.files`` format).

Each file is written atomically, ``config.json`` last; the weights carry the config's random
``save_id`` and the config a digest of the tokenizer files, so a save that was interrupted
part-way is reported as such instead of pairing new weights or tokenizer with old metadata. Only these files are written, so
other files a user keeps in the directory (a model card, optimizer state) survive a save.

Loading is memory-mapped (safetensors), lands in fp32 on the CPU — bf16 matmuls are far slower
there — and in bf16 on CUDA.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from glasschat import paths
from glasschat.atomic import atomic_path, atomic_write_text, make_dir
from glasschat.errors import UserError
from glasschat.loading import LoadError, read_json
from model.gpt import GPT, GPTConfig

FORMAT = "glasschat-checkpoint/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


class CheckpointError(UserError):
    """A checkpoint directory that is missing, incomplete or inconsistent."""


def resolve_checkpoint_dir(checkpoint: str | os.PathLike | None) -> Path:
    """The checkpoint a command should use: the one given, else the bundled default model
    (``glasschat.paths.default_checkpoint_dir()``) when it has been trained. A nanochat folder
    given here is converted once, into a cache (``model.nanochat_import.cached_import``)."""
    if checkpoint is not None:
        from model.nanochat_import import cached_import, is_nanochat_dir

        return cached_import(checkpoint) if is_nanochat_dir(Path(checkpoint)) else Path(checkpoint)
    default = paths.default_checkpoint_dir()
    if not (default / CONFIG_FILE).is_file():
        raise CheckpointError(f"no default model in {default}: pass --checkpoint DIR")
    return default


def save_checkpoint(
    directory: str | os.PathLike,
    gpt: GPT,
    tokenizer,
    metadata: dict | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write ``gpt`` and ``tokenizer`` to ``directory`` (created if needed).

    ``metadata`` (JSON-serialisable: training step, recipe, eval figures …) is stored in
    ``config.json``. ``dtype`` converts floating-point weights (e.g. ``torch.bfloat16`` for a
    small shipped model); None keeps each tensor's own dtype.
    """
    directory = Path(directory)
    if tokenizer.vocab_size != gpt.config.vocab_size:
        raise CheckpointError(
            f"{directory}: tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {gpt.config.vocab_size}"
        )
    tensors = {}
    for name, tensor in gpt.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})
    save_id = secrets.token_hex(8)
    config = {
        "format": FORMAT,
        "model": gpt.config.to_dict(),
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "save_id": save_id,
        "metadata": metadata or {},
    }
    json.dumps(config)  # metadata that does not serialise fails here, before anything is written

    make_dir(directory)
    tokenizer.save(directory / TOKENIZER_DIR)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "save_id": save_id})
    config["tokenizer_sha256"] = _tokenizer_digest(directory / TOKENIZER_DIR)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def read_config(directory: str | os.PathLike) -> tuple[GPTConfig, dict]:
    """``(model config, the whole config.json)`` of a checkpoint directory, checked."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    path = directory / CONFIG_FILE
    data = read_json_file(path, CheckpointError, f"a checkpoint holds {CONFIG_FILE}, {WEIGHTS_FILE} and {TOKENIZER_DIR}/")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: field 'format' must be {FORMAT!r}")
    if not isinstance(data.get("metadata", {}), dict):
        raise CheckpointError(f"{path}: field 'metadata' must be an object")
    return GPTConfig.from_dict(data.get("model"), f"{path}: field 'model'"), data


def read_json_file(path: Path, error: type[UserError], holds: str) -> object:
    """The parsed JSON at ``path`` (read by ``glasschat.loading``: bounded, one-line errors); a
    missing file raises ``error`` naming it and what the directory should hold."""
    if not path.exists():
        raise error(f"{path}: missing ({holds})")
    try:
        return read_json(path)
    except LoadError as problem:
        raise error(str(problem)) from None


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load ``(gpt, tokenizer)`` from a checkpoint directory, the model in eval mode.

    Weights are fp32 on the CPU and bf16 on CUDA. Every inconsistency is a ``CheckpointError``
    naming the file: missing files, a config.json that does not parse, missing or unexpected
    tensors, a tensor of the wrong shape, a tokenizer whose vocabulary differs from the model's.
    """
    from tokenizer import Tokenizer

    directory = Path(directory)
    config, data = read_config(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: missing")
    tokenizer = Tokenizer.load(directory / TOKENIZER_DIR)
    digest = data.get("tokenizer_sha256")
    if digest is not None and digest != _tokenizer_digest(directory / TOKENIZER_DIR):
        raise CheckpointError(
            f"{directory / TOKENIZER_DIR}: written by a different save than {CONFIG_FILE} (an interrupted save?); "
            "save the checkpoint again"
        )
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{directory / TOKENIZER_DIR}: tokenizer has {tokenizer.vocab_size} tokens but "
            f"{directory / CONFIG_FILE} says vocab_size {config.vocab_size}"
        )

    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    state = _read_weights(weights_path, data.get("save_id"), config)
    gpt = gpt_from_weights(config, {name: tensor.to(dtype) for name, tensor in state.items()})
    return gpt.to(device).eval(), tokenizer


def _read_weights(path: Path, save_id: object, config: GPTConfig) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            file_save_id = (f.metadata() or {}).get("save_id")
            # the header's shapes are checked before any tensor is read
            check_names_and_shapes({name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}, config, path)
            state = {name: f.get_tensor(name) for name in f.keys()}
    except CheckpointError:
        raise
    except Exception as error:  # safetensors raises its own error types for a bad header or truncation
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if save_id is not None and file_save_id != save_id:
        raise CheckpointError(
            f"{path}: written by a different save than {CONFIG_FILE} (an interrupted save?); save the checkpoint again"
        )
    check_weights(state, config, path)
    return state


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a GPT of ``config`` holds, by name, with its shape (``GPT``'s state dict,
    every generation's features included, computed without building one: a model on the meta
    device still computes its rotary tables, sized by the config before the weights are seen)."""
    C, V, kv = config.n_embd, config.padded_vocab_size, config.n_kv_head * config.head_dim
    shapes = {"transformer.wte.weight": (V, C)}
    for i in range(config.n_layer):
        block = f"transformer.h.{i}."
        shapes |= {block + "attn.c_q.weight": (C, C), block + "attn.c_k.weight": (kv, C),
                   block + "attn.c_v.weight": (kv, C), block + "attn.c_proj.weight": (C, C)}
        if i in config.value_embed_layers:
            shapes[block + "attn.ve_gate.weight"] = (config.n_kv_head, config.ve_gate_channels)
        shapes |= {block + "mlp.c_fc.weight": (4 * C, C), block + "mlp.c_proj.weight": (C, 4 * C)}
    shapes["lm_head.weight"] = (V, C)
    if config.lambdas:
        shapes |= {"resid_lambdas": (config.n_layer,), "x0_lambdas": (config.n_layer,)}
    if config.smear_channels:
        shapes |= {"smear_gate.weight": (1, config.smear_channels), "smear_lambda": (1,)}
    if config.backout_layer >= 0:
        shapes["backout_lambda"] = (1,)
    for i in sorted(set(config.value_embed_layers)):
        shapes[f"value_embeds.{i}.weight"] = (V, kv)
    return shapes


def check_names_and_shapes(shapes: dict[str, tuple[int, ...]], config: GPTConfig, source: str | os.PathLike) -> None:
    """Raise a ``CheckpointError`` naming ``source`` unless tensors of these names and shapes fit
    a GPT of ``config``."""
    expected = expected_shapes(config)
    missing = [name for name in expected if name not in shapes]
    unexpected = [name for name in shapes if name not in expected]
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {_names(missing)}")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor(s) {_names(unexpected)}")
    for name, shape in expected.items():
        if tuple(shapes[name]) != shape:
            raise CheckpointError(f"{source}: tensor {name} has shape {tuple(shapes[name])}, the config needs {shape}")


def check_weights(state: dict[str, torch.Tensor], config: GPTConfig, source: str | os.PathLike) -> None:
    """Raise a ``CheckpointError`` naming ``source`` unless ``state`` fits a GPT of ``config``."""
    check_names_and_shapes({name: tuple(tensor.shape) for name, tensor in state.items()}, config, source)
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise CheckpointError(f"{source}: tensor {name} has dtype {tensor.dtype}, expected floating point")


def gpt_from_weights(config: GPTConfig, state: dict[str, torch.Tensor]) -> GPT:
    """A GPT that uses ``state``'s tensors as they are (no copy, dtypes kept); ``state`` must
    pass ``check_weights``."""
    with torch.device("meta"):
        gpt = GPT(config)  # shapes only: the real tensors are assigned below
    gpt.load_state_dict(state, assign=True)
    return gpt


def _tokenizer_digest(directory: Path) -> str:
    """sha256 over the tokenizer directory's files (names and bytes; atomic writes' hidden
    temporaries left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
