"""The attention probe (``model.attention``) gives nanochat's own attention weights.

For every nanochat generation there is a fixture for, nanochat's reference ``GPT`` runs the
fixture's checkpoint with its attention call wrapped: the wrapper records the queries and keys
nanochat hands to attention (after its rotary, QK norm and q/k scaling) and the window it asks
for, and the test computes softmax(QK^T/sqrt(D)) from them by hand. The probe, on the checkpoint
as glasschat imports it, must give the same weights at every layer and head, at positions inside
and past the short window. The bundled model is checked the same way with the late-2025 code.
"""

import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from glasschat.cli import main
from glasschat.errors import UserError
from model import load_model
from model.attention import MAX_COST, AttentionProbe, AttentionTooCostly, check_request
from model.gpt import GPTConfig
from nanochat_reference import nanochat_modules

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "nanochat"
GENERATIONS = {"16788ee": "base_checkpoints", "b62a5bc": "chatsft_checkpoints", "e7ed208": "base_checkpoints",
               "aba30cb": "chatsft_checkpoints", "6ed7d1d": "base_checkpoints", "92d63d4": "chatsft_checkpoints"}
EXTRA = {"aba30cb": ["--softcap", "20"]}
POSITIONS = [0, 1, 2, 63, 127, 128, 129, 140, 149]  # the short window is 128: the later ones lose their first keys


def nanochat_package(generation):
    return nanochat_modules(generation, "gpt", "checkpoint_manager")


class Recorder:
    """Stands in for the attention function nanochat's gpt module calls (``flash_attn`` or, in
    the late-2025 code, ``F``), records (q, k, window) as (H, T, D) tensors, then attends as the
    real one does."""

    def __init__(self, real):
        self.real = real
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def flash_attn_func(self, q, k, v, causal=False, window_size=(-1, -1)):  # (B, T, H, D)
        self.calls.append((q[0].transpose(0, 1).float(), k[0].transpose(0, 1).float(), window_size[0]))
        return self.real.flash_attn_func(q, k, v, causal=causal, window_size=window_size)

    def scaled_dot_product_attention(self, q, k, v, **kwargs):  # (B, H, T, D), causal, no window
        self.calls.append((q[0].float(), k[0].float(), -1))
        return self.real.scaled_dot_product_attention(q, k, v, **kwargs)


def manual_weights(calls, position):
    """softmax(q_p K^T / sqrt(D)) per layer and head, from what nanochat handed to attention."""
    layers = []
    for q, k, window in calls:
        group = q.shape[0] // k.shape[0]
        heads = []
        for h in range(q.shape[0]):
            scores = (k[h // group, : position + 1] @ q[h, position]) / math.sqrt(q.shape[-1])
            keep = torch.tensor([window < 0 or position - j <= window for j in range(position + 1)])
            heads.append(torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1))
        layers.append(torch.stack(heads))
    return torch.stack(layers)


def nanochat_attention(generation, model, ids):
    """Run nanochat's ``model`` over ``ids`` with its attention recorded."""
    gpt_module = sys.modules[type(model).__module__]
    name = "F" if hasattr(gpt_module, "F") and not hasattr(gpt_module, "flash_attn") else "flash_attn"
    recorder = Recorder(getattr(gpt_module, name))
    setattr(gpt_module, name, recorder)
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        setattr(gpt_module, name, recorder.real)
    assert len(recorder.calls) == len(model.transformer.h)
    return recorder.calls


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_probe_equals_nanochats_attention_in_every_generation(generation, tmp_path, capsys, monkeypatch):
    base = tmp_path / "nanochat"
    shutil.copytree(FIXTURES / generation, base)
    out = tmp_path / "imported"
    assert main(["import-nanochat", str(base), "--out", str(out), *EXTRA.get(generation, [])]) == 0
    capsys.readouterr()
    gpt, _ = load_model(out)
    prompt = torch.load(FIXTURES / generation / "expected.pt", weights_only=True)["prompt"].tolist()

    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    _, checkpoint_manager = nanochat_package(generation)
    model, _, _ = checkpoint_manager.build_model(str(base / GENERATIONS[generation] / "d3"), 5, torch.device("cpu"),
                                                 phase="eval")
    calls = nanochat_attention(generation, model, prompt)
    windows = [window for _, _, window in calls]
    if generation != "16788ee":  # S, S, L: the probe must cut the short layers' windows
        assert windows == [128, 128, 256] and list(gpt.config.windows) == [128, 128, 256]

    probe = AttentionProbe(gpt.config, lambda: gpt)
    for position in POSITIONS:
        weights = torch.tensor(probe.attention(prompt, position))
        assert weights.shape == (3, 4, position + 1)
        assert (weights - manual_weights(calls, position)).abs().max() < 1e-4, position
        assert torch.allclose(weights.sum(-1), torch.ones(3, 4), atol=1e-5)
    if generation != "16788ee":
        last = torch.tensor(probe.attention(prompt, 149))
        assert last[:2, :, :149 - 128].abs().max() == 0 and last[2, :, :21].sum() > 0  # the window, then full


def test_probe_equals_manual_attention_on_the_bundled_model(monkeypatch):
    from model.backend import load_local_backend

    backend = load_local_backend(None)
    tokenizer = backend.tokenizer
    ids = tokenizer.render_for_completion({"messages": [
        {"role": "user", "content": "What is the capital of France? Tell me about it in a few words."},
        {"role": "assistant", "content": "Paris is the capital of France."},
        {"role": "user", "content": "And what is 12 times 7?"}]})
    assert backend.engine.gpt is None  # the chat's engine is packed: the probe loads the weights itself
    gpt, _ = load_model(backend.directory)
    gpt_module, _ = nanochat_package("16788ee")
    c = gpt.config
    model = gpt_module.GPT(gpt_module.GPTConfig(sequence_len=c.sequence_len, vocab_size=c.vocab_size, n_layer=c.n_layer,
                                                n_head=c.n_head, n_kv_head=c.n_kv_head, n_embd=c.n_embd))
    model.init_weights()
    model.load_state_dict(gpt.state_dict(), strict=True)
    model.eval()
    calls = nanochat_attention("16788ee", model, ids)
    for position in (0, 5, len(ids) // 2, len(ids) - 1):
        weights = torch.tensor(backend.attention(ids, position))
        assert weights.shape == (c.n_layer, c.n_head, position + 1)
        assert (weights - manual_weights(calls, position)).abs().max() < 1e-4


def test_moving_along_the_same_tokens_needs_no_new_forward(tiny_tokenizer):
    from model.gpt import GPT

    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_head=4, n_kv_head=2,
                       n_embd=32, windows=(8, 64))
    gpt = GPT(config).init_weights(seed=3, zero_outputs=False).eval()
    loads = []
    probe = AttentionProbe(config, lambda: loads.append(1) or gpt)
    ids = tiny_tokenizer.encode("hello there, how are you today? fine thanks")
    forwards = []
    counted = gpt.transformer.h[0].register_forward_hook(lambda *_: forwards.append(1))
    first = probe.attention(ids, len(ids) - 1)
    assert loads == [1] and forwards == [1] and len(first[0][0]) == len(ids)
    # a position's weights depend on the tokens up to it only: the same as a forward over those alone
    fresh = AttentionProbe(config, lambda: gpt).attention(ids[:4], 3)
    assert torch.allclose(torch.tensor(probe.attention(ids, 3)), torch.tensor(fresh), atol=1e-6)
    forwards.clear()
    probe.attention(ids, 10)
    probe.attention(ids + [5, 6], 12)  # the conversation grew after the token: its keys are the same
    assert forwards == [] and loads == [1]
    probe.attention([7] + ids[1:], 12)  # an earlier token changed: a new forward
    assert forwards == [1]
    counted.remove()
    # the sliding window of 8 leaves the first keys of a late position at exactly zero
    late = torch.tensor(probe.attention(ids, len(ids) - 1))
    assert late[0, :, : len(ids) - 1 - 8].abs().max() == 0 and late[1, :, 0].min() > 0


def test_too_large_a_model_gets_a_notice_not_a_forward():
    big = GPTConfig(sequence_len=2048, vocab_size=65536, n_layer=20, n_head=10, n_kv_head=10, n_embd=1280)
    check_request(big, [1] * 50, 49)  # ~560M parameters over 50 tokens: quick enough
    with pytest.raises(AttentionTooCostly, match=r"too large to compute quickly here") as error:
        check_request(big, [1] * 500, 10)
    assert "\n" not in str(error.value) and f"{MAX_COST:.0e}" in str(error.value)
    probe = AttentionProbe(big, lambda: pytest.fail("the weights must not be loaded"))
    with pytest.raises(AttentionTooCostly):
        probe.attention([1] * 500, 10)


@pytest.mark.parametrize("ids, position, message", [
    ([], 0, "no tokens"), ([1, 2, 3], 3, "position 3 is outside the 3 tokens"),
    ([1] * 65, 1, "longer than the model's 64-token context")])
def test_bad_requests_are_one_line_errors(ids, position, message):
    config = GPTConfig(sequence_len=64, vocab_size=300, n_layer=1, n_head=2, n_kv_head=2, n_embd=16)
    with pytest.raises(UserError, match=message):
        check_request(config, ids, position)
