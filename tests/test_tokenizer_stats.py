"""``glasschat tokenizer stats DIR TEXT...``: bytes per token per input, checked against a
direct count, the length histograms, the charts, and one-line errors."""

import json

import pytest

from glasschat.cli import main
from tokenizer.stats import measure


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, tiny_tokenizer):
    directory = tmp_path_factory.mktemp("checkpoint") / "tokenizer"
    tiny_tokenizer.save(directory)
    return directory


ENGLISH = "The quick brown fox jumps over the lazy dog. What is 12 + 30? It's 42.\n" * 5
CHINESE = "你好，世界！今天天气很好。我们去公园散步吧。\n" * 5
CODE = "def add(a, b):\n    return a + b\n"
NOTES = "Spell banana: b-a-n-a-n-a.\n"


@pytest.fixture
def texts(tmp_path):
    (tmp_path / "english.txt").write_text(ENGLISH)
    (tmp_path / "chinese.txt").write_text(CHINESE)
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "a.py").write_text(CODE)
    (tree / "pkg" / "b.py").write_text(CODE * 2)
    (tree / "notes.md").write_text(NOTES)
    (tree / "image.bin").write_bytes(b"\x89PNG\0\0\0binary")
    (tree / ".hidden").mkdir()
    (tree / ".hidden" / "c.py").write_text("never counted")
    return tmp_path


def run_json(capsys, *args) -> dict:
    assert main(["tokenizer", "stats", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_bytes_per_token_equals_a_direct_count(tokenizer_dir, tiny_tokenizer, texts, capsys):
    report = run_json(capsys, tokenizer_dir, texts / "english.txt", texts / "chinese.txt", texts / "tree")
    rows = {row["input"]: row for row in report["inputs"]}
    assert list(rows) == [str(texts / "english.txt"), str(texts / "chinese.txt"), f"{texts / 'tree'}/*.md",
                          f"{texts / 'tree'}/*.py"]

    def expect(documents):
        n_bytes = sum(len(d.encode()) for d in documents)
        n_tokens = sum(len(tiny_tokenizer.encode(d)) for d in documents)
        return n_bytes, n_tokens, round(n_bytes / n_tokens, 4)

    for label, documents in [(str(texts / "english.txt"), [ENGLISH]), (str(texts / "chinese.txt"), [CHINESE]),
                             (f"{texts / 'tree'}/*.md", [NOTES]), (f"{texts / 'tree'}/*.py", [CODE, CODE * 2])]:
        row = rows[label]
        assert (row["bytes"], row["tokens"], row["bytes_per_token"]) == expect(documents), label
        assert row["files"] == len(documents)
    everything = [ENGLISH, CHINESE, NOTES, CODE, CODE * 2]
    total = report["all"]
    assert (total["bytes"], total["tokens"], total["bytes_per_token"]) == expect(everything)
    assert total["files"] == 5
    # English packs more bytes into a token than Chinese does with this small tokenizer... or
    # not: what matters is that the two are told apart, per input
    assert rows[str(texts / "english.txt")]["bytes_per_token"] != rows[str(texts / "chinese.txt")]["bytes_per_token"]
    assert len(report["skipped_files"]) == 1 and "image.bin" in report["skipped_files"][0]
    assert "binary" in report["skipped_files"][0]


def test_length_histograms_add_up(tokenizer_dir, tiny_tokenizer, texts, capsys):
    report = run_json(capsys, tokenizer_dir, texts / "english.txt", texts / "chinese.txt")
    vocabulary = {int(n): c for n, c in report["token_lengths"]["vocabulary"].items()}
    used = {int(n): c for n, c in report["token_lengths"]["used"].items()}
    assert sum(vocabulary.values()) == report["bpe_tokens"] == len(tiny_tokenizer.ranks)
    assert vocabulary[1] == 256  # every byte is a token of its own
    assert vocabulary == {n: sum(len(t) == n for t in tiny_tokenizer.ranks) for n in vocabulary}
    # as used: one entry per token, and a token's bytes add up to the text's
    assert sum(used.values()) == report["all"]["tokens"]
    assert sum(n * c for n, c in used.items()) == report["all"]["bytes"]


def test_the_report_shows_the_table_and_both_charts(tokenizer_dir, texts, capsys):
    assert main(["tokenizer", "stats", str(tokenizer_dir), str(texts / "english.txt"), str(texts / "tree")]) == 0
    out = capsys.readouterr().out
    assert "bytes/token" in out and "all" in out and "1 file in directories skipped" in out
    assert "bytes per token, 384-token vocabulary" in out and "token lengths" in out and "vocabulary" in out and "as used" in out
    assert "┤" in out  # a drawn chart, not only the table
    assert "\x1b[" not in out  # not a terminal: no colour codes

    assert main(["tokenizer", "stats", str(tokenizer_dir), str(texts / "english.txt"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "bytes/token" in out and "token lengths" not in out and "┤" not in out


def test_a_checkpoint_directory_finds_its_tokenizer_and_chart_writes_a_png(tokenizer_dir, texts, tmp_path, capsys):
    chart = tmp_path / "stats.png"
    report = run_json(capsys, tokenizer_dir.parent, texts / "english.txt", "--chart", chart)
    assert report["tokenizer"] == str(tokenizer_dir)
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_measure_is_the_library_call_behind_the_command(tiny_tokenizer, texts):
    stats = measure(tiny_tokenizer, "tiny", [str(texts / "english.txt")])
    assert stats.total.tokens == len(tiny_tokenizer.encode(ENGLISH))


@pytest.mark.parametrize("case, message", [
    ("missing-dir", "no such directory"),
    ("dir-is-file", "not a directory"),
    ("no-tokenizer", "missing"),
    ("missing-text", "no such file or directory"),
    ("empty", "empty file"),
    ("binary", "binary file"),
    ("latin1", "not UTF-8 text"),
    ("no-text-in-dir", "no text files in this directory"),
    ("chart-name", "give a name ending in .png"),
    ("chart-dir", "is a directory"),
])
def test_bad_input_is_one_line_on_stderr(tokenizer_dir, tmp_path, capsys, case, message):
    good = tmp_path / "good.txt"
    good.write_text("hello")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.dat").write_bytes(b"a\0b")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "only-binary").mkdir()
    (tmp_path / "only-binary" / "x.bin").write_bytes(b"\0\1")
    (tmp_path / "not-a-tokenizer").mkdir()
    args = {
        "missing-dir": [tmp_path / "nowhere", good],
        "dir-is-file": [good, good],
        "no-tokenizer": [tmp_path / "not-a-tokenizer", good],
        "missing-text": [tokenizer_dir, tmp_path / "nothing.txt"],
        "empty": [tokenizer_dir, tmp_path / "empty.txt"],
        "binary": [tokenizer_dir, tmp_path / "binary.dat"],
        "latin1": [tokenizer_dir, tmp_path / "latin1.txt"],
        "no-text-in-dir": [tokenizer_dir, tmp_path / "only-binary"],
        "chart-name": [tokenizer_dir, good, "--chart", tmp_path / "chart.jpg"],
        "chart-dir": [tokenizer_dir, good, "--chart", tmp_path / "only-binary.png"],
    }[case]
    if case == "chart-dir":
        (tmp_path / "only-binary.png").mkdir()
    assert main(["tokenizer", "stats", *map(str, args)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert captured.out == ""
