"""What the trainer reads (files, lines, JSONL, directories, stdin, --max-chars, --doc-cap) and how
it reports bad input: a warning for invalid UTF-8, one line and exit code 2 for mistakes."""

import io
import json
import os
import subprocess
import sys
import time

import pytest

from tokenizer import train_inputs
from tokenizer.files import load_tokenizer_files
from tokenizer.trainer import TrainingWarning, train_tokenizer

DOCS = ["the cat sat on the mat", "a dog ate the hat\r", "the cat and the dog", "x" * 50, "mat hat cat sat"]


def train(inputs, tmp_path, **options):
    options.setdefault("workers", 1)
    return train_tokenizer(inputs, 270, tmp_path / "tok", progress=False, **options)


def test_plain_files_are_one_document_each(tmp_path):
    paths = []
    for i, doc in enumerate(DOCS):
        paths.append(tmp_path / f"{i}.txt")
        paths[-1].write_text(doc, encoding="utf-8")
    result = train(paths, tmp_path)
    assert (result.documents, result.chars) == (len(DOCS), sum(map(len, DOCS)))


def test_split_lines_makes_each_line_a_document(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes("\n".join(DOCS).encode() + b"\n\n")
    result = train([path], tmp_path, split_lines=True)
    assert result.documents == len(DOCS)
    assert result.chars == sum(len(d.rstrip("\r")) for d in DOCS)  # line endings are not text


def test_jsonl_text_field_and_directories_recursively(tmp_path):
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "a.txt").write_text(DOCS[0], encoding="utf-8")
    (tmp_path / "corpus" / "sub" / "b.jsonl").write_text(
        "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS[1:])) + "\n", encoding="utf-8")
    (tmp_path / "corpus" / ".hidden.txt").write_text("never read", encoding="utf-8")
    (tmp_path / "corpus" / ".git").mkdir()
    (tmp_path / "corpus" / ".git" / "HEAD").write_text("never read", encoding="utf-8")
    result = train([tmp_path / "corpus"], tmp_path)
    assert (result.documents, result.chars) == (len(DOCS), sum(map(len, DOCS)))


def test_stdin(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(DOCS).encode())))
    result = train(["-"], tmp_path, split_lines=True)
    assert result.documents == len(DOCS)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(DOCS).encode())))
    result = train(["-"], tmp_path)
    assert (result.documents, result.chars) == (1, len("\n".join(DOCS)))


@pytest.mark.parametrize("workers", [1, 2])
def test_max_chars_stops_after_the_document_that_crosses_it(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(train_inputs, "ITEM_BYTES", 30)  # several work items
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    lengths = [len(d.rstrip("\r")) for d in DOCS]
    budget = lengths[0] + lengths[1] + 1  # crossed by the third document
    result = train([path], tmp_path, split_lines=True, max_chars=budget, workers=workers)
    assert (result.documents, result.chars) == (3, sum(lengths[:3]))


def test_doc_cap_truncates_each_document(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    result = train([path], tmp_path, split_lines=True, doc_cap=10)
    assert result.chars == sum(min(10, len(d.rstrip("\r"))) for d in DOCS)


def test_invalid_utf8_is_a_warning_naming_the_file(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(DOCS[0], encoding="utf-8")
    bad.write_bytes(b"caf\xe9 \xff\xfe the cat " + "\ud800".encode("utf-8", "surrogatepass"))
    with pytest.warns(TrainingWarning, match=r"bad\.txt: invalid UTF-8 \(first at byte 3\)"):
        result = train([good, bad], tmp_path)
    assert len(result.warnings) == 1 and "good.txt" not in result.warnings[0]
    ranks, _, _ = load_tokenizer_files(tmp_path / "tok")
    assert ranks == result.ranks


def test_lone_surrogate_in_jsonl_is_replaced(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "ab\\ud800cd abab"}\n', encoding="utf-8")
    with pytest.warns(TrainingWarning, match="lone surrogate"):
        result = train([path], tmp_path)
    assert result.documents == 1


def run_cli(*args, stdin=b""):
    return subprocess.run([sys.executable, "-m", "glasschat", "tokenizer", "train", *map(str, args)],
                          input=stdin, capture_output=True, timeout=60)


def test_cli_trains_and_reports_warnings_on_one_line(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"abab \xff abab abc")
    done = run_cli(tmp_path / "bad.txt", "--vocab-size", 300, "--out", tmp_path / "tok", "--workers", 2)
    assert done.returncode == 0, done.stderr
    err = done.stderr.decode().splitlines()
    assert f"glasschat: warning: {tmp_path / 'bad.txt'}: invalid UTF-8 (first at byte 5), replaced with U+FFFD" in err
    assert "trained" in done.stdout.decode()
    load_tokenizer_files(tmp_path / "tok")


def _error_cases(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "ok.txt").write_text("abab abab", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n\n{"text": \n', encoding="utf-8")
    out = ["--out", tmp_path / "tok"]
    return {
        "missing file": ([tmp_path / "nope.txt", "--vocab-size", 300, *out], "nope.txt: no such file"),
        "empty corpus": ([tmp_path / "empty.txt", "--vocab-size", 300, *out], "empty.txt: no text to train on"),
        "vocab too small": ([tmp_path / "ok.txt", "--vocab-size", 264, *out], "--vocab-size: must be at least 265"),
        "vocab too large": ([tmp_path / "ok.txt", "--vocab-size", 2_000_000, *out], "--vocab-size: at most"),
        "bad regex": ([tmp_path / "ok.txt", "--vocab-size", 300, "--pattern", "([a-", *out], "--pattern:"),
        "jsonl field": ([tmp_path / "bad.jsonl", "--vocab-size", 300, *out], "bad.jsonl: line 2: expected a JSON"),
        "jsonl syntax": ([tmp_path / "broken.jsonl", "--vocab-size", 300, *out], "broken.jsonl: line 3: not valid JSON"),
        "bad workers": ([tmp_path / "ok.txt", "--vocab-size", 300, "--workers", 0, *out], "--workers: must be at least 1"),
        "too many workers": ([tmp_path / "ok.txt", "--vocab-size", 300, "--workers", 1000, *out],
                             "--workers: at most"),
        "out is a file": ([tmp_path / "ok.txt", "--vocab-size", 300, "--out", tmp_path / "ok.txt"],
                          "ok.txt: --out must be a directory"),
    }


@pytest.mark.parametrize("case", ["missing file", "empty corpus", "vocab too small", "vocab too large", "bad regex", "jsonl field",
                                  "jsonl syntax", "bad workers", "too many workers", "out is a file"])
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, case):
    args, message = _error_cases(tmp_path)[case]
    done = run_cli(*args)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("glasschat: error: ") and message in err
    assert not (tmp_path / "tok").exists()  # nothing half-written


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.extend(int(c) for c in f.read().split())
    return found


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line for line in f)  # a zombie has ended
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_ends_the_counting_workers_too(tmp_path):
    # standard input left open: the trainer waits on it while its helpers wait for work
    process = subprocess.Popen([sys.executable, "-m", "glasschat", "tokenizer", "train", "-", "--split-lines",
                                "--vocab-size", "300", "--out", str(tmp_path / "tok"), "--workers", "3"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(helpers := _children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(helpers) == 2
        process.terminate()
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not all(map(_ended, helpers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(map(_ended, helpers))
    finally:
        process.kill()
        process.stdin.close()
    assert not (tmp_path / "tok").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("abab", encoding="utf-8")
    path.chmod(0)
    done = run_cli(path, "--vocab-size", 300, "--out", tmp_path / "tok")
    assert done.returncode == 2 and "secret.txt: cannot read" in done.stderr.decode()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_on_a_terminal_only(tmp_path, monkeypatch):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(DOCS * 20) + "\n", encoding="utf-8")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train_tokenizer([path], 270, tmp_path / "tok", workers=1, split_lines=True)
    shown = terminal.getvalue()
    assert "counting" in shown and "MB/s" in shown
    assert "merging" in shown and "merges/s" in shown and "5/5 merges" in shown
    for quiet in (dict(progress=False), dict()):
        monkeypatch.setattr(sys, "stderr", _Terminal() if quiet else io.StringIO())  # a pipe: not a TTY
        train_tokenizer([path], 270, tmp_path / "tok", workers=1, split_lines=True, **quiet)
        assert sys.stderr.getvalue() == ""
