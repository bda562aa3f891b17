"""The training loop: the loss mask as training applies it, a smoke run that learns, resume and
Ctrl+C."""

import pytest
import torch

from model.gpt import GPT, GPTConfig
from training.batches import Batches, pack_conversations, pack_text
from training.conversations import ConversationSource
from training.loop import STATE_FILE, LoopConfig, load_state, make_optimizers, train
from training.words import split_words

SEQ = 96


def _tiny_model(vocab_size: int, seed: int = 0) -> GPT:
    config = GPTConfig(sequence_len=128, vocab_size=vocab_size, n_layer=1, n_head=2, n_kv_head=1, n_embd=64)
    return GPT(config).init_weights(seed=seed)


@pytest.fixture(scope="module")
def sft_rows(tiny_tokenizer):
    words, _ = split_words()
    conversations = ConversationSource("train", words[:200]).conversations(400, seed=1)
    return pack_conversations((tiny_tokenizer.render_conversation(c) for c in conversations), SEQ,
                              tiny_tokenizer.bos_id)


def test_mask_marks_exactly_the_assistant_targets(tiny_tokenizer):
    conversation = {"messages": [{"role": "user", "content": "What is 12 + 30?"},
                                 {"role": "assistant", "content": [{"type": "python", "text": "12 + 30"},
                                                                   {"type": "python_output", "text": "42"},
                                                                   {"type": "text", "text": "The answer is 42."}]}]}
    ids, mask = tiny_tokenizer.render_conversation(conversation)
    rows = pack_conversations([(ids, mask)] * 3, SEQ, tiny_tokenizer.bos_id)
    x, y, m = Batches(rows, 1, seed=0).get(0)
    n = len(ids)
    # the mask of a position is the mask of the token predicted there
    assert y[0, : n - 1].tolist() == ids[1:]
    assert m[0, : n - 1].tolist() == mask[1:]
    assert m[0, n - 1:].sum() == 0 or rows.ids[0, n] == tiny_tokenizer.bos_id
    assert m.sum() > 0


def test_mask_zero_positions_contribute_nothing(tiny_tokenizer, sft_rows):
    torch.manual_seed(0)
    model = _tiny_model(tiny_tokenizer.vocab_size)
    x, y, m = Batches(sft_rows, 4, seed=0).get(0)
    assert 0 < int(m.sum()) < m.numel()

    def loss_and_grads(targets):
        model.zero_grad()
        loss = model(x, targets, m)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    loss, grads = loss_and_grads(y)
    scrambled = torch.where(m.bool(), y, torch.randint_like(y, tiny_tokenizer.vocab_size))
    assert not torch.equal(scrambled, y)
    loss2, grads2 = loss_and_grads(scrambled)
    assert torch.equal(loss, loss2)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads2))
    # and the loss is the mean cross-entropy over exactly the mask-1 positions
    with torch.no_grad():
        logits = model(x)
    picked = m.bool()
    expected = torch.nn.functional.cross_entropy(logits[picked], y[picked])
    assert torch.allclose(loss, expected, atol=1e-5)


def test_smoke_training_lowers_the_loss(tiny_tokenizer, sft_rows, tmp_path):
    torch.manual_seed(0)
    model = _tiny_model(tiny_tokenizer.vocab_size)
    batches = Batches(sft_rows, 8, seed=1)
    config = LoopConfig(steps=60, log_every=20, eval_every=60, save_every=60, warmup_steps=5)
    before = _mean_loss(model, batches)
    lines = []
    result = train(model, batches, config, tmp_path, val_batches=batches, val_size=4, log=lines.append)
    after = _mean_loss(model, batches)
    assert after < 0.6 * before, (before, after)
    assert result.steps == 60 and not result.interrupted
    assert any("tok/s" in line and "ETA" in line for line in lines)
    assert any("val loss" in line for line in lines)
    assert (tmp_path / STATE_FILE).is_file()


def _mean_loss(model, batches: Batches) -> float:
    with torch.no_grad():
        return sum(float(model(*batches.get(s))) for s in range(4)) / 4


def test_pretraining_rows_count_every_position(tiny_tokenizer):
    docs = [tiny_tokenizer.encode("The quick brown fox jumps over the lazy dog. " * 5)] * 10
    rows = pack_text(docs, 32, tiny_tokenizer.bos_id)
    assert rows.mask.all() and rows.ids.shape[1] == 33
    assert rows.ids[0, 0] == tiny_tokenizer.bos_id


def test_resume_after_interruption_gives_the_same_model(tiny_tokenizer, sft_rows, tmp_path):
    config = LoopConfig(steps=8, log_every=4, eval_every=100, save_every=100, warmup_steps=2)
    batches = Batches(sft_rows, 4, seed=2)

    whole = _tiny_model(tiny_tokenizer.vocab_size)
    train(whole, batches, config, tmp_path / "whole", log=lambda _: None)

    first = _tiny_model(tiny_tokenizer.vocab_size)
    stopped = train(first, batches, config, tmp_path / "split", log=lambda _: None, stop_after=3)
    assert stopped.interrupted and stopped.steps == 3
    resumed = _tiny_model(tiny_tokenizer.vocab_size, seed=99)  # weights come from the saved state
    lines = []
    result = train(resumed, batches, config, tmp_path / "split", log=lines.append)
    assert result.steps == 8 and any("resuming at step 3" in line for line in lines)
    # the stage's time counts the interrupted call too, so a resumed run reports its whole cost
    assert result.earlier_seconds == pytest.approx(stopped.seconds, rel=0.5, abs=0.05)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_ctrl_c_saves_before_exiting(tiny_tokenizer, sft_rows, tmp_path):
    class InterruptedBatches(Batches):
        def get(self, step):
            if step == 5:
                raise KeyboardInterrupt
            return super().get(step)

    model = _tiny_model(tiny_tokenizer.vocab_size)
    config = LoopConfig(steps=20, log_every=100, eval_every=100, save_every=100)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(model, InterruptedBatches(sft_rows, 4, seed=0), config, tmp_path, log=lines.append)
    assert any("interrupted at step 5" in line for line in lines)
    fresh = _tiny_model(tiny_tokenizer.vocab_size, seed=5)
    step, _ = load_state(tmp_path / STATE_FILE, fresh, make_optimizers(fresh, config))
    assert step == 5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


def test_the_loss_history_survives_a_resume(tiny_tokenizer, sft_rows, tmp_path):
    import json

    from training.loss_history import LOSS_FILE

    config = LoopConfig(steps=8, log_every=2, eval_every=4, save_every=100, warmup_steps=2)
    batches, val = Batches(sft_rows, 4, seed=2), Batches(sft_rows, 4, seed=3)
    whole_histories = []
    train(_tiny_model(tiny_tokenizer.vocab_size), batches, config, tmp_path / "whole", val_batches=val, val_size=2,
          log=lambda _: None, on_history=lambda h: whole_histories.append((len(h.train), len(h.val))))
    # called at every progress line (steps 2, 4, 6, 8) and after each held-out loss (4, 8)
    assert whole_histories == [(2, 0), (4, 0), (4, 1), (6, 1), (8, 1), (8, 2)]
    whole = json.loads((tmp_path / "whole" / LOSS_FILE).read_text())

    train(_tiny_model(tiny_tokenizer.vocab_size), batches, config, tmp_path / "split", val_batches=val, val_size=2,
          log=lambda _: None, stop_after=5)
    interrupted = json.loads((tmp_path / "split" / LOSS_FILE).read_text())
    assert [s for s, _ in interrupted["train"]] == [1, 2, 3, 4, 5] and [s for s, _ in interrupted["val"]] == [4]
    train(_tiny_model(tiny_tokenizer.vocab_size, seed=7), batches, config, tmp_path / "split", val_batches=val,
          val_size=2, log=lambda _: None)
    resumed = json.loads((tmp_path / "split" / LOSS_FILE).read_text())
    assert resumed["stage"] == "train"
    assert [s for s, _ in resumed["train"]] == list(range(1, 9))  # every step once, none lost or doubled
    assert [s for s, _ in resumed["val"]] == [4, 8]
    for key in ("train", "val"):
        assert [v for _, v in resumed[key]] == pytest.approx([v for _, v in whole[key]], abs=1e-5)


def test_a_history_saved_beyond_the_resumed_step_is_cut_back():
    from training.loss_history import LossHistory

    saved = {"train": [[1, 3.0], [2, 2.5], [3, 2.0]], "val": [[2, 2.7], [3, 2.1]]}
    history = LossHistory.from_json(saved, upto=2)
    assert history.train == [(1, 3.0), (2, 2.5)] and history.val == [(2, 2.7)]


def test_the_live_chart_redraws_in_place(tmp_path):
    import io

    from training.live_chart import LiveLossChart, loss_display
    from training.loss_history import LossHistory

    stream = io.StringIO()
    chart = LiveLossChart("pretrain", stream, width=60, height=12, every_s=0.0)
    history = LossHistory([(1, 5.0), (2, 4.5)], [])
    chart.update(history)
    first = stream.getvalue()
    assert "pretrain: loss" in first and "\x1b[" in first and not first.startswith("\x1b[12F")
    assert first.count("\n") == 12
    chart.log("pretrain step 2/8  loss 4.5")
    second = stream.getvalue()[len(first):]
    assert second.startswith("\x1b[12F\x1b[J")  # back over the 12 lines drawn, cleared, drawn again
    assert second.rstrip("\n").endswith("pretrain step 2/8  loss 4.5")

    # off a terminal: the log function itself, no chart
    lines = []
    with loss_display("sft", lines.append, live=False) as (log, on_history):
        log("sft step 1")
    assert lines == ["sft step 1"] and on_history is None
