"""``glasschat ask`` end to end: streamed answer with the tool shown, --json, one-line errors."""

import json
import subprocess
import sys

import pytest
import torch

from glasschat import paths
from glasschat.cli import main
from model import save_checkpoint
from scripted import scripted_gpt

torch.set_num_threads(1)


@pytest.fixture
def scripted_checkpoint(tmp_path, tiny_tokenizer):
    """A model that answers any prompt with a calculator call and a sentence."""
    s = tiny_tokenizer.encode_special
    script = [
        s("<|assistant_start|>"), s("<|python_start|>"), *tiny_tokenizer.encode("12+30"), s("<|python_end|>"),
        s("<|output_end|>"), *tiny_tokenizer.encode(" It's 42."), s("<|assistant_end|>"),
    ]
    directory = tmp_path / "scripted"
    save_checkpoint(directory, scripted_gpt(tiny_tokenizer.vocab_size, script), tiny_tokenizer, {"kind": "scripted"})
    return directory


def test_answer_streams_with_the_tool_call_shown(scripted_checkpoint, capsys):
    assert main(["ask", "What is 12 + 30?", "--checkpoint", str(scripted_checkpoint), "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == "[calculator: 12+30][result: 42] It's 42.\n"
    assert err == ""


def test_json_output(scripted_checkpoint, capsys, tiny_tokenizer):
    assert main(["ask", "What is 12 + 30?", "--checkpoint", str(scripted_checkpoint), "--json", "--seed", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"text", "ids", "stop_reason", "ttft_ms", "tokens_per_s"}
    assert result["stop_reason"] == "assistant_end"
    assert result["text"] == "<|python_start|>12+30<|python_end|><|output_start|>42<|output_end|> It's 42."
    assert result["ids"][-1] == tiny_tokenizer.encode_special("<|assistant_end|>")
    assert result["ttft_ms"] > 0 and result["tokens_per_s"] > 0


def test_ask_is_callable_without_the_command_line(scripted_checkpoint, capsys):
    from model.ask import ask
    from model.events import SamplingParams

    assert ask("What is 12 + 30?", SamplingParams(temperature=0), checkpoint=str(scripted_checkpoint)) == 0
    assert capsys.readouterr().out == "[calculator: 12+30][result: 42] It's 42.\n"


def test_cut_short_reply_says_why(scripted_checkpoint, capsys):
    assert main(["ask", "hi", "--checkpoint", str(scripted_checkpoint), "--max-tokens", "1", "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == "[calculator: \n"
    assert err == "glasschat: reply cut short (max_tokens)\n"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt: no such checkpoint directory"),
        (["--temperature", "-1"], "temperature=-1.0 must be a finite number >= 0"),
        (["--top-p", "0"], "top_p=0.0 must be in (0, 1]"),
    ],
)
def test_mistakes_are_one_line_errors_with_exit_2(scripted_checkpoint, capsys, extra, message):
    args = ["ask", "hi", "--checkpoint", str(scripted_checkpoint), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_without_a_default_model_checkpoint_is_required(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "default_checkpoint_dir", lambda: tmp_path / "absent")
    assert main(["ask", "hi"]) == 2
    assert "pass --checkpoint DIR" in capsys.readouterr().err


def test_real_process_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "glasschat", "ask", "hi", "--checkpoint", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
