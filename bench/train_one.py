"""One tokenizer training run for ``glasschat bench tokenizer``, in a process of its own so that its
peak memory is its own: ``python -m bench.train_one TRAINER TRAIN HELDOUT VOCAB OUT_DIR WORKERS``.

TRAINER is ``glasschat``, ``rustbpe`` or ``hf``. Trains on the JSONL corpus TRAIN (glasschat's
VOCAB counts the nine special tokens, so the others learn ``VOCAB - 9`` tokens), writes the
learned tokens in rank order to ``OUT_DIR/tokens.txt`` (base64, one a line) and a JSON summary
``{"seconds", "bytes_per_token"}`` to ``OUT_DIR/result.json``. Only training is timed; bytes per
token is measured afterwards on HELDOUT.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

from bench.corpus import iter_texts
from tokenizer.patterns import NANOCHAT
from tokenizer.specials import NUM_SPECIAL_TOKENS


def _glasschat(train: Path, vocab: int, out: Path, workers: int):
    from tokenizer.trainer import train_tokenizer

    started = time.perf_counter()
    result = train_tokenizer([train], vocab, out / "glasschat", workers=workers or None, progress=False)
    seconds = time.perf_counter() - started
    tokens = sorted(result.ranks, key=result.ranks.__getitem__)
    return seconds, tokens, _tiktoken_encoder(result.ranks)


def _rustbpe(train: Path, vocab: int, out: Path, workers: int):
    import rustbpe

    started = time.perf_counter()
    tokenizer = rustbpe.Tokenizer()
    tokenizer.train_from_iterator(iter_texts(train), vocab - NUM_SPECIAL_TOKENS, pattern=NANOCHAT)
    ranks = {bytes(token): rank for token, rank in tokenizer.get_mergeable_ranks()}
    seconds = time.perf_counter() - started
    return seconds, sorted(ranks, key=ranks.__getitem__), _tiktoken_encoder(ranks)


def _hf(train: Path, vocab: int, out: Path, workers: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    started = time.perf_counter()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(NANOCHAT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - NUM_SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tokenizer.train_from_iterator(iter_texts(train), trainer)
    seconds = time.perf_counter() - started
    # token strings are in ByteLevel's printable alphabet; map back to bytes
    byte_of = {ch: b for b, ch in enumerate(_bytes_to_unicode())}
    vocab_map = tokenizer.get_vocab()
    tokens = [bytes(byte_of[ch] for ch in token) for token in sorted(vocab_map, key=vocab_map.__getitem__)]
    return seconds, tokens, lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts)]


def _bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _tiktoken_encoder(ranks: dict[bytes, int]):
    import tiktoken

    encoding = tiktoken.Encoding(name="bench", pat_str=NANOCHAT, mergeable_ranks=ranks, special_tokens={})
    return lambda texts: [len(ids) for ids in encoding.encode_ordinary_batch(texts, num_threads=1)]


TRAINERS = {"glasschat": _glasschat, "rustbpe": _rustbpe, "hf": _hf}


def main(argv: list[str]) -> int:
    trainer, train, heldout, vocab, out, workers = argv
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds, tokens, count_tokens = TRAINERS[trainer](Path(train), int(vocab), out, int(workers))
    texts = list(iter_texts(Path(heldout)))
    n_tokens = sum(count_tokens(texts))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    (out / "tokens.txt").write_text("".join(base64.b64encode(t).decode() + "\n" for t in tokens))
    (out / "result.json").write_text(json.dumps({"seconds": seconds, "bytes_per_token": n_bytes / max(n_tokens, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
