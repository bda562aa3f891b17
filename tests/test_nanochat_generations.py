"""Every nanochat generation, against nanochat's own code.

The fixtures in ``tests/fixtures/nanochat/<commit>/`` were written by that commit's own ``GPT``
and checkpoint code (``make_fixtures.py`` beside them regenerates them from the reference
folders): a tiny random checkpoint in nanochat's base-directory layout, the logits its
``GPT.forward`` gives on a 150-token prompt, and its greedy continuation of 100 tokens. The
prompt is longer than the short window (128), the vocabulary (267) is not a multiple of 64, the
attention is grouped-query, and every tensor and scalar is random.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from glasschat.cli import main
from model import load_model
from model.engine import Engine
from model.events import SamplingParams
from model.gpt import GPT

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "nanochat"
GENERATIONS = ["16788ee", "b62a5bc", "e7ed208", "aba30cb", "6ed7d1d", "92d63d4"]
EXTRA = {"aba30cb": ["--softcap", "20"]}  # its keys are e7ed208's: only the softcap tells them apart


def expected(commit):
    return torch.load(FIXTURES / commit / "expected.pt", weights_only=True)


def imported(commit, tmp_path, capsys, *extra):
    out = tmp_path / commit
    assert main(["import-nanochat", str(FIXTURES / commit), "--out", str(out), *EXTRA.get(commit, []), *extra]) == 0
    return out, capsys.readouterr().out


@pytest.mark.parametrize("commit", GENERATIONS)
def test_every_generation_imports_and_matches_nanochat(commit, tmp_path, capsys):
    out, report = imported(commit, tmp_path, capsys)
    assert f"generation: nanochat {commit}" in report and "step: 5" in report and "vocab: 267" in report
    if commit != "16788ee":
        assert "window pattern: SSSL (short window 128 of 256" in report and "rows padded to 320" in report
    assert json.loads((out / "config.json").read_text())["metadata"]["nanochat_generation"] == commit

    gpt, tokenizer = load_model(out)
    reference = expected(commit)
    with torch.no_grad():
        logits = gpt(reference["prompt"][None])[0, reference["positions"]]
    assert (logits - reference["logits"]).abs().max() < 1e-3

    # greedy decoding, two rows sharing one prefill: both are nanochat's tokens, all 100 of them
    engine = Engine(gpt, tokenizer)
    rows = engine.generate(reference["prompt"].tolist(), SamplingParams(temperature=0, max_tokens=100, num_samples=2))
    for row in rows:
        assert row.ids == reference["tokens"].tolist()


def test_a_one_token_prompt_has_nothing_to_smear(tmp_path, capsys):
    # a prompt of one token went through the decode step's smear, which adds the cached previous
    # embedding: at position 0 there is none, and the new cache held whatever its memory held
    out, _ = imported("92d63d4", tmp_path, capsys)  # the smear's generation
    gpt, tokenizer = load_model(out)
    engine = Engine(gpt, tokenizer)
    token = expected("92d63d4")["prompt"][:1]
    with torch.inference_mode():
        want = gpt(token[None])[0, -1]
        cache = engine._allocate_cache(1, 256)
        cache.prev.fill_(100.0)  # what a reused buffer can hold
        got = engine._prefill(token, cache, 1)[0]
    assert (got - want).abs().max() < 1e-3


def test_a_sliding_window_layer_keeps_only_its_window(tmp_path, capsys):
    out, _ = imported("92d63d4", tmp_path, capsys)
    gpt, tokenizer = load_model(out)
    cache = Engine(gpt, tokenizer)._allocate_cache(1, 256)
    assert [k.shape[2] for k in cache.keys] == [129, 129, 256]  # S, S, L: a window of 128 plus the position itself


def test_the_softcap_rule_is_stated_and_can_be_overridden(tmp_path, capsys):
    out, report = imported("e7ed208", tmp_path, capsys)
    assert "note: softcap 15 assumed" in report and "--softcap 20" in report
    # the same keys with nanochat's later softcap: without the override the logits are off
    out = tmp_path / "plain"
    assert main(["import-nanochat", str(FIXTURES / "aba30cb"), "--out", str(out)]) == 0
    gpt, _ = load_model(out)
    reference = expected("aba30cb")
    with torch.no_grad():
        assert (gpt(reference["prompt"][None])[0, reference["positions"]] - reference["logits"]).abs().max() > 0.1


def test_a_meta_without_window_pattern_takes_the_generation_default(tmp_path, capsys):
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "92d63d4", source)
    meta_path = source / "chatsft_checkpoints" / "d3" / "meta_000005.json"
    meta = json.loads(meta_path.read_text())
    del meta["model_config"]["window_pattern"]
    meta_path.write_text(json.dumps(meta))
    assert main(["import-nanochat", str(source), "--out", str(tmp_path / "a")]) == 0
    report = capsys.readouterr().out
    assert "has no window_pattern" in report and "window pattern: SSSL" in report
    assert main(["import-nanochat", str(source), "--out", str(tmp_path / "b"), "--window-pattern", "L"]) == 0
    report = capsys.readouterr().out
    assert "window pattern: L (full attention" in report and "note: window pattern L as given by --window-pattern" in report
    gpt, _ = load_model(tmp_path / "b")
    assert gpt.config.windows == ()


def nanochat_base(tmp_path):
    """A base directory holding base and SFT checkpoints of two sizes and two steps."""
    base = tmp_path / "nanochat"
    shutil.copytree(FIXTURES / "92d63d4" / "tokenizer", base / "tokenizer")
    sft = FIXTURES / "92d63d4" / "chatsft_checkpoints" / "d3"
    older = FIXTURES / "6ed7d1d" / "base_checkpoints" / "d3"
    for folder, tag, source in (("base_checkpoints", "d3", older), ("chatsft_checkpoints", "d3", sft),
                                ("chatsft_checkpoints", "d12", sft), ("chatsft_checkpoints", "d2", older)):
        target = base / folder / tag
        target.mkdir(parents=True)
        for step in (5, 40):
            shutil.copy(source / "model_000005.pt", target / f"model_{step:06d}.pt")
            shutil.copy(source / "meta_000005.json", target / f"meta_{step:06d}.json")
    return base


@pytest.mark.parametrize("args, found", [
    ([], "step: 40 (chatsft_checkpoints/d12)"),  # the most finished stage, the deepest tag, the last step
    (["--source", "base"], "step: 40 (base_checkpoints/d3)"),
    (["--tag", "d2", "--step", "5"], "step: 5 (chatsft_checkpoints/d2)"),
])
def test_a_base_directory_picks_as_nanochat_does(tmp_path, capsys, args, found):
    base = nanochat_base(tmp_path)
    assert main(["import-nanochat", str(base), "--out", str(tmp_path / "out"), *args]) == 0
    assert found in capsys.readouterr().out


def test_a_checkpoints_folder_and_a_hub_folder_find_their_tokenizer(tmp_path, capsys):
    folder = nanochat_base(tmp_path) / "chatsft_checkpoints" / "d12"
    assert main(["import-nanochat", str(folder), "--out", str(tmp_path / "a")]) == 0  # ../../tokenizer/tokenizer.pkl
    hub = tmp_path / "hub"
    hub.mkdir()
    for name in ("model_000040.pt", "meta_000040.json"):
        shutil.copy(folder / name, hub / name)
    shutil.copy(FIXTURES / "92d63d4" / "tokenizer" / "tokenizer.pkl", hub / "tokenizer.pkl")
    assert main(["import-nanochat", str(hub), "--out", str(tmp_path / "b")]) == 0
    assert "generation: nanochat 92d63d4" in capsys.readouterr().out


def cache_entries():
    root = Path(os.environ["XDG_CACHE_HOME"]) / "glasschat" / "nanochat"
    return sorted(root.iterdir()) if root.is_dir() else []


def test_checkpoint_accepts_a_nanochat_folder_converted_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "92d63d4", source)
    ask = ["ask", "hello", "--checkpoint", str(source), "--temperature", "0", "--max-tokens", "8", "--json"]
    assert main(ask) == 0
    first = json.loads(capsys.readouterr().out)
    [entry] = cache_entries()
    config = (entry / "config.json").stat().st_mtime_ns
    assert main(ask) == 0  # reused, not converted again
    assert json.loads(capsys.readouterr().out)["ids"] == first["ids"]
    assert cache_entries() == [entry] and (entry / "config.json").stat().st_mtime_ns == config
    # a changed source file is a new entry
    model_path = source / "chatsft_checkpoints" / "d3" / "model_000005.pt"
    os.utime(model_path, ns=(model_path.stat().st_atime_ns, model_path.stat().st_mtime_ns + 10**9))
    assert main(ask) == 0
    assert len(cache_entries()) == 2


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def wrong_depth(path):
    meta = json.loads(path.read_text())
    meta["model_config"]["n_embd"] = 64
    path.write_text(json.dumps(meta))


def fifo(path):
    path.unlink()
    os.mkfifo(path)


def scalar_embedding(path):
    state = torch.load(path, weights_only=True)
    state["transformer.wte.weight"] = torch.tensor(1.0)
    torch.save(state, path)


BAD = {
    "truncated weights": (lambda s: truncate(s / "chatsft_checkpoints/d3/model_000005.pt"), "not a loadable weights file"),
    "meta disagrees with the weights": (lambda s: wrong_depth(s / "chatsft_checkpoints/d3/meta_000005.json"),
                                        "the config needs"),
    "missing tokenizer": (lambda s: (s / "tokenizer/tokenizer.pkl").unlink(), "tokenizer.pkl: missing"),
    "no checkpoints": (lambda s: shutil.rmtree(s / "chatsft_checkpoints/d3"), "no checkpoints in chatsft_checkpoints/"),
    "missing meta": (lambda s: (s / "chatsft_checkpoints/d3/meta_000005.json").unlink(), "meta_000005.json: missing"),
    "weights are a FIFO": (lambda s: fifo(s / "chatsft_checkpoints/d3/model_000005.pt"), "not a regular file"),
    "a scalar embedding": (lambda s: scalar_embedding(s / "chatsft_checkpoints/d3/model_000005.pt"),
                           "tensor transformer.wte.weight has shape ()"),
}


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("command", ["import", "ask"])
def test_bad_nanochat_folders_are_one_line_errors_leaving_nothing(tmp_path, capsys, monkeypatch, case, command):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "92d63d4", source)
    damage, message = BAD[case]
    damage(source)
    if command == "import":
        args = ["import-nanochat", str(source), "--out", str(tmp_path / "out")]
    else:
        args = ["ask", "hi", "--checkpoint", str(source), "--max-tokens", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    cache = tmp_path / "cache" / "glasschat" / "nanochat"
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize("commit", ["b62a5bc", "92d63d4"])
def test_export_hf_refuses_the_2026_generations_in_one_line(commit, tmp_path, capsys):
    out, _ = imported(commit, tmp_path, capsys)
    assert main(["export-hf", str(out), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert f"a nanochat {commit} checkpoint uses per-layer resid/x0 lambdas" in err and "NanoChatForCausalLM" in err
    assert err.count("\n") == 1 and not (tmp_path / "hf").exists()


def test_export_hf_writes_the_late_2025_generation(tmp_path, capsys):
    out, _ = imported("16788ee", tmp_path, capsys)
    assert main(["export-hf", str(out), "--out", str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["vocab_size"] == 267 and config["final_logit_softcapping"] == 15.0


def test_an_old_config_without_the_generation_fields_is_the_late_2025_model(tmp_path, tiny_tokenizer):
    from model import save_checkpoint
    from model.gpt import SIZE_FIELDS, GPTConfig

    config = GPTConfig(sequence_len=32, vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_head=2, n_kv_head=1, n_embd=32)
    gpt = GPT(config).init_weights(seed=3, zero_outputs=False).eval()
    save_checkpoint(tmp_path / "ckpt", gpt, tiny_tokenizer)
    data = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    data["model"] = {name: data["model"][name] for name in SIZE_FIELDS}  # as written before the fields existed
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(data))
    loaded, _ = load_model(tmp_path / "ckpt")
    assert loaded.config == config
    ids = torch.randint(tiny_tokenizer.vocab_size, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(ids), gpt(ids))


def test_a_softcap_that_is_not_a_finite_positive_number_is_refused(tmp_path, capsys):
    for value in ("nan", "inf", "0"):
        assert main(["import-nanochat", str(FIXTURES / "e7ed208"), "--out", str(tmp_path / "out"), "--softcap", value]) == 2
        err = capsys.readouterr().err
        assert "--softcap must be a finite positive number" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("commit", GENERATIONS)
def test_the_shapes_checked_before_loading_are_the_models_own(commit, tmp_path, capsys):
    from model.checkpoint import expected_shapes, read_config

    out, _ = imported(commit, tmp_path, capsys)
    config, _ = read_config(out)
    with torch.device("meta"):
        state = GPT(config).state_dict()
    assert expected_shapes(config) == {name: tuple(t.shape) for name, t in state.items()}
