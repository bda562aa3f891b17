"""A safetensors file mapped into memory: its tensors are views of the file's pages.

Nothing is read up front and nothing is copied: a page is loaded from the file (or the page
cache) the first time it is touched, and counts as resident memory from then on. The mapping is
private (copy-on-write), so a tensor may be written in place (training does) without changing
the file. Once a tensor has been copied into another layout (the engine packs its weights),
``release`` hands its pages back to the kernel, so the file's copy and the packed copy of a
model never both stay resident. The mapping itself goes away with the last tensor viewing it.

The format (https://huggingface.co/docs/safetensors): 8 bytes little-endian header length N,
N bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data, offsets relative to its start.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Iterable

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_PAGE = mmap.PAGESIZE


class MappedFile:
    """``tensors`` (name -> view) and ``metadata`` of a safetensors file. A malformed file raises
    ``ValueError`` saying what is wrong."""

    def __init__(self, path: str | os.PathLike):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise ValueError(f"{size} bytes, shorter than a header")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        n = int.from_bytes(self._map[:8], "little")
        if n > size - 8:
            raise ValueError(f"header of {n} bytes in a file of {size}")
        try:
            header = json.loads(bytes(self._map[8 : 8 + n]))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"header is not JSON ({error})") from None
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        self.metadata = header.pop("__metadata__", None) or {}
        base = 8 + n
        self.tensors: dict[str, torch.Tensor] = {}
        self._spans: dict[str, tuple[int, int]] = {}
        for name, info in header.items():
            try:
                dtype, shape = DTYPES[info["dtype"]], [int(d) for d in info["shape"]]
                begin, end = (int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"tensor {name}: malformed header entry {info!r}") from None
            count = math.prod(shape)
            if not (0 <= begin <= end <= size - base) or end - begin != count * dtype.itemsize or min(shape, default=1) < 0:
                raise ValueError(f"tensor {name}: data_offsets {[begin, end]} do not fit its shape {shape} or the file")
            if count == 0:
                tensor = torch.empty(shape, dtype=dtype)
            else:
                tensor = torch.frombuffer(self._map, dtype=dtype, count=count, offset=base + begin).view(shape)
            self.tensors[name] = tensor
            self._spans[name] = (base + begin, base + end)
        self._address = torch.frombuffer(self._map, dtype=torch.uint8, count=1).data_ptr()

    @property
    def nbytes(self) -> int:
        return sum(end - begin for begin, end in self._spans.values())

    def release(self, names: Iterable[str], keep: Iterable[torch.Tensor] = ()) -> None:
        """Drop the named tensors' pages from memory, except pages that a tensor in ``keep``
        still views (they stay: that view is then the one copy). Touching a released tensor
        again reads it from the file anew."""
        kept = [(t.data_ptr() - self._address, t.data_ptr() - self._address + _extent(t)) for t in keep
                if 0 <= t.data_ptr() - self._address < len(self._map)]
        for name in names:
            begin, end = self._spans[name]
            if any(b < end and begin < e for b, e in kept):
                continue
            self._drop(begin, end)

    def release_rows(self, name: str, start: int, end: int) -> None:
        """Drop the pages of rows ``[start, end)`` of the named tensor (copied elsewhere for good)."""
        tensor = self.tensors[name]
        row_bytes = tensor[0].numel() * tensor.element_size() if tensor.dim() > 0 and len(tensor) else 0
        base = self._spans[name][0]
        self._drop(base + start * row_bytes, base + end * row_bytes)

    def _drop(self, begin: int, end: int) -> None:
        begin, end = -(-begin // _PAGE) * _PAGE, end // _PAGE * _PAGE  # whole pages inside the span only
        if end > begin:
            self._map.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def _extent(t: torch.Tensor) -> int:
    """Bytes from a tensor's first element to just past its last, whatever its strides."""
    if t.numel() == 0:
        return 0
    return (sum((size - 1) * stride for size, stride in zip(t.shape, t.stride())) + 1) * t.element_size()
