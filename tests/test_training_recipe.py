"""``glasschat train`` end to end on the tiny recipe, stage skipping, and ``glasschat eval``."""

import json

import pytest

from glasschat.cli import build_parser, main
from training.card import train_command
from training.cli import recipe_from_args
from training.evaluate import weak_phrasings
from training.recipe import RECIPES
from training.stages import STAGES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    assert main(["train", "--recipe", "tiny", "--out", str(out)]) == 0
    return out


def test_tiny_recipe_runs_every_stage(trained):
    timings = json.loads((trained / "timings.json").read_text())
    assert list(timings) == list(STAGES)
    assert all(t["threads"] == 1 and t["load_mean"] > 0 for t in timings.values())
    assert (trained / "checkpoint" / "config.json").is_file()
    assert (trained / "checkpoint" / "tokenizer").is_dir()
    card = (trained / "checkpoint" / "MODEL_CARD.md").read_text()
    assert "glasschat train --recipe tiny" in card and "stop rate" in card
    report = json.loads((trained / "eval.json").read_text())
    # greedy, the app's default sampling (the targets), and pure temperature 0.7 (earlier cards' column)
    assert [(run["temperature"], run["top_k"]) for run in report["runs"]] == [(0.0, 0), (0.6, 50), (0.7, 0)]
    assert "conversations" in report["runs"][0]["skills"] and "T=0.6 k=50 (the app's default sampling)" in card
    weak = weak_phrasings(report["runs"][0])  # a six-step model misreads most phrasings
    assert weak and all(line in card for line in weak)
    missed = report["runs"][0]["first_prompts"]["missed"]  # and most of the first prompts
    assert missed and "first prompts" in card and all(repr(m["prompt"]) in card for m in missed)
    chat = report["runs"][0]["readme_chat"]  # and the README conversation's wrong replies, with their requests
    assert f"{chat['correct']} of {chat['n']} replies right" in card
    assert all(repr(reply) in card for ok, reply in zip(chat["right"], chat["replies"]) if not ok)
    recipe = json.loads((trained / "recipe.json").read_text())
    assert recipe["name"] == "tiny"


def test_the_run_keeps_its_loss_curves_and_the_card_shows_them(trained):
    for stage in ("pretrain", "sft"):
        loss = json.loads((trained / stage / "loss.json").read_text())
        assert [step for step, _ in loss["train"]] == list(range(1, 7))  # the tiny recipe's six steps
        assert loss["val"] and loss["val"][-1][0] == 6
    image = (trained / "checkpoint" / "loss.png").read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    card = (trained / "checkpoint" / "MODEL_CARD.md").read_text()
    assert "](loss.png)" in card
    last_sft = json.loads((trained / "sft" / "loss.json").read_text())["train"][-1][1]
    assert f"| sft | 6 | {last_sft:.3f} |" in card


def test_the_same_recipe_makes_the_same_model(trained, tmp_path):
    # the model card's reproduce command names only the recipe: run again, every stage up to the
    # checkpoint gives the same tokenizer and the same weights (only the save's random id differs)
    from pathlib import Path

    from safetensors.torch import load_file

    for stage in STAGES[: STAGES.index("checkpoint") + 1]:
        assert main(["train", "--recipe", "tiny", "--out", str(tmp_path), "--stage", stage]) == 0
    first, again = trained / "checkpoint", tmp_path / "checkpoint"
    vocabulary = Path("tokenizer", "tokenizer.tiktoken")
    assert (first / vocabulary).read_bytes() == (again / vocabulary).read_bytes()
    weights, weights_again = (load_file(run / "model.safetensors") for run in (first, again))
    assert weights.keys() == weights_again.keys()
    assert all(weights[k].equal(weights_again[k]) for k in weights)


@pytest.mark.parametrize("terminal", [False, True])
def test_training_draws_its_loss_live_only_on_a_terminal(trained, tmp_path, capsys, monkeypatch, terminal):
    import shutil
    import sys

    for part in ("data", "tokenizer"):
        shutil.copytree(trained / part, tmp_path / part)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    assert main(["train", "--recipe", "tiny", "--out", str(tmp_path), "--stage", "pretrain"]) == 0
    out = capsys.readouterr().out
    assert "pretrain step     6/6  val loss" in out
    if terminal:
        assert "┤" in out and "\x1b[" in out  # the chart, redrawn in place
    else:
        assert "┤" not in out and "\x1b[" not in out  # lines for a log file, no chart, no cursor movement


def test_a_second_run_skips_finished_stages(trained, capsys):
    assert main(["train", "--recipe", "tiny", "--out", str(trained)]) == 0
    out = capsys.readouterr().out
    assert all(f"{stage}: already done" in out for stage in STAGES)


def test_a_stage_without_its_inputs_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--recipe", "tiny", "--out", str(tmp_path), "--stage", "sft"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err and "tokenizer" in err


def test_eval_command_prints_the_table(trained, capsys):
    code = main(["eval", "--checkpoint", str(trained / "checkpoint"), "--per-skill", "1", "--temperature", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "greedy" in out and "arithmetic" in out and "stop rate" in out and "conversations" in out
    assert "held-out phrasings right under 90% of the time (greedy):" in out  # a six-step model misses
    assert main(["eval", "--checkpoint", str(trained / "nothing")]) == 2
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(trained / "checkpoint"), "--per-skill", "1", "--sampling", "default",
                 "--skills", "powers,conversations"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("n ") or line.split()[:1] == ["n"])
    assert "T=0.6 k=50" in lines[header] and "greedy" not in lines[header]
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == ["powers", "conversations", "README"]
    assert main(["eval", "--checkpoint", str(trained / "checkpoint"), "--skills", "jokes"]) == 2
    assert "--skills: unknown jokes" in capsys.readouterr().err


def test_eval_draws_and_writes_its_chart(trained, tmp_path, capsys):
    chart = tmp_path / "eval.png"
    code = main(["eval", "--checkpoint", str(trained / "checkpoint"), "--per-skill", "1", "--temperature", "0",
                 "--plot", "--chart", str(chart)])
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out accuracy, 1 prompts per skill" in out and "% right" in out and "┤" in out
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("args, message", [
    (["--chart", "eval.svg"], "give a name ending in .png"),
    (["--chart", "."], "name ending in .png"),
    (["--bpb", "README.md", "--plot"], "--bpb does not make"),
])
def test_eval_chart_mistakes_are_refused_before_evaluating(args, message, capsys):
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_the_card_command_reproduces_the_recipe_with_its_overrides():
    assert train_command(RECIPES["default"], "runs/default") == "glasschat train --recipe default --out runs/default"
    changed = RECIPES["default"].overridden(seed=2, n_layer=8, sft_steps=600)
    command = train_command(changed, "runs/default")
    assert "--seed 2" in command and "--n-layer 8" in command and "--sft-steps 600" in command
    args = build_parser().parse_args(command.split()[1:])
    assert recipe_from_args(args) == changed


def test_the_default_recipe_fits_the_checkpoint_budget_and_a_chat():
    from model.gpt import GPT, GPTConfig

    for name in ("default", "quick"):
        r = RECIPES[name]
        config = GPTConfig(sequence_len=r.sequence_len, vocab_size=r.vocab_size, n_layer=r.n_layer, n_head=r.n_head,
                           n_kv_head=r.n_kv_head, n_embd=r.n_embd)
        assert GPT(config).num_parameters() * 2 < 19_000_000  # float16 weights, the tokenizer beside them: ≤ 20 MB
    # the app keeps half the context for the reply: 1024 leaves 768 tokens of chat, room for a long chat
    assert RECIPES["default"].sequence_len == RECIPES["default"].train_seq_len == 1024
