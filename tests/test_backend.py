"""The backend seam (``model.backend``): every backend has the same surface, and the status bar's
model label says what the backend knows."""

import pytest

from model.backend import Backend, LocalBackend, ModelInfo
from model.events import SamplingParams, Stop, TokenEvent
from tui_fakes import scripted_backend


def test_the_local_engine_and_the_scripted_backend_are_backends(tiny_tokenizer):
    import torch

    from model.engine import Engine
    from model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    config = GPTConfig(sequence_len=32, vocab_size=tiny_tokenizer.vocab_size, n_layer=1, n_head=2, n_kv_head=2,
                       n_embd=16)
    gpt = GPT(config).init_weights(seed=0, zero_outputs=False).eval()
    local = LocalBackend(Engine(gpt, tiny_tokenizer), tiny_tokenizer, ModelInfo("tiny", 1, 32))
    for backend in (local, scripted_backend(tiny_tokenizer, ["Hi."])):
        assert isinstance(backend, Backend)
        events = list(backend.stream(tiny_tokenizer.encode("Hello"), SamplingParams(max_tokens=3, seed=1)))
        assert all(isinstance(e, TokenEvent) for e in events[:-1]) and isinstance(events[-1], Stop)
        ids = tiny_tokenizer.encode("Hello there")
        assert len(backend.surprisal(ids)) == len(ids) - 1
        backend.close()
    from model.bpb import surprisal

    # the engine's packed weights score as the module does, across windows of the context too
    long_ids = tiny_tokenizer.encode("Hello there, how are you today? " * 6)
    assert len(long_ids) > 2 * config.sequence_len
    for sample in (ids, long_ids):
        assert local.surprisal(sample) == pytest.approx(surprisal(gpt, sample), abs=1e-4, nan_ok=True)


def test_model_label_shows_what_is_known():
    assert ModelInfo("checkpoints/default", 4_200_000, 512).label == "checkpoints/default (4.2M)"
    assert ModelInfo("d20", 561_000_000, 2048, "int8", "cpu").label == "d20 (561.0M, int8, cpu)"
