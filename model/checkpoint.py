"""Checkpoint directories: save and load a GPT with its tokenizer.

A checkpoint directory holds

- ``config.json`` — ``{"format", "model": GPTConfig fields, "dtype", "weight_format", "save_id",
  "metadata"}``; ``weight_format`` is ``int8`` for a quantized checkpoint (``glasschat
  quantize``), else ``float``;
- ``model.safetensors`` — the weights under nanochat's parameter names; in an int8 checkpoint
  every matrix and embedding table is int8 (nn.Linear's ``(out, in)`` layout) with
  ``NAME_scale`` (fp32, one per row) beside it (``model.int8``);
- ``tokenizer/`` — the tokenizer files (``tokenizer.files`` format).

Each file is written atomically, ``config.json`` last; the weights carry the config's random
``save_id`` and the config a digest of the tokenizer files, so a save that was interrupted
part-way is reported as such instead of pairing new weights or tokenizer with old metadata. Only these files are written, so
other files a user keeps in the directory (a model card, optimizer state) survive a save.

The weights file is mapped, not read (``model.mapped``): a tensor already in the dtype it runs
in is a view of the file's pages. ``load_model`` gives a ``GPT`` (fp32 on the CPU — bf16 matmuls
are far slower there — bf16 on CUDA; an int8 checkpoint dequantized), for training, scoring and
export; ``load_engine`` gives just the generation ``Engine``, packed straight from the mapping,
which it releases tensor by tensor, so the engine's layout is the one copy in memory (int8 when
the checkpoint is, or when asked to quantize at load).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from pathlib import Path

import torch
from safetensors.torch import save_file

from glasschat import paths
from glasschat.atomic import atomic_path, atomic_write_text, make_dir
from glasschat.errors import UserError
from glasschat.loading import LoadError, read_json
from model.gpt import GPT, GPTConfig
from model.mapped import MappedFile
from model.weights import SCALE_SUFFIX, stored_int8

FORMAT = "glasschat-checkpoint/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
WEIGHT_FORMATS = ("float", "int8")  # config.json's weight_format


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
    write_checkpoint(directory, gpt.config, tensors, tokenizer, metadata)


def write_checkpoint(directory: str | os.PathLike, config: GPTConfig, tensors: dict[str, torch.Tensor], tokenizer,
                     metadata: dict | None = None, weight_format: str = "float") -> None:
    """Write ``tensors`` (nanochat's names; ``NAME_scale`` beside each int8 tensor) as a
    checkpoint of ``config`` with ``tokenizer``."""
    directory = Path(directory)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for name, t in tensors.items() if not name.endswith(SCALE_SUFFIX)})
    save_id = secrets.token_hex(8)
    data = {
        "format": FORMAT,
        "model": config.to_dict(),
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "weight_format": weight_format,
        "save_id": save_id,
        "metadata": metadata or {},
    }
    json.dumps(data)  # metadata that does not serialise fails here, before anything is written

    make_dir(directory)
    tokenizer.save(directory / TOKENIZER_DIR)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "save_id": save_id})
    data["tokenizer_sha256"] = _tokenizer_digest(directory / TOKENIZER_DIR)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


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
    if data.get("weight_format", "float") not in WEIGHT_FORMATS:
        raise CheckpointError(f"{path}: field 'weight_format' must be one of {', '.join(WEIGHT_FORMATS)}")
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

    Weights are fp32 on the CPU and bf16 on CUDA (an int8 checkpoint is dequantized); tensors
    already in that dtype are views of the mapped file. Every inconsistency is a
    ``CheckpointError`` naming the file: missing files, a config.json that does not parse,
    missing or unexpected tensors, a tensor of the wrong shape, a tokenizer whose vocabulary
    differs from the model's.
    """
    from model.int8 import dequantize

    config, data, tokenizer, mapped = _open(Path(directory))
    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    state = {}
    for name, tensor in mapped.tensors.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = mapped.tensors.get(name + SCALE_SUFFIX)
        state[name] = tensor.to(dtype) if scale is None else dequantize(tensor, scale, dtype)
    gpt = gpt_from_weights(config, state)
    return gpt.to(device).eval(), tokenizer


def load_engine(directory: str | os.PathLike, quantize: str | None = None, progress=None):
    """Load ``(engine, tokenizer)`` for generation on the CPU, with no ``GPT``: the engine packs
    its layout from the mapped file, tensor by tensor, and the file's pages are released as it
    goes, so only the packed weights stay in memory. The weights run int8 when the checkpoint is
    int8 or ``quantize == "int8"``, else fp32. ``progress(done_bytes, total_bytes)`` follows
    the packing."""
    from model.engine import Engine
    from model.weights import MappedSource

    if quantize not in (None, "int8"):
        raise UserError(f"--quantize: unknown weight format {quantize!r} (int8 is the one offered)")
    config, data, tokenizer, mapped = _open(Path(directory))
    weight_format = "int8" if quantize == "int8" or data.get("weight_format") == "int8" else "fp32"
    engine = Engine.from_weights(config, MappedSource(mapped), tokenizer, weight_format, progress=progress)
    return engine, tokenizer


def quantize_checkpoint(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write an int8 copy of checkpoint ``source`` to the new directory ``out``: every matrix and
    embedding table (every 2-D tensor but the gates: ``model.weights.stored_int8``) as int8 with a scale per row (``model.int8``). The
    directory appears whole or not at all."""
    import shutil

    from model.int8 import quantize

    source, out = Path(source), Path(out)
    if out.exists():
        raise UserError(f"{out}: already exists (quantize writes a new directory)")
    config, data, tokenizer, mapped = _open(source)
    if data.get("weight_format") == "int8":
        raise UserError(f"{source}: already an int8 checkpoint")
    tensors = {}
    for name, tensor in mapped.tensors.items():
        if stored_int8(name, tensor.shape):
            tensors[name], tensors[name + SCALE_SUFFIX] = quantize(tensor)
        else:
            tensors[name] = tensor.clone()
        mapped.release([name])
    metadata = dict(data.get("metadata", {}), quantized_from=str(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_checkpoint(staging, config, tensors, tokenizer, metadata, weight_format="int8")
        os.rename(staging, out)  # fails if out appeared meanwhile: nothing is overwritten
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _open(directory: Path):
    """``(config, config.json, tokenizer, mapped weights)`` of a checkpoint, all checked."""
    from tokenizer import Tokenizer

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
    mapped = _map_weights(weights_path, data.get("save_id"), config, data.get("weight_format") == "int8")
    return config, data, tokenizer, mapped


def _map_weights(path: Path, save_id: object, config: GPTConfig, int8: bool) -> MappedFile:
    try:
        mapped = MappedFile(path)  # the header is parsed and checked; no tensor is read yet
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if save_id is not None and mapped.metadata.get("save_id") != save_id:
        raise CheckpointError(
            f"{path}: written by a different save than {CONFIG_FILE} (an interrupted save?); save the checkpoint again"
        )
    check_weights(mapped.tensors, config, path, int8=int8)
    return mapped


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


def parameter_count(config: GPTConfig) -> int:
    """The number of parameters of a GPT of ``config``."""
    return sum(math.prod(shape) for shape in expected_shapes(config).values())


def check_names_and_shapes(shapes: dict[str, tuple[int, ...]], config: GPTConfig, source: str | os.PathLike,
                           int8: bool = False) -> None:
    """Raise a ``CheckpointError`` naming ``source`` unless tensors of these names and shapes fit
    a GPT of ``config`` (with ``int8``: every matrix and table but the gates with its ``NAME_scale``)."""
    expected = expected_shapes(config)
    if int8:
        expected |= {name + SCALE_SUFFIX: shape[:1] for name, shape in expected.items() if stored_int8(name, shape)}
    missing = [name for name in expected if name not in shapes]
    unexpected = [name for name in shapes if name not in expected]
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {_names(missing)}")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor(s) {_names(unexpected)}")
    for name, shape in expected.items():
        if tuple(shapes[name]) != shape:
            raise CheckpointError(f"{source}: tensor {name} has shape {tuple(shapes[name])}, the config needs {shape}")


def check_weights(state: dict[str, torch.Tensor], config: GPTConfig, source: str | os.PathLike, int8: bool = False) -> None:
    """Raise a ``CheckpointError`` naming ``source`` unless ``state`` fits a GPT of ``config``
    (with ``int8``: every matrix and table but the gates int8 with its ``NAME_scale``)."""
    check_names_and_shapes({name: tuple(tensor.shape) for name, tensor in state.items()}, config, source, int8)
    for name, tensor in state.items():
        quantized = int8 and stored_int8(name, tensor.shape)
        if quantized and tensor.dtype != torch.int8:
            raise CheckpointError(f"{source}: tensor {name} has dtype {tensor.dtype}, an int8 checkpoint needs int8")
        if not quantized and not tensor.is_floating_point():
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
