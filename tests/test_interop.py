"""nanochat import and Hugging Face export, on checkpoints built here from random weights."""

import json
import pickle

import pytest
import tiktoken
import torch
from safetensors.torch import load_file

from glasschat.cli import main
from model import load_model, save_checkpoint
from model.gpt import GPT, SIZE_FIELDS, GPTConfig

torch.set_num_threads(1)


def tiny_config(tokenizer, **overrides):
    fields = dict(sequence_len=64, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)
    return GPTConfig(**{**fields, **overrides})


def write_nanochat_step(directory, gpt, step, compiled=True):
    """One step as nanochat saves it: embedding in bf16, linears fp32, maybe a compile prefix."""
    state = {(("_orig_mod." if compiled else "") + name): t.clone() for name, t in gpt.state_dict().items()}
    wte = ("_orig_mod." if compiled else "") + "transformer.wte.weight"
    state[wte] = state[wte].bfloat16()
    torch.save(state, directory / f"model_{step:06d}.pt")
    model_config = {name: getattr(gpt.config, name) for name in SIZE_FIELDS}  # what the late-2025 nanochat stored
    meta = {"step": step, "val_bpb": 1.23, "model_config": model_config, "user_config": {"depth": 2}}
    (directory / f"meta_{step:06d}.json").write_text(json.dumps(meta))


def write_nanochat_tokenizer(path, tokenizer):
    ranks = {tokenizer.decode_single_token_bytes(i): i for i in range(tokenizer.vocab_size - len(tokenizer.special_ids))}
    encoding = tiktoken.Encoding("nanochat", pat_str=tokenizer.pattern, mergeable_ranks=ranks,
                                 special_tokens=tokenizer.special_ids)
    path.write_bytes(pickle.dumps(encoding))


@pytest.fixture
def nanochat_dir(tmp_path, tiny_tokenizer):
    source = tmp_path / "nanochat"
    source.mkdir()
    models = {}
    for step, seed in ((100, 1), (2000, 2)):
        models[step] = GPT(tiny_config(tiny_tokenizer)).init_weights(seed=seed, zero_outputs=False).eval()
        write_nanochat_step(source, models[step], step, compiled=step == 2000)
    write_nanochat_tokenizer(source / "tokenizer.pkl", tiny_tokenizer)
    return source, models


def as_nanochat_holds_it(gpt):
    """The fp32 model nanochat's file describes: the same, with the embedding rounded to bf16."""
    with torch.no_grad():
        gpt.transformer.wte.weight.copy_(gpt.transformer.wte.weight.bfloat16().float())
    return gpt


def test_import_takes_the_highest_step_and_keeps_dtypes(nanochat_dir, tmp_path, tiny_tokenizer, capsys):
    source, models = nanochat_dir
    out = tmp_path / "imported"
    assert main(["import-nanochat", str(source), "--out", str(out)]) == 0
    gpt, tokenizer = load_model(out)
    ids = torch.tensor([tiny_tokenizer.encode("Hello there! 你好")])
    assert torch.equal(gpt(ids), as_nanochat_holds_it(models[2000])(ids))
    assert tokenizer.encode("naïve café 😀") == tiny_tokenizer.encode("naïve café 😀")
    weights = load_file(out / "model.safetensors")
    assert weights["transformer.wte.weight"].dtype == torch.bfloat16
    assert weights["transformer.h.0.attn.c_q.weight"].dtype == torch.float32
    assert json.loads((out / "config.json").read_text())["metadata"]["step"] == 2000


def test_import_a_chosen_step_with_a_separate_tokenizer(nanochat_dir, tmp_path, tiny_tokenizer):
    source, models = nanochat_dir
    elsewhere = tmp_path / "tok.pkl"
    (source / "tokenizer.pkl").rename(elsewhere)
    out = tmp_path / "imported"
    assert main(["import-nanochat", str(source), "--out", str(out), "--step", "100", "--tokenizer", str(elsewhere)]) == 0
    gpt, _ = load_model(out)
    ids = torch.tensor([tiny_tokenizer.encode("What is 12 + 30?")])
    assert torch.equal(gpt(ids), as_nanochat_holds_it(models[100])(ids))


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def add_bigram_embedding(source):
    """The three-day engram generation of late January 2026."""
    state = torch.load(source / "model_002000.pt", weights_only=True)
    state["_orig_mod.bigram_embed.weight"] = torch.ones(7, 64)
    torch.save(state, source / "model_002000.pt")


BAD_SOURCES = {
    "no checkpoints": (lambda s: [p.unlink() for p in s.glob("model_*.pt")], [], "no nanochat checkpoint"),
    "unknown step": (lambda s: None, ["--step", "7"], "no checkpoint for step 7 (found steps 100, 2000)"),
    "no meta": (lambda s: (s / "meta_002000.json").unlink(), [], "meta_002000.json: missing"),
    "no tokenizer": (lambda s: (s / "tokenizer.pkl").unlink(), [], "tokenizer.pkl: missing; pass the nanochat tokenizer.pkl"),
    "code in weights": (lambda s: torch.save({"x": Exploit()}, s / "model_002000.pt"), [], "not a loadable weights file"),
    "unknown tensor": (add_bigram_embedding, [], "tensor(s) bigram_embed.weight belong to no nanochat generation"),
    "unknown config": (lambda s: (s / "meta_002000.json").write_text(json.dumps({"model_config": {
        **json.loads((s / "meta_002000.json").read_text())["model_config"], "engram_n": 3}})), [],
        "model_config field(s) engram_n belong to no nanochat generation"),
    "meta vocab disagrees with the weights": (lambda s: (s / "meta_002000.json").write_text(json.dumps({"model_config": {
        **json.loads((s / "meta_002000.json").read_text())["model_config"], "vocab_size": 512}})), [],
        "transformer.wte.weight has 384 rows but meta_002000.json says vocab_size 512"),
    "wrong shapes": (lambda s: (s / "meta_002000.json").write_text(json.dumps({"model_config": {
        **json.loads((s / "meta_002000.json").read_text())["model_config"], "n_layer": 3}})), [], "missing tensor(s) transformer.h.2"),
}


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_bad_nanochat_directories_are_one_line_errors(nanochat_dir, tmp_path, capsys, case):
    source, _ = nanochat_dir
    damage, extra, message = BAD_SOURCES[case]
    damage(source)
    assert main(["import-nanochat", str(source), "--out", str(tmp_path / "out"), *extra]) == 2
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1
    assert "code ran" not in out
    assert not (tmp_path / "out" / "config.json").exists()


@pytest.mark.parametrize("n_kv_head", [4, 2])
def test_hugging_face_export_matches_our_logits(tmp_path, tiny_tokenizer, n_kv_head):
    transformers = pytest.importorskip("transformers")
    gpt = GPT(tiny_config(tiny_tokenizer, n_kv_head=n_kv_head)).init_weights(seed=4, zero_outputs=False).eval()
    save_checkpoint(tmp_path / "ckpt", gpt, tiny_tokenizer, {})
    assert main(["export-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == "NanoChatForCausalLM"
    ids = torch.randint(tiny_tokenizer.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = gpt(ids), hf(ids).logits
        # transformers keeps its rotary tables in fp32, we round them to bf16 as nanochat does
        assert (ours - theirs).abs().max() < 5e-3
        # with the same tables every weight and op lines up
        channels = torch.arange(0, gpt.config.head_dim, 2, dtype=torch.float32) / gpt.config.head_dim
        angles = torch.outer(torch.arange(gpt.config.sequence_len, dtype=torch.float32), 1.0 / 10000**channels)
        gpt.cos, gpt.sin = angles.cos(), angles.sin()
        assert (gpt(ids) - theirs).abs().max() < 1e-5
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "nanochat" and config["eos_token_id"] == tiny_tokenizer.encode_special("<|assistant_end|>")
