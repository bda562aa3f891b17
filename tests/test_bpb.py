"""Bits per byte: the windows, the sums, and the same number as nanochat's own evaluate_bpb."""

import dataclasses
import json
import math
import pickle

import pytest
import tiktoken
import torch
import torch.nn.functional as F

from conftest import TINY_CORPUS, train_test_tokenizer
from nanochat_reference import nanochat_modules
from model import bpb
from model.gpt import GPT, GPTConfig

torch.set_num_threads(1)

GENERATIONS = ("16788ee", "b62a5bc", "e7ed208", "aba30cb", "6ed7d1d", "92d63d4")
TEXT = "".join(TINY_CORPUS[:6]) * 3


def random_gpt(tokenizer, sequence_len=32, seed=0):
    config = GPTConfig(sequence_len=sequence_len, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)
    return GPT(config).init_weights(seed=seed, zero_outputs=False).eval()


def test_windows_are_consecutive_non_overlapping_and_keep_a_last_window_of_two():
    ids = list(range(10))
    assert bpb.windows(ids, 3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert bpb.windows(ids[:9], 3) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # a last window of one token has no target
    assert bpb.windows([5], 3) == []


def test_document_is_bos_then_ordinary_text(tiny_tokenizer):
    ids = bpb.document_ids(tiny_tokenizer, "hi <|bos|>")
    assert ids[0] == tiny_tokenizer.bos_id and tiny_tokenizer.bos_id not in ids[1:]
    assert tiny_tokenizer.decode(ids[1:]) == "hi <|bos|>"


@torch.no_grad()
def direct_bpb(gpt, tokenizer, text):
    """The definition, spelled out with the model's full forward and F.cross_entropy."""
    ids = bpb.document_ids(tokenizer, text)
    lengths = torch.tensor(tokenizer.token_bytes)
    nats, total_bytes, tokens = 0.0, 0, 0
    size = gpt.config.sequence_len + 1
    for start in range(0, len(ids), size):
        window = torch.tensor([ids[start : start + size]])
        if window.size(1) < 2:
            continue
        logits = gpt(window[:, :-1])
        loss = F.cross_entropy(logits[0], window[0, 1:], reduction="none")
        counted = lengths[window[0, 1:]]
        nats += float((loss * (counted > 0)).sum())
        total_bytes += int(counted.sum())
        tokens += window.size(1) - 1
    return nats / (math.log(2) * total_bytes), total_bytes, tokens


@pytest.mark.parametrize("chunk_logits, batch_tokens", [(bpb.CHUNK_LOGITS, bpb.BATCH_TOKENS), (1000, 70)])
def test_chunked_and_batched_measure_equals_the_definition(tiny_tokenizer, monkeypatch, chunk_logits, batch_tokens):
    monkeypatch.setattr(bpb, "CHUNK_LOGITS", chunk_logits)  # 1000 floats: 2 rows of 384 per lm_head chunk
    gpt = random_gpt(tiny_tokenizer)
    text = TEXT + "\n\nSpecial-looking text <|assistant_end|> is ordinary. 😀"
    measured = bpb.measure_text(gpt, tiny_tokenizer, text, batch_tokens=batch_tokens)
    expected, total_bytes, tokens = direct_bpb(gpt, tiny_tokenizer, text)
    assert measured.bpb == pytest.approx(expected, abs=1e-6)
    assert (measured.bytes, measured.tokens) == (total_bytes, tokens)


def test_in_one_window_every_byte_of_the_text_is_counted(tiny_tokenizer):
    gpt = random_gpt(tiny_tokenizer, sequence_len=256)
    text = "The quick brown fox jumps over the lazy dog. What is 12 + 30? It's 42."
    measured = bpb.measure_text(gpt, tiny_tokenizer, text)
    assert measured.bytes == len(text) and measured.tokens == len(tiny_tokenizer.encode(text))


def test_a_model_that_knows_the_text_scores_lower(tiny_tokenizer):
    """bpb measures the model, not the text: a random model is near log2(vocab) bits per token."""
    gpt = random_gpt(tiny_tokenizer)
    with torch.no_grad():
        gpt.lm_head.weight.zero_()  # uniform predictions: exactly log(V) nats per target
    measured = bpb.measure_text(gpt, tiny_tokenizer, TEXT)
    assert measured.nats == pytest.approx(measured.tokens * math.log(tiny_tokenizer.vocab_size), rel=1e-5)


def test_surprisal_per_token(tiny_tokenizer):
    gpt = random_gpt(tiny_tokenizer, sequence_len=8)
    ids = bpb.document_ids(tiny_tokenizer, "Hello there! How are you today?")
    bits = bpb.surprisal(gpt, ids)
    assert len(bits) == len(ids) - 1
    with torch.no_grad():
        logits = gpt(torch.tensor([ids[:8]]))[0]
    expected = F.cross_entropy(logits[:8], torch.tensor(ids[1:9]), reduction="none") / math.log(2)
    assert bits[:8] == pytest.approx(expected.tolist(), abs=1e-5)
    assert math.isnan(bits[8])  # the second window's first token: nothing before it in its window


# ---- the same number as nanochat's evaluate_bpb, through glasschat's import of nanochat's own checkpoint

def nanochat_package(generation):
    return nanochat_modules(generation, "gpt", "loss_eval")


def nanochat_token_bytes(encoding):
    """Bytes per id the way nanochat's tokenizer training writes token_bytes.pt."""
    specials = set(encoding.special_tokens_set)
    strings = [encoding.decode([i]) for i in range(encoding.n_vocab)]
    return torch.tensor([0 if s in specials else len(s.encode("utf-8")) for s in strings], dtype=torch.int32)


@pytest.fixture(scope="module")
def odd_tokenizer():
    """300 tokens: not a multiple of 64, so the generations that pad the vocabulary have rows
    past the last token, which bits per byte must never count."""
    return train_test_tokenizer(TINY_CORPUS, 300)


SOFTCAPS = {"aba30cb": 20.0}  # its keys are e7ed208's: only the softcap tells them apart


@pytest.mark.parametrize("generation", GENERATIONS)
def test_bpb_equals_nanochats_evaluate_bpb(generation, odd_tokenizer, tmp_path, monkeypatch):
    from model import load_model
    from model.nanochat_import import import_nanochat

    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "nanochat-base"))
    gpt_module, loss_eval = nanochat_package(generation)
    fields = {f.name for f in dataclasses.fields(gpt_module.GPTConfig)}
    config = dict(sequence_len=32, vocab_size=odd_tokenizer.vocab_size, n_layer=2, n_head=2, n_kv_head=1, n_embd=64)
    if "window_pattern" in fields:
        config["window_pattern"] = "SL"
    torch.manual_seed(0)
    model = gpt_module.GPT(gpt_module.GPTConfig(**config))
    model.init_weights()
    with torch.no_grad():  # init zeroes the output projections: perturb every weight so each one matters
        for name, parameter in model.named_parameters():
            # the lm_head large enough that logits reach the softcap's curve
            parameter.add_(torch.randn_like(parameter) * (1.0 if name == "lm_head.weight" else 0.05))
    model.eval()

    source = tmp_path / "source"
    source.mkdir()
    torch.save(model.state_dict(), source / "model_000001.pt")
    (source / "meta_000001.json").write_text(json.dumps({"step": 1, "model_config": config}))
    ranks = {odd_tokenizer.decode_single_token_bytes(i): i for i in range(odd_tokenizer.vocab_size - len(odd_tokenizer.special_ids))}
    encoding = tiktoken.Encoding("nanochat", pat_str=odd_tokenizer.pattern, mergeable_ranks=ranks,
                                 special_tokens=odd_tokenizer.special_ids)
    (source / "tokenizer.pkl").write_bytes(pickle.dumps(encoding))
    import_nanochat(source, tmp_path / "imported", softcap=SOFTCAPS.get(generation))
    gpt, tokenizer = load_model(tmp_path / "imported")
    if generation != "16788ee":  # the 2026 generations pad the vocabulary to a multiple of 64
        assert gpt.config.padded_vocab_size == 320 > gpt.config.vocab_size == 300

    token_bytes = nanochat_token_bytes(encoding)
    assert tokenizer.token_bytes == tuple(token_bytes.tolist())
    text = TEXT
    ids = bpb.document_ids(tokenizer, text)
    while len(ids) % 33 in (1, 2):  # nanochat's newest forward refuses a single input position
        text = text[:-1]
        ids = bpb.document_ids(tokenizer, text)
    windows = [torch.tensor([w]) for w in bpb.windows(ids, 32)]
    assert len(windows) > 3 and len(windows[-1][0]) < 33  # several full windows and a shorter last one
    expected = loss_eval.evaluate_bpb(model, ((w[:, :-1], w[:, 1:]) for w in windows), len(windows), token_bytes)
    assert bpb.measure_text(gpt, tokenizer, text).bpb == pytest.approx(expected, abs=1e-4)


# ---- glasschat eval --bpb

@pytest.fixture
def checkpoint(tmp_path, tiny_tokenizer):
    from model import save_checkpoint

    directory = tmp_path / "ckpt"
    save_checkpoint(directory, random_gpt(tiny_tokenizer), tiny_tokenizer)
    return directory


def test_eval_bpb_json_per_file_and_over_all(checkpoint, tmp_path, tiny_tokenizer, capsys):
    from glasschat.cli import main
    from model import load_model

    first, second = tmp_path / "first.txt", tmp_path / "second.md"
    first.write_text(TEXT, encoding="utf-8")
    second.write_text("def add(a, b):\n    return a + b\n" * 5, encoding="utf-8")
    assert main(["eval", "--bpb", str(first), str(second), "--checkpoint", str(checkpoint), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    gpt, tokenizer = load_model(checkpoint)
    expected = [bpb.measure_text(gpt, tokenizer, path.read_text(encoding="utf-8")) for path in (first, second)]
    assert [f["path"] for f in report["files"]] == [str(first), str(second)]
    for entry, loss in zip(report["files"], expected):
        assert (entry["tokens"], entry["bytes"]) == (loss.tokens, loss.bytes)
        assert entry["bpb"] == pytest.approx(loss.bpb, abs=1e-9)
    # over all files: the sums divided, not the mean of the per-file figures
    pooled = sum(loss.nats for loss in expected) / (math.log(2) * sum(loss.bytes for loss in expected))
    assert report["bpb"] == pytest.approx(pooled, abs=1e-9)
    assert report["skipped"] == []


def test_eval_bpb_table(checkpoint, tmp_path, capsys):
    from glasschat.cli import main

    path = tmp_path / "doc.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["eval", "--bpb", str(path), "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "bpb" in out and str(path) in out and "tokens/s" in out


def test_eval_bpb_bad_files_are_one_line_each_and_the_rest_is_measured(checkpoint, tmp_path, capsys):
    from glasschat.cli import main

    good = tmp_path / "good.txt"
    good.write_text("Hello there! How are you today?", encoding="utf-8")
    bad = {"empty.txt": b"", "blank.txt": b"  \n\t \n", "image.bin": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
           "latin1.txt": "café".encode("latin-1")}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    names = [str(tmp_path / n) for n in bad] + [str(tmp_path / "missing.txt"), str(tmp_path)]
    assert main(["eval", "--bpb", *names, str(good), "--checkpoint", str(checkpoint), "--json"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == len(names)
    for name, line, why in zip(names, lines, ["empty", "whitespace", "binary", "UTF-8", "no such file", "directory"]):
        assert line.startswith(f"glasschat: error: {name}: ") and why in line
    report = json.loads(captured.out)
    assert [f["path"] for f in report["files"]] == [str(good)] and len(report["skipped"]) == len(names)

    assert main(["eval", "--bpb", *names, "--checkpoint", str(checkpoint)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "glasschat: error: no file could be measured"


def test_progress_line_on_a_terminal_only(monkeypatch):
    import io

    from model import bpb_report

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(bpb_report, "PROGRESS_EVERY_S", 0.0)
    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        progress = bpb_report.Progress(stream)
        update = progress.start("big.txt", 1000)
        update(250)
        update(250)
        progress.clear()
        assert ("big.txt: 500/1,000 tokens" in stream.getvalue()) == shown
        assert stream.getvalue().endswith("\r\x1b[K") == shown


def test_the_engine_measures_what_the_model_does(tiny_tokenizer):
    """An int8 model is measured through the engine (the weights the chat runs); in fp32 the
    engine's path gives the model's own figure, so the two paths measure one thing."""
    from model.engine import Engine

    gpt = random_gpt(tiny_tokenizer)
    ids = bpb.document_ids(tiny_tokenizer, TEXT)
    token_bytes = bpb.token_bytes_tensor(tiny_tokenizer)
    through_model = bpb.measure_ids(gpt, token_bytes, ids)
    scored = []
    through_engine = bpb.measure_ids(Engine(gpt, tiny_tokenizer, "fp32"), token_bytes, ids, progress=scored.append)
    assert (through_engine.tokens, through_engine.bytes) == (through_model.tokens, through_model.bytes)
    assert through_engine.bpb == pytest.approx(through_model.bpb, abs=1e-5)
    assert sum(scored) == through_model.tokens and len(scored) == len(bpb.windows(ids, 32))


def test_eval_bpb_of_an_int8_model_runs_its_int8_weights(checkpoint, tmp_path, tiny_tokenizer, capsys):
    from glasschat.cli import main
    from model.checkpoint import load_engine, quantize_checkpoint

    path = tmp_path / "doc.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["eval", "--bpb", str(path), "--checkpoint", str(checkpoint), "--json"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert main(["eval", "--bpb", str(path), "--checkpoint", str(checkpoint), "--quantize", "int8", "--json"]) == 0
    at_load = json.loads(capsys.readouterr().out)
    engine, tokenizer = load_engine(checkpoint, "int8")
    expected = bpb.measure_ids(engine, bpb.token_bytes_tensor(tokenizer), bpb.document_ids(tokenizer, TEXT))
    assert (fp32["weights"], at_load["weights"]) == ("fp32", "int8")
    assert at_load["bpb"] == pytest.approx(expected.bpb, abs=1e-9)
    assert at_load["bpb"] != fp32["bpb"] and at_load["bpb"] == pytest.approx(fp32["bpb"], abs=0.05)

    stored = quantize_checkpoint(checkpoint, tmp_path / "int8")
    assert main(["eval", "--bpb", str(path), "--checkpoint", str(stored), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == "int8" and report["bpb"] == pytest.approx(at_load["bpb"], abs=1e-4)
    assert main(["eval", "--bpb", str(path), "--checkpoint", str(stored)]) == 0
    assert ", int8, " in capsys.readouterr().out.splitlines()[0]
