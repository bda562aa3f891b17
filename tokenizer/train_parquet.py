"""Parquet shards as trainer input (FineWeb-style ``shard_*.parquet`` with a ``text`` column).

Every shard's footer is checked before any text is read — the column is there and holds
strings — so a bad shard fails the run at once instead of after hours of counting. The text is
then read in this process a row group at a time (a few MB) and handed to the counting workers as
strings: memory holds a few row groups, never a shard. pyarrow is imported only here, and only
once the counting workers are running, so they never carry its pages or its threads.

A shard that cannot be read, lacks the column, holds something other than strings in it, or has
missing values there is an error naming the file: a tokenizer trained on silently fewer
documents is worse than none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from glasschat.errors import UserError

SUFFIX = ".parquet"


def _problem(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _open(path: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the C library's allocator: pyarrow's default pool (mimalloc) keeps what a row group used
    # after it is freed: 262 MB at peak for 40 MB of shards, against 215-229 MB with this one
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        return pq.ParquetFile(path)
    except OSError as error:
        if error.strerror:  # the file itself could not be opened
            raise UserError(f"{path}: cannot read: {error.strerror}") from None
        raise UserError(f"{path}: not a readable parquet file ({_problem(error)})") from None
    except Exception as error:  # pyarrow reports a bad footer as ArrowInvalid, OSError, ...
        raise UserError(f"{path}: not a readable parquet file ({_problem(error)})") from None


def check_shards(paths: Sequence[str], column: str) -> None:
    """Raise ``UserError`` for the first shard that cannot be read or has no string ``column``."""
    import pyarrow as pa

    for path in paths:
        schema = _open(path).schema_arrow
        index = schema.get_field_index(column)
        if index < 0:
            names = ", ".join(schema.names) or "none"
            raise UserError(f"{path}: no column {column!r} (columns: {names}); choose one with --column")
        kind = schema.field(index).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            raise UserError(f"{path}: column {column!r} holds {kind}, not strings")


def row_groups(path: str, column: str, size: int) -> Iterator[tuple[list[str], int]]:
    """The texts of each row group of one shard, with that row group's share of the file's
    ``size`` in bytes (for the progress line; the shares add up to ``size``)."""
    shard = _open(path)
    metadata = shard.metadata
    weights = [max(metadata.row_group(i).total_byte_size, 1) for i in range(metadata.num_row_groups)]
    total, done = sum(weights), 0
    for i, weight in enumerate(weights):
        try:
            values = shard.read_row_group(i, columns=[column]).column(0)
            texts = values.to_pylist()
        except Exception as error:  # a corrupt page: ArrowInvalid, OSError, UnicodeDecodeError, ...
            raise UserError(f"{path}: row group {i}: cannot read column {column!r} ({_problem(error)})") from None
        if values.null_count:
            missing = values.null_count
            raise UserError(f"{path}: row group {i}: {missing} missing value{'s' * (missing > 1)} in column {column!r}")
        share = size - done if i == len(weights) - 1 else size * weight // total
        done += share
        yield texts, share
