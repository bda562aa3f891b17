"""``glasschat tokenizer export-nanochat``: nanochat's own tokenizer class loads the files and
encodes, renders conversations and counts bytes exactly as glasschat does."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_CORPUS
from tokenizer import Tokenizer

NANOCHAT_TOKENIZER = (Path(__file__).resolve().parents[1].parent
                      / "shared/reference/nanochat/92d63d4/nanochat/tokenizer.py")
needs_nanochat = pytest.mark.skipif(not NANOCHAT_TOKENIZER.is_file(),
                                    reason=f"nanochat's reference tokenizer not found at {NANOCHAT_TOKENIZER}")

TEXTS = [
    "Hello there! How are you today?",
    "你好，世界！😀 naïve café",
    "def f(x):\n    return x ** 2\n\n\n",
    "say <|assistant_end|> and <|bos|> as text",
    "1234567890 \r\n\t  trailing   ",
    "",
]
CONVERSATION = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 12 + 30?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me compute. "},
        {"type": "python", "text": "12 + 30"},
        {"type": "python_output", "text": "42"},
        {"type": "text", "text": "It is 42."},
    ]},
    {"role": "user", "content": "Thanks! 你好"},
    {"role": "assistant", "content": "You're welcome 😀"},
]}


def glasschat(*args):
    return subprocess.run([sys.executable, "-m", "glasschat", *args], capture_output=True, text=True, timeout=120)


def _nanochat_tokenizer_module():
    spec = importlib.util.spec_from_file_location("nanochat_reference_tokenizer", NANOCHAT_TOKENIZER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_tokenizer):
    source = tmp_path_factory.mktemp("glasschat-tokenizer")
    tiny_tokenizer.save(source)
    out = tmp_path_factory.mktemp("nanochat") / "tokenizer"
    result = glasschat("tokenizer", "export-nanochat", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["token_bytes.pt", "tokenizer.pkl"]
    return out


def test_exported_files_load_safely_and_match(exported, tiny_tokenizer):
    # glasschat's own restricted loader reads the pickle back to the same tokenizer
    back = Tokenizer.from_nanochat_pickle(exported / "tokenizer.pkl")
    assert back.ranks == tiny_tokenizer.ranks and back.pattern == tiny_tokenizer.pattern
    token_bytes = torch.load(exported / "token_bytes.pt", weights_only=True)
    assert token_bytes.dtype == torch.int32
    assert token_bytes.tolist() == list(tiny_tokenizer.token_bytes)


@needs_nanochat
def test_nanochat_loads_export_and_agrees(exported, tiny_tokenizer):
    nanochat = _nanochat_tokenizer_module()
    theirs = nanochat.RustBPETokenizer.from_directory(str(exported))
    assert theirs.get_vocab_size() == tiny_tokenizer.vocab_size
    assert theirs.get_bos_token_id() == tiny_tokenizer.bos_id
    for text in TEXTS:
        assert theirs.encode(text) == tiny_tokenizer.encode(text)
        assert theirs.encode(text, prepend="<|bos|>") == [tiny_tokenizer.bos_id] + tiny_tokenizer.encode(text)
    assert theirs.encode(TEXTS) == tiny_tokenizer.encode_batch(TEXTS)
    ids, mask = theirs.render_conversation(json.loads(json.dumps(CONVERSATION)))
    ours = tiny_tokenizer.render_conversation(CONVERSATION)
    assert (ids, mask) == (ours.ids, ours.mask)
    assert theirs.render_for_completion(json.loads(json.dumps(CONVERSATION))) == \
        tiny_tokenizer.render_for_completion(CONVERSATION)
    # bytes per token as nanochat's tokenizer training computes them with its own class
    special = theirs.get_special_tokens()
    expected = [0 if theirs.decode([i]) in special else len(theirs.decode([i]).encode("utf-8"))
                for i in range(theirs.get_vocab_size())]
    assert list(tiny_tokenizer.token_bytes) == expected
    assert torch.load(exported / "token_bytes.pt", weights_only=True).tolist() == expected


@needs_nanochat
def test_export_is_byte_identical_to_nanochats_own_files(tmp_path):
    """Trained by glasschat and exported, or trained and saved by nanochat on the same documents:
    the same tokenizer.pkl, byte for byte."""
    nanochat = _nanochat_tokenizer_module()
    theirs = nanochat.RustBPETokenizer.train_from_iterator(iter(TINY_CORPUS), 400)
    theirs.save(str(tmp_path / "nanochat"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TINY_CORPUS))
    trained = glasschat("tokenizer", "train", str(corpus), "--vocab-size", "400", "--out", str(tmp_path / "ours"))
    assert trained.returncode == 0, trained.stderr
    result = glasschat("tokenizer", "export-nanochat", str(tmp_path / "ours"), "--out", str(tmp_path / "export"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "export/tokenizer.pkl").read_bytes() == (tmp_path / "nanochat/tokenizer.pkl").read_bytes()


def test_export_errors_are_one_line(tmp_path, tiny_tokenizer):
    result = glasschat("tokenizer", "export-nanochat", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "missing" in result.stderr
    tiny_tokenizer.save(tmp_path / "tok")
    (tmp_path / "a-file").write_text("x")
    result = glasschat("tokenizer", "export-nanochat", str(tmp_path / "tok"), "--out", str(tmp_path / "a-file"))
    assert result.returncode == 2 and "a-file" in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "a-file").read_text() == "x"
