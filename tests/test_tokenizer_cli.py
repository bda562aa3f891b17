"""``glasschat tokenizer encode|render`` as a user runs them."""

import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, tiny_tokenizer):
    directory = tmp_path_factory.mktemp("tokenizer")
    tiny_tokenizer.save(directory)
    return directory


def glasschat(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "glasschat", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_encode_json_prints_ordinary_ids(tokenizer_dir, tiny_tokenizer):
    result = glasschat("tokenizer", "encode", "hi <|assistant_end|>", "--tokenizer", str(tokenizer_dir), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == tiny_tokenizer.encode("hi <|assistant_end|>")


def test_encode_view_shows_tokens_and_counts(tokenizer_dir):
    result = glasschat("tokenizer", "encode", "Hello 你好", "--tokenizer", str(tokenizer_dir))
    assert result.returncode == 0, result.stderr
    assert "Hello" in result.stdout and "tokens" in result.stdout


def test_render_json_and_view(tokenizer_dir, tiny_tokenizer, tmp_path):
    conversation = {"messages": [{"role": "user", "content": "What is 12 + 30?"},
                                 {"role": "assistant", "content": [{"type": "python", "text": "12+30"},
                                                                   {"type": "python_output", "text": "42"},
                                                                   {"type": "text", "text": "It is 42."}]}]}
    path = tmp_path / "conversation.json"
    path.write_text(json.dumps(conversation))
    result = glasschat("tokenizer", "render", str(path), "--tokenizer", str(tokenizer_dir), "--json")
    assert result.returncode == 0, result.stderr
    ids, mask = tiny_tokenizer.render_conversation(conversation)
    assert json.loads(result.stdout) == {"ids": ids, "mask": mask}
    view = glasschat("tokenizer", "render", str(path), "--tokenizer", str(tokenizer_dir))
    assert "<|python_start|>" in view.stdout and "trained on" in view.stdout


@pytest.mark.parametrize("content, error", [
    ('{"messages": [{"role": "assistant", "content": "x"}]}', "conversation.json: message 0: expected role 'user'"),
    ('{"messages": [\n  {"role": "user",, }]}', "conversation.json: line 2, column 19: not valid JSON"),
])
def test_render_errors_are_one_line(tokenizer_dir, tmp_path, content, error):
    path = tmp_path / "conversation.json"
    path.write_text(content)
    result = glasschat("tokenizer", "render", str(path), "--tokenizer", str(tokenizer_dir))
    assert result.returncode == 2
    assert error in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_files_are_one_line_errors(tmp_path):
    result = glasschat("tokenizer", "encode", "hi", "--tokenizer", str(tmp_path))
    assert result.returncode == 2 and "tokenizer.tiktoken: missing" in result.stderr
    result = glasschat("tokenizer", "render", str(tmp_path / "absent.json"), "--tokenizer", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
