"""Headless replay: transcripts, comparison with the script, bad input, determinism."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tui_fakes import scripted_backend

from model.events import SamplingParams
from glasschat.loading import LoadError
from tui.chat_file import Line, read_lines
from tui.replay import compare, replay_script


def write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" if not isinstance(line, str) else line + "\n" for line in lines))
    return path


def test_script_lines_and_json_lists(tmp_path):
    convo = {"messages": [{"role": "user", "content": "hi"}]}
    assert [e.number for e in read_lines(write(tmp_path / "s.jsonl", [convo, "", convo]))] == [1, 3]
    (tmp_path / "s.json").write_text(json.dumps([convo, convo]))
    assert [e.data for e in read_lines(tmp_path / "s.json")] == [convo, convo]
    with pytest.raises(LoadError, match=r"bad.jsonl: line 2, column [0-9]+: not valid JSON"):
        read_lines(write(tmp_path / "bad.jsonl", [convo, "{oops"]))
    with pytest.raises(LoadError, match="no such file"):
        read_lines(tmp_path / "missing.jsonl")


def test_replay_generates_every_reply_and_compares(tiny_tokenizer):
    backend = scripted_backend(tiny_tokenizer, ["Hello!", "Not what the script says."])
    script = [Line(1, {"messages": [{"role": "system", "content": "Be kind."},
                                    {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
                                    {"role": "user", "content": "and?"}, {"role": "assistant", "content": "Bye."}]}),
              Line(2, {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
              Line(3, ["not", "a", "conversation"]),
              Line(4, {"messages": [{"role": "user", "content": "last"}]})]
    records = list(replay_script(backend, script, SamplingParams(seed=5)))
    first, second, third, fourth = records
    assert [m["content"] for m in first["messages"]] == ["Be kind.", "hi", "Hello!", "and?", "Not what the script says."]
    assert [t["message"] for t in first["turns"]] == [2, 4]
    match, mismatch = (t["expected"] for t in first["turns"])
    assert match["exact_match"] and match["first_difference"] is None
    assert not mismatch["exact_match"] and mismatch["first_difference"] == 0
    assert all(t["stop_reason"] == "assistant_end" and t["seed"] == 5 and t["ttft_ms"] >= 0 for t in first["turns"])
    assert first["turns"][0]["ids"] == tiny_tokenizer.encode("Hello!") + [tiny_tokenizer.encode_special("<|assistant_end|>")]
    # the second reply was generated after the *generated* first one
    prompt, _ = backend.calls[1]
    assert prompt == tiny_tokenizer.render_for_completion({"messages": first["messages"][:4]})
    assert second == {"line": 2, "error": "message 1: expected role 'assistant' (roles must alternate user/assistant), got 'user'"}
    assert third["line"] == 3 and "messages" in third["error"]
    assert fourth["line"] == 4 and "expected" not in fourth["turns"][0]


def test_compare_finds_the_first_difference():
    assert compare([1, 2, 3], [1, 2, 3])["exact_match"]
    assert compare([1, 2, 3], [1, 9, 3])["first_difference"] == 1
    assert compare([1, 2, 3], [1, 2])["first_difference"] == 2


def test_replay_command_reports_bad_lines(tmp_path):
    script = write(tmp_path / "s.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, "[1, 2"])
    result = subprocess.run([sys.executable, "-m", "glasschat", "replay", str(script), "--checkpoint", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"glasschat: error: {script}: line 2, column 6: not valid JSON: Expecting ',' delimiter"
