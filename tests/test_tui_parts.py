"""The app's pure parts: slash commands, context fitting, token labels, reply blocks."""

from __future__ import annotations

import pytest

from glasschat.errors import UserError
from model.events import SamplingParams, TokenEvent
from tokenizer.display import byte_segments
from tui import commands
from tui.chat_file import Entry
from tui.context import ContextFullError, fit_prompt, without_oldest
from tui.reply_blocks import ReplyBlocks, merge_pieces


def test_slash_commands_parse_and_set_params():
    params = SamplingParams()
    for text, field, value in [("/temperature 0.7", "temperature", 0.7), ("/temp 0", "temperature", 0.0),
                               ("/topk 50", "top_k", 50), ("/topp 0.9", "top_p", 0.9), ("/seed 1", "seed", 1),
                               ("/seed random", "seed", None), ("/max 256", "max_tokens", 256)]:
        command, argument = commands.parse(text)
        assert getattr(commands.set_param(params, command, argument), field) == value
    assert commands.parse("hello /temperature 1") is None
    assert commands.parse("//etc/hosts") is None and commands.message_text("//etc/hosts") == "/etc/hosts"
    with pytest.raises(UserError, match="unknown command /nope"):
        commands.parse("/nope")
    for bad, message in [("/topk many", "not an integer"), ("/topp 1.5", "top_p=1.5 must be in"),
                         ("/max", "usage: /max N"), ("/max 0", "max_tokens=0 must be an integer from 1")]:
        with pytest.raises(UserError, match=message):
            commands.set_param(params, *commands.parse(bad))


def conversation(turns: int) -> list[dict]:
    messages = []
    for n in range(turns):
        messages += [{"role": "user", "content": f"question {n} about the quick brown fox"},
                     {"role": "assistant", "content": f"answer {n} about the lazy dog"}]
    return messages + [{"role": "user", "content": "last question"}]


def test_fit_prompt_drops_oldest_turns_and_keeps_the_system_message(tiny_tokenizer):
    tok = tiny_tokenizer
    messages = [{"role": "system", "content": "Be brief."}, *conversation(6)]
    entries = [Entry(message) for message in messages]
    whole = tok.render_for_completion({"messages": messages})
    assert fit_prompt(tok, entries, len(whole) + 8, max_tokens=8).dropped == 0
    prompt = fit_prompt(tok, entries, len(whole) // 2 + 8, max_tokens=8)
    assert prompt.dropped > 0 and prompt.dropped % 2 == 0
    kept = [entry.message for entry in without_oldest(entries, prompt.dropped)]
    assert kept[0]["content"] == "Be brief." and kept[1] == messages[1 + prompt.dropped]
    assert prompt.ids == tok.render_for_completion({"messages": kept}) and len(prompt.ids) + 8 <= len(whole) // 2 + 8


def test_fit_prompt_refuses_a_message_longer_than_the_context(tiny_tokenizer):
    with pytest.raises(ContextFullError, match="too long for the model"):
        fit_prompt(tiny_tokenizer, [Entry({"role": "user", "content": "word " * 100})], 32, max_tokens=8)


def test_partial_utf8_becomes_byte_badges():
    assert byte_segments("é".encode()) == (("é", False),)
    assert byte_segments(b"\xe4\xbd") == (("<0xE4><0xBD>", True),)
    assert byte_segments(b"a\xe4") == (("a", False), ("<0xE4>", True))
    assert byte_segments(b"\xa0b") == (("<0xA0>", True), ("b", False))


def test_reply_tracker_splits_text_and_tool_blocks(tiny_tokenizer):
    tok = tiny_tokenizer
    special = tok.encode_special
    events = [TokenEvent(i, t, False) for i, t in [(1, "Let "), (2, "me. ")]]
    events += [TokenEvent(special("<|python_start|>"), "", False), TokenEvent(3, "1+1", False),
               TokenEvent(special("<|python_end|>"), "", False), TokenEvent(special("<|output_start|>"), "", True),
               TokenEvent(4, "2", True), TokenEvent(special("<|output_end|>"), "", True), TokenEvent(5, "Two.", False),
               TokenEvent(special("<|assistant_end|>"), "", False)]
    tracker = ReplyBlocks(tok.special_name)
    pieces = merge_pieces([p for p in map(tracker.feed, events) if p is not None])
    assert [(p.block, p.kind, p.text) for p in pieces] == [
        (0, "text", "Let me. "), (1, "python", "1+1"), (2, "python_output", "2"), (3, "text", "Two.")]


def test_replies_are_rendered_as_generated(tiny_tokenizer):
    from tui.chat_file import TurnRecord
    from tui.chat_tokens import prompt_ids, render_chat

    tok = tiny_tokenizer
    spelled = [tok.encode(ch)[0] for ch in "Hello"]  # not how "Hello" encodes, but what was sampled
    assert spelled != tok.encode("Hello")
    output = [tok.encode_special("<|output_start|>"), *tok.encode("42"), tok.encode_special("<|output_end|>")]
    turn = TurnRecord(1, ids=spelled + output, forced=[False] * 5 + [True] * len(output), stop_reason="cancelled")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": tok.parse_assistant(turn.ids)},
                {"role": "user", "content": "more"}]
    entries = [Entry(messages[0]), Entry(messages[1], turn), Entry(messages[2])]
    ids, mask = render_chat(tok, entries)
    start = ids.index(tok.encode_special("<|assistant_start|>"))
    end = tok.encode_special("<|assistant_end|>")
    assert ids[start + 1:ids.index(end) + 1] == turn.ids + [end]  # closed, since it was stopped
    assert mask[start + 1:ids.index(end) + 1] == [1] * 5 + [0] * len(output) + [1]
    assert prompt_ids(tok, entries) == ids + [tok.encode_special("<|assistant_start|>")]
    edited = [messages[0], {"role": "assistant", "content": "something else"}, messages[2]]
    assert render_chat(tok, [Entry(edited[0]), Entry(edited[1], turn), Entry(edited[2])]) == tuple(tok.render_conversation({"messages": edited}))


def _generation(tok):
    from tui.chat_file import TurnRecord
    from tui.live_reply import LiveReply

    return LiveReply(TurnRecord(message=1, seed=0), widget=None, tracker=ReplyBlocks(tok.special_name))


class _Worker:
    is_cancelled = False


def test_generation_hands_engine_events_to_the_ui_side(tiny_tokenizer):
    import asyncio

    from model.events import GenerationStats, Stop
    from tui.live_reply import EngineFailure

    tok = tiny_tokenizer
    end = Stop("assistant_end", GenerationStats(3, 3, 0.01, 0.02))

    class Engine:
        def stream(self, prompt_ids, params, cancel):
            yield from (TokenEvent(1, "Hel", False), TokenEvent(2, "lo", False))
            yield TokenEvent(tok.encode_special("<|assistant_end|>"), "", False)
            yield end

    class Broken:
        def stream(self, prompt_ids, params, cancel):
            yield TokenEvent(1, "Hel", False)
            raise RuntimeError("out of memory")

    async def scenario():
        loop = asyncio.get_running_loop()
        ok, broken = _generation(tok), _generation(tok)
        await asyncio.to_thread(ok.run, Engine(), [1], SamplingParams(), loop, _Worker())
        await asyncio.to_thread(broken.run, Broken(), [1], SamplingParams(), loop, _Worker())
        await asyncio.sleep(0)  # the engine side sets ``ended`` through the loop
        assert ok.ended.is_set() and broken.ended.is_set()
        return ok, broken

    ok, broken = asyncio.run(scenario())
    pieces, stop = ok.drain()
    assert [(p.kind, p.text) for p in pieces] == [("text", "Hello")]  # one write for the batch
    assert stop is end and ok.turn.ids == [1, 2, tok.encode_special("<|assistant_end|>")]
    assert ok.drain() == ([], None)
    pieces, failure = broken.drain()
    assert [p.text for p in pieces] == ["Hel"]
    assert isinstance(failure, EngineFailure) and "out of memory" in str(failure.error)


def test_replay_state_plays_user_and_system_messages_and_keeps_the_script_reply():
    from tui.chat_file import Line
    from tui.replay import ReplayState

    script = [Line(1, {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "bye"}]}),
              Line(2, {"messages": [{"role": "user", "content": "again"}]})]
    state = ReplayState(script)
    assert state.next_message()["content"] == "be brief"
    assert state.next_message()["content"] == "hi"
    assert state.script_reply() == {"role": "assistant", "content": "Hello!"}
    assert state.next_message()["content"] == "bye"  # the script's reply is skipped: the model answers
    assert state.script_reply() is None
    assert state.next_message() is None
    state.next_entry()
    assert state.current_entry().number == 2 and not state.started
    assert state.next_message()["content"] == "again"
    state.next_entry()
    assert state.current_entry() is None


def test_fit_prompt_matches_rendering_the_kept_messages_whole(tiny_tokenizer):
    """Fitting counts on per-message lengths; the result must be exactly the kept messages
    rendered from scratch, and dropping two fewer messages must not have fitted."""
    from tui.chat_file import TurnRecord
    from tui.chat_tokens import RenderCache, prompt_ids

    tok = tiny_tokenizer
    reply = tok.encode("answer 1 about") + [tok.encode_special("<|assistant_end|>")]
    for system in ([], [Entry({"role": "system", "content": "Be brief."})]):
        entries = [*system, *map(Entry, conversation(9))]
        at = len(system) + 3
        entries[at] = Entry({"role": "assistant", "content": tok.parse_assistant(reply)},
                            TurnRecord(message=at, ids=reply, forced=[False] * len(reply)))
        cache = RenderCache()
        for sequence_len in (400, 200, 120, 90, 60):
            prompt = fit_prompt(tok, entries, sequence_len, max_tokens=8, cache=cache)
            assert prompt.ids == prompt_ids(tok, without_oldest(entries, prompt.dropped))  # no cache: from scratch
            assert len(prompt.ids) <= sequence_len - 8 or prompt.dropped + 1 >= len(entries) - len(system)
            if prompt.dropped:
                assert len(prompt_ids(tok, without_oldest(entries, prompt.dropped - 2))) > sequence_len - 8
