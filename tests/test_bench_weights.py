"""The weight-format benchmark's rows: each loads a checkpoint, decodes, and reports what the
table prints; the engines agree on greedy tokens where they should."""

import json

import pytest
import torch

from bench import engine_weights
from model import int8
from model.checkpoint import quantize_checkpoint, save_checkpoint
from model.gpt import GPT, GPTConfig

torch.set_num_threads(1)


@pytest.fixture
def checkpoints(tmp_path, tiny_tokenizer):
    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=64)
    gpt = GPT(config).init_weights(seed=0, zero_outputs=False)
    with torch.no_grad():
        gpt.lm_head.weight[list(tiny_tokenizer.special_ids.values())] = 0
    save_checkpoint(tmp_path / "fp32", gpt, tiny_tokenizer)
    quantize_checkpoint(tmp_path / "fp32", tmp_path / "int8")
    return tmp_path / "fp32", tmp_path / "int8"


def report(capsys, row, checkpoint):
    engine_weights.child(row, str(checkpoint), 8, 6)
    return json.loads(capsys.readouterr().out)


@pytest.mark.skipif(not int8.available(), reason="this torch build has no int8 kernel")
def test_rows_report_speed_memory_and_weights(checkpoints, capsys):
    fp32_dir, int8_dir = checkpoints
    fp32 = report(capsys, "fp32", fp32_dir)
    quantized = report(capsys, "int8", int8_dir)
    at_load = report(capsys, "int8@load", fp32_dir)
    for r in (fp32, quantized, at_load):
        assert len(r["ids"]) == 6 and r["decode"] > 0 and r["peak_rss"] > 10**7
    assert quantized["weight_bytes"] == at_load["weight_bytes"] < 0.3 * fp32["weight_bytes"]
    assert quantized["ids"] == at_load["ids"]  # the same quantization, written or done at load


@pytest.mark.skipif(not engine_weights.NANOCHAT_REFERENCE.is_dir(), reason="nanochat's reference code is absent")
def test_nanochat_row_decodes_what_our_fp32_engine_decodes(checkpoints, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    fp32_dir, _ = checkpoints
    theirs, ours = report(capsys, "nanochat", fp32_dir), report(capsys, "fp32", fp32_dir)
    assert theirs["ids"] == ours["ids"]
    assert theirs["weight_bytes"] == ours["weight_bytes"]
