"""How the engine's weights are stored, behind one interface: ``y = x @ W``.

The engine asks a packed matrix for ``mm(x, out)`` (``x @ W``) and ``addmm_(acc, x, alpha)``
(``acc += alpha · x @ W``), and a packed table for ``rows(ids)``; it never sees how they are
stored. Two weight formats:

- a float dtype (``fp32`` on a CPU; ``bf16``/``fp16`` for a model on a GPU): ``Dense``, the
  matrix laid out ``(in, out)``. A matrix with at least as many outputs as inputs is a
  transposed, contiguous copy (the layout a matrix-vector product streams fastest); one with more
  inputs than outputs is a transposed *view* of nn.Linear's ``(out, in)`` layout, as fast, so it
  is not copied. Tables stay in their stored dtype and convert the rows looked up.
- ``int8``: ``model.int8``'s per-output-channel int8 (a quarter of fp32's bytes per step).

Weights come from a source: a ``StateSource`` over a state dict (a ``GPT``'s, or a mapped
checkpoint file's tensors). Its ``rows(name)`` is the tensor as stored, nn.Linear's layout, with
its per-row scales if it is int8 (the checkpoint holds ``NAME_scale`` beside ``NAME``); the
engine permutes, concatenates and scales those rows into its layout, then calls ``pack_*``.
``release(names, keep)`` tells the source the engine is done with those tensors: a mapped file
then drops their pages, unless a packed view (``views``) still reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch

from model import int8

SCALE_SUFFIX = "_scale"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FORMATS = (*DTYPES, "int8")


# the gates (value embedding, smear) are a few dozen numbers per head that the engine keeps
# dense: an int8 checkpoint leaves them float, so int8 at load and from a file run the same weights
FLOAT_GATES = ("ve_gate.weight", "smear_gate.weight")


def stored_int8(name: str, shape) -> bool:
    """Whether an int8 checkpoint holds tensor ``name`` of ``shape`` as int8: every matrix and
    embedding table except the gates."""
    return len(shape) == 2 and not name.endswith(FLOAT_GATES)


def format_of(dtype: torch.dtype) -> str:
    """The weight format name of a float dtype (``fp32`` …)."""
    return {v: k for k, v in DTYPES.items()}[dtype]


class Rows(NamedTuple):
    """A matrix in nn.Linear's ``(out, in)`` layout as stored: floats (``scale`` None), or int8
    with one scale per row. ``consumed(start, end)``, when given, may be told that rows
    ``[start, end)`` have been copied for good (a mapped file then drops their pages at once)."""

    data: torch.Tensor
    scale: torch.Tensor | None = None
    consumed: int8.Consumed | None = None

    def take(self, index: torch.Tensor) -> Rows:
        return Rows(self.data[index], None if self.scale is None else self.scale[index])

    def head(self, n: int) -> Rows:
        """The first ``n`` rows (a padded vocabulary's real tokens), still views of the stored tensor."""
        if n == len(self.data):
            return self
        return Rows(self.data[:n], None if self.scale is None else self.scale[:n], self.consumed)

    @staticmethod
    def cat(parts: list[Rows]) -> Rows:
        if any(p.scale is None for p in parts) and any(p.scale is not None for p in parts):
            raise ValueError("cannot join int8 rows to float rows")
        scales = None if parts[0].scale is None else torch.cat([p.scale for p in parts])
        return Rows(torch.cat([p.data for p in parts]), scales)

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        """The float matrix (the stored tensor itself when it already is ``dtype``)."""
        return self.data.to(dtype) if self.scale is None else int8.dequantize(self.data, self.scale, dtype)

    def quantized(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q, scale)``: the stored int8, or these floats quantized."""
        return (self.data, self.scale) if self.scale is not None else int8.quantize(self.data, self.consumed)


class Dense:
    """``y = x @ W`` for a float ``W`` held as ``(in, out)``."""

    def __init__(self, w: torch.Tensor):
        self.w, self.shape, self.format = w, tuple(w.shape), format_of(w.dtype)
        self.nbytes = w.numel() * w.element_size()
        self.views = (w,)

    def mm(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.mm(x, self.w) if out is None else torch.mm(x, self.w, out=out)

    def addmm_(self, acc: torch.Tensor, x: torch.Tensor, alpha: float = 1.0) -> None:
        acc.addmm_(x, self.w, alpha=alpha)


class DenseTable:
    """An embedding table in its stored float dtype; ``rows(ids)`` converts to ``dtype``."""

    def __init__(self, table: torch.Tensor, dtype: torch.dtype):
        self.table, self.dtype, self.format = table, dtype, format_of(dtype)
        self.nbytes = table.numel() * table.element_size()
        self.views = (table,)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.embedding(self.table, ids).to(self.dtype)


def pack_matrix(rows: Rows, weight_format: str, scale: float = 1.0):
    """``rows`` (nn.Linear's ``(out, in)``) times ``scale``, packed for ``x @ W`` in ``weight_format``."""
    if weight_format == "int8":
        if rows.scale is None:
            return int8.Int8Matrix.from_float(rows.data, scale, rows.consumed)
        return int8.Int8Matrix(rows.data, rows.scale * scale, rows.consumed)
    dtype = DTYPES[weight_format]
    out_features, in_features = rows.data.shape
    if out_features < in_features and scale == 1:
        return Dense(rows.dense(dtype).t())
    w = rows.data if rows.scale is None else rows.dense(dtype)
    packed = torch.empty((in_features, out_features), dtype=dtype, device=w.device)
    step = int8.block_rows((out_features, in_features))
    for start in range(0, out_features, step):  # by blocks, so that the source's pages go as they are copied
        packed[:, start : start + step].copy_(w[start : start + step].t())  # converts the dtype on the way
        if rows.consumed is not None and w is rows.data:
            rows.consumed(start, min(start + step, out_features))
    if scale != 1:
        packed.mul_(scale)
    return Dense(packed)


def pack_table(rows: Rows, weight_format: str):
    """An embedding table for ``rows(ids)`` lookups in ``weight_format``."""
    if weight_format == "int8":
        return int8.Int8Table(*rows.quantized())
    dtype = DTYPES[weight_format]
    return DenseTable(rows.data if rows.scale is None else rows.dense(dtype), dtype)


class StateSource:
    """Weights by name from a state dict; ``int8`` tensors have ``NAME_scale`` beside them."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.state = state

    @property
    def format(self) -> str:
        """``int8`` if the matrices are stored int8, else the float format of the lm_head."""
        head = self.state["lm_head.weight"]
        return "int8" if head.dtype == torch.int8 else format_of(head.dtype)

    def rows(self, name: str) -> Rows:
        return Rows(self.state[name], self.state.get(name + SCALE_SUFFIX), self._consumed(name))

    def _consumed(self, name: str) -> int8.Consumed | None:
        return None

    def nbytes(self, name: str) -> int:
        return sum(t.numel() * t.element_size() for t in (self.state[name], self.state.get(name + SCALE_SUFFIX)) if t is not None)

    def release(self, names: Iterable[str], keep: Iterable[torch.Tensor] = ()) -> None:
        """A state dict's tensors belong to their owner: nothing to hand back."""


class MappedSource(StateSource):
    """Weights by name from a mapped safetensors file (``model.mapped``); ``release`` drops the
    pages of tensors the engine has copied."""

    def __init__(self, mapped):
        super().__init__(mapped.tensors)
        self.mapped = mapped

    def release(self, names: Iterable[str], keep: Iterable[torch.Tensor] = ()) -> None:
        names = [n for name in names for n in (name, name + SCALE_SUFFIX) if n in self.state]
        self.mapped.release(names, keep)

    def _consumed(self, name: str) -> int8.Consumed:
        return lambda start, end: self.mapped.release_rows(name, start, end)
