"""The engine: KV-cache decoding equals full recompute, sampling, stops, cancellation, the tool,
streamed text."""

import threading

import pytest
import torch

from glasschat.errors import UserError
from model.engine import Engine
from model.events import SamplingParams, Stop, TokenEvent
from model.gpt import GPT, GPTConfig
from scripted import scripted_gpt

torch.set_num_threads(1)

GREEDY = SamplingParams(temperature=0, max_tokens=80)


def random_gpt(tokenizer, n_head=4, n_kv_head=2, sequence_len=160, seed=0):
    config = GPTConfig(sequence_len=sequence_len, vocab_size=tokenizer.vocab_size, n_layer=3, n_head=n_head,
                       n_kv_head=n_kv_head, n_embd=64)
    gpt = GPT(config).init_weights(seed=seed, zero_outputs=False).eval()
    with torch.no_grad():  # keep random models from stopping early: specials never win
        gpt.lm_head.weight[list(tokenizer.special_ids.values())] = 0
    return gpt


def recompute_greedy(gpt, prompt, steps):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(gpt(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


def tokens(events, row=0):
    return [e.id for e in events if isinstance(e, TokenEvent) and e.row == row]


def stops(events):
    return {e.row: e for e in events if isinstance(e, Stop)}


@pytest.fixture
def prompt(tiny_tokenizer):
    return tiny_tokenizer.encode("Hello there! How are you today?")


@pytest.mark.parametrize("n_head, n_kv_head", [(4, 2), (4, 4), (4, 1)])
def test_kv_cache_greedy_decoding_matches_full_recompute(tiny_tokenizer, prompt, n_head, n_kv_head):
    gpt = random_gpt(tiny_tokenizer, n_head, n_kv_head)
    events = list(Engine(gpt, tiny_tokenizer).stream(prompt, GREEDY))
    assert tokens(events) == recompute_greedy(gpt, prompt, 80)
    assert stops(events)[0].reason == "max_tokens"


def test_a_zero_embedding_row_decodes_like_the_model(tiny_tokenizer, prompt):
    gpt = random_gpt(tiny_tokenizer)
    with torch.no_grad():  # RMSNorm maps a zero vector to zero; no norm may divide by its length
        gpt.transformer.wte.weight[prompt[0]] = 0
    events = [e for e in Engine(gpt, tiny_tokenizer).stream(prompt, GREEDY) if isinstance(e, TokenEvent)]
    assert [e.id for e in events] == recompute_greedy(gpt, prompt, 80)
    assert all(0 < e.prob <= 1 for e in events)


def test_probabilities_and_alternatives_are_the_models_own(tiny_tokenizer, prompt):
    gpt = random_gpt(tiny_tokenizer)
    params = SamplingParams(temperature=0.8, top_k=20, seed=3, max_tokens=6, top_alternatives=5)
    events = [e for e in Engine(gpt, tiny_tokenizer).stream(prompt, params) if isinstance(e, TokenEvent)]
    ids = list(prompt)
    for event in events:
        with torch.no_grad():
            probs = torch.softmax(gpt(torch.tensor([ids]))[0, -1], dim=-1)
        assert event.prob == pytest.approx(probs[event.id].item(), rel=1e-4)
        expected = torch.topk(probs, 5)
        assert [i for i, _ in event.top] == expected.indices.tolist()
        assert [p for _, p in event.top] == pytest.approx(expected.values.tolist(), rel=1e-4)
        ids.append(event.id)


def test_same_seed_same_tokens_and_other_seeds_differ(tiny_tokenizer, prompt):
    engine = Engine(random_gpt(tiny_tokenizer), tiny_tokenizer)
    runs = [tokens(engine.stream(prompt, SamplingParams(temperature=1.0, top_k=0, seed=s, max_tokens=30))) for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("params", [SamplingParams(temperature=0.7, top_k=5), SamplingParams(temperature=1.0, top_k=0, top_p=0.5)])
def test_sampled_tokens_stay_inside_the_filter(tiny_tokenizer, prompt, params):
    gpt = random_gpt(tiny_tokenizer)
    params = SamplingParams(**{**params.__dict__, "seed": 1, "max_tokens": 12, "top_alternatives": 0})
    ids = list(prompt)
    for token in tokens(Engine(gpt, tiny_tokenizer).stream(prompt, params)):
        with torch.no_grad():
            probs = torch.softmax(gpt(torch.tensor([ids]))[0, -1] / params.temperature, dim=-1)
        order = probs.argsort(descending=True).tolist()
        if params.top_k:
            assert token in order[: params.top_k]
        else:  # the smallest prefix reaching top_p mass
            rank = order.index(token)
            assert probs[order[:rank]].sum() < params.top_p
        ids.append(token)


def test_several_samples_share_one_prefill_and_sample_independently(tiny_tokenizer, prompt):
    engine = Engine(random_gpt(tiny_tokenizer), tiny_tokenizer)
    greedy = list(engine.stream(prompt, SamplingParams(temperature=0, max_tokens=20, num_samples=3)))
    single = tokens(engine.stream(prompt, SamplingParams(temperature=0, max_tokens=20)))
    assert all(tokens(greedy, r) == single for r in range(3))
    assert set(stops(greedy)) == {0, 1, 2}
    sampled = list(engine.stream(prompt, SamplingParams(temperature=1.0, top_k=0, seed=5, max_tokens=20, num_samples=3)))
    rows = [tokens(sampled, r) for r in range(3)]
    assert len({tuple(r) for r in rows}) == 3
    again = list(engine.stream(prompt, SamplingParams(temperature=1.0, top_k=0, seed=5, max_tokens=20, num_samples=3)))
    assert [tokens(again, r) for r in range(3)] == rows


def scripted_engine(tokenizer, script):
    return Engine(scripted_gpt(tokenizer.vocab_size, script), tokenizer)


def special(tokenizer, name):
    return tokenizer.encode_special(name)


@pytest.mark.parametrize("stop", ["<|assistant_end|>", "<|bos|>"])
def test_stop_token_is_yielded_then_stop(tiny_tokenizer, stop):
    start = special(tiny_tokenizer, "<|assistant_start|>")
    text = tiny_tokenizer.encode("Hi")
    engine = scripted_engine(tiny_tokenizer, [start, *text, special(tiny_tokenizer, stop), 5, 6])
    events = list(engine.stream([start], SamplingParams(temperature=0, max_tokens=50)))
    assert tokens(events) == [*text, special(tiny_tokenizer, stop)]
    assert isinstance(events[-1], Stop) and events[-1].reason == stop.strip("<|>")
    assert events[-1].stats.generated_tokens == len(text) + 1


def test_max_tokens_context_full_and_long_prompts(tiny_tokenizer, prompt):
    engine = Engine(random_gpt(tiny_tokenizer, sequence_len=40), tiny_tokenizer)
    events = list(engine.stream(prompt, SamplingParams(temperature=0, max_tokens=5)))
    assert len(tokens(events)) == 5 and events[-1].reason == "max_tokens"
    events = list(engine.stream(prompt, SamplingParams(temperature=0, max_tokens=500)))
    assert len(prompt) + len(tokens(events)) == 40 and events[-1].reason == "context_full"
    full = (prompt * 10)[:40]
    assert [e.reason for e in engine.stream(full, GREEDY)] == ["context_full"]
    with pytest.raises(UserError, match="longer than the model's context of 40"):
        next(engine.stream(full + [1], GREEDY))
    with pytest.raises(UserError, match="outside 0..383"):
        next(engine.stream([1, 384], GREEDY))
    with pytest.raises(UserError, match="empty"):
        next(engine.stream([], GREEDY))


def test_cancel_before_start_yields_only_stop(tiny_tokenizer, prompt):
    cancel = threading.Event()
    cancel.set()
    events = list(Engine(random_gpt(tiny_tokenizer), tiny_tokenizer).stream(prompt, GREEDY, cancel))
    assert [(e.reason, e.stats.generated_tokens) for e in events] == [("cancelled", 0)]


def test_cancel_from_another_thread_takes_effect_within_one_token(tiny_tokenizer, prompt):
    engine = Engine(random_gpt(tiny_tokenizer), tiny_tokenizer)
    cancel, third_token_seen, cancelled = threading.Event(), threading.Event(), threading.Event()
    after_cancel, events = [], []

    def consume():
        for event in engine.stream(prompt, SamplingParams(temperature=0, max_tokens=100, num_samples=2), cancel):
            events.append(event)
            if cancelled.is_set():
                after_cancel.append(event)
            if len(tokens(events)) == 3:
                third_token_seen.set()
                cancelled.wait(timeout=10)

    worker = threading.Thread(target=consume)
    worker.start()
    assert third_token_seen.wait(timeout=30)
    cancel.set()
    cancelled.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert len([e for e in after_cancel if isinstance(e, TokenEvent)]) <= 2  # one per row at most
    assert [(r, s.reason) for r, s in sorted(stops(events).items())] == [(0, "cancelled"), (1, "cancelled")]


def tool_call(tokenizer, expression):
    return [special(tokenizer, "<|python_start|>"), *tokenizer.encode(expression), special(tokenizer, "<|python_end|>")]


def test_calculator_result_is_forced_between_output_tokens(tiny_tokenizer):
    s = lambda name: special(tiny_tokenizer, name)  # noqa: E731
    call, after = tool_call(tiny_tokenizer, "12+30"), tiny_tokenizer.encode(" It's 42.")
    # what the model writes after the forced block depends only on <|output_end|>, fed to it
    engine = scripted_engine(tiny_tokenizer, [s("<|assistant_start|>"), *call, s("<|output_end|>"), *after, s("<|assistant_end|>")])
    events = [e for e in engine.stream([s("<|assistant_start|>")], GREEDY) if isinstance(e, TokenEvent)]
    forced_block = [s("<|output_start|>"), *tiny_tokenizer.encode("42"), s("<|output_end|>")]
    assert [e.id for e in events] == [*call, *forced_block, *after, s("<|assistant_end|>")]
    assert [e.forced for e in events] == [False] * len(call) + [True] * len(forced_block) + [False] * (len(after) + 1)
    assert all(e.prob is None for e in events if e.forced) and all(e.prob > 0.9 for e in events if not e.forced)
    assert "".join(e.text for e in events) == "12+3042 It's 42."
    assert tiny_tokenizer.parse_assistant([e.id for e in events][:-1]) == [
        {"type": "python", "text": "12+30"}, {"type": "python_output", "text": "42"}, {"type": "text", "text": " It's 42."}]


def test_a_failing_tool_call_forces_the_calculators_error(tiny_tokenizer):
    s = lambda name: special(tiny_tokenizer, name)  # noqa: E731
    call = tool_call(tiny_tokenizer, "1/0")
    engine = scripted_engine(tiny_tokenizer, [s("<|assistant_start|>"), *call, s("<|output_end|>"), s("<|assistant_end|>")])
    events = [e for e in engine.stream([s("<|assistant_start|>")], GREEDY) if isinstance(e, TokenEvent)]
    error = [s("<|output_start|>"), *tiny_tokenizer.encode("error: division by zero"), s("<|output_end|>")]
    assert [e.id for e in events] == [*call, *error, s("<|assistant_end|>")]
    assert [e.forced for e in events] == [False] * len(call) + [True] * len(error) + [False]


def test_a_model_repeating_a_failing_call_is_stopped_at_the_second(tiny_tokenizer):
    s = lambda name: special(tiny_tokenizer, name)  # noqa: E731
    call = tool_call(tiny_tokenizer, "1/0")
    # after the tool's output the model calls again, forever
    engine = scripted_engine(tiny_tokenizer, [s("<|assistant_start|>"), *call, s("<|output_end|>"), call[0]])
    events = list(engine.stream([s("<|assistant_start|>")], GREEDY))
    error = [s("<|output_start|>"), *tiny_tokenizer.encode("error: division by zero"), s("<|output_end|>")]
    assert [e.id for e in events[:-1]] == [*call, *error, *call, *error, s("<|assistant_end|>")]
    assert events[-1].reason == "assistant_end" and events[-2].forced


def byte_token(tokenizer, value):
    return next(i for i in range(tokenizer.vocab_size - 9) if tokenizer.decode_single_token_bytes(i) == bytes([value]))


def test_characters_split_across_tokens_stream_whole(tiny_tokenizer):
    text = "你😀"
    pieces = [byte_token(tiny_tokenizer, b) for b in text.encode("utf-8")]
    start, end = special(tiny_tokenizer, "<|assistant_start|>"), special(tiny_tokenizer, "<|assistant_end|>")
    events = list(scripted_engine(tiny_tokenizer, [start, *pieces, end]).stream([start], SamplingParams(temperature=0)))
    deltas = [e.text for e in events if isinstance(e, TokenEvent)]
    assert deltas == ["", "", "你", "", "", "", "😀", ""]
    assert "\ufffd" not in "".join(deltas)


def test_generate_collects_rows(tiny_tokenizer, prompt):
    engine = Engine(random_gpt(tiny_tokenizer), tiny_tokenizer)
    results = engine.generate(prompt, SamplingParams(temperature=0, max_tokens=10, num_samples=2))
    assert [r.stop.reason for r in results] == ["max_tokens", "max_tokens"]
    assert results[0].ids == results[1].ids == recompute_greedy(engine.gpt, prompt, 10)
    assert results[0].text == tiny_tokenizer.decode(results[0].ids)


def test_benchmark_reference_loops_decode_the_same_tokens(tiny_tokenizer, prompt):
    from bench.engine_baselines import dynamic_cache_greedy, recompute_greedy

    gpt = random_gpt(tiny_tokenizer)
    ours = tokens(Engine(gpt, tiny_tokenizer).stream(prompt, SamplingParams(temperature=0, max_tokens=40)))
    assert list(dynamic_cache_greedy(gpt, prompt, 40)) == ours
    assert list(recompute_greedy(gpt, prompt, 10)) == ours[:10]


def test_sixteen_bit_weights_take_the_same_path_as_on_cuda(tiny_tokenizer, prompt):
    gpt = random_gpt(tiny_tokenizer).to(torch.bfloat16)  # load_model's dtype on CUDA
    engine = Engine(gpt, tiny_tokenizer)
    events = [e for e in engine.stream(prompt, SamplingParams(temperature=0, max_tokens=8, top_alternatives=3)) if isinstance(e, TokenEvent)]
    assert len(events) == 8
    with torch.no_grad():
        expected = torch.softmax(gpt(torch.tensor([prompt]))[0, -1], dim=-1)
    assert events[0].id == int(expected.argmax())
    assert events[0].prob == pytest.approx(expected.max().item(), abs=0.02)


def test_making_an_engine_leaves_torchs_thread_count_alone(tiny_tokenizer):
    """The thread count is process-wide: the program's entry point sets it, not the engine."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        Engine(random_gpt(tiny_tokenizer), tiny_tokenizer)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
