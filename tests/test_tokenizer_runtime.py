"""The Tokenizer runtime: encode/decode, special tokens that can't be forged, files, streaming."""

import json
import os
import pickle

import pytest
import tiktoken
import tiktoken.load
from hypothesis import given
from hypothesis import strategies as st

from glasschat.errors import UserError
from tokenizer import SPECIAL_TOKENS, Tokenizer
from tokenizer.files import META_FILE, RANKS_FILE


def test_specials_follow_bpe_vocab(tiny_tokenizer):
    n = tiny_tokenizer.vocab_size - len(SPECIAL_TOKENS)
    assert [tiny_tokenizer.encode_special(name) for name in SPECIAL_TOKENS] == list(range(n, n + 9))
    assert tiny_tokenizer.bos_id == n
    assert tiny_tokenizer.vocab_size == 384


def test_unknown_special_is_a_clear_error(tiny_tokenizer):
    with pytest.raises(UserError, match="unknown special token '<|eos|>'"):
        tiny_tokenizer.encode_special("<|eos|>")


@pytest.mark.parametrize("name", SPECIAL_TOKENS)
@pytest.mark.parametrize("template", ["{}", "say {} now", "{}{}", " {}", "<{}>", "{}\n", "<|{}", "{}|>"])
def test_special_token_text_is_ordinary_text(tiny_tokenizer, name, template):
    text = template.format(name, name)
    ids = tiny_tokenizer.encode(text)
    assert not any(tiny_tokenizer.is_special(i) for i in ids)
    assert tiny_tokenizer.decode(ids) == text


@pytest.mark.parametrize("text", ["<|BOS|>", "<| bos |>", "<|bos|", "<|bos", "＜|bos|＞", "<|b\u200bos|>"])
def test_variations_of_special_text_are_ordinary(tiny_tokenizer, text):
    assert not any(tiny_tokenizer.is_special(i) for i in tiny_tokenizer.encode(text))


@given(st.text())
def test_encode_decode_round_trip_on_any_unicode(text):
    # lone surrogates cannot be encoded as UTF-8: they come back as U+FFFD, everything else exactly
    expected = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    tok = _byte_tokenizer()
    assert tok.decode(tok.encode(text)) == expected


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_round_trip_on_trained_vocab(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_lone_surrogates_do_not_crash(tiny_tokenizer):
    ids = tiny_tokenizer.encode("a\ud800b")
    assert tiny_tokenizer.decode(ids) == "a\ufffdb"


def test_token_bytes_are_nanochats_byte_lengths(tiny_tokenizer):
    lengths = tiny_tokenizer.token_bytes
    assert len(lengths) == tiny_tokenizer.vocab_size
    assert all(lengths[i] == 0 for i in tiny_tokenizer.special_ids.values())
    ids = tiny_tokenizer.encode("Hello there")
    assert sum(lengths[i] for i in ids) == len("Hello there")
    # ids 0..255 are the single bytes: ASCII counts 1, a lone non-ASCII byte decodes to U+FFFD (3 bytes)
    assert lengths[ord("a")] == 1 and lengths[0xE4] == 3 and lengths[tiny_tokenizer.ranks[b"\x80"]] == 3
    whole = [i for i in tiny_tokenizer.encode("你好") if not _is_partial(tiny_tokenizer.decode_single_token_bytes(i))]
    assert all(lengths[i] == len(tiny_tokenizer.decode_single_token_bytes(i)) for i in whole)


def test_decode_single_token_bytes(tiny_tokenizer):
    ids = tiny_tokenizer.encode("Hello 你好")
    assert b"".join(tiny_tokenizer.decode_single_token_bytes(i) for i in ids) == "Hello 你好".encode()
    assert tiny_tokenizer.decode_single_token_bytes(tiny_tokenizer.bos_id) == b"<|bos|>"
    with pytest.raises(ValueError):
        tiny_tokenizer.decode_single_token_bytes(tiny_tokenizer.vocab_size)


def test_save_and_load(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path)
    loaded = Tokenizer.load(tmp_path)
    text = "Hello there! 你好 😀 12345"
    assert loaded.encode(text) == tiny_tokenizer.encode(text)
    assert loaded.special_ids == tiny_tokenizer.special_ids
    # the ranks file is tiktoken's own format
    ranks = tiktoken.load.load_tiktoken_bpe(str(tmp_path / RANKS_FILE))
    assert len(ranks) == tiny_tokenizer.vocab_size - 9
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_errors_name_the_file(tiny_tokenizer, tmp_path):
    with pytest.raises(UserError, match=f"{RANKS_FILE}: missing"):
        Tokenizer.load(tmp_path)
    tiny_tokenizer.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["special_tokens"]["<|bos|>"] = 3
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match=f"{META_FILE}: fields 'num_bpe_tokens'/'special_tokens'"):
        Tokenizer.load(tmp_path)
    tiny_tokenizer.save(tmp_path)
    with open(tmp_path / RANKS_FILE, "a") as f:
        f.write("not-base64!! x\n")
    with pytest.raises(UserError, match=r"line \d+: expected 'BASE64 RANK'"):
        Tokenizer.load(tmp_path)


# ---- streaming decoder

def test_stream_decoder_matches_full_decode_on_split_characters(tiny_tokenizer):
    text = "你好，世界！😀😃 naïve 👍🏽 end"
    ids = tiny_tokenizer.encode(text)
    # the vocabulary is small, so some characters are split across tokens: that is the point
    assert any(_is_partial(tiny_tokenizer.decode_single_token_bytes(i)) for i in ids)
    decoder = tiny_tokenizer.stream_decoder()
    pieces = [decoder.feed(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)


def test_stream_decoder_never_prints_specials(tiny_tokenizer):
    decoder = tiny_tokenizer.stream_decoder()
    ids = [tiny_tokenizer.encode_special("<|assistant_start|>"), *tiny_tokenizer.encode("hi"),
           tiny_tokenizer.encode_special("<|assistant_end|>")]
    assert "".join(decoder.feed(i) for i in ids) + decoder.flush() == "hi"


def test_stream_decoder_flushes_partial_character_at_the_end(tiny_tokenizer):
    ids = tiny_tokenizer.encode("😀")
    partial = [i for i in ids][:1]
    decoder = tiny_tokenizer.stream_decoder()
    if _is_partial(tiny_tokenizer.decode_single_token_bytes(partial[0])):
        assert decoder.feed(partial[0]) == ""
        assert decoder.flush() == "\ufffd"


# ---- the pickle guard

def test_nanochat_pickle_loads(tiny_tokenizer, tmp_path):
    encoding = tiktoken.Encoding("nanochat", pat_str=tiny_tokenizer.pattern,
                                 mergeable_ranks=_ranks(tiny_tokenizer), special_tokens=tiny_tokenizer.special_ids)
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(pickle.dumps(encoding))
    loaded = Tokenizer.from_nanochat_pickle(path)
    assert loaded.encode("Hello 你好") == tiny_tokenizer.encode("Hello 你好")
    assert loaded.special_ids == tiny_tokenizer.special_ids


class _Malicious:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/glasschat-pwned",))


@pytest.mark.parametrize("payload", [
    _Malicious(),
    {"mergeable_ranks": _Malicious()},
    [1, 2, 3],
])
def test_pickle_guard_refuses_anything_else(tmp_path, payload):
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match="tokenizer.pkl"):
        Tokenizer.from_nanochat_pickle(path)


def test_pickle_guard_refuses_nested_global_inside_encoding_state(tiny_tokenizer, tmp_path):
    encoding = tiktoken.Encoding("x", pat_str=tiny_tokenizer.pattern, mergeable_ranks=_ranks(tiny_tokenizer),
                                 special_tokens=tiny_tokenizer.special_ids)
    state = encoding.__getstate__()
    state["name"] = _Malicious()

    class Forged:
        def __reduce__(self):
            return (tiktoken.core.Encoding.__new__, (tiktoken.core.Encoding,), state)

    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(pickle.dumps(Forged()))
    with pytest.raises(UserError, match="refus"):
        Tokenizer.from_nanochat_pickle(path)


def test_pickle_guard_reports_garbage_and_missing_files(tmp_path):
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(UserError, match="not a valid pickle"):
        Tokenizer.from_nanochat_pickle(path)
    with pytest.raises(UserError, match="absent.pkl: no such file"):
        Tokenizer.from_nanochat_pickle(tmp_path / "absent.pkl")
    os.mkfifo(tmp_path / "fifo.pkl")
    with pytest.raises(UserError, match="fifo.pkl: not a regular file"):  # and no wait for a writer
        Tokenizer.from_nanochat_pickle(tmp_path / "fifo.pkl")


# ---- helpers

def _ranks(tok: Tokenizer) -> dict[bytes, int]:
    return {tok.decode_single_token_bytes(i): i for i in range(tok.vocab_size - 9)}


def _is_partial(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


_BYTE_TOKENIZER = None


def _byte_tokenizer() -> Tokenizer:
    global _BYTE_TOKENIZER
    if _BYTE_TOKENIZER is None:
        from tokenizer.patterns import NANOCHAT
        _BYTE_TOKENIZER = Tokenizer.from_ranks({bytes([i]): i for i in range(256)}, NANOCHAT)
    return _BYTE_TOKENIZER


def test_token_labels_show_specials_and_partial_bytes(tiny_tokenizer):
    from tokenizer.display import token_label, visible_whitespace

    assert token_label(tiny_tokenizer, tiny_tokenizer.bos_id) == "<|bos|>"
    labels = [token_label(tiny_tokenizer, i) for i in tiny_tokenizer.encode("a 😀")]
    partial = [label for label in labels if label.startswith("<0x")]
    assert partial and "".join(partial).replace("<0x", "").replace(">", "").lower() in "😀".encode().hex()
    assert visible_whitespace("a b\n") == "a·b↵\n"
