"""Parquet shards as trainer input: nanochat's tokenizer corpus (``shard_*.parquet``, a ``text``
column) read in row groups, ``--max-chars`` and ``--doc-cap`` applied as nanochat applies them,
the same merges as rustbpe fed the same documents; a bad shard is one line and nothing written."""

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rustbpe

from test_trainer import corpora
from tokenizer import train_inputs
from tokenizer.patterns import NANOCHAT
from tokenizer.specials import SPECIAL_TOKENS
from tokenizer.trainer import train_tokenizer

VOCAB = 600


def documents() -> list[str]:
    mixed = corpora()
    return [t for name in ("english", "cjk", "emoji", "crlf", "digit_and_space_runs") for t in mixed[name]]


def write_shards(directory, texts: list[str], shards: int = 3, row_group_size: int = 7) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(shards):
        paths.append(directory / f"shard_{n:05d}.parquet")
        table = pa.table({"id": list(range(len(texts[n::shards]))), "text": texts[n::shards]})
        pq.write_table(table, paths[-1], row_group_size=row_group_size)
    return paths


def nanochat_stream(paths, max_chars: int, doc_cap: int):
    """The documents nanochat's tokenizer training hands rustbpe: each shard's row groups in
    order, every document cropped to ``doc_cap``, stopping after the one that takes the total
    past ``max_chars``."""
    total = 0
    for path in paths:
        shard = pq.ParquetFile(path)
        for i in range(shard.num_row_groups):
            for text in shard.read_row_group(i).column("text").to_pylist():
                text = text[:doc_cap]
                total += len(text)
                yield text
                if total > max_chars:
                    return


def rustbpe_ranks(texts) -> dict[bytes, int]:
    tokenizer = rustbpe.Tokenizer()
    tokenizer.train_from_iterator(texts, VOCAB - len(SPECIAL_TOKENS), pattern=NANOCHAT)
    return {bytes(token): rank for token, rank in tokenizer.get_mergeable_ranks()}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("max_chars,doc_cap", [(10**12, 10**9), (15_000, 200)])
def test_shards_give_rustbpes_merges_on_the_same_documents(tmp_path, monkeypatch, workers, max_chars, doc_cap):
    monkeypatch.setattr(train_inputs, "ITEM_BYTES", 3000)  # several items per shard
    paths = write_shards(tmp_path / "base_data", documents())
    (tmp_path / "base_data" / "shard_00003.parquet.tmp").write_bytes(b"an unfinished download")
    result = train_tokenizer([tmp_path / "base_data"], VOCAB, tmp_path / "tok", workers=workers,
                             max_chars=max_chars, doc_cap=doc_cap, progress=False)
    expected_docs = list(nanochat_stream(paths, max_chars, doc_cap))
    assert (result.documents, result.chars) == (len(expected_docs), sum(map(len, expected_docs)))
    assert result.ranks == rustbpe_ranks(iter(expected_docs))
    if max_chars < 10**12:
        assert result.documents < len(documents())


def test_column_option_and_mixed_inputs(tmp_path):
    texts = documents()[:40]
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"body": texts}), path)
    text_file = tmp_path / "extra.txt"
    text_file.write_text("plain text after the shard", encoding="utf-8")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"text": "not this", "body": "but this"}\n', encoding="utf-8")
    result = train_tokenizer([path, text_file, jsonl], VOCAB, tmp_path / "tok", column="body", workers=1,
                             progress=False)
    assert result.documents == 42
    assert result.ranks == rustbpe_ranks(iter(texts + ["plain text after the shard", "but this"]))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "glasschat", "tokenizer", "train", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _bad_shards(tmp_path):
    good = write_shards(tmp_path / "good", documents()[:30], shards=1)[0]
    no_column = tmp_path / "no_column.parquet"
    pq.write_table(pa.table({"content": ["some text"] * 5}), no_column)
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), numbers)
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"text": ["a doc", None, "another"]}), nulls)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not a parquet file at all PAR1")
    # a shard whose footer is fine but whose data pages are not: flip bytes in the first page
    corrupt = tmp_path / "corrupt.parquet"
    data = bytearray(good.read_bytes())
    data[8:400] = bytes(392)
    corrupt.write_bytes(bytes(data))
    return {
        "no_column": (no_column, "no column 'text' (columns: content)"),
        "numbers": (numbers, "column 'text' holds int64, not strings"),
        "nulls": (nulls, "1 missing value in column 'text'"),
        "truncated": (truncated, "not a readable parquet file"),
        "garbage": (garbage, "not a readable parquet file"),
        "corrupt": (corrupt, "row group 0: cannot read column 'text'"),
    }, good


@pytest.mark.parametrize("case", ["no_column", "numbers", "nulls", "truncated", "garbage", "corrupt"])
def test_bad_shard_is_one_line_naming_the_file_and_nothing_written(tmp_path, case):
    cases, good = _bad_shards(tmp_path)
    bad, message = cases[case]
    out = tmp_path / "out"
    result = run_cli(good, bad, "--vocab-size", 300, "--out", out, "--workers", 2)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"glasschat: error: {bad}: ") and message in result.stderr
    assert not out.exists()
