"""What a hostile or careless user hands glasschat — malformed, huge, deep or special files,
out-of-range numbers, unwritable destinations — is one line on stderr and exit code 2, or it
works; never a traceback, a hang or a runaway allocation."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from glasschat import paths
from glasschat.atomic import WriteError, atomic_write_text
from glasschat.cli import main
from glasschat.loading import LoadError, read_json, read_json_lines, read_text
from scripted import scripted_gpt

torch.set_num_threads(1)


def one_line_error(capsys, argv: list[str], expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("glasschat: error: ") and "Traceback" not in err, err
    assert expected in err, err
    return err


@pytest.fixture
def default_copy(tmp_path) -> Path:
    """A copy of the bundled model whose files a test may spoil."""
    copy = tmp_path / "model"
    shutil.copytree(paths.default_checkpoint_dir(), copy)
    return copy


def edit_config(directory: Path, **model_fields) -> None:
    config = json.loads((directory / "config.json").read_text())
    config["model"].update(model_fields)
    (directory / "config.json").write_text(json.dumps(config))


# ---- the one reader: bounded, regular files only, one-line errors


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "chat.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="not a regular file"):
        read_json_lines(fifo)  # opening a FIFO for reading would wait for a writer forever


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000, "nested more than 64 deep"),
    ('{"a": ' * 70 + "1" + "}" * 70, "nested more than 64 deep"),
    ('{"n": ' + "9" * 5000 + "}", "an integer of more than 4300 digits"),
    ('{"a": 1,\n "b": }', "line 2, column 7: not valid JSON"),
])
def test_malformed_json_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(LoadError, match=message) as caught:
        read_json(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_directory_a_missing_file_and_a_huge_file(tmp_path):
    with pytest.raises(LoadError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(LoadError, match="no such file"):
        read_text(tmp_path / "nope")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2000)
    with pytest.raises(LoadError, match="2,000 bytes, more than the 1,000"):
        read_text(big, max_bytes=1000)


def test_lone_surrogates_become_replacement_characters_as_the_tokenizer_reads_them(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "a\\ud800b \\ud83d\\ude00"}], "\\udc00k": 1}\n')
    [(number, data)] = read_json_lines(path)
    assert data["messages"][0]["content"] == "a\ufffdb \U0001F600" and "\ufffdk" in data
    out = tmp_path / "out.txt"
    atomic_write_text(out, "x\ud800y")  # and what holds one anyway is still written
    assert out.read_text() == "x\ufffdy"


# ---- the one writer: one-line errors for every destination that cannot be written


@pytest.mark.parametrize("target", ["dir", "below_file", "proc"])
def test_unwritable_destinations_are_one_line(tmp_path, target):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    path = {"dir": tmp_path / "dir", "below_file": tmp_path / "file" / "x.jsonl", "proc": Path("/proc/x.jsonl")}[target]
    with pytest.raises(WriteError, match=f"^{path}: cannot write") as caught:
        atomic_write_text(path, "hello")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "file").read_text() == "x" and list((tmp_path / "dir").iterdir()) == []


# ---- commands


def test_deep_json_and_an_output_directory_are_one_line(capsys, tmp_path):
    script = tmp_path / "s.jsonl"
    script.write_text("[" * 100_000)
    one_line_error(capsys, ["replay", str(script)], "nested more than 64 deep")
    script.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    one_line_error(capsys, ["replay", str(script), "--out", str(tmp_path), "--max-tokens", "2"], "is a directory")
    deep = tmp_path / "deep.json"
    deep.write_text('{"messages": ' + "[" * 5000)
    one_line_error(capsys, ["tokenizer", "render", str(deep)], "nested more than 64 deep")
    one_line_error(capsys, ["chat", "--replay", str(deep)], "nested more than 64 deep")


def test_replay_output_refuses_a_directory_before_generating(capsys, tmp_path):
    script = tmp_path / "s.jsonl"
    script.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    started = time.perf_counter()
    one_line_error(capsys, ["replay", str(script), "--out", str(tmp_path)], "is a directory")
    assert time.perf_counter() - started < 30


def test_replay_of_a_lone_surrogate_writes_its_transcript(capsys, tmp_path):
    script = tmp_path / "s.jsonl"
    script.write_text('{"messages": [{"role": "user", "content": "a\\ud800b"}]}\n')
    out = tmp_path / "t.jsonl"
    assert main(["replay", str(script), "--out", str(out), "--max-tokens", "3"]) == 0
    assert json.loads(out.read_text())["messages"][0]["content"] == "a\ufffdb"
    assert main(["replay", str(script), "--max-tokens", "3"]) == 0  # to stdout too
    assert "a\ufffdb" in capsys.readouterr().out


@pytest.mark.parametrize("fields, message", [
    ({"n_layer": 1_000_000}, "'n_layer' must be an integer from 1 to 256"),
    ({"sequence_len": 10**12}, "'sequence_len' must be an integer from 1 to 131,072"),
    ("one layer more", "missing tensor(s) transformer.h."),
    ({"n_embd": 512, "n_head": 4, "n_kv_head": 4}, "has shape"),
    ({"vocab_size": True}, "'vocab_size' must be an integer"),
])
def test_a_config_that_does_not_fit_its_weights_fails_before_anything_is_built(capsys, default_copy, fields, message):
    if fields == "one layer more":
        layers = json.loads((default_copy / "config.json").read_text())["model"]["n_layer"]
        fields, message = {"n_layer": layers + 1}, f"{message}{layers}"
    edit_config(default_copy, **fields)
    started = time.perf_counter()
    one_line_error(capsys, ["ask", "hi", "--checkpoint", str(default_copy)], message)
    assert time.perf_counter() - started < 20  # no model of that size was allocated


@pytest.mark.parametrize("option, value, message", [
    ("--temperature", "inf", "temperature=inf must be a finite number"),
    ("--temperature", "nan", "temperature=nan must be a finite number"),
    ("--temperature", "-1", "temperature=-1.0 must be a finite number >= 0"),
    ("--seed", str(2**64), "seed=18446744073709551616 must be an integer from 0 to 18446744073709551615"),
    ("--seed", "-1", "seed=-1 must be an integer from 0"),
    ("--top-p", "nan", "top_p=nan must be in (0, 1]"),
    ("--max-tokens", str(10**30), "max_tokens"),
])
def test_sampling_options_out_of_range_are_one_line(capsys, option, value, message):
    one_line_error(capsys, ["ask", "hi", option, value], message)


@pytest.mark.parametrize("command", [["ask", "What is 2 + 2?"], ["replay", "SCRIPT"]])
@pytest.mark.parametrize("temperature", ["1e-300", "1e-45", "5e-324"])
def test_a_temperature_too_small_to_divide_by_samples_like_greedy(capsys, tmp_path, command, temperature):
    script = tmp_path / "s.jsonl"
    script.write_text('{"messages": [{"role": "user", "content": "What is 2 + 2?"}]}\n')
    argv = [str(script) if a == "SCRIPT" else a for a in command] + ["--max-tokens", "24", "--seed", "3"]
    assert main([*argv, "--temperature", temperature]) == 0
    tiny = capsys.readouterr().out
    assert main([*argv, "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    if command[0] == "ask":
        assert tiny == greedy
    else:
        assert json.loads(tiny)["turns"][0]["ids"] == json.loads(greedy)["turns"][0]["ids"]


def test_nan_weights_say_the_model_produced_nan(capsys, default_copy):
    weights = load_file(default_copy / "model.safetensors")
    weights["lm_head.weight"][0, 0] = float("nan")
    metadata = {"format": "pt", "save_id": json.loads((default_copy / "config.json").read_text())["save_id"]}
    save_file(weights, default_copy / "model.safetensors", metadata=metadata)
    for extra in ([], ["--temperature", "0"]):
        one_line_error(capsys, ["ask", "hi", "--checkpoint", str(default_copy), *extra], "the model produced NaN")


def test_output_directories_that_are_files_are_one_line(capsys, tmp_path, tiny_tokenizer):
    existing = tmp_path / "file"
    existing.write_text("keep me")
    one_line_error(capsys, ["export-hf", str(paths.default_checkpoint_dir()), "--out", str(existing)], "is a file")
    one_line_error(capsys, ["export-hf", str(paths.default_checkpoint_dir()), "--out", str(existing / "sub")],
                   "is a file, not a directory")
    source = tmp_path / "nanochat"
    source.mkdir()
    gpt = scripted_gpt(tiny_tokenizer.vocab_size, [1, 2])
    torch.save(gpt.state_dict(), source / "model_000001.pt")
    (source / "meta_000001.json").write_text(json.dumps({"model_config": gpt.config.to_dict()}))
    one_line_error(capsys, ["import-nanochat", str(source), "--out", str(existing)], "is a file")
    assert existing.read_text() == "keep me"


def test_unreadable_script_is_one_line(capsys, tmp_path, monkeypatch):
    script = tmp_path / "s.jsonl"
    script.write_text("{}\n")
    script.chmod(0)
    if os.geteuid() == 0:  # root reads any file: have the system refuse as it would anyone else
        real_open = os.open

        def refuse(path, *args, **kwargs):
            if Path(path) == script:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    one_line_error(capsys, ["replay", str(script)], f"{script}: cannot read: Permission denied")
    one_line_error(capsys, ["chat", "--replay", str(script)], f"{script}: cannot read: Permission denied")


# ---- tokenizers that cannot work are refused where they come in


@pytest.mark.parametrize("pattern, message", [
    ("x*", "matches the empty string"), ("(?=a)", "matches the empty string"), ("[", "does not compile"),
])
def test_tokenizer_train_refuses_an_unusable_pattern(capsys, tmp_path, pattern, message):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n")
    one_line_error(capsys, ["tokenizer", "train", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "t"),
                            "--pattern", pattern], message)


def test_a_saved_tokenizer_with_a_bad_pattern_or_missing_byte_is_refused_on_load(tmp_path, tiny_tokenizer, capsys):
    directory = tmp_path / "tok"
    tiny_tokenizer.save(directory)
    meta = json.loads((directory / "tokenizer_meta.json").read_text())
    (directory / "tokenizer_meta.json").write_text(json.dumps({**meta, "pattern": "x*"}))
    one_line_error(capsys, ["tokenizer", "encode", "hello", "--tokenizer", str(directory)], "matches the empty string")

    from tokenizer import Tokenizer

    ranks = dict(tiny_tokenizer._ranks)
    a = ranks.pop(b"a")
    ranks = {token: rank - (rank > a) for token, rank in ranks.items()}
    with pytest.raises(Exception, match="lacks the single-byte token.*0x61"):
        Tokenizer.from_ranks(ranks, tiny_tokenizer.pattern)


def test_too_many_workers_are_refused(capsys, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n")
    one_line_error(capsys, ["tokenizer", "train", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "t"),
                            "--workers", "1000"], "--workers: at most")


def test_train_refuses_a_model_too_large_before_any_stage(capsys, tmp_path):
    one_line_error(capsys, ["train", "--out", str(tmp_path / "run"), "--n-layer", "1000000"], "n_layer")
    assert not (tmp_path / "run").exists()


def test_sigterm_to_tokenizer_train_ends_its_workers(tmp_path):
    # stdin stays open, so the trainer waits for input with its counting workers started
    process = subprocess.Popen([sys.executable, "-m", "glasschat", "tokenizer", "train", "-", "--vocab-size", "300",
                                "--out", str(tmp_path / "t"), "--workers", "3"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children_file = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline, children = time.monotonic() + 60, []
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(0.1)
        children = children_file.read_text().split() if children_file.exists() else []
    assert len(children) == 2, "the workers never started"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    process.stdin.close()
    process.stderr.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(int(pid)) for pid in children):
        time.sleep(0.1)
    assert not any(_alive(int(pid)) for pid in children)
    assert process.returncode != 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


# ---- the bare command takes the chat's options


def test_bare_glasschat_takes_the_chat_options(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    one_line_error(capsys, ["--resume"], "--resume: no saved conversation")
    one_line_error(capsys, ["--checkpoint", str(tmp_path / "none")], "no such checkpoint directory")


# ---- saved conversations: a malformed file is skipped, never fatal


def test_malformed_saved_conversations_are_skipped_in_the_list_and_by_resume(tmp_path):
    from tui.chat_file import ChatRecord
    from tui.store import ConversationStore

    store = ConversationStore(tmp_path / "conversations")
    store.save("20200101-000000-good", ChatRecord([{"role": "user", "content": "hello"}], meta={"title": "good"}))
    bad = {
        "deep": "[" * 100_000, "digits": '{"messages": [], "n": ' + "1" * 5000 + "}",
        "ints": '{"messages": [1, 2]}', "roles": '{"messages": [{"role": "robot", "content": "x"}]}',
        "parts": '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "x"}]}]}',
    }
    for name, text in bad.items():
        store.path(f"29990101-000000-{name}").write_text(text)
    store.path("29990101-000000-title").write_text(
        json.dumps({"messages": [{"role": "user", "content": "titled"}], "meta": {"title": {}}}))
    os.mkfifo(store.path("29990101-000000-fifo"))
    (store.root / "29990101-000000-dir.jsonl").mkdir()
    saved = {conversation.id: conversation for conversation in store.list()}
    assert set(saved) == {"20200101-000000-good", "29990101-000000-title"}
    assert saved["29990101-000000-title"].title == "titled"  # a title that is not text is ignored
    assert store.latest() in saved


def test_eval_checks_its_seed_and_temperatures_before_loading(capsys):
    one_line_error(capsys, ["eval", "--seed", "-5", "--per-skill", "1"], "seed=-5 must be an integer from 0")
    one_line_error(capsys, ["eval", "--temperature", "inf", "--per-skill", "1"], "temperature=inf")
