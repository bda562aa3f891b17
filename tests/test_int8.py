"""int8 weights: the quantization, the kernel's products, and an engine that really runs on it."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from model import int8
from model.engine import Engine
from model.events import SamplingParams, TokenEvent
from model.gpt import GPT, GPTConfig
from model.weights import Rows, pack_matrix

torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(not int8.available(), reason="this torch build has no int8 kernel")


def test_quantize_is_within_half_a_step_per_row_and_keeps_zero_rows():
    w = torch.randn(50, 70) * torch.logspace(-3, 1, 50)[:, None]  # rows of very different sizes
    w[7] = 0
    original = w.clone()
    q, scale = int8.quantize(w)
    assert torch.equal(w, original)  # the source (a model's weights, a mapped file) is only read
    assert q.dtype == torch.int8 and scale.shape == (50,)
    assert int(q.abs().max()) == 127 and int(q.min()) >= -127
    error = (int8.dequantize(q, scale) - w).abs()
    assert (error <= scale[:, None] / 2 + 1e-7).all()  # round to nearest, per row
    assert (q[7] == 0).all() and scale[7] == 1


@pytest.mark.parametrize("shape", [(48, 96), (96, 48), (200, 64)])
def test_int8_matrix_multiplies_like_its_float_matrix(shape):
    out_features, in_features = shape
    w = torch.randn(out_features, in_features) / in_features**0.5
    q, scale = int8.quantize(w)
    matrix = int8.Int8Matrix(q, scale)
    assert matrix.shape == (in_features, out_features)
    x = torch.randn(3, in_features)
    exact = x @ int8.dequantize(q, scale).t()
    y = matrix.mm(x)
    # the input row is quantized to 7 or 8 bits on the fly: errors of a percent or two of the largest output
    assert (y - exact).abs().max() < 0.03 * exact.abs().max()
    out = torch.empty(3, out_features)
    assert matrix.mm(x, out=out) is out and torch.equal(out, y)
    acc = torch.ones(3, out_features)
    matrix.addmm_(acc, x, alpha=0.5)
    assert torch.allclose(acc, 1 + 0.5 * y, atol=1e-6)


def test_packing_int8_folds_a_scale_into_the_row_scales_exactly():
    w = torch.randn(40, 24)
    q, scale = int8.quantize(w)
    x = torch.randn(1, 24)
    plain = pack_matrix(Rows(q, scale), "int8").mm(x)
    scaled = pack_matrix(Rows(q, scale), "int8", scale=3.0).mm(x)
    assert torch.allclose(scaled, 3 * plain, rtol=1e-5, atol=1e-6)


def small_gpt(vocab=384, seed=0):
    config = GPTConfig(sequence_len=64, vocab_size=vocab, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)
    return GPT(config).init_weights(seed=seed, zero_outputs=False).eval()


def test_int8_engine_runs_every_matrix_product_in_the_int8_kernel(tiny_tokenizer):
    gpt = small_gpt(tiny_tokenizer.vocab_size)
    engine = Engine(gpt, tiny_tokenizer, weight_format="int8")
    assert engine.weight_format == "int8"
    prompt = tiny_tokenizer.encode("hello there")
    params = SamplingParams(temperature=0, max_tokens=5)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        events = [e for e in engine.stream(prompt, params) if isinstance(e, TokenEvent)]
    calls = {e.key: e.count for e in prof.key_averages()}
    # a forward = 4 matrices per layer + the lm_head; the prefill and 4 decode steps
    assert calls.get("quantized::linear_dynamic") == 5 * (4 * gpt.config.n_layer + 1)
    assert not any(calls.get(op) for op in ("aten::mm", "aten::addmm", "aten::addmm_", "aten::linear"))
    assert len(events) == 5


def test_int8_engine_logits_stay_close_to_the_fp32_model(tiny_tokenizer):
    gpt = small_gpt(tiny_tokenizer.vocab_size, seed=3)
    engine = Engine(gpt, tiny_tokenizer, weight_format="int8")
    ids = torch.tensor(tiny_tokenizer.encode("The quick brown fox jumps over the lazy dog."))
    with torch.inference_mode():
        exact = gpt(ids[None])[0, -1]
        logits = engine._prefill(ids, engine._allocate_cache(1, len(ids)), 1)[0]
    assert (logits - exact).abs().max() < 0.05 * exact.abs().max()
    assert int(logits.argmax()) == int(exact.argmax())
    # the probabilities the token pane shows come from the int8 model
    event = next(e for e in engine.stream(ids.tolist(), SamplingParams(temperature=0, max_tokens=1, top_alternatives=5))
                 if isinstance(e, TokenEvent))
    assert event.prob == pytest.approx(float(torch.softmax(logits, -1).max()), rel=1e-5)
    assert len(event.top) == 5


def test_int8_holds_a_quarter_of_the_fp32_bytes(tiny_tokenizer):
    gpt = small_gpt(tiny_tokenizer.vocab_size)
    fp32, int8_engine = Engine(gpt, tiny_tokenizer), Engine(gpt, tiny_tokenizer, weight_format="int8")
    assert fp32.weight_bytes == 4 * gpt.num_parameters()
    assert int8_engine.weight_bytes < 0.3 * fp32.weight_bytes
