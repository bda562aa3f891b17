"""Checkpoint directories: round trips, 16-bit storage, and a clear error for every bad one."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import model.checkpoint as checkpoint
from glasschat import paths
from glasschat.errors import UserError
from model import load_model, save_checkpoint
from model.gpt import GPT, GPTConfig

torch.set_num_threads(1)


def tiny_config(vocab_size):
    return GPTConfig(sequence_len=32, vocab_size=vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=32)


@pytest.fixture
def gpt(tiny_tokenizer):
    return GPT(tiny_config(tiny_tokenizer.vocab_size)).init_weights(seed=0, zero_outputs=False).eval()


@pytest.fixture
def saved(tmp_path, gpt, tiny_tokenizer):
    directory = tmp_path / "ckpt"
    save_checkpoint(directory, gpt, tiny_tokenizer, {"step": 7, "recipe": "test"})
    return directory


def test_round_trip_gives_identical_logits_tokenizer_and_metadata(saved, gpt, tiny_tokenizer):
    loaded, tokenizer = load_model(saved)
    ids = torch.tensor([tiny_tokenizer.encode("Hello there! 你好")])
    assert torch.equal(loaded(ids), gpt(ids))
    assert not loaded.training and loaded.lm_head.weight.dtype == torch.float32
    assert tokenizer.encode("naïve café") == tiny_tokenizer.encode("naïve café")
    config, data = checkpoint.read_config(saved)
    assert config == gpt.config and data["metadata"] == {"step": 7, "recipe": "test"}


def test_sixteen_bit_storage_loads_as_fp32(tmp_path, saved, gpt, tiny_tokenizer):
    half = tmp_path / "half"
    save_checkpoint(half, gpt, tiny_tokenizer, {}, dtype=torch.bfloat16)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (saved / "model.safetensors").stat().st_size
    loaded, _ = load_model(half)
    assert loaded.lm_head.weight.dtype == torch.float32
    assert torch.equal(loaded.lm_head.weight, gpt.lm_head.weight.bfloat16().float())


def test_per_tensor_dtypes_are_kept(tmp_path, gpt, tiny_tokenizer):
    gpt.transformer.wte.to(torch.bfloat16)  # as nanochat trains it on CUDA
    save_checkpoint(tmp_path, gpt, tiny_tokenizer, {})
    weights = load_file(tmp_path / "model.safetensors")
    assert weights["transformer.wte.weight"].dtype == torch.bfloat16
    assert weights["lm_head.weight"].dtype == torch.float32
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == ["bfloat16", "float32"]


def test_saving_again_keeps_other_files_and_replaces_the_weights(saved, tiny_tokenizer):
    (saved / "MODEL_CARD.md").write_text("card")
    other = GPT(tiny_config(tiny_tokenizer.vocab_size)).init_weights(seed=1, zero_outputs=False)
    save_checkpoint(saved, other, tiny_tokenizer, {"step": 8})
    loaded, _ = load_model(saved)
    assert torch.equal(loaded.lm_head.weight, other.lm_head.weight)
    assert (saved / "MODEL_CARD.md").read_text() == "card"
    assert not [p.name for p in saved.iterdir() if p.name.endswith(".tmp")]


def test_weights_and_config_from_different_saves_are_refused(saved, gpt, tiny_tokenizer):
    old_config = (saved / "config.json").read_text()
    save_checkpoint(saved, gpt, tiny_tokenizer, {"step": 8})
    (saved / "config.json").write_text(old_config)  # as if the second save died before its config.json
    with pytest.raises(UserError, match="different save"):
        load_model(saved)


def test_tokenizer_from_a_different_save_is_refused(saved, tmp_path, gpt, tiny_tokenizer):
    from conftest import TINY_CORPUS, train_test_tokenizer

    other = train_test_tokenizer(TINY_CORPUS[::-1][:40], tiny_tokenizer.vocab_size)  # same size, other merges
    other.save(saved / "tokenizer")  # as if a save died after writing its tokenizer
    with pytest.raises(UserError, match="tokenizer: written by a different save"):
        load_model(saved)


def test_vocab_mismatch_refused_at_save(tmp_path, tiny_tokenizer):
    wrong = GPT(tiny_config(tiny_tokenizer.vocab_size + 1))
    with pytest.raises(UserError, match="vocab_size"):
        save_checkpoint(tmp_path, wrong, tiny_tokenizer, {})
    assert not (tmp_path / "config.json").exists()


def rewrite_weights(directory, change):
    path = directory / "model.safetensors"
    save_id = json.loads((directory / "config.json").read_text())["save_id"]
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"save_id": save_id})


def edit_config(directory, change):
    data = json.loads((directory / "config.json").read_text())
    change(data)
    (directory / "config.json").write_text(json.dumps(data))


BAD_CHECKPOINTS = {
    "no directory": (lambda d: __import__("shutil").rmtree(d), "no such checkpoint directory"),
    "no config": (lambda d: (d / "config.json").unlink(), r"config.json: missing"),
    "config not json": (lambda d: (d / "config.json").write_text("{oops"), "config.json: line 1, column 2: not valid JSON"),
    "wrong format": (lambda d: edit_config(d, lambda c: c.update(format="other")), "field 'format'"),
    "config field missing": (lambda d: edit_config(d, lambda c: c["model"].pop("n_head")), r"field 'model': missing field\(s\) n_head"),
    "config field bad": (lambda d: edit_config(d, lambda c: c["model"].update(n_kv_head=3)), "not divisible by n_kv_head"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "model.safetensors: missing"),
    "no tokenizer": (lambda d: __import__("shutil").rmtree(d / "tokenizer"), "tokenizer.tiktoken: missing"),
    "corrupt weights": (lambda d: (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}"), "not a readable safetensors file"),
    "missing tensor": (lambda d: rewrite_weights(d, lambda t: t.pop("transformer.h.1.mlp.c_fc.weight")), r"missing tensor\(s\) transformer.h.1.mlp.c_fc.weight"),
    "unexpected tensor": (lambda d: rewrite_weights(d, lambda t: t.update({"transformer.h.2.attn.c_q.weight": torch.zeros(2)})), r"unexpected tensor\(s\) transformer.h.2"),
    "wrong shape": (lambda d: rewrite_weights(d, lambda t: t.update({"lm_head.weight": torch.zeros(384, 16)})), r"lm_head.weight has shape \(384, 16\), the config needs \(384, 32\)"),
    "integer tensor": (lambda d: rewrite_weights(d, lambda t: t.update({"lm_head.weight": torch.zeros(384, 32, dtype=torch.int32)})), "expected floating point"),
    "unknown weight format": (lambda d: edit_config(d, lambda c: c.update(weight_format="int4")), "field 'weight_format'"),
    "int8 format, float tensors": (lambda d: edit_config(d, lambda c: c.update(weight_format="int8")), r"missing tensor\(s\) .*_scale"),
    "vocab mismatch": (lambda d: (edit_config(d, lambda c: c["model"].update(vocab_size=400)), rewrite_weights(d, lambda t: None)), "tokenizer has 384 tokens but .*vocab_size 400"),
}


@pytest.mark.parametrize("loader", [load_model, checkpoint.load_engine], ids=["load_model", "load_engine"])
@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_bad_checkpoint_is_a_one_line_user_error_naming_the_file(saved, case, loader):
    damage, message = BAD_CHECKPOINTS[case]
    damage(saved)
    with pytest.raises(UserError, match=message) as error:
        loader(saved)
    assert "\n" not in str(error.value)
    assert str(saved) in str(error.value)


def test_default_checkpoint_is_used_only_when_present(tmp_path, monkeypatch, saved):
    monkeypatch.setattr(paths, "default_checkpoint_dir", lambda: tmp_path / "missing")
    with pytest.raises(UserError, match="--checkpoint"):
        checkpoint.resolve_checkpoint_dir(None)
    assert checkpoint.resolve_checkpoint_dir("elsewhere").name == "elsewhere"
    monkeypatch.setattr(paths, "default_checkpoint_dir", lambda: saved)
    assert checkpoint.resolve_checkpoint_dir(None) == saved


def test_import_model_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, model; model.SamplingParams(); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
