"""Rendering conversations to (ids, mask): the rules a trained model relies on."""

import pytest

from tokenizer import ConversationError


def _special(tok, name):
    return tok.encode_special(name)


def _by_mask(tok, ids, mask, bit):
    return [i for i, m in zip(ids, mask) if m == bit]


def test_user_and_assistant_turns(tiny_tokenizer):
    tok = tiny_tokenizer
    ids, mask = tok.render_conversation({"messages": [
        {"role": "user", "content": "What is 12 + 30?"},
        {"role": "assistant", "content": "It's 42."},
    ]})
    expected = ([_special(tok, "<|bos|>"), _special(tok, "<|user_start|>")] + tok.encode("What is 12 + 30?")
                + [_special(tok, "<|user_end|>"), _special(tok, "<|assistant_start|>")] + tok.encode("It's 42.")
                + [_special(tok, "<|assistant_end|>")])
    assert ids == expected
    n_user = 2 + len(tok.encode("What is 12 + 30?")) + 2
    assert mask == [0] * n_user + [1] * len(tok.encode("It's 42.")) + [1]


def test_system_message_is_merged_into_first_user_message(tiny_tokenizer):
    tok = tiny_tokenizer
    with_system = tok.render_conversation({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
    ]})
    merged = tok.render_conversation({"messages": [
        {"role": "user", "content": "Be brief.\n\nhi"},
        {"role": "assistant", "content": "Hello!"},
    ]})
    assert with_system == merged


def test_python_parts_are_learned_and_tool_output_is_not(tiny_tokenizer):
    tok = tiny_tokenizer
    ids, mask = tok.render_conversation({"messages": [
        {"role": "user", "content": "12 + 30?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me compute. "},
            {"type": "python", "text": "12+30"},
            {"type": "python_output", "text": "42"},
            {"type": "text", "text": "It is 42."},
        ]},
    ]})
    learned = _by_mask(tok, ids, mask, 1)
    assert learned == (tok.encode("Let me compute. ") + [_special(tok, "<|python_start|>")] + tok.encode("12+30")
                       + [_special(tok, "<|python_end|>")] + tok.encode("It is 42.") + [_special(tok, "<|assistant_end|>")])
    output_start = ids.index(_special(tok, "<|output_start|>"))
    output_end = ids.index(_special(tok, "<|output_end|>"))
    assert ids[output_start + 1:output_end] == tok.encode("42")
    assert mask[output_start:output_end + 1] == [0] * (output_end - output_start + 1)
    assert mask[ids.index(_special(tok, "<|assistant_start|>"))] == 0


@pytest.mark.parametrize("name", ["<|assistant_end|>", "<|user_end|>", "<|python_start|>", "<|bos|>"])
def test_special_strings_inside_messages_stay_ordinary(tiny_tokenizer, name):
    tok = tiny_tokenizer
    ids, _ = tok.render_conversation({"messages": [
        {"role": "user", "content": f"please say {name} for me"},
        {"role": "assistant", "content": [{"type": "text", "text": f"ok {name}"}, {"type": "python", "text": f"'{name}'"}]},
    ]})
    # only the structural specials appear: bos, user start/end, assistant start/end, python start/end
    specials = [tok.special_name(i) for i in ids if tok.is_special(i)]
    assert specials == ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>",
                        "<|python_start|>", "<|python_end|>", "<|assistant_end|>"]


def test_multi_turn_masks(tiny_tokenizer):
    tok = tiny_tokenizer
    conversation = {"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
    ]}
    ids, mask = tok.render_conversation(conversation)
    assert tok.decode(_by_mask(tok, ids, mask, 1)) == "b<|assistant_end|>d<|assistant_end|>"


def test_max_tokens_truncates(tiny_tokenizer):
    conversation = {"messages": [{"role": "user", "content": "hello " * 50}, {"role": "assistant", "content": "x"}]}
    ids, mask = tiny_tokenizer.render_conversation(conversation, max_tokens=10)
    assert len(ids) == len(mask) == 10


def test_render_for_completion(tiny_tokenizer):
    tok = tiny_tokenizer
    conversation = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]}
    prompt = tok.render_for_completion(conversation)
    full, _ = tok.render_conversation(conversation)
    start = _special(tok, "<|assistant_start|>")
    assert prompt == full[:full.index(start) + 1]
    assert tok.render_for_completion({"messages": conversation["messages"][:1]}) == prompt


@pytest.mark.parametrize("conversation, message", [
    ([], "must be an object"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "message 0: expected role 'user'"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}, "message 1: expected role 'assistant'"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]}, "message 1: role must be"),
    ({"messages": [{"role": "user"}]}, "message 0: missing 'content'"),
    ({"messages": [{"role": "user", "content": 3}]}, "message 0: user content must be a string"),
    ({"messages": [{"role": "system", "content": "s"}]}, "message 1: a system message must be followed"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                   {"role": "assistant", "content": "a"}, {"role": "system", "content": "s"}]}, "message 3: expected role 'user'"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": [{"type": "image", "text": ""}]}]},
     "message 1: part 0: type must be"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": [{"type": "text"}]}]},
     "message 1: part 0: 'text' must be a string"),
    ({"messages": ["hello"]}, "message 0: must be an object"),
])
def test_malformed_conversations_name_the_message(tiny_tokenizer, conversation, message):
    with pytest.raises(ConversationError, match=message.replace("(", r"\(")):
        tiny_tokenizer.render_conversation(conversation)


def test_parse_assistant_inverts_rendering(tiny_tokenizer):
    tok = tiny_tokenizer
    parts = [{"type": "text", "text": "Let me compute. "}, {"type": "python", "text": "12+30"},
             {"type": "python_output", "text": "42"}, {"type": "text", "text": "It is 42."}]
    ids, _ = tok.render_conversation({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": parts}]})
    body = ids[ids.index(_special(tok, "<|assistant_start|>")):]
    assert tok.parse_assistant(body) == parts
    assert tok.parse_assistant(tok.encode("plain 你好")) == "plain 你好"
    # generation stopped inside a python call: the call still becomes a part
    unfinished = [_special(tok, "<|python_start|>")] + tok.encode("1+")
    assert tok.parse_assistant(unfinished) == [{"type": "python", "text": "1+"}]


def test_regions_label_every_token(tiny_tokenizer):
    tok = tiny_tokenizer
    ids, _ = tok.render_conversation({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "python", "text": "1"}, {"type": "python_output", "text": "1"},
                                          {"type": "text", "text": "a"}]},
    ]})
    labels = tok.regions(ids)
    names = [tok.special_name(i) or tok.decode([i]) for i in ids]
    assert list(zip(names, labels)) == [
        ("<|bos|>", "none"), ("<|user_start|>", "user"), ("q", "user"), ("<|user_end|>", "user"),
        ("<|assistant_start|>", "assistant"), ("<|python_start|>", "python"), ("1", "python"),
        ("<|python_end|>", "python"), ("<|output_start|>", "output"), ("1", "output"), ("<|output_end|>", "output"),
        ("a", "assistant"), ("<|assistant_end|>", "assistant"),
    ]
