"""Fuzzing what users hand glasschat: conversation JSON, replay scripts, saved chats, checkpoint
configs and command-line options. Every case must end in success or in exit code 2 with one
line on stderr — never a traceback, never a hang (each case runs under a time bound).

The default size fits the normal test run. A longer run, for a benchmark-style search:
``GLASSCHAT_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py`` (examples per target).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasschat import paths
from glasschat.cli import main

torch.set_num_threads(1)

EXAMPLES = int(os.environ.get("GLASSCHAT_FUZZ_EXAMPLES", "12"))
CASE_SECONDS = 60  # far above a case's normal time (well under a second): only a hang reaches it
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextlib.contextmanager
def time_bound(seconds: int = CASE_SECONDS):
    """Fail the case instead of hanging the suite."""
    def expired(signum, frame):
        raise AssertionError(f"a fuzz case ran past {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(capsys, argv: list[str], per_line: bool = False) -> int:
    """``glasschat ARGV`` in this process: 0 or 2, and on 2 exactly one line on stderr — or, for
    a command that reports each bad entry and goes on (``per_line``), one line per entry."""
    with time_bound():
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code
    out, err = capsys.readouterr()
    assert code in (0, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    if code == 2 and not per_line:
        assert err.count("\n") == 1 and err.startswith("glasschat"), err[-2000:]
    if code == 2 and per_line:
        assert all(line.startswith(("glasschat", "transcript: ", "line ")) for line in err.splitlines()), err[-2000:]
    return code


# ---- strategies

# text with the characters that break things: controls, lone surrogates, special-token look-alikes
odd_char = st.characters(codec=None) | st.sampled_from(["\ud800", "\udfff", "\x00", "\u2028", "\ufffd", "😀"])
odd_text = st.lists(st.text(odd_char, max_size=12) | st.sampled_from(["<|assistant_end|>", "<|bos|>"]),
                    max_size=3).map("".join)
json_leaf = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False) | odd_text)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
                          max_leaves=16)
part = st.fixed_dictionaries({"type": st.sampled_from(["text", "python", "python_output", "image", 3]),
                              "text": odd_text | json_leaf})
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", None]),
                                 "content": odd_text | st.lists(part, max_size=3) | json_leaf})
conversation = st.fixed_dictionaries({"messages": st.lists(message, max_size=5)}) | json_value


def serialise(value, ensure_ascii: bool) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii)  # ensure_ascii spells lone surrogates as \ud800 escapes


# mutations of valid JSON text: what a truncated, hand-edited or hostile file looks like
mutation = st.sampled_from(["none", "truncate", "deep", "digits", "garbage", "bom", "nul"])


def mutate(text: str, how: str, at: int) -> str:
    at = at % (len(text) + 1)
    return {
        "none": text, "truncate": text[:at], "deep": text[:at] + "[" * 50_000 + text[at:],
        "digits": text[:at] + "9" * 5000 + text[at:], "garbage": text[:at] + "}{\x01\"" + text[at:],
        "bom": "\ufeff" + text, "nul": text[:at] + "\x00" + text[at:],
    }[how]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ---- targets


@FUZZ
@given(conversation, st.booleans(), mutation, st.integers(0, 10_000))
def test_tokenizer_render_of_any_conversation_file(capsys, workdir, value, ascii_only, how, at):
    path = workdir / "conversation.json"
    path.write_text(mutate(serialise(value, ascii_only), how, at), encoding="utf-8", errors="surrogatepass")
    run(capsys, ["tokenizer", "render", str(path), "--json"])


@FUZZ
@given(st.lists(conversation, min_size=1, max_size=3), st.booleans(), mutation, st.integers(0, 10_000))
def test_replay_of_any_script(capsys, workdir, conversations, ascii_only, how, at):
    path = workdir / "script.jsonl"
    text = "".join(serialise(c, ascii_only) + "\n" for c in conversations)
    path.write_text(mutate(text, how, at), encoding="utf-8", errors="surrogatepass")
    out = workdir / "transcript.jsonl"
    code = run(capsys, ["replay", str(path), "--max-tokens", "4", "--out", str(out)], per_line=True)
    if code == 0:  # what was written reads back
        assert all(json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())


@FUZZ
@given(st.lists(conversation | json_value, min_size=1, max_size=4), st.booleans(), mutation, st.integers(0, 10_000))
def test_saved_chats_directory_of_anything(workdir, records, ascii_only, how, at):
    from tui.store import ConversationStore

    store = ConversationStore(workdir / "conversations")
    shutil.rmtree(store.root, ignore_errors=True)
    store.root.mkdir(parents=True)
    for index, record in enumerate(records):
        text = serialise(record, ascii_only) + "\n"
        store.path(f"c{index}").write_text(mutate(text, how, at) if index == 0 else text,
                                           encoding="utf-8", errors="surrogatepass")
    with time_bound():
        listed = store.list()  # never raises: unreadable files are skipped
        for saved in listed:
            assert isinstance(saved.title, str)
            record = store.load(saved.id)  # what is listed loads
            assert isinstance(record.messages, list)


config_field = st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, 2, 64, 10**6, 10**12]) | json_leaf


@FUZZ
@given(st.dictionaries(st.sampled_from(["sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd"]),
                       config_field, max_size=3),
       st.sampled_from(["model", "format", "metadata", "save_id", "tokenizer_sha256", "whole"]), json_value,
       mutation, st.integers(0, 10_000))
def test_checkpoint_config_of_anything(capsys, workdir, fields, key, value, how, at):
    directory = workdir / "checkpoint"
    if not directory.exists():
        shutil.copytree(paths.default_checkpoint_dir(), directory)
        (directory / "config.original.json").write_text((directory / "config.json").read_text())
    config = json.loads((directory / "config.original.json").read_text())
    config["model"].update(fields)
    if key == "whole":
        config = value
    elif not fields:
        config[key] = value
    (directory / "config.json").write_text(mutate(json.dumps(config), how, at), encoding="utf-8",
                                           errors="surrogatepass")
    run(capsys, ["ask", "hi", "--checkpoint", str(directory), "--max-tokens", "3", "--seed", "1"])


number_text = st.sampled_from(["nan", "inf", "-inf", "1e-300", "5e-324", "1e308", "0", "-0", "-1", "0.5", "1",
                               str(2**64), str(2**63), "1e400", "", "x", "0x10", "1_0"]) | st.integers().map(str) \
    | st.floats().map(repr)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["--temperature", "--top-k", "--top-p", "--seed", "--max-tokens"]),
                          number_text), min_size=1, max_size=4))
def test_sampling_options_of_anything(capsys, options):
    argv = ["ask", "What is 2 + 2?"]
    for option, value in options:
        argv.append(f"{option}={value}")
    if not any(option == "--max-tokens" for option, _ in options):
        argv.append("--max-tokens=4")
    run(capsys, argv)


@FUZZ
@given(st.sampled_from([["train", "--out", "OUT"], ["tokenizer", "train", "CORPUS", "--out", "OUT"],
                        ["eval", "--checkpoint", "OUT"]]),
       st.sampled_from(["--n-layer", "--vocab-size", "--batch-size", "--workers", "--threads", "--per-skill"]),
       st.sampled_from(["0", "-1", "10000000", str(2**64), "10" + "0" * 400, "nan", "x"]))
def test_size_options_out_of_range(capsys, workdir, command, option, value):
    corpus = workdir / "corpus.txt"
    corpus.write_text("hello world\n" * 10)
    argv = [str(corpus) if a == "CORPUS" else str(workdir / "missing-out") if a == "OUT" else a for a in command]
    if "--vocab-size" not in argv and command[0] == "tokenizer":
        argv += ["--vocab-size", "300"]
    # every value here is out of range (or the option is not the command's): a refusal, before any work
    assert run(capsys, [*argv, option, value]) == 2
    assert not (workdir / "missing-out").exists()


def test_fuzz_suite_bounds_are_real(capsys):
    """The harness itself: an argparse refusal is one line, and a case that hangs fails."""
    assert run(capsys, ["ask", "hi", "--temperature", "warm"]) == 2
    with pytest.raises(AssertionError, match="a hang"), time_bound(1):
        signal.pause()

