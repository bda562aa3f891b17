"""Token rows for training: packing rendered conversations and plain text into fixed-length rows,
and a deterministic batch order.

A row holds ``seq_len + 1`` tokens and a loss mask of the same length; a batch is
``(inputs, targets, mask)`` with ``inputs = row[:-1]``, ``targets = row[1:]``,
``mask = mask[1:]`` — the mask of the token being predicted. Conversations are packed whole
(never split across rows, each starting with ``<|bos|>``); the tail of a row that no further
conversation fits into is padding with mask 0. Text is one continuous stream of documents
separated by ``<|bos|>``, every position counted.

``Batches.get(step)`` depends only on the seed and the step, so a resumed run sees exactly the
batches the interrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Rows:
    """``ids`` and ``mask``: int64 / uint8 tensors of shape ``(n, seq_len + 1)``."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor):
        if ids.shape != mask.shape or ids.dim() != 2:
            raise ValueError("ids and mask must be 2-D tensors of the same shape")
        self.ids, self.mask = ids, mask

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.ids.shape[1] - 1

    def counted_tokens(self) -> int:
        """How many target positions carry loss."""
        return int(self.mask[:, 1:].sum())


def pack_conversations(rendered: Iterable[tuple[list[int], list[int]]], seq_len: int, pad_id: int) -> Rows:
    """Pack ``(ids, mask)`` pairs whole into rows; longer-than-a-row conversations are dropped."""
    width = seq_len + 1
    rows_ids: list[list[int]] = []
    rows_mask: list[list[int]] = []
    ids_row: list[int] = []
    mask_row: list[int] = []

    def flush() -> None:
        if ids_row:
            pad = width - len(ids_row)
            rows_ids.append(ids_row + [pad_id] * pad)
            rows_mask.append(mask_row + [0] * pad)

    for ids, mask in rendered:
        if len(ids) > width:
            continue
        if len(ids_row) + len(ids) > width:
            flush()
            ids_row, mask_row = [], []
        ids_row.extend(ids)
        mask_row.extend(mask)
    flush()
    return Rows(torch.tensor(rows_ids, dtype=torch.int64), torch.tensor(rows_mask, dtype=torch.uint8))


def pack_text(documents: Iterable[list[int]], seq_len: int, bos_id: int) -> Rows:
    """Cut a stream of ``<|bos|> doc <|bos|> doc ...`` into full rows (the remainder is dropped)."""
    width = seq_len + 1
    stream: list[int] = []
    for doc in documents:
        stream.append(bos_id)
        stream.extend(doc)
    n = len(stream) // width
    if n == 0:
        raise ValueError(f"not enough text for one row of {width} tokens ({len(stream)} tokens)")
    ids = torch.tensor(stream[: n * width], dtype=torch.int64).view(n, width)
    return Rows(ids, torch.ones_like(ids, dtype=torch.uint8))


class Batches:
    """Deterministic batches over ``rows``: each epoch is a fresh permutation drawn from ``seed``."""

    def __init__(self, rows: Rows, batch_size: int, seed: int):
        if len(rows) < batch_size:
            raise ValueError(f"{len(rows)} rows are fewer than one batch of {batch_size}")
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.per_epoch = len(rows) // batch_size
        self._epoch, self._order = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.rows), generator=generator)
        return self._order

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        picked = self._permutation(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        ids, mask = self.rows.ids[picked], self.rows.mask[picked]
        return ids[:, :-1], ids[:, 1:], mask[:, 1:]

    def tokens_per_batch(self) -> int:
        return self.batch_size * self.rows.seq_len
