"""The training loop shared by pretraining and fine-tuning.

One step: a batch from ``Batches.get(step)``, the masked mean cross-entropy from the model,
backward, gradient clipping, the learning-rate schedule, the optimizers. Around it:

- progress lines (step, loss, learning rate, tokens/s, ETA) and a validation loss at intervals;
- the loss history (every step's training loss, every validation loss), kept in the training
  state so that a resumed stage continues its curves, written beside it as ``loss.json`` and
  handed to ``on_history`` at each progress line (the live chart in a terminal);
- a training state (weights, optimizer moments, step) written atomically every ``save_every``
  steps, at the end, and when Ctrl+C interrupts — ``resume`` continues from it exactly, since
  batches depend only on the step;
- Muon for the transformer's matrices and AdamW for the embedding and the unembedding (the
  split nanochat uses; Muon reaches a given loss in fewer steps than AdamW alone);
- bf16 autocast on CUDA, plain fp32 on CPU (bf16 matmuls are slow on CPUs without bf16 units).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from glasschat.atomic import atomic_path
from glasschat.errors import UserError
from training.batches import Batches
from training.loss_history import LossHistory, write_loss_file
from training.muon import Muon

STATE_FILE = "train_state.pt"


@dataclass
class LoopConfig:
    steps: int
    matrix_lr: float = 0.02  # Muon
    embed_lr: float = 0.05  # AdamW, token embedding
    head_lr: float = 0.004  # AdamW, lm_head
    weight_decay: float = 0.0
    warmup_steps: int = 20
    warmdown: float = 0.4  # the last fraction of steps decays the learning rate linearly...
    final_lr_frac: float = 0.05  # ...to this fraction of its peak
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 100
    save_every: int = 100


@dataclass
class LoopResult:
    steps: int
    train_loss: float
    val_loss: float | None
    seconds: float  # this call's wall time
    tokens_per_s: float
    interrupted: bool = False
    earlier_seconds: float = 0.0  # wall time of the calls this one resumed from


def lr_multiplier(step: int, config: LoopConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_start = config.steps * (1 - config.warmdown)
    if step < decay_start or config.warmdown <= 0:
        return 1.0
    progress = (step - decay_start) / max(1.0, config.steps - decay_start)
    return 1.0 - progress * (1.0 - config.final_lr_frac)


def make_optimizers(model: torch.nn.Module, config: LoopConfig) -> list[torch.optim.Optimizer]:
    matrices = [p for name, p in model.named_parameters() if p.dim() == 2 and ".h." in f".{name}"]
    embedding = [p for name, p in model.named_parameters() if "wte" in name]
    head = [p for name, p in model.named_parameters() if "lm_head" in name]
    covered = {id(p) for p in (*matrices, *embedding, *head)}
    if len(covered) != len(list(model.parameters())):
        raise ValueError("make_optimizers: the model has parameters outside blocks, wte and lm_head")
    adam = torch.optim.AdamW(
        [{"params": embedding, "lr": config.embed_lr}, {"params": head, "lr": config.head_lr}],
        betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0,
    )
    muon = Muon(matrices, lr=config.matrix_lr, momentum=0.95, weight_decay=config.weight_decay)
    for optimizer in (adam, muon):
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
    return [adam, muon]


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, batches: Batches, n_batches: int, device: torch.device) -> float:
    """Mean loss over the first ``n_batches`` batches of ``batches`` (weighted by counted tokens)."""
    was_training = model.training
    model.eval()
    total, counted = 0.0, 0
    for step in range(min(n_batches, batches.per_epoch)):
        x, y, m = (t.to(device) for t in batches.get(step))
        with _autocast(device):
            loss = model(x, y, m)
        n = int(m.sum())
        total, counted = total + float(loss) * n, counted + n
    model.train(was_training)
    return total / max(1, counted)


def save_state(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer], step: int,
               extra: dict) -> None:
    state = {"step": step, "model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
             "extra": extra}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> tuple[int, dict]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError) as error:
        raise UserError(f"{path}: cannot resume from this training state ({error}); "
                        f"delete it to start the stage over") from None
    return int(state["step"]), dict(state.get("extra", {}))


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def train(
    model: torch.nn.Module,
    batches: Batches,
    config: LoopConfig,
    state_dir: Path,
    val_batches: Batches | None = None,
    val_size: int = 8,
    name: str = "train",
    log: Callable[[str], None] = print,
    resume: bool = True,
    stop_after: int | None = None,
    on_history: Callable[[LossHistory], None] | None = None,
) -> LoopResult:
    """Train ``model`` for ``config.steps`` steps, saving its state in ``state_dir``.

    With ``resume`` and a saved state, continues from its step. ``stop_after`` ends the run
    early after that many steps in this call (as if interrupted, state saved) — for tests.
    ``on_history`` is called with the loss history at every progress line and validation.
    """
    device = next(model.parameters()).device
    optimizers = make_optimizers(model, config)
    state_path = Path(state_dir) / STATE_FILE
    start, extra = 0, {}
    if resume and state_path.is_file():
        start, extra = load_state(state_path, model, optimizers)
        log(f"{name}: resuming at step {start}/{config.steps} from {state_path}")
    loss_ema = extra.get("loss_ema")
    val_loss = extra.get("val_loss")
    history = LossHistory.from_json(extra.get("history"), upto=start)
    earlier = float(extra.get("seconds", 0.0))  # a resumed stage's time includes what came before
    tokens_per_step = batches.tokens_per_batch()
    model.train()
    step = start
    t0 = time.perf_counter()
    window_t, window_steps = t0, 0
    tok_s = 0.0

    def save() -> None:
        save_state(state_path, model, optimizers, step,
                   {"loss_ema": loss_ema, "val_loss": val_loss, "config": asdict(config),
                    "seconds": earlier + time.perf_counter() - t0, "history": history.to_json()})
        write_loss_file(Path(state_dir), name, history)

    try:
        while step < config.steps:
            if stop_after is not None and step - start >= stop_after:
                save()
                return LoopResult(step, loss_ema or math.nan, val_loss, time.perf_counter() - t0, tok_s, True, earlier)
            x, y, m = (t.to(device, non_blocking=True) for t in batches.get(step))
            with _autocast(device):
                loss = model(x, y, m)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            multiplier = lr_multiplier(step, config)
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * multiplier
                optimizer.step()
            model.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RuntimeError(f"{name}: loss became {value} at step {step}; lower the learning rates")
            loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
            step += 1
            window_steps += 1
            history.train.append((step, value))

            if step % config.log_every == 0 or step == config.steps:
                now = time.perf_counter()
                tok_s = window_steps * tokens_per_step / max(now - window_t, 1e-9)
                window_t, window_steps = now, 0
                eta = (config.steps - step) * tokens_per_step / max(tok_s, 1e-9)
                log(f"{name} step {step:5d}/{config.steps}  loss {loss_ema:.4f}  lr x{multiplier:.2f}  "
                    f"{tok_s:,.0f} tok/s  elapsed {_clock(now - t0)}  ETA {_clock(eta)}")
                if on_history is not None:
                    on_history(history)
            if val_batches is not None and (step % config.eval_every == 0 or step == config.steps):
                val_loss = validation_loss(model, val_batches, val_size, device)
                history.val.append((step, val_loss))
                log(f"{name} step {step:5d}/{config.steps}  val loss {val_loss:.4f}")
                if on_history is not None:
                    on_history(history)
            if step % config.save_every == 0 or step == config.steps:
                save()
    except KeyboardInterrupt:
        save()
        log(f"{name}: interrupted at step {step}; state saved to {state_path} — run the same command to resume")
        raise
    elapsed = time.perf_counter() - t0
    done = step - start
    return LoopResult(step, loss_ema if loss_ema is not None else math.nan, val_loss, elapsed,
                      done * tokens_per_step / max(elapsed, 1e-9), earlier_seconds=earlier)
