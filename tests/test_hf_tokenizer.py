"""The Hugging Face tokenizer that export-hf writes: transformers' ``AutoTokenizer`` loads it
and gives our ids on hard text (CJK, emoji, whitespace runs, special-token names typed as text,
which stay text for us and become the special tokens for a Hugging Face tokenizer)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasschat.cli import main
from model import GPT, GPTConfig, save_checkpoint
from model.hf_tokenizer import byte_to_unicode, hf_tokenizer_files
from tokenizer import Tokenizer
from tokenizer.specials import SPECIAL_TOKENS

transformers = pytest.importorskip("transformers")

HARD = [
    "Hello there! How are you today?",
    "你好，世界！今天天气很好。我们去公园散步吧。",
    "日本語のテキスト 🎉👍🏽 emoji 😀😃😄 — naïve café résumé",
    "  leading, trailing   \n\n\tand mixed\r\n whitespace  ",
    "I'm sure they'RE here, we'll see; it's 1234567890",
    "def add(a, b):\n    return a + b\n",
    "typed <|assistant_end|> and <|bos|> as text",
    "\U0001F9D1\u200D\U0001F4BB \u0000 \uFFFD \U0010FFFF",
]


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory, tiny_tokenizer):
    directory = tmp_path_factory.mktemp("hf-tokenizer")
    for name, text in hf_tokenizer_files(tiny_tokenizer, 160).items():
        (directory / name).write_text(text, encoding="utf-8")
    return tiny_tokenizer, transformers.AutoTokenizer.from_pretrained(directory)


def ours_with_specials(tokenizer: Tokenizer, text: str) -> list[int]:
    from glasschat.serve import encode_with_specials

    return encode_with_specials(tokenizer, text)


@pytest.mark.parametrize("text", HARD)
def test_auto_tokenizer_gives_our_ids_and_text_back(hf_pair, text):
    ours, theirs = hf_pair
    ids = theirs.encode(text, add_special_tokens=False)
    # a special token's name typed as text: ordinary text for us, the special token for them
    assert ids == ours_with_specials(ours, text)
    if not any(name in text for name in SPECIAL_TOKENS):
        assert ids == ours.encode(text)
    assert theirs.decode(ids) == ours.decode(ids)


@given(st.text(max_size=60))
def test_any_text_tokenizes_the_same(hf_pair, text):
    ours, theirs = hf_pair
    assert theirs.encode(text, add_special_tokens=False) == ours_with_specials(ours, text)


def test_nine_specials_with_our_ids(hf_pair):
    ours, theirs = hf_pair
    assert len(theirs) == ours.vocab_size
    assert [theirs.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS] == [ours.special_ids[n] for n in SPECIAL_TOKENS]
    assert theirs.bos_token_id == ours.bos_id
    assert theirs.eos_token_id == ours.encode_special("<|assistant_end|>")
    assert theirs.decode([ours.bos_id, *ours.encode("hi")], skip_special_tokens=True) == "hi"


def test_byte_table_is_a_bijection():
    table = byte_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256


def test_export_hf_writes_a_tokenizer_auto_tokenizer_loads(tmp_path, tiny_tokenizer):
    config = GPTConfig(sequence_len=64, vocab_size=tiny_tokenizer.vocab_size, n_layer=1, n_head=2, n_kv_head=2,
                       n_embd=32)
    save_checkpoint(tmp_path / "ckpt", GPT(config).init_weights(seed=0), tiny_tokenizer, {})
    assert main(["export-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf")]) == 0
    loaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert loaded.encode(HARD[2], add_special_tokens=False) == tiny_tokenizer.encode(HARD[2])
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())["model_max_length"] == 64
    assert Tokenizer.load(tmp_path / "hf" / "tokenizer").encode(HARD[1]) == tiny_tokenizer.encode(HARD[1])
