"""int8 checkpoints (``glasschat quantize``, ``--quantize int8``) and loading with one copy of the
weights in memory."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glasschat.cli import main
from glasschat.errors import UserError
from glasschat.progress import LoadProgress
from model import int8
from model.checkpoint import load_engine, load_model, quantize_checkpoint, save_checkpoint
from model.events import SamplingParams, TokenEvent
from model.gpt import GPT, GPTConfig
from model.mapped import MappedFile

torch.set_num_threads(1)

needs_int8 = pytest.mark.skipif(not int8.available(), reason="this torch build has no int8 kernel")


@pytest.fixture
def gpt(tiny_tokenizer):
    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)
    return GPT(config).init_weights(seed=1, zero_outputs=False).eval()


@pytest.fixture
def saved(tmp_path, gpt, tiny_tokenizer):
    save_checkpoint(tmp_path / "fp32", gpt, tiny_tokenizer, {"step": 3})
    return tmp_path / "fp32"


def run_cli(capsys, *args):
    """The command line in this process (a subprocess would spend seconds importing torch)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@needs_int8
def test_quantize_writes_an_int8_checkpoint_that_every_loader_takes(saved, tmp_path, gpt, tiny_tokenizer, capsys):
    out = tmp_path / "int8"
    result = run_cli(capsys, "quantize", str(saved), "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["weight_format"] == "int8" and config["metadata"]["step"] == 3
    tensors = load_file(out / "model.safetensors")
    for name, tensor in gpt.state_dict().items():  # every matrix, the lm_head and the embedding included
        assert tensors[name].dtype == torch.int8 and tensors[name].shape == tensor.shape
        assert tensors[name + "_scale"].shape == tensor.shape[:1]
    assert (out / "model.safetensors").stat().st_size < 0.3 * (saved / "model.safetensors").stat().st_size
    umask = os.umask(0)
    os.umask(umask)
    for path in (saved / "model.safetensors", out / "model.safetensors", out / "config.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as readable as any file the user makes

    # load_model gives a usable (dequantized) GPT; load_engine runs int8
    dequantized, _ = load_model(out)
    ids = torch.tensor([tiny_tokenizer.encode("hello there, how are you?")])
    with torch.no_grad():
        exact, approx = gpt(ids), dequantized(ids)
    assert (approx - exact).abs().max() < 0.05 * exact.abs().max()
    engine, _ = load_engine(out)
    assert engine.weight_format == "int8" and engine.gpt is None
    assert engine.generate(ids[0].tolist(), SamplingParams(temperature=0, max_tokens=4))[0].stop is not None


@needs_int8
def test_quantize_at_load_time_writes_nothing(saved, capsys):
    before = sorted(p.name for p in saved.rglob("*"))
    engine, _ = load_engine(saved, quantize="int8")
    assert engine.weight_format == "int8"
    assert sorted(p.name for p in saved.rglob("*")) == before
    result = run_cli(capsys, "ask", "hi", "--checkpoint", str(saved), "--quantize", "int8", "--json", "--max-tokens", "3",
                     "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["ids"]) <= 3


@pytest.mark.parametrize("case", ["already int8", "missing", "corrupt", "out exists"])
def test_bad_quantize_is_one_line_exit_2_and_writes_nothing(case, saved, tmp_path, capsys):
    source, out = saved, tmp_path / "out"
    if case == "already int8":
        quantize_checkpoint(saved, tmp_path / "q")
        source = tmp_path / "q"
    elif case == "missing":
        source = tmp_path / "nowhere"
    elif case == "corrupt":
        weights = saved / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(capsys, "quantize", source, "--out", out)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("glasschat: error: ")
    expected = {"already int8": "already an int8 checkpoint", "missing": "no such checkpoint directory",
                "corrupt": "not a readable safetensors file", "out exists": "already exists"}[case]
    assert expected in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no half-written or temporary directory
    if case == "out exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_fp32_checkpoint_loads_as_views_of_the_mapped_file(saved):
    gpt, _ = load_model(saved)
    mapped = MappedFile(saved / "model.safetensors")
    for name, tensor in gpt.state_dict().items():
        assert torch.equal(tensor, mapped.tensors[name])
    # no copy: the parameters point into a mapping of the file, not into allocations of their own
    maps = open("/proc/self/maps").read() if sys.platform == "linux" else ""
    if maps:
        ptr = gpt.lm_head.weight.data_ptr()
        spans = [line.split()[0].split("-") for line in maps.splitlines() if line.endswith("model.safetensors")]
        assert any(int(a, 16) <= ptr < int(b, 16) for a, b in spans)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")
def test_the_engine_keeps_no_copy_of_the_file_it_packed(tmp_path, tiny_tokenizer):
    # large enough that the packed matrices span many pages
    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_head=4, n_kv_head=4, n_embd=256)
    gpt = GPT(config).init_weights(seed=0, zero_outputs=False)
    save_checkpoint(tmp_path / "c", gpt, tiny_tokenizer)
    size = (tmp_path / "c" / "model.safetensors").stat().st_size
    engine, _ = load_engine(tmp_path / "c")
    resident = _resident_bytes_of(tmp_path / "c" / "model.safetensors")
    # left resident: the matrices the engine reads in place (each MLP's down projection: more
    # inputs than outputs) and the embedding rows looked up; everything else was packed and released
    in_place = sum(4 * gpt.state_dict()[f"transformer.h.{i}.mlp.c_proj.weight"].numel() for i in range(2))
    assert resident <= in_place + 16 * 4096 < size / 2
    engine.generate([1, 2, 3], SamplingParams(temperature=0, max_tokens=2))


def _resident_bytes_of(path) -> int:
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        if "-" in line.split()[0] and len(line.split()) >= 5:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def test_load_progress_shows_only_on_a_terminal_and_only_for_a_slow_load():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    quick = Terminal()
    LoadProgress(stream=quick, after_s=60)(5, 10)
    assert quick.getvalue() == ""
    slow = Terminal()
    progress = LoadProgress(stream=slow, after_s=0)
    progress(5 * 10**8, 10**9)
    assert "loading model: 50% (0.50 of 1.00 GB)" in slow.getvalue()
    progress(10**9, 10**9)
    assert slow.getvalue().endswith("\r\x1b[K")  # cleared once done
    piped = io.StringIO()
    LoadProgress(stream=piped, after_s=0)(5, 10)
    assert piped.getvalue() == ""


def test_engine_load_reports_progress_up_to_the_whole_model(saved):
    seen = []
    load_engine(saved, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] == (saved / "model.safetensors").stat().st_size - _header_bytes(saved)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def _header_bytes(saved) -> int:
    data = (saved / "model.safetensors").read_bytes()
    return 8 + int.from_bytes(data[:8], "little")


def test_unknown_quantize_format_is_a_user_error(saved):
    with pytest.raises(UserError, match="--quantize"):
        load_engine(saved, quantize="int4")


NANOCHAT_FIXTURES = Path(__file__).parent / "fixtures" / "nanochat"


@needs_int8
@pytest.mark.parametrize("commit", ["e7ed208", "6ed7d1d", "92d63d4"])
def test_every_nanochat_generation_quantizes_and_runs_int8(commit, tmp_path, capsys):
    # value embeddings and their gates, per-layer lambdas, sliding windows, a padded vocabulary
    # (and in 92d63d4 the smear and backout) go through the mapped load and the int8 packing
    fp32_dir, int8_dir = tmp_path / "fp32", tmp_path / "int8"
    extra = ["--softcap", "20"] if commit == "aba30cb" else []
    assert run_cli(capsys, "import-nanochat", NANOCHAT_FIXTURES / commit, "--out", fp32_dir, *extra).returncode == 0
    result = run_cli(capsys, "quantize", fp32_dir, "--out", int8_dir)
    assert result.returncode == 0, result.stderr
    reference = torch.load(NANOCHAT_FIXTURES / commit / "expected.pt", weights_only=True)
    prompt = reference["prompt"].tolist()
    greedy = SamplingParams(temperature=0, max_tokens=100)

    # the mapped fp32 load decodes nanochat's own tokens
    engine, _ = load_engine(fp32_dir)
    assert engine.weight_format == "fp32" and engine.generate(prompt, greedy)[0].ids == reference["tokens"].tolist()

    # the int8 checkpoint, dequantized, gives logits close to nanochat's
    dequantized, _ = load_model(int8_dir)
    with torch.no_grad():
        logits = dequantized(reference["prompt"][None])[0, reference["positions"]]
    assert (logits - reference["logits"]).abs().max() < 0.05 * reference["logits"].abs().max()

    # int8 on the engine, from the int8 checkpoint or quantized at load: the same weights, the
    # same tokens, and a next-token distribution close to fp32's
    first = SamplingParams(temperature=0, max_tokens=1, top_alternatives=5)
    exact = dict(next(e for e in engine.stream(prompt, first) if isinstance(e, TokenEvent)).top)
    int8_engine, _ = load_engine(int8_dir)
    at_load, _ = load_engine(fp32_dir, quantize="int8")
    assert int8_engine.weight_format == at_load.weight_format == "int8"
    assert int8_engine.weight_bytes < 0.35 * engine.weight_bytes
    assert int8_engine.generate(prompt, greedy)[0].ids == at_load.generate(prompt, greedy)[0].ids
    approx = dict(next(e for e in int8_engine.stream(prompt, first) if isinstance(e, TokenEvent)).top)
    for token, p in exact.items():
        assert abs(approx.get(token, 0.0) - p) < 0.05
