"""``glasschat serve`` and the remote backend, over real HTTP on loopback: the remote backend's
events equal the local engine's, concurrent requests do not cross, disconnects and Esc cancel,
bad requests and failing servers give one-line errors, and the official ``openai`` client works."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn

from glasschat.errors import UserError
from glasschat.protocol import parse_chunk
from glasschat.serve import Served, create_app, encode_with_specials
from model import load_model, resolve_checkpoint_dir
from model.batch_process import BatcherProcess
from model.batching import Batcher
from model.engine import Engine
from model.events import SamplingParams, Stop, TokenEvent
from model.gpt import GPT, GPTConfig
from model.remote import RemoteBackend, RemoteError
from model.backend import Backend, LocalBackend
from tui.chat_file import Line
from tui.replay import replay_script

torch.set_num_threads(1)

GREEDY = SamplingParams(temperature=0, max_tokens=120, top_alternatives=5)
QUESTIONS = ["hi", "What is 12 + 30?", "spell banana", "how many r's in strawberry?", "reverse the word house",
             "who are you?", "write me a poem about the sea", "what is 7 * 8?"]


def serving(served: Served):
    return serving_app(create_app(served))


@contextmanager
def serving_app(app):
    """``app`` under uvicorn on a free loopback port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Recording:
    """Wraps a batcher: remembers how every request ended."""

    def __init__(self, batcher: Batcher):
        self.batcher, self.stops = batcher, []

    def submit(self, prompt, params, put, cancel, stop_ids=None, tools=True):
        def record(item):
            if isinstance(item, Stop):
                self.stops.append(item)
            put(item)
        self.batcher.submit(prompt, params, record, cancel, stop_ids, tools)

    def __getattr__(self, name):
        return getattr(self.batcher, name)


@pytest.fixture(scope="module")
def default_model():
    gpt, tokenizer = load_model(resolve_checkpoint_dir(None))
    return Engine(gpt, tokenizer), tokenizer


@pytest.fixture(scope="module")
def server(default_model):
    engine, tokenizer = default_model
    batcher = Recording(Batcher(engine, max_batch=16))
    served = Served(batcher, tokenizer, "checkpoints/default", engine.config.sequence_len)
    with serving(served) as url:
        yield url, served
    batcher.close()


@pytest.fixture
def remote(server, default_model):
    backend = RemoteBackend(server[0], default_model[1])
    yield backend
    backend.close()


def test_attention_is_refused_by_a_remote_backend_in_one_line(remote):
    with pytest.raises(UserError) as error:
        remote.attention([1, 2, 3], 2)
    assert str(error.value) == "attention needs the model's weights; not available on a server"


def prompt_of(tokenizer, question):
    return tokenizer.render_for_completion({"messages": [{"role": "user", "content": question}]})


def token_events(events):
    return [e for e in events if isinstance(e, TokenEvent)]


def concurrent_replies(batcher, prompts, params, tools=True):
    """Each prompt's reply (its token events), all streamed from ``batcher`` at once, a thread
    each; ``params`` per prompt."""
    results = [None] * len(prompts)

    def run(i):
        results[i] = token_events(batcher.stream(prompts[i], params[i], tools=tools))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def random_engine(tokenizer, sequence_len=2048, seed=0, **fields):
    """A random 2-layer engine whose greedy replies never pick a special token: they run to
    max_tokens."""
    config = GPTConfig(sequence_len=sequence_len, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_kv_head=2,
                       n_embd=32, **fields)
    gpt = GPT(config).init_weights(seed=seed, zero_outputs=False).eval()
    with torch.no_grad():
        gpt.lm_head.weight[list(tokenizer.special_ids.values())] = 0
    return Engine(gpt, tokenizer)


def test_remote_events_equal_the_local_engines_tool_call_included(default_model, remote):
    engine, tokenizer = default_model
    assert remote.sequence_len == engine.config.sequence_len and remote.probabilities == "raw"
    for question in ["What is 12 + 30?", "spell strawberry"]:
        prompt = prompt_of(tokenizer, question)
        local, served = list(engine.stream(prompt, GREEDY)), list(remote.stream(prompt, GREEDY))
        assert [(e.id, e.forced, e.text) for e in token_events(served)] == \
            [(e.id, e.forced, e.text) for e in token_events(local)]
        assert served[-1].reason == local[-1].reason == "assistant_end"
        for mine, theirs in zip(token_events(local), token_events(served)):
            if mine.forced:
                assert theirs.prob is None and theirs.top == ()
            else:  # top-5 alternatives for every sampled token, the model's own probabilities
                assert theirs.prob == pytest.approx(mine.prob, rel=1e-5)
                assert [t for t, _ in theirs.top] == [t for t, _ in mine.top] and len(theirs.top) == 5
    calculator = token_events(served := list(remote.stream(prompt_of(tokenizer, "What is 12 + 30?"), GREEDY)))
    assert any(e.forced for e in calculator)  # the calculator ran on the client, its result forced


def test_one_client_keeps_one_connection_across_replies(default_model):
    # a reply read only to its [DONE] left the response unread: httpx could not put the
    # connection back in its pool, and every request paid for a new TCP connection
    engine, tokenizer = default_model
    batcher = Batcher(engine, max_batch=2)
    app = create_app(Served(batcher, tokenizer, "checkpoints/default", engine.config.sequence_len))
    ports = []

    async def recording(scope, receive, send):  # the client's port of every request
        if scope["type"] == "http":
            ports.append(scope["client"][1])
        await app(scope, receive, send)

    with serving_app(recording) as url:
        backend = RemoteBackend(url, tokenizer)
        try:
            ports.clear()  # the connect-time checks
            for question in ["hi", "spell banana", "What is 12 + 30?"]:  # the calculator: two requests
                assert isinstance(list(backend.stream(prompt_of(tokenizer, question), GREEDY))[-1], Stop)
        finally:
            backend.close()
            batcher.close()
    assert len(ports) == 4 and len(set(ports)) == 1


def test_concurrent_requests_decode_together_without_crosstalk(default_model, server, remote):
    engine, tokenizer = default_model
    prompts = [prompt_of(tokenizer, q) for q in QUESTIONS * 2]
    serial = [[e.id for e in token_events(engine.stream(p, GREEDY))] for p in prompts]
    results = [None] * len(prompts)
    steps_before = server[1].batcher.steps, server[1].batcher.rows_decoded

    def ask(i):
        results[i] = [e.id for e in token_events(remote.stream(prompts[i], GREEDY))]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == serial
    steps = server[1].batcher.steps - steps_before[0]
    rows = server[1].batcher.rows_decoded - steps_before[1]
    assert rows / steps > 1.5  # rows really shared decode steps


def test_batcher_seeded_sampling_is_the_serial_runs(default_model):
    engine, tokenizer = default_model
    batcher = Batcher(engine, max_batch=4)
    try:
        params = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, seed=11, max_tokens=60, top_alternatives=3)
        prompts = [prompt_of(tokenizer, q) for q in QUESTIONS]  # 8 prompts through 4 rows: some wait
        serial = [[(e.id, e.prob) for e in token_events(engine.stream(p, params))] for p in prompts]
        results = [[(e.id, e.prob) for e in reply]
                   for reply in concurrent_replies(batcher, prompts, [params] * len(prompts))]
        for got, want in zip(results, serial):
            assert [i for i, _ in got] == [i for i, _ in want]
            assert [p for _, p in got] == pytest.approx([p for _, p in want], rel=1e-4)
    finally:
        batcher.close()


NANOCHAT_FIXTURES = Path(__file__).parent / "fixtures" / "nanochat"


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_batcher_runs_every_feature_of_the_2026_generations(quantize, tmp_path, capsys):
    # 92d63d4: sliding-window layers (ring caches of 129 of 256 positions), value embeddings,
    # lambdas, smear, backout, a padded vocabulary; int8 as well. Prompts of different lengths
    # through 2 rows: rows join and leave mid-way (a finished row's cache moves), and the long
    # ones wrap their rings. Every batched reply is the serial one, token for token.
    from glasschat.cli import main
    from model import int8
    from model.checkpoint import load_engine

    if quantize and not int8.available():
        pytest.skip("this torch build has no int8 kernel")
    assert main(["import-nanochat", str(NANOCHAT_FIXTURES / "92d63d4"), "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    engine, _ = load_engine(tmp_path / "m", quantize)
    reference = torch.load(NANOCHAT_FIXTURES / "92d63d4" / "expected.pt", weights_only=True)["prompt"].tolist()
    prompts = [(reference * 20)[:n] for n in (3, 150, 40, 200)]
    params = [SamplingParams(temperature=0, max_tokens=m, top_alternatives=2) for m in (90, 50, 30, 45)]
    serial = [[e.id for e in token_events(engine.stream(p, q))] for p, q in zip(prompts, params)]
    batcher = Batcher(engine, max_batch=2)
    try:
        results = [[e.id for e in reply] for reply in concurrent_replies(batcher, prompts, params, tools=False)]
        if quantize is None:
            assert results == serial
        else:
            # int8's kernel quantizes its input with one scale per call, shared by the rows of a
            # batch: a batched reply equals the serial one up to that rounding, so greedy replies
            # may part at a near-tie. Each prompt's prefill runs alone: its first token is exact
            assert [r[0] for r in results] == [r[0] for r in serial]
            assert all(len(r) == q.max_tokens or r[-1] in engine._stop_ids for r, q in zip(results, params))
        assert batcher.rows_decoded > batcher.steps  # rows did decode together
    finally:
        batcher.close()


@pytest.mark.parametrize("generation", ["92d63d4", "aba30cb"])
def test_a_prompt_that_joins_a_decode_step_gives_the_serial_reply(generation, tmp_path, capsys):
    # a request that comes while rows decode runs its prompt inside their next step (one forward
    # for both); a prompt longer than a window's ring runs alone. Every reply is the serial one,
    # the rows that were decoding when it joined included
    from glasschat.cli import main
    from model.checkpoint import load_engine

    assert main(["import-nanochat", str(NANOCHAT_FIXTURES / generation), "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    engine, _ = load_engine(tmp_path / "m")
    reference = torch.load(NANOCHAT_FIXTURES / generation / "expected.pt", weights_only=True)["prompt"].tolist()
    first = (reference * 20)[:5]
    later = [(reference * 20)[7:7 + n] for n in (40, 1, 128)] + [(reference * 20)[:200]]
    params = SamplingParams(temperature=0, max_tokens=40, top_alternatives=2)
    serial = [[e.id for e in token_events(engine.stream(p, params))] for p in [first, *later]]
    batcher = Batcher(engine, max_batch=4)
    try:
        streams = [batcher.stream(first, SamplingParams(temperature=0, max_tokens=120), tools=False)]
        got = [[next(streams[0]).id]]  # the first row decodes: the next requests join its steps
        streams += [batcher.stream(p, params, tools=False) for p in later]
        for i, stream in enumerate(streams):
            if i:
                got.append([])
            got[i] += [e.id for e in token_events(stream)]
        assert got[0][:len(serial[0])] == serial[0]  # (the first ran on to 120 tokens)
        assert got[1:] == serial[1:]
        assert batcher.joined >= 2
    finally:
        batcher.close()


def test_rows_with_one_query_per_kv_head_and_window_rings_give_the_serial_replies(tiny_tokenizer):
    # one query per kv head takes the rows' elementwise attention (GQA, in the fixtures above,
    # takes batched products): rows at different positions, a sliding-window layer whose ring
    # wraps, rows leaving and joining mid-way. Every batched reply is the serial one.
    engine = random_engine(tiny_tokenizer, sequence_len=512, seed=1, windows=(24, 512))
    ids = [int(t) for t in torch.randint(0, 256, (120,), generator=torch.Generator().manual_seed(3))]
    prompts = [ids[:n] for n in (2, 60, 9, 23)]
    params = [SamplingParams(temperature=0, max_tokens=m, top_alternatives=0) for m in (70, 20, 45, 30)]
    serial = [[e.id for e in token_events(engine.stream(p, q))] for p, q in zip(prompts, params)]
    batcher = Batcher(engine, max_batch=3)
    try:
        results = [[e.id for e in reply] for reply in concurrent_replies(batcher, prompts, params, tools=False)]
        assert results == serial
        assert batcher.rows_decoded > batcher.steps  # rows did decode together
    finally:
        batcher.close()


def test_a_prompt_longer_than_join_max_runs_alone(tiny_tokenizer):
    from model.batching import JOIN_MAX

    engine = random_engine(tiny_tokenizer, sequence_len=1024)
    ids = [int(t) for t in torch.randint(0, 256, (JOIN_MAX + 1,), generator=torch.Generator().manual_seed(0))]
    params = SamplingParams(temperature=0, max_tokens=8, top_alternatives=0)
    prompts = [ids, ids[:20]]  # one longer than JOIN_MAX, one that joins
    serial = [[e.id for e in token_events(engine.stream(p, params))] for p in prompts]
    batcher = Batcher(engine, max_batch=3)
    try:
        first = batcher.stream(ids[:3], SamplingParams(temperature=0, max_tokens=400), tools=False)
        next(first)  # a row decodes
        streams = [batcher.stream(p, params, tools=False) for p in prompts]
        assert [[e.id for e in token_events(s)] for s in streams] == serial
        assert batcher.joined == 1
        first.close()
    finally:
        batcher.close()


def random_served(tiny_tokenizer, sequence_len=2048):
    """``random_engine`` served: its greedy replies run to max_tokens."""
    batcher = Recording(Batcher(random_engine(tiny_tokenizer, sequence_len), max_batch=4))
    return Served(batcher, tiny_tokenizer, "random", sequence_len)


def test_a_disconnect_and_esc_cancel_the_generation(tiny_tokenizer):
    served = random_served(tiny_tokenizer)
    with serving(served) as url:
        body = {"prompt": [1, 2, 3], "max_tokens": 2000, "stream": True, "return_token_ids": True, "temperature": 0}
        with httpx.Client(base_url=url) as client:
            with client.stream("POST", "/v1/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        break  # the client goes away after one chunk
        for _ in range(500):
            if served.batcher.stops:
                break
            time.sleep(0.01)
        stop = served.batcher.stops[-1]
        assert stop.reason == "cancelled" and stop.stats.generated_tokens < 2000

        remote = RemoteBackend(url, tiny_tokenizer)
        cancel = threading.Event()
        events = []
        for event in remote.stream(tiny_tokenizer.encode("hello"), SamplingParams(temperature=0, max_tokens=2000), cancel):
            events.append(event)
            cancel.set()  # Esc after the first token
        remote.close()
        assert isinstance(events[-1], Stop) and events[-1].reason == "cancelled"
        for _ in range(500):
            if len(served.batcher.stops) == 2:
                break
            time.sleep(0.01)
        assert served.batcher.stops[-1].reason == "cancelled"
        assert served.batcher.stops[-1].stats.generated_tokens < 2000
        assert served.batcher.active == 0
    served.batcher.close()


def test_max_tokens_and_context_end_a_remote_reply_like_the_engine(tiny_tokenizer):
    served = random_served(tiny_tokenizer, sequence_len=64)
    engine = served.batcher.engine
    with serving(served) as url:
        remote = RemoteBackend(url, tiny_tokenizer)
        prompt = tiny_tokenizer.encode("Hello there")
        for params in (SamplingParams(temperature=0, max_tokens=7), SamplingParams(temperature=0, max_tokens=200)):
            local, theirs = list(engine.stream(prompt, params)), list(remote.stream(prompt, params))
            assert [e.id for e in token_events(theirs)] == [e.id for e in token_events(local)]
            assert theirs[-1].reason == local[-1].reason
        remote.close()
    served.batcher.close()


def test_bad_requests_are_one_line_json_errors_and_the_server_goes_on(server):
    url = server[0]
    with httpx.Client(base_url=url) as client:
        cases = [
            ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
            ({"prompt": "hi", "max_tokens": 100000}, "max_tokens"),
            ({"prompt": [1, 99999]}, "prompt"),
            ({"prompt": []}, "prompt"),
            ({"prompt": "hi", "logprobs": 21}, "logprobs"),
            ({"prompt": "hi", "temperature": "hot"}, "temperature"),
            ({"prompt": "hi", "n": 3}, "n"),
            ({"prompt": "hi", "model": "other"}, "model"),
            ({"prompt": [1] * (server[1].context + 88)}, "prompt"),  # longer than the context
        ]
        for body, field in cases:
            response = client.post("/v1/completions", json=body)
            assert 400 <= response.status_code < 500, body
            message = response.json()["error"]["message"]
            assert message.startswith(field) and "\n" not in message
        assert client.post("/v1/completions", content=b"{not json").status_code == 400
        assert client.post("/v1/completions", content=b"x" * (2 << 20)).status_code == 413
        assert client.post("/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]}
                           ).status_code == 400
        assert client.get("/v1/nothing").json()["error"]["code"] == 404
        ok = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 3, "return_token_ids": True})
        assert ok.status_code == 200 and 1 <= len(ok.json()["choices"][0]["token_ids"]) <= 3


def test_completion_fields_follow_vllm(server, default_model):
    tokenizer = default_model[1]
    prompt = prompt_of(tokenizer, "spell banana")
    body = {"prompt": prompt, "max_tokens": 60, "temperature": 0, "stream": True, "logprobs": 5,
            "return_token_ids": True, "return_tokens_as_token_ids": True, "skip_special_tokens": False,
            "include_stop_str_in_output": True, "stop_token_ids": [tokenizer.encode_special("<|assistant_end|>")]}
    chunks = []
    with httpx.stream("POST", server[0] + "/v1/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and line != "data: [DONE]":
                chunks.append(json.loads(line[5:]))
    ids = [t for c in chunks for t in c["choices"][0]["token_ids"]]
    assert ids == default_model[0].generate(prompt, GREEDY)[0].ids
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["stop_reason"] == tokenizer.encode_special("<|assistant_end|>")
    offset = 0
    for chunk in chunks[:-1]:  # a chunk may carry several tokens: its lists run in step
        choice = chunk["choices"][0]
        logprobs = choice["logprobs"]
        assert logprobs["tokens"] == [f"token_id:{t}" for t in choice["token_ids"]]
        assert len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == len(choice["token_ids"])
        assert all(len(top) == 5 and all(key.startswith("token_id:") for key in top)
                   for top in logprobs["top_logprobs"])
        assert logprobs["text_offset"][0] == offset
        offset += len(choice["text"])
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text.endswith("<|assistant_end|>") and "b a n a n a" in text


def test_a_stream_goes_out_at_most_once_per_interval_and_its_end_at_once(default_model):
    # a streamed response leaves at most once per --stream-interval-ms, the tokens since in one
    # chunk; the first token and the stop do not wait for the interval
    engine, tokenizer = default_model
    prompt = prompt_of(tokenizer, "write me a poem about the sea")
    expected = engine.generate(prompt, GREEDY)[0].ids
    body = {"prompt": prompt, "max_tokens": 60, "temperature": 0, "stream": True, "logprobs": 1,
            "return_token_ids": True}
    batcher = Batcher(engine, max_batch=4)
    try:
        for interval, most in ((30.0, 2), (0.0, len(expected))):
            served = Served(batcher, tokenizer, "checkpoints/default", engine.config.sequence_len,
                            stream_interval_s=interval)
            with serving(served) as url:
                start, chunks = time.perf_counter(), []
                with httpx.stream("POST", url + "/v1/completions", json=body, timeout=20) as response:
                    for line in response.iter_lines():
                        if line.startswith("data:") and line != "data: [DONE]":
                            chunks.append(json.loads(line[5:])["choices"][0])
                wall = time.perf_counter() - start
            carrying = [c for c in chunks if c["token_ids"]]
            assert [t for c in carrying for t in c["token_ids"]] == expected
            assert len(carrying) <= most
            assert chunks[-1]["finish_reason"] is not None
            if interval:
                assert wall < interval / 2  # the end did not wait for the 30 s interval
    finally:
        batcher.close()


def test_tokenize_maps_special_names_like_a_hugging_face_tokenizer(server, default_model):
    tokenizer = default_model[1]
    text = "日本語 🎉<|user_start|>hi<|assistant_end|>"
    got = httpx.post(server[0] + "/tokenize", json={"prompt": text}).json()["tokens"]
    assert got == encode_with_specials(tokenizer, text)
    assert got[-1] == tokenizer.encode_special("<|assistant_end|>")


def test_api_key_is_required_when_set_and_the_openai_client_works(default_model):
    openai = pytest.importorskip("openai")
    engine, tokenizer = default_model
    batcher = Batcher(engine, max_batch=4)
    served = Served(batcher, tokenizer, "checkpoints/default", engine.config.sequence_len, api_key="s3cret")
    with serving(served) as url:
        assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        with pytest.raises(RemoteError, match="HTTP 401"):
            RemoteBackend(url, tokenizer, api_key="wrong")
        client = openai.OpenAI(base_url=url + "/v1", api_key="s3cret")
        assert [m.id for m in client.models.list().data] == ["checkpoints/default"]
        chat = client.chat.completions.create(model="checkpoints/default", temperature=0,
                                              messages=[{"role": "user", "content": "What is 12 + 30?"}])
        assert chat.choices[0].message.content == "[calculator: 12 + 30][result: 42]The answer is 42."
        assert chat.choices[0].finish_reason == "stop"
        pieces = client.chat.completions.create(model="checkpoints/default", temperature=0, stream=True,
                                                messages=[{"role": "user", "content": "spell banana"}])
        assert "".join(p.choices[0].delta.content or "" for p in pieces if p.choices) == \
            "Letter by letter: b a n a n a."
        completion = client.completions.create(model="checkpoints/default", prompt="spell", max_tokens=5,
                                               temperature=0, logprobs=2)
        assert completion.choices[0].finish_reason == "length"
        assert len(completion.choices[0].logprobs.token_logprobs) == 5
        streamed = client.completions.create(model="checkpoints/default", prompt="spell", max_tokens=5,
                                             temperature=0, stream=True)
        assert "".join(c.choices[0].text for c in streamed if c.choices) == completion.choices[0].text
    batcher.close()


def test_a_server_with_another_tokenizer_is_refused_in_one_line(tiny_tokenizer, default_model):
    served = random_served(tiny_tokenizer)
    with serving(served) as url:
        with pytest.raises(RemoteError, match="tokenizer is not this model's") as caught:
            RemoteBackend(url, default_model[1])
        assert "\n" not in str(caught.value)
    served.batcher.close()


def test_connection_refused_and_a_mid_stream_error_chunk_are_one_line(tiny_tokenizer):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RemoteError, match="cannot connect") as caught:
        RemoteBackend(f"http://127.0.0.1:{port}", tiny_tokenizer)
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match="http"):
        RemoteBackend("ftp://example", tiny_tokenizer)

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(request):
        return JSONResponse({"data": [{"id": "m", "max_model_len": 100}]})

    async def tokenize(request):
        body = await request.json()
        return JSONResponse({"tokens": encode_with_specials(tiny_tokenizer, body["prompt"])})

    async def completions(request):
        async def chunks():
            yield 'data: {"choices": [{"token_ids": [65], "finish_reason": null}]}\n\n'
            yield 'data: {"error": {"message": "the engine died", "code": 500}}\n\n'
        return StreamingResponse(chunks(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/models", models), Route("/tokenize", tokenize, methods=["POST"]),
                            Route("/v1/completions", completions, methods=["POST"])])
    with serving_app(app) as url:
        remote = RemoteBackend(url, tiny_tokenizer)
        events = []
        with pytest.raises(RemoteError, match="the engine died") as caught:
            for event in remote.stream([1, 2], SamplingParams()):
                events.append(event)
        assert [e.id for e in events] == [65] and "\n" not in str(caught.value)
        remote.close()


def test_parse_chunk_reads_vllm_chunks():
    chunk = {"choices": [{"text": "\ufffd", "token_ids": [230, 151],
                          "logprobs": {"tokens": ["token_id:230", "token_id:151"], "token_logprobs": [-0.5, 0.0],
                                       "top_logprobs": [{"token_id:230": -0.5, "token_id:7": -1.5},
                                                        {"token_id:151": 0.0}]},
                          "finish_reason": "stop", "stop_reason": 151}]}
    parsed = parse_chunk(chunk)
    assert [e.id for e in parsed.tokens] == [230, 151]
    assert parsed.tokens[0].prob == pytest.approx(0.6065, rel=1e-3)
    assert parsed.tokens[0].top[0][0] == 230 and parsed.tokens[0].top[1][0] == 7
    assert parsed.finish_reason == "stop" and parsed.stop_reason == 151
    assert parse_chunk({"choices": [], "usage": {}}).tokens == []
    with pytest.raises(ValueError, match="token_ids"):
        parse_chunk({"choices": [{"text": "x"}]})


def test_replay_with_concurrency_equals_the_serial_local_replay(default_model, remote):
    engine, tokenizer = default_model
    local = LocalBackend(engine, tokenizer, remote.info)
    over_http = remote
    assert isinstance(remote, Backend)  # the seam every chat talks to
    script = [Line(n, {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "x"},
                                    {"role": "user", "content": "now multiply that by 3"}]})
              for n, q in enumerate(["What is 12 + 30?", "hi", "what is 5 * 6?", "spell banana", "who are you?"], 1)]
    script.append(Line(6, {"messages": [{"role": "robot", "content": "?"}]}))
    params = SamplingParams(temperature=0.7, seed=3, max_tokens=80)

    def strip(records):
        for record in records:
            for turn in record.get("turns", []):
                turn.pop("ttft_ms"), turn.pop("tokens_per_s")
        return records

    serial = strip(list(replay_script(local, script, params)))
    parallel = strip(list(replay_script(over_http, script, params, concurrency=4)))
    greedy = SamplingParams(temperature=0, max_tokens=80)
    assert [r["line"] for r in parallel] == list(range(1, 7)) and "error" in parallel[-1]
    assert strip(list(replay_script(over_http, script, greedy, concurrency=4))) == \
        strip(list(replay_script(local, script, greedy)))
    # sampled: the same seed gives the same transcript at any concurrency (the server's draws)
    assert parallel == strip(list(replay_script(over_http, script, params)))
    assert len(serial) == len(parallel)


def test_the_batcher_in_a_process_of_its_own_serves_as_the_batcher_does(default_model, tmp_path):
    """``glasschat serve``'s decode loop runs in a child process: its replies (tool calls
    included), cancels and scores are the in-process batcher's, a child that dies fails the open
    request and the server refuses the next ones in one line (503) and goes on, and a bad
    checkpoint is one line."""
    engine, tokenizer = default_model
    process = BatcherProcess(None, max_batch=4)
    try:
        prompts = [prompt_of(tokenizer, q) for q in QUESTIONS[:6]]
        replies = concurrent_replies(process, prompts, [GREEDY] * len(prompts))
        for prompt, reply in zip(prompts, replies):
            serial = token_events(engine.stream(prompt, GREEDY))
            assert [(e.id, e.text, e.forced) for e in reply] == [(e.id, e.text, e.forced) for e in serial]
            assert [[t for t, _ in e.top] for e in reply] == [[t for t, _ in e.top] for e in serial]
        assert any(e.forced for reply in replies for e in reply)  # the calculator ran in the child
        local = Batcher(engine, max_batch=1)
        theirs, ours = process.score(prompts[1], 3), local.score(prompts[1], 3)
        assert theirs[1:3] == ours[1:3]  # ranks and alternatives
        assert theirs[0] == pytest.approx(ours[0]) and theirs[3][-1] == pytest.approx(ours[3][-1])
        local.close()

        poem = prompt_of(tokenizer, "write me a poem about the sea")
        cancel = threading.Event()
        events = []
        for event in process.stream(poem, SamplingParams(temperature=0, max_tokens=100), cancel):
            events.append(event)
            if len(events) == 2:
                cancel.set()
                process.wake()  # what the server does when a client goes away
        assert events[-1].reason == "cancelled" and len(events) < 10

        stream = process.stream(poem, SamplingParams(temperature=0, max_tokens=100))
        next(stream)
        os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"^the engine process ended \(exit code -9\)"):
            list(stream)
        with pytest.raises(RuntimeError, match="^the engine process ended"):
            process.submit(prompts[0], GREEDY, lambda item: None, threading.Event())
        with serving(Served(process, tokenizer, "checkpoints/default", engine.config.sequence_len)) as url:
            with httpx.Client(base_url=url) as client:  # the server refuses in one line and goes on
                for body in ({"prompt": [1, 2], "max_tokens": 2}, {"prompt": [1, 2], "max_tokens": 2,
                                                                   "prompt_logprobs": 1}):
                    refused = client.post("/v1/completions", json=body)
                    assert refused.status_code == 503
                    assert refused.json()["error"]["message"].startswith("the engine process ended (exit code -9)")
                assert client.get("/v1/models").status_code == 200
    finally:
        process.close()
    with pytest.raises(UserError) as error:
        BatcherProcess(str(tmp_path))
    assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)


@pytest.mark.slow
def test_glasschat_serve_command_listens_on_loopback_and_ask_uses_it(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "glasschat", "serve", "--port", "0", "--api-key", "k"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://(\S+)/v1", line)
        assert url and url.group(1).startswith("127.0.0.1:"), line
        ask = subprocess.run([sys.executable, "-m", "glasschat", "ask", "What is 12 + 30?", "--temperature", "0",
                              "--json", "--server", f"http://{url.group(1)}"], capture_output=True, text=True,
                             env={**__import__("os").environ, "GLASSCHAT_API_KEY": "k"}, timeout=120)
        assert ask.returncode == 0, ask.stderr
        assert json.loads(ask.stdout)["text"].endswith("The answer is 42.")
        refused = subprocess.run([sys.executable, "-m", "glasschat", "ask", "hi", "--server",
                                  f"http://{url.group(1)}"], capture_output=True, text=True, timeout=120,
                                 env={k: v for k, v in __import__("os").environ.items() if k != "GLASSCHAT_API_KEY"})
        assert refused.returncode == 2 and "HTTP 401" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        process.terminate()
        process.wait(timeout=20)


async def test_the_app_streams_from_a_server_with_the_token_pane_open_and_survives_its_errors(
        default_model, server, tmp_path):
    from tui.app import GlasschatApp
    from tui.store import ConversationStore

    engine, tokenizer = default_model
    remote = RemoteBackend(server[0], tokenizer)
    app = GlasschatApp(remote, store=ConversationStore(tmp_path / "store"),
                       params=SamplingParams(temperature=0))
    question = "What is 12 + 30?"
    expected = engine.generate(prompt_of(tokenizer, question), GREEDY)[0]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        app.chat_input.load_text(question)
        await pilot.press("enter")
        for _ in range(500):
            if app.live_reply is None and len(app.session.messages) == 2:
                break
            await pilot.pause(0.02)
        turn = app.session.turn(1)
        assert turn.ids == expected.ids and turn.forced == expected.forced
        assert all(len(top) == 5 for top, forced in zip(turn.top, turn.forced) if not forced)
        assert app.query_one("#debug-pane").display
        # the server goes away: one notice, the conversation stays well-formed
        remote.url = remote._client.base_url = "http://127.0.0.1:9"
        app.chat_input.load_text("spell banana")
        await pilot.press("enter")
        for _ in range(500):
            if app.live_reply is None and app._notifications:
                break
            await pilot.pause(0.02)
        notice = list(app._notifications)[-1].message
        assert "cannot connect" in notice and "\n" not in notice.strip()
        assert [m["role"] for m in app.session.messages] == ["user", "assistant", "user"]
    remote.close()


def test_eval_on_a_server_scores_like_the_local_engine(server, capsys):
    from glasschat.cli import main

    args = ["eval", "--per-skill", "2", "--temperature", "0", "--json"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)["runs"][0]
    assert main([*args, "--server", server[0]]) == 0
    remote = json.loads(capsys.readouterr().out)["runs"][0]
    assert {s: r["correct"] for s, r in remote["skills"].items()} == {s: r["correct"] for s, r in local["skills"].items()}
    assert remote["mean_reply_tokens"] == local["mean_reply_tokens"]


def test_glasschat_serve_accepts_connections_once_its_first_line_is_out(monkeypatch, capsys):
    """Scripts (``bench serve`` among them) read the first line and connect at once: the socket
    must already be listening then, before uvicorn gets to start. The server here never starts,
    so only the command's own socket can take the connection."""
    from glasschat.cli import main

    reached = []

    def connect_instead_of_serving(self, sockets):
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/v1", capsys.readouterr().out).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            reached.append(port)
            accepted, _ = sockets[0].accept()
            # no Nagle on a connection: a kept-alive one held each response's first chunk back
            # until the client acknowledged the headers (up to 40 ms of delayed ACK)
            reached.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            accepted.close()

    monkeypatch.setattr(uvicorn.Server, "run", connect_instead_of_serving)
    assert main(["serve", "--port", "0"]) == 0
    assert len(reached) == 2 and reached[1]


@pytest.mark.parametrize("interval", ["-1", "nan", "1e9"])
def test_a_stream_interval_out_of_range_is_one_line(interval, capsys):
    from glasschat.cli import main

    assert main(["serve", "--port", "0", "--stream-interval-ms", interval]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "glasschat: error: --stream-interval-ms: must be from 0 to 10000"


def test_prompt_logprobs_score_every_prompt_token_like_the_engine(server, default_model):
    """vLLM's ``prompt_logprobs``: per prompt token after the first, its log probability given
    those before it, with its rank and the asked alternatives; streamed, with the first chunk."""
    engine, tokenizer = default_model
    prompt = tokenizer.encode("The quick brown fox jumps over the lazy dog. spell banana")
    with torch.inference_mode():
        expected = torch.log_softmax(engine.logits(prompt).float(), dim=-1)
    body = {"prompt": prompt, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 3}
    answer = httpx.post(server[0] + "/v1/completions", json=body).json()["choices"][0]
    entries = answer["prompt_logprobs"]
    assert len(entries) == len(prompt) and entries[0] is None
    for i, (entry, token) in enumerate(zip(entries[1:], prompt[1:])):
        row = expected[i]
        own = entry[str(token)]
        assert own["logprob"] == pytest.approx(float(row[token]), abs=1e-5)
        assert own["rank"] == int((row > row[token]).sum()) + 1
        best = row.topk(3).indices.tolist()
        assert all(str(t) in entry for t in best) and set(entry) <= {str(token), *map(str, best)}
    with httpx.stream("POST", server[0] + "/v1/completions", json={**body, "stream": True}) as response:
        chunks = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:") and line != "data: [DONE]"]
    assert chunks[0]["choices"][0]["prompt_logprobs"] == entries
    assert all("prompt_logprobs" not in c["choices"][0] for c in chunks[1:] if c["choices"])
    bad = httpx.post(server[0] + "/v1/completions", json={**body, "prompt_logprobs": 21})
    assert bad.status_code == 400 and "prompt_logprobs" in bad.json()["error"]["message"]


def test_a_server_scores_text_for_the_surprise_view_and_bits_per_byte(server, default_model, remote, tmp_path,
                                                                       capsys):
    from glasschat.cli import main
    from model import bpb

    engine, tokenizer = default_model
    short = tokenizer.encode("how many r's in strawberry? There are 3 r's in strawberry.")
    local = LocalBackend(engine, tokenizer, None).surprisal(short)
    assert remote.surprisal(short) == pytest.approx(local, abs=1e-4)
    # longer than a window: the server's windows leave room for one generated token
    span = remote.score_window
    assert span == engine.config.sequence_len - 1
    long = (tokenizer.encode("spell banana. reverse the word house. ") * span)[: 2 * span + 5]
    bits = remote.surprisal(long)
    assert len(bits) == len(long) - 1
    assert [i for i, b in enumerate(bits) if b != b] == [span - 1, 2 * span - 1]  # each window's first token
    assert bits[span:span + 20] == pytest.approx(LocalBackend(engine, tokenizer, None).surprisal(long[span:span + 21]),
                                                 abs=1e-4)

    path = tmp_path / "doc.txt"
    path.write_text("Hello there! What is 12 + 30? The answer is 42.", encoding="utf-8")
    assert main(["eval", "--bpb", str(path), "--json"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(["eval", "--bpb", str(path), "--server", server[0], "--json"]) == 0
    there = json.loads(capsys.readouterr().out)
    assert there["server"] == server[0] and (there["tokens"], there["bytes"]) == (here["tokens"], here["bytes"])
    assert there["bpb"] == pytest.approx(here["bpb"], abs=1e-4)
    ids = bpb.document_ids(tokenizer, path.read_text(encoding="utf-8"))
    assert there["tokens"] == len(ids) - 1
