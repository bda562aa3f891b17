"""Muon for the transformer's matrices, with the orthogonalisation in a dtype the device is fast at.

Muon keeps a momentum buffer per matrix and steps along the buffer made (nearly) orthogonal by
five Newton-Schulz iterations, as torch's ``torch.optim.Muon`` does. torch's version runs those
iterations in bfloat16 everywhere. On a CPU without bfloat16 instructions (AVX2-only machines,
most laptops) a bfloat16 matmul is emulated, tens of times slower than float32, and these
iterations become most of a training step (measured: docs/default-model-experiments.md).
So: bfloat16 on CUDA (as torch does), float32 on a CPU. The update is otherwise torch's:
Nesterov momentum, the same coefficients, the learning rate scaled by sqrt(max(1, rows / cols)),
decoupled weight decay.
"""

from __future__ import annotations

import math

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # the quintic that torch's and nanochat's Muon use
NS_STEPS = 5
EPS = 1e-7


def orthogonalise(update: torch.Tensor, dtype: torch.dtype, steps: int = NS_STEPS) -> torch.Tensor:
    """``update`` with its singular values pushed towards 1 (Newton-Schulz), in ``dtype``."""
    a, b, c = NS_COEFFICIENTS
    x = update.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide side: the Gram matrix is the smaller one
        x = x.T
    x = x / x.norm().clamp(min=EPS)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def ns_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.95, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.ndim != 2:
                    raise ValueError("Muon: every parameter must be a matrix")
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(param.grad, 1 - momentum)
                update = param.grad.lerp(buf, momentum)  # Nesterov
                update = orthogonalise(update, ns_dtype(param.device)).to(param.dtype)
                rows, cols = param.shape
                param.mul_(1 - lr * decay)
                param.add_(update, alpha=-lr * math.sqrt(max(1.0, rows / cols)))
