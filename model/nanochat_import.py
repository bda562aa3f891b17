"""Converting a nanochat checkpoint, of any nanochat generation, into a glasschat checkpoint.

nanochat writes ``model_{step:06d}.pt`` (a plain dict of tensors), ``meta_{step:06d}.json``
(whose ``model_config`` holds the sizes and, since 2026, the window pattern) and keeps its
tokenizer as ``tokenizer.pkl`` (a pickled ``tiktoken.Encoding``). Three layouts are found:

- nanochat's base directory (``$NANOCHAT_BASE_DIR``): ``tokenizer/tokenizer.pkl`` and
  ``{base,mid,chatsft,chatrl}_checkpoints/<tag>/``; the source defaults to the most finished one
  present (rl, sft, mid, base), the tag to the deepest ``d<N>`` (as nanochat picks), the step
  to the last;
- one checkpoints folder (``…/chatsft_checkpoints/d20/``), its tokenizer at
  ``../../tokenizer/tokenizer.pkl``;
- a folder as published on model hubs: ``model_*.pt``, ``meta_*.json`` and ``tokenizer.pkl``
  side by side.

The weights are read with ``torch.load(weights_only=True)`` and the pickle through the
tokenizer's restricted unpickler: nothing in the source can run code. Parameter names are ours
once a ``torch.compile`` prefix (``_orig_mod.``) is stripped, and each tensor keeps its dtype.

The generation is read from the state dict's keys and shapes plus the meta (``detect``), and
becomes plain ``GPTConfig`` fields. What no file stores follows from the generation (window
sizes, rotary base, softcap, q/k scale). Two things the files cannot tell are settled by a rule
that the import states, with an override: the softcap of a checkpoint whose value-embedding
gate is 32 wide (15 from 2026-01-17, 20 by 2026-03-02: ``--softcap``), and the window pattern
of a meta without one (SFT metas before 2026-02-01; the generation's default pattern is used:
``--window-pattern``). Keys of no known generation (the three-day ``bigram_embed`` of late
January 2026) are refused.

``cached_import`` converts a nanochat folder given as ``--checkpoint`` once, into
``$XDG_CACHE_HOME/glasschat/nanochat/<key>``, the key a digest of the source files' names,
sizes, mtimes and contents.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from glasschat.atomic import check_dir_target
from glasschat.errors import UserError
from model.checkpoint import CONFIG_FILE, CheckpointError, check_weights, gpt_from_weights, read_json_file, save_checkpoint
from model.gpt import SIZE_FIELDS, GPTConfig

COMPILE_PREFIX = "_orig_mod."
SOURCES = {"base": "base_checkpoints", "mid": "mid_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
MOST_FINISHED_FIRST = ("rl", "sft", "mid", "base")
VOCAB_PAD = 64  # nanochat pads its embedding rows to a multiple of 64
SMEAR_CHANNELS = 24
_KNOWN_KEYS = re.compile(
    r"transformer\.wte\.weight|lm_head\.weight|resid_lambdas|x0_lambdas|smear_gate\.weight|smear_lambda|backout_lambda"
    r"|value_embeds\.\d+\.weight|transformer\.h\.\d+\.(attn\.(c_q|c_k|c_v|c_proj|ve_gate)|mlp\.(c_fc|c_proj))\.weight"
)


class NanochatImportError(UserError):
    """A nanochat directory that cannot be converted."""


@dataclass(frozen=True)
class Generation:
    """What a nanochat generation computes beyond its checkpoint's tensors."""

    commit: str
    dates: str
    features: str
    default_pattern: str = "L"
    window_divisor: int = 0  # the short window is sequence_len / divisor (0: no windows) ...
    window_tile: int = 1  # ... rounded up to this tile (1: rounded down, as at first)
    ve_gate_scale: float = 0.0
    qk_scale: float = 1.0
    rotary_base: float = 10000.0
    rotary_bf16: bool = True  # nanochat's tables were bf16 until it computed in fp32 on a CPU
    softcap: float = 15.0

    def short_window(self, sequence_len: int) -> int:
        if self.window_tile == 1:
            return sequence_len // self.window_divisor
        return -(-sequence_len // self.window_divisor // self.window_tile) * self.window_tile


GENERATIONS = {
    g.commit: g
    for g in (
        Generation("16788ee", "2025-11", "the late-2025 architecture"),
        Generation("b62a5bc", "2026-01-11", "padded vocab, per-layer lambdas, sliding windows", window_divisor=2),
        Generation("e7ed208", "2026-01-17", "+ value embeddings", "SSSL", 2, ve_gate_scale=2.0),
        Generation("aba30cb", "by 2026-03-02", "+ value embeddings, softcap 20", "SSSL", 2, ve_gate_scale=2.0, softcap=20.0),
        Generation("6ed7d1d", "2026-03-09", "+ value embeddings (12-wide gate), q/k scale 1.15, rotary base 100000", "SSSL",
                   3, 128, ve_gate_scale=3.0, qk_scale=1.15, rotary_base=100000.0, rotary_bf16=False),
        Generation("92d63d4", "2026-03-14 to today", "+ value embeddings, smear, backout, q/k scale 1.2, rotary base 100000",
                   "SSSL", 4, 128, ve_gate_scale=3.0, qk_scale=1.2, rotary_base=100000.0, rotary_bf16=False),
    )
}


@dataclass(frozen=True)
class Found:
    """One checkpoint step to import and the tokenizer that goes with it."""

    directory: Path
    step: int
    tokenizer: Path
    where: str  # e.g. "chatsft_checkpoints/d20", for the report

    @property
    def model_path(self) -> Path:
        return self.directory / f"model_{self.step:06d}.pt"

    @property
    def meta_path(self) -> Path:
        return self.directory / f"meta_{self.step:06d}.json"


# ---- finding the checkpoint


def _steps(directory: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in directory.glob("model_*.pt") if (m := re.fullmatch(r"model_(\d+)\.pt", p.name)))


def find_step(source: Path, step: int | None) -> int:
    """The step to import: ``step`` if given (it must exist), else the highest one in ``source``."""
    steps = _steps(source)
    if not steps:
        raise NanochatImportError(f"{source}: no nanochat checkpoint (model_NNNNNN.pt) found")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise NanochatImportError(f"{source}: no checkpoint for step {step} (found steps {', '.join(map(str, steps))})")
    return step


def _pick_tag(checkpoints: Path, tag: str | None) -> Path:
    """nanochat's choice of model in a ``*_checkpoints`` folder: the deepest ``d<N>``, else the
    most recently changed."""
    tags = sorted(p.name for p in checkpoints.iterdir() if p.is_dir() and _steps(p)) if checkpoints.is_dir() else []
    if tag is not None:
        if tag not in tags:
            raise NanochatImportError(f"{checkpoints}: no model tag {tag!r} (found: {', '.join(tags) or 'none'})")
        return checkpoints / tag
    if not tags:
        raise NanochatImportError(f"{checkpoints}: no nanochat checkpoints (no <tag>/model_NNNNNN.pt)")
    depths = [(int(m.group(1)), t) for t in tags if (m := re.match(r"d(\d+)", t))]
    if depths:
        return checkpoints / max(depths)[1]
    return checkpoints / max(tags, key=lambda t: (checkpoints / t).stat().st_mtime)


def is_nanochat_dir(path: Path) -> bool:
    """Whether ``path`` looks like one of the layouts ``locate`` reads (and not a glasschat checkpoint)."""
    if not path.is_dir() or (path / CONFIG_FILE).is_file():
        return False
    return bool(_steps(path)) or any((path / folder).is_dir() for folder in SOURCES.values()) or any(
        p.is_dir() and _steps(p) for p in path.iterdir())


def locate(source: str | os.PathLike, kind: str | None = None, tag: str | None = None, step: int | None = None,
           tokenizer: str | os.PathLike | None = None) -> Found:
    """Find the checkpoint to import in any of the three layouts (see the module docstring)."""
    source = Path(source)
    if not source.is_dir():
        raise NanochatImportError(f"{source}: no such directory")
    if _steps(source):  # one checkpoints folder, or a hub-style folder
        if kind is not None or tag is not None:
            raise NanochatImportError(f"{source}: --source and --tag pick from a nanochat base directory; this is one checkpoint folder")
        candidates = [source / "tokenizer.pkl", source.parent.parent / "tokenizer" / "tokenizer.pkl"]
        directory, where = source, source.name
    else:
        present = [k for k in MOST_FINISHED_FIRST if (source / SOURCES[k]).is_dir()]
        if present or kind is not None:  # a base directory
            if kind is None:
                with_checkpoints = [k for k in present if any(_steps(p) for p in (source / SOURCES[k]).iterdir() if p.is_dir())]
                if not with_checkpoints:
                    raise NanochatImportError(f"{source}: no checkpoints in {', '.join(SOURCES[k] + '/' for k in present)}")
                kind = with_checkpoints[0]
            directory = _pick_tag(source / SOURCES[kind], tag)
            candidates = [source / "tokenizer" / "tokenizer.pkl"]
        elif any(p.is_dir() and _steps(p) for p in source.iterdir()):  # a *_checkpoints folder
            directory = _pick_tag(source, tag)
            candidates = [source.parent / "tokenizer" / "tokenizer.pkl"]
        else:
            raise NanochatImportError(
                f"{source}: no nanochat checkpoint here (no model_NNNNNN.pt, no {', '.join(SOURCES.values())} folder)")
        where = f"{directory.parent.name}/{directory.name}"
    if tokenizer is not None:
        candidates = [Path(tokenizer)]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise NanochatImportError(f"{candidates[0]}: missing; pass the nanochat tokenizer.pkl with --tokenizer"
                                  + (f" (also looked for {', '.join(map(str, candidates[1:]))})" if len(candidates) > 1 else ""))
    return Found(directory, find_step(directory, step), found, where)


# ---- reading and recognising it


def read_meta(meta_path: Path) -> dict:
    meta = read_json_file(meta_path, NanochatImportError, "each model_NNNNNN.pt needs its meta_NNNNNN.json")
    model_config = meta.get("model_config") if isinstance(meta, dict) else None
    if not isinstance(model_config, dict):
        raise NanochatImportError(f"{meta_path}: field 'model_config' missing")
    unknown = sorted(set(model_config) - set(SIZE_FIELDS) - {"window_pattern"})
    if unknown:
        raise NanochatImportError(f"{meta_path}: model_config field(s) {', '.join(unknown)} belong to no nanochat generation "
                                  "glasschat knows")
    return model_config


def read_weights(model_path: Path) -> dict[str, torch.Tensor]:
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
    unknown = [name for name in state if not _KNOWN_KEYS.fullmatch(name)]
    if unknown:
        shown = ", ".join(unknown[:4]) + (f" and {len(unknown) - 4} more" if len(unknown) > 4 else "")
        raise NanochatImportError(f"{model_path}: tensor(s) {shown} belong to no nanochat generation glasschat knows "
                                  "(known: 2025-11 to 2026-07, without the late-January 2026 bigram embedding)")
    return state


@dataclass(frozen=True)
class Detected:
    config: GPTConfig
    generation: Generation
    window_pattern: str
    notes: tuple[str, ...]  # the rules applied where the files cannot tell


def detect(state: dict[str, torch.Tensor], model_config: dict, meta_path: Path, model_path: Path,
           softcap: float | None = None, window_pattern: str | None = None) -> Detected:
    """The generation and the full ``GPTConfig`` of a nanochat state dict and its meta's
    ``model_config``; raises naming the file where they disagree."""
    sizes = GPTConfig.from_dict({k: v for k, v in model_config.items() if k in SIZE_FIELDS}, f"{meta_path}: field 'model_config'")
    notes = []
    gates = {tuple(t.shape)[1] for name, t in state.items() if name.endswith("attn.ve_gate.weight") and t.ndim == 2}
    smear = any(name in state for name in ("smear_gate.weight", "smear_lambda", "backout_lambda"))
    lambdas = "resid_lambdas" in state or "x0_lambdas" in state
    wte = state.get("transformer.wte.weight")
    rows = wte.shape[0] if wte is not None and wte.ndim == 2 else sizes.vocab_size  # else check_weights names the shape
    if smear:
        generation = GENERATIONS["92d63d4"]
    elif gates == {12}:
        generation = GENERATIONS["6ed7d1d"]
    elif gates == {32}:
        generation = GENERATIONS["aba30cb" if softcap == 20 else "e7ed208"]
        if softcap is None:
            notes.append("softcap 15 assumed: the keys of 2026-01-17 and 2026-03-02 checkpoints are the same, "
                         "and by 2026-03-02 nanochat capped at 20 (pass --softcap 20 for such a checkpoint)")
    elif gates:
        raise NanochatImportError(f"{model_path}: value-embedding gates {sorted(gates)} wide; nanochat's are 32 or 12")
    elif lambdas or rows != sizes.vocab_size or "window_pattern" in model_config:
        generation = GENERATIONS["b62a5bc"]
    else:
        generation = GENERATIONS["16788ee"]
    if smear and gates != {12}:
        raise NanochatImportError(f"{model_path}: smear and backout come with 12-wide value-embedding gates, found {sorted(gates) or 'none'}")

    padded = -(-sizes.vocab_size // VOCAB_PAD) * VOCAB_PAD
    if rows not in (sizes.vocab_size, padded):
        raise NanochatImportError(f"{model_path}: transformer.wte.weight has {rows} rows but {meta_path.name} says vocab_size "
                                  f"{sizes.vocab_size} (padded: {padded})")

    if softcap is not None:
        notes.append(f"softcap {softcap:g} as given by --softcap")
    if window_pattern is not None:
        notes.append(f"window pattern {window_pattern} as given by --window-pattern")
    else:
        window_pattern = model_config.get("window_pattern")
        if window_pattern is None and generation.window_divisor:
            window_pattern = generation.default_pattern
            notes.append(f"{meta_path.name} has no window_pattern (as SFT metas before 2026-02-01): assumed this generation's "
                         f"default {window_pattern} (pass --window-pattern to change it)")
    window_pattern = window_pattern or "L"
    if not isinstance(window_pattern, str) or not re.fullmatch(r"[SLsl]+", window_pattern):
        raise NanochatImportError(f"window pattern {window_pattern!r} (from {meta_path.name} or --window-pattern): use only S and L")
    window_pattern = window_pattern.upper()
    windows = ()
    if "S" in window_pattern:
        if not generation.window_divisor:
            raise NanochatImportError(f"window pattern {window_pattern}: the {generation.dates} generation has no sliding windows")
        short = generation.short_window(sizes.sequence_len)
        layers = [short if window_pattern[i % len(window_pattern)] == "S" else sizes.sequence_len for i in range(sizes.n_layer)]
        layers[-1] = sizes.sequence_len  # nanochat's last layer always sees everything
        windows = tuple(layers) if min(layers) < sizes.sequence_len else ()

    value_layers = tuple(sorted(int(m.group(1)) for name in state if (m := re.fullmatch(r"value_embeds\.(\d+)\.weight", name))))
    config = GPTConfig(
        **sizes.to_dict() | dict(
            vocab_pad_to=VOCAB_PAD if rows == padded and rows != sizes.vocab_size else 1,
            windows=windows,
            lambdas=lambdas,
            value_embed_layers=value_layers,
            ve_gate_channels=next(iter(gates)) if gates else 0,
            ve_gate_scale=generation.ve_gate_scale if gates else 0.0,
            qk_scale=generation.qk_scale,
            rotary_base=generation.rotary_base,
            rotary_bf16=generation.rotary_bf16,
            softcap=float(softcap) if softcap is not None else generation.softcap,
            smear_channels=SMEAR_CHANNELS if smear else 0,
            backout_layer=sizes.n_layer // 2 if smear else -1,
        )
    )
    try:
        check_weights(state, config, model_path)
    except CheckpointError as error:
        raise NanochatImportError(f"{error} (as {meta_path.name} and the generation's keys describe it)") from None
    return Detected(config, generation, window_pattern, tuple(notes))


# ---- converting


def import_nanochat(
    source: str | os.PathLike,
    out: str | os.PathLike,
    step: int | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    kind: str | None = None,
    tag: str | None = None,
    softcap: float | None = None,
    window_pattern: str | None = None,
    report=None,
) -> Path:
    """Convert the nanochat checkpoint found in ``source`` to ``out``; ``report`` (a print-like
    function) gets what was found, one line at a time."""
    from tokenizer import Tokenizer

    check_dir_target(out)  # before any reading
    if softcap is not None and (type(softcap) not in (int, float) or not math.isfinite(softcap) or softcap <= 0):
        raise NanochatImportError(f"--softcap must be a finite positive number, got {softcap!r}")
    found = locate(source, kind, tag, step, tokenizer_path)
    model_config = read_meta(found.meta_path)
    tokenizer = Tokenizer.from_nanochat_pickle(found.tokenizer)
    state = read_weights(found.model_path)
    detected = detect(state, model_config, found.meta_path, found.model_path, softcap, window_pattern)
    config = detected.config
    if tokenizer.vocab_size != config.vocab_size:
        raise NanochatImportError(f"{found.tokenizer}: tokenizer has {tokenizer.vocab_size} tokens but {found.meta_path} says "
                                  f"vocab_size {config.vocab_size}")
    gpt = gpt_from_weights(config, state)
    lines = summary(detected, gpt.num_parameters(), found)
    metadata = {"imported_from": "nanochat", "source": str(found.directory.resolve()), "step": found.step,
                "nanochat_generation": detected.generation.commit, "window_pattern": detected.window_pattern,
                "import_notes": list(detected.notes)}
    save_checkpoint(out, gpt, tokenizer, metadata)
    if report is not None:
        for line in lines:
            report(line)
    return Path(out)


def summary(detected: Detected, parameters: int, found: Found) -> list[str]:
    c, g = detected.config, detected.generation
    lines = [f"generation: nanochat {g.commit} ({g.dates}: {g.features})",
             f"size: d{c.n_layer}, n_embd {c.n_embd}, {c.n_head} heads ({c.n_kv_head} kv), {parameters:,} parameters, "
             f"context {c.sequence_len}",
             f"vocab: {c.vocab_size}" + (f" (rows padded to {c.padded_vocab_size})" if c.padded_vocab_size != c.vocab_size else "")]
    if c.windows:
        short = sorted({w for w in c.windows if w < c.sequence_len})
        lines.append(f"window pattern: {detected.window_pattern} (short window {', '.join(map(str, short))} of {c.sequence_len}; "
                     "the last layer full)")
    else:
        lines.append(f"window pattern: {detected.window_pattern} (full attention on every layer)")
    lines.append(f"step: {found.step} ({found.where})")
    lines.extend(f"note: {note}" for note in detected.notes)
    return lines


# ---- the cache behind --checkpoint NANOCHAT_DIR


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glasschat" / "nanochat"


def cache_key(found: Found) -> str:
    """A digest of the source files' names, sizes, mtimes and contents."""
    digest = hashlib.sha256()
    for path in (found.model_path, found.meta_path, found.tokenizer):
        # what the import would refuse, refused before it is read: a FIFO would block the digest
        if not path.exists():
            raise NanochatImportError(f"{path}: missing (each model_NNNNNN.pt needs its meta_NNNNNN.json)")
        if not path.is_file():
            raise NanochatImportError(f"{path}: not a regular file")
        stat = path.stat()
        with open(path, "rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()
        digest.update(json.dumps([path.name, stat.st_size, stat.st_mtime_ns, content]).encode())
    return digest.hexdigest()[:32]


def cached_import(source: str | os.PathLike) -> Path:
    """The glasschat checkpoint of the nanochat folder ``source``: converted once into the cache
    (into a temporary folder renamed into place, so nothing half-written is ever found there)."""
    found = locate(source)
    root = cache_root()
    final = root / cache_key(found)
    if (final / CONFIG_FILE).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.{secrets.token_hex(4)}.tmp"
    try:
        import_nanochat(found.directory, tmp, step=found.step, tokenizer_path=found.tokenizer)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / CONFIG_FILE).is_file():  # not another process finishing first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
