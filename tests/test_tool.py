"""The calculator's forcing rule on its own (``model.tool``), as every backend applies it."""

from model.tool import MAX_TOOL_EXPRESSION_TOKENS, ToolState


def feed_all(state: ToolState, ids: list[int]) -> None:
    for token in ids:
        state.feed(token)


def test_a_closed_call_queues_its_result_between_output_tokens(tiny_tokenizer):
    tok, special = tiny_tokenizer, tiny_tokenizer.encode_special
    state = ToolState(tok)
    feed_all(state, tok.encode("so ") + [special("<|python_start|>"), *tok.encode("12+30")])
    assert not state.forced  # nothing before the call closes
    state.feed(special("<|python_end|>"))
    assert list(state.forced) == [special("<|output_start|>"), *tok.encode("42"), special("<|output_end|>")]
    assert state.python is None


def test_malformed_or_overlong_calls_queue_nothing(tiny_tokenizer):
    tok, special = tiny_tokenizer, tiny_tokenizer.encode_special
    start, end = special("<|python_start|>"), special("<|python_end|>")
    for body in (tok.encode("1+") + [special("<|assistant_end|>")] + tok.encode("1"),
                 tok.encode("1") * (MAX_TOOL_EXPRESSION_TOKENS + 1)):
        state = ToolState(tok)
        feed_all(state, [start, *body, end])
        assert not state.forced
    state = ToolState(tok)
    feed_all(state, tok.encode("1+1") + [end])  # a closer without an opener
    assert not state.forced


def test_a_failing_call_queues_its_error_and_the_same_failing_call_again_ends_the_reply(tiny_tokenizer):
    tok, special = tiny_tokenizer, tiny_tokenizer.encode_special
    start, end = special("<|python_start|>"), special("<|python_end|>")
    error = [special("<|output_start|>"), *tok.encode("error: division by zero"), special("<|output_end|>")]
    state = ToolState(tok)
    feed_all(state, [start, *tok.encode("10 / 0"), end])
    assert list(state.forced) == error
    state.forced.clear()
    feed_all(state, [start, *tok.encode("1+1"), end])  # another call still runs
    assert list(state.forced) == [special("<|output_start|>"), *tok.encode("2"), special("<|output_end|>")]
    state.forced.clear()
    feed_all(state, [start, *tok.encode("10/0"), end])  # the same failing call, spaced differently
    assert list(state.forced) == [*error, special("<|assistant_end|>")]
