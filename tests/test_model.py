"""The GPT: shapes, causality, grouped-query attention, the masked training loss, the init."""

import pytest
import torch

from glasschat.errors import UserError
from model.gpt import GPT, GPTConfig, rotary_tables

torch.set_num_threads(1)

CONFIG = GPTConfig(sequence_len=64, vocab_size=97, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)


def random_gpt(config=CONFIG, seed=0):
    return GPT(config).init_weights(seed=seed, zero_outputs=False).eval()


def random_ids(batch, length, vocab=CONFIG.vocab_size, seed=1):
    return torch.randint(vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_logits_are_fp32_softcapped_and_shaped():
    logits = random_gpt()(random_ids(3, 10))
    assert logits.shape == (3, 10, CONFIG.vocab_size) and logits.dtype == torch.float32
    assert logits.abs().max() < 15
    assert logits.std() > 0.1  # random outputs, not the zero init


def test_future_tokens_do_not_change_past_logits():
    gpt, ids = random_gpt(), random_ids(1, 12)
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % CONFIG.vocab_size
    torch.testing.assert_close(gpt(ids)[:, :8], gpt(changed)[:, :8], rtol=0, atol=1e-6)
    assert not torch.allclose(gpt(ids)[:, 8:], gpt(changed)[:, 8:])


def test_grouped_query_attention_equals_attention_with_repeated_kv_heads():
    gqa = random_gpt()
    mha = GPT(GPTConfig(**{**CONFIG.to_dict(), "n_kv_head": CONFIG.n_head}))
    state = gqa.state_dict()
    group, head_dim = CONFIG.n_head // CONFIG.n_kv_head, CONFIG.head_dim
    for name, tensor in list(state.items()):
        if name.endswith(("attn.c_k.weight", "attn.c_v.weight")):  # each kv head serves `group` query heads
            state[name] = tensor.view(CONFIG.n_kv_head, head_dim, -1).repeat_interleave(group, 0).reshape(-1, CONFIG.n_embd)
    mha.load_state_dict(state)
    ids = random_ids(2, 16)
    torch.testing.assert_close(gqa(ids), mha.eval()(ids), rtol=1e-5, atol=1e-5)


def test_loss_is_mean_cross_entropy_over_masked_positions():
    gpt, ids = random_gpt(), random_ids(2, 9)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    mask = torch.tensor([[0, 0, 1, 1, 0, 1, 1, 1], [1, 0, 0, 0, 0, 0, 0, 1]])
    loss = gpt(inputs, targets, mask)
    logprobs = torch.log_softmax(gpt(inputs), dim=-1).gather(-1, targets[..., None])[..., 0]
    expected = -(logprobs * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(gpt(inputs, targets), -logprobs.mean())


def test_mask_zero_positions_contribute_nothing_to_loss_or_gradient():
    gpt, ids = random_gpt(), random_ids(2, 9)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    mask = torch.ones_like(targets)
    mask[:, :5] = 0
    other_targets = targets.clone()
    other_targets[:, :5] = (other_targets[:, :5] + 7) % CONFIG.vocab_size  # differs only where mask is 0

    def loss_and_grads(t):
        gpt.zero_grad()
        loss = gpt(inputs, t, mask)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in gpt.parameters()]

    loss_a, grads_a = loss_and_grads(targets)
    loss_b, grads_b = loss_and_grads(other_targets)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_fully_masked_batch_has_zero_loss_and_zero_gradient():
    gpt, ids = random_gpt(), random_ids(1, 6)
    loss = gpt(ids[:, :-1], ids[:, 1:], torch.zeros(1, 5, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0
    assert all(not p.grad.any() for p in gpt.parameters())


def test_nanochat_init_zeroes_outputs_unless_asked_not_to():
    trained_from = GPT(CONFIG).init_weights(seed=3)
    assert not trained_from.lm_head.weight.any()
    assert not any(b.attn.c_proj.weight.any() or b.mlp.c_proj.weight.any() for b in trained_from.transformer.h)
    assert trained_from.transformer.wte.weight.std().item() == pytest.approx(1.0, rel=0.1)
    a, b = random_gpt(seed=5), random_gpt(seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.lm_head.weight, random_gpt(seed=6).lm_head.weight)


def test_rotary_tables_are_rounded_to_bfloat16():
    cos, sin = rotary_tables(32, 16)
    assert cos.shape == (32, 8)
    angle = 5 * 10000 ** (-2 / 16)  # position 5, channel pair 1
    assert cos[5, 1].item() == torch.tensor(angle).cos().bfloat16().item()
    assert sin[5, 1].item() != pytest.approx(torch.tensor(angle).sin().item(), abs=1e-7)


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="sequence_len"):
        random_gpt()(random_ids(1, CONFIG.sequence_len + 1))


@pytest.mark.parametrize(
    "fields, message",
    [({"n_kv_head": 3}, "not divisible by n_kv_head"), ({"n_embd": 60, "n_head": 8}, "not divisible by n_head"),
     ({"n_layer": 0}, "'n_layer' must be an integer from 1 to 256, got 0"),
     ({"vocab_size": "97"}, "'vocab_size' must be an integer from 1"),
     ({"n_layer": 1_000_000}, "'n_layer' must be an integer from 1 to 256, got 1000000"),
     ({"sequence_len": 10**12}, "'sequence_len' must be an integer from 1 to 131,072"),
     ({"n_layer": 256, "n_embd": 2**15, "n_head": 256, "n_kv_head": 256}, "parameters, more than")],
)
def test_bad_config_is_a_user_error(fields, message):
    with pytest.raises(UserError, match=message):
        GPTConfig(**{**CONFIG.to_dict(), **fields})
