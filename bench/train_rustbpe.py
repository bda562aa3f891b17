"""The baseline of ``glasschat bench tokenizer --shapes``: rustbpe as nanochat runs it, in a
process of its own — ``python -m bench.train_rustbpe SHAPE_DIR VOCAB OUT_FILE``.

Streams the shape's documents (in the order glasschat reads them) into
``rustbpe.Tokenizer.train_from_iterator`` with nanochat's pattern and ``VOCAB - 9`` tokens
(glasschat's VOCAB counts the nine special tokens), and writes the learned tokens in rank
order to OUT_FILE, base64, one a line. The whole process is timed from outside, start-up and
reading included, as the glasschat command is.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import rustbpe

from bench.corpus import build_shape_from_dir, shape_documents
from tokenizer.patterns import NANOCHAT
from tokenizer.specials import NUM_SPECIAL_TOKENS


def main(argv: list[str]) -> int:
    root, vocab, out = Path(argv[0]), int(argv[1]), Path(argv[2])
    tokenizer = rustbpe.Tokenizer()
    tokenizer.train_from_iterator(shape_documents(build_shape_from_dir(root)), vocab - NUM_SPECIAL_TOKENS,
                                  pattern=NANOCHAT)
    ranks = sorted(tokenizer.get_mergeable_ranks(), key=lambda item: item[1])
    out.write_text("".join(base64.b64encode(bytes(token)).decode() + "\n" for token, _ in ranks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
