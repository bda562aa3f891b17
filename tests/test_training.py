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
