"""Shared test set-up: one torch thread (the machine is shared and small), private data and
cache directories so no test touches the user's saved conversations or converted models, and
deterministic hypothesis."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="glasschat-test-data-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="glasschat-test-cache-")  # converted nanochat folders
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

from hypothesis import settings  # noqa: E402

settings.register_profile("glasschat", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("glasschat")

import pytest  # noqa: E402

# A small, varied text to train test tokenizers on: English, code, CJK, emoji, digits.
TINY_CORPUS = [
    "Hello there! How are you today? I'm fine, thanks for asking.",
    "The quick brown fox jumps over the lazy dog. What is 12 + 30? It's 42.",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    "你好，世界！今天天气很好。我们去公园散步吧。",
    "Emoji time: 😀😃😄 🎉🎉 👍🏽 — naïve café résumé.",
    "Spell banana: b-a-n-a-n-a. Reverse house: e-s-u-o-h. 1234567890 9876543210",
] * 20


def train_test_tokenizer(texts: list[str], vocab_size: int):
    """A real BPE tokenizer for tests, trained on ``texts`` with the nanochat pattern."""
    import rustbpe

    from tokenizer import Tokenizer
    from tokenizer.patterns import NANOCHAT
    from tokenizer.specials import NUM_SPECIAL_TOKENS

    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(iter(texts), vocab_size - NUM_SPECIAL_TOKENS, pattern=NANOCHAT)
    return Tokenizer.from_ranks(dict(trainer.get_mergeable_ranks()), NANOCHAT)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A 384-token tokenizer (375 BPE + 9 specials) trained on ``TINY_CORPUS``."""
    return train_test_tokenizer(TINY_CORPUS, 384)
