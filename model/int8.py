"""int8 weights: per-output-channel quantization, and the CPU kernel that multiplies by them.

A matrix ``W`` (nn.Linear's ``(out, in)`` layout) is stored as ``q`` (int8, same shape) and
``scale`` (fp32, one per output row) with ``W ≈ q · scale[:, None]``: symmetric, zero point 0,
``|q| ≤ 127``, each row's largest weight mapped to ±127. An embedding table is quantized the
same way, one scale per token row.

Decoding on a CPU streams every weight once per token, so a step costs about its bytes: int8
reads a quarter of fp32's. The product runs in fbgemm's dynamic-int8 linear
(``torch.ops.quantized.linear_dynamic``): the input row is quantized to uint8 on the fly (one
scale per call), multiplied in integers against fbgemm's packed copy of ``q`` and scaled back to
fp32. Measured at one thread, one token, at d12's shapes, it is 3–7× faster than an fp32
matrix-vector product; ``torch._weight_int8pack_mm`` and torchao's eager int8 paths were slower
than fp32 on the same CPU. fbgemm keeps only its packed copy (not the int8 tensor it was given),
so a packed matrix holds one int8 copy of the weights.

This module is the only place that knows the kernel: ``Int8Matrix`` offers ``y = x @ W`` the way
``model.weights`` needs it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache

import torch

QMAX = 127
# Work on blocks of rows of at most this many weights: the temporaries of quantizing and packing
# (an fp32 block, the quantized tensor fbgemm copies from) stay a few MB even for a lm_head of
# 65536 rows, and a mapped source can drop each block's pages as soon as it is done.
BLOCK_WEIGHTS = 1 << 22

Consumed = Callable[[int, int], None]  # rows [start, end) of the source have been read for good


def block_rows(shape: tuple[int, int]) -> int:
    return max(1, BLOCK_WEIGHTS // max(1, shape[1]))


def quantize(w: torch.Tensor, consumed: Consumed | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: ``w`` (rows, cols) as int8 with one fp32 scale per row. A row of zeros
    gets scale 1 (and stays zeros). ``w`` is only read; ``consumed`` hears of each block done."""
    q = torch.empty(w.shape, dtype=torch.int8)
    scale = torch.empty(w.shape[0], dtype=torch.float32)
    step = block_rows(tuple(w.shape))
    for start in range(0, w.shape[0], step):
        q[start : start + step], scale[start : start + step] = _quantize_block(w[start : start + step])
        if consumed is not None:
            consumed(start, min(start + step, w.shape[0]))
    return q, scale


def _quantize_block(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = w.float()  # may be ``w`` itself: never written to
    amax = rows.abs().amax(dim=1)
    s = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
    return torch.div(rows, s[:, None]).round_().clamp_(-QMAX, QMAX).to(torch.int8), s


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The float matrix ``q · scale[:, None]``."""
    return (q.to(dtype) * scale.to(dtype)[:, None]).contiguous()


def available() -> bool:
    """Whether this torch build has the int8 kernel (fbgemm on x86, qnnpack on ARM)."""
    return any(engine in torch.backends.quantized.supported_engines for engine in ("fbgemm", "x86", "qnnpack"))


@cache
def _reduce_range() -> bool:
    """Whether the kernel must quantize inputs to 7 bits. Without VNNI, fbgemm sums pairs of
    uint8·int8 products in int16, which full 8-bit inputs can overflow; with VNNI
    (``vpdpbusd``) the sums are int32 and 8 bits are both exact and faster (measured)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return True
    return not ("avx512_vnni" in flags or "avx_vnni" in flags)


class Int8Matrix:
    """``y = x @ W`` for ``W`` of shape ``(in, out)``, held as fbgemm's packed int8 copies of
    blocks of ``W``'s output rows, with per-output-channel scales.

    ``Int8Matrix(q, scale)`` packs int8 rows (``(out, in)``, nn.Linear's layout);
    ``Int8Matrix.from_float(w, scale)`` quantizes float rows block by block as it packs them.
    Each block is one kernel call; the kernel quantizes the input from its own min and max, the
    same for every block, so the blocks give what one call would.
    """

    format = "int8"
    views = ()  # fbgemm packs a copy of its own: nothing here views the source's tensors

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, consumed: Consumed | None = None):
        if q.dtype != torch.int8 or q.dim() != 2 or scale.shape != (q.shape[0],):
            raise ValueError(f"int8 matrix needs q (out, in) int8 and scale (out,), got {tuple(q.shape)} {q.dtype}, {tuple(scale.shape)}")
        self._start(q.shape)
        step = block_rows(tuple(q.shape))
        for start in range(0, q.shape[0], step):
            self._add_block(q[start : start + step], scale[start : start + step])
            if consumed is not None:
                consumed(start, min(start + step, q.shape[0]))

    @classmethod
    def from_float(cls, w: torch.Tensor, scale: float = 1.0, consumed: Consumed | None = None) -> Int8Matrix:
        """Quantize ``w`` (``(out, in)``, read only) times ``scale``, one block at a time."""
        matrix = cls.__new__(cls)
        matrix._start(w.shape)
        step = block_rows(tuple(w.shape))
        for start in range(0, w.shape[0], step):
            q, s = _quantize_block(w[start : start + step])
            matrix._add_block(q, s * scale)
            if consumed is not None:
                consumed(start, min(start + step, w.shape[0]))
        return matrix

    def _start(self, shape) -> None:
        out_features, in_features = shape
        self.shape = (in_features, out_features)
        self.nbytes = out_features * in_features + 4 * out_features
        self._blocks: list[tuple[int, int, object]] = []
        self._reduce_range = _reduce_range()

    def _add_block(self, q: torch.Tensor, scale: torch.Tensor) -> None:
        with warnings.catch_warnings():
            # quantized-tensor constructors warn that they are deprecated; the packed weight they
            # build here is the only way into the kernel, and no quantized tensor outlives this call
            warnings.simplefilter("ignore", UserWarning)
            weight = torch._make_per_channel_quantized_tensor(
                q.contiguous(), scale.double(), torch.zeros(q.shape[0], dtype=torch.long), 0
            )
            packed = torch.ops.quantized.linear_prepack(weight, None)
        start = self._blocks[-1][1] if self._blocks else 0
        self._blocks.append((start, start + q.shape[0], packed))

    def mm(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ W`` (fp32), into ``out`` when given."""
        if len(self._blocks) == 1:
            y = torch.ops.quantized.linear_dynamic(x, self._blocks[0][2], self._reduce_range)
            return y if out is None else out.copy_(y)
        if out is None:
            out = torch.empty((x.shape[0], self.shape[1]), dtype=torch.float32)
        for start, end, packed in self._blocks:
            out[:, start:end] = torch.ops.quantized.linear_dynamic(x, packed, self._reduce_range)
        return out

    def addmm_(self, acc: torch.Tensor, x: torch.Tensor, alpha: float = 1.0) -> None:
        """``acc += alpha · x @ W``."""
        if len(self._blocks) == 1:
            acc.add_(torch.ops.quantized.linear_dynamic(x, self._blocks[0][2], self._reduce_range), alpha=alpha)
        else:
            acc.add_(self.mm(x), alpha=alpha)


class Int8Table:
    """An embedding table stored as int8 rows with a scale per row; ``rows(ids)`` gives fp32."""

    format = "int8"

    def __init__(self, q: torch.Tensor, scale: torch.Tensor):
        self.q, self.scale = q, scale
        self.nbytes = q.numel() + 4 * q.shape[0]
        self.views = (q, scale)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self.q.index_select(0, ids).float().mul_(self.scale.index_select(0, ids)[:, None])
