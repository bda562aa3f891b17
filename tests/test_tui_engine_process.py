"""The engine in its own process streams what the in-process engine streams, stops on
request, gets a CPU of its own, and reports a bad checkpoint as one clear error."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from glasschat.errors import UserError
from model.backend import Backend
from model.events import SamplingParams, Stop, TokenEvent
from model.gpt import GPT, GPTConfig


@pytest.fixture(scope="module")
def checkpoint(tiny_tokenizer, tmp_path_factory):
    from model.checkpoint import save_checkpoint

    torch.set_num_threads(1)
    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=1, n_head=2, n_kv_head=1,
                       n_embd=32)
    directory = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(directory, GPT(config).init_weights(seed=1, zero_outputs=False), tiny_tokenizer)
    return directory


@pytest.mark.slow
def test_engine_process_matches_the_engine_and_stops_on_request(checkpoint, tiny_tokenizer):
    from model import load_model
    from model.engine import Engine
    from tui.engine_process import EngineProcess

    prompt = tiny_tokenizer.render_for_completion({"messages": [{"role": "user", "content": "Hello there!"}]})
    params = SamplingParams(temperature=1.0, seed=7, max_tokens=20, top_alternatives=3)
    local = [e for e in Engine(*load_model(checkpoint)).stream(prompt, params)]
    (checkpoint / "MODEL_CARD.md").write_text("# tiny\n\n## Example prompts\n\n- spell cat\n- say hello\n")
    remote = EngineProcess(str(checkpoint), place_cpus=False)  # the test process keeps its CPUs
    try:
        assert remote.sequence_len == 64 and remote.parameters > 0
        assert isinstance(remote, Backend) and remote.info.sequence_len == 64
        # what the first screen shows comes over from the engine process
        info = remote.info
        assert (info.source, info.example_prompts) == (str(checkpoint), ("spell cat", "say hello"))
        assert (info.stored_as, info.weight_format) == ("fp32", "fp32")
        assert remote.tokenizer.encode("Hello") == tiny_tokenizer.encode("Hello")
        events = list(remote.stream(prompt, params))
        strip = lambda es: [(e.id, e.text, e.forced, e.top) if isinstance(e, TokenEvent) else e.reason for e in es]  # noqa: E731
        assert strip(events) == strip(local)
        cancel = threading.Event()
        cancel.set()
        stopped = list(remote.stream(prompt, params, cancel=cancel))
        assert isinstance(stopped[-1], Stop) and stopped[-1].reason == "cancelled"
        assert strip(list(remote.stream(prompt, params))) == strip(local)  # still usable
        # the surprise view's forward runs in the engine process, between replies
        from model.bpb import surprisal

        ids = prompt + [e.id for e in events if isinstance(e, TokenEvent)]
        assert remote.surprisal(ids) == pytest.approx(surprisal(load_model(checkpoint)[0], ids), abs=1e-5)
        # so does the attention view's reference forward, on the checkpoint's weights
        from model.attention import AttentionProbe

        gpt = load_model(checkpoint)[0]
        expected = AttentionProbe(gpt.config, lambda: gpt).attention(ids, len(ids) - 2)
        assert torch.allclose(torch.tensor(remote.attention(ids, len(ids) - 2)), torch.tensor(expected), atol=1e-6)
        with pytest.raises(UserError, match="position 999 is outside"):
            remote.attention(ids, 999)
        assert strip(list(remote.stream(prompt, params))) == strip(local)
    finally:
        remote.close()


@pytest.mark.slow
def test_engine_process_quantizes_on_request_and_reports_its_load(checkpoint, tiny_tokenizer):
    from model.checkpoint import load_engine
    from tui.engine_process import EngineProcess

    prompt = tiny_tokenizer.render_for_completion({"messages": [{"role": "user", "content": "Hello there!"}]})
    params = SamplingParams(temperature=0, max_tokens=8, top_alternatives=2)
    local, _ = load_engine(checkpoint, "int8")
    progress = []
    remote = EngineProcess(str(checkpoint), place_cpus=False, quantize="int8",
                           progress=lambda done, total: progress.append((done, total)))
    try:
        assert remote.weight_format == "int8"
        assert progress and progress[-1][0] == progress[-1][1] > 0
        strip = lambda es: [(e.id, e.prob, e.top) if isinstance(e, TokenEvent) else e.reason for e in es]  # noqa: E731
        assert strip(remote.stream(prompt, params)) == strip(local.stream(prompt, params))
    finally:
        remote.close()


@pytest.mark.slow
def test_engine_process_reports_a_bad_checkpoint(tmp_path):
    from tui.engine_process import EngineProcess

    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    with pytest.raises(UserError, match="no such checkpoint directory"):
        EngineProcess(str(tmp_path / "missing"))
    if before is not None:  # a failed start leaves the app's CPUs alone
        assert os.sched_getaffinity(0) == before


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs")
def test_the_engine_gets_a_cpu_of_its_own(checkpoint):
    from tui.engine_process import EngineProcess

    before = os.sched_getaffinity(0)
    remote = None
    try:
        remote = EngineProcess(str(checkpoint))
        engine_cpu = max(before)
        assert os.sched_getaffinity(remote.pid) == {engine_cpu}
        assert os.sched_getaffinity(0) == before - {engine_cpu}
    finally:
        if remote is not None:
            remote.close()
        os.sched_setaffinity(0, before)
