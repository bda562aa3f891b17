"""Writing a tokenizer in nanochat's format: ``tokenizer.pkl`` and ``token_bytes.pt``.

nanochat's tokenizer training leaves two files in ``$NANOCHAT_BASE_DIR/tokenizer/``:

- ``tokenizer.pkl`` — a pickled ``tiktoken.Encoding`` named ``rustbpe``, holding the split
  pattern, the BPE ranks and the nine special tokens after them;
- ``token_bytes.pt`` — a ``torch.int32`` tensor with, per token id, the UTF-8 length of the
  token decoded to text, and 0 for the special tokens (what its bits-per-byte evaluation divides by).

Written here the same way, so nanochat loads them as its own; a tokenizer trained on the same
documents as nanochat's gives byte-identical files. Both files go to temporary names first and
are renamed into place only when both are complete.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import tiktoken

from glasschat.atomic import atomic_path
from glasschat.errors import UserError
from tokenizer.runtime import Tokenizer

PICKLE_FILE = "tokenizer.pkl"
TOKEN_BYTES_FILE = "token_bytes.pt"
# the name nanochat's training gives its Encoding; kept so the files are the same as its own
ENCODING_NAME = "rustbpe"


def nanochat_encoding(tokenizer: Tokenizer) -> tiktoken.Encoding:
    """The ``tiktoken.Encoding`` nanochat would build for these ranks, pattern and specials."""
    return tiktoken.Encoding(name=ENCODING_NAME, pat_str=tokenizer.pattern,
                             mergeable_ranks=tokenizer.ranks, special_tokens=tokenizer.special_ids)


def export_nanochat(tokenizer: Tokenizer, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``tokenizer.pkl`` and ``token_bytes.pt`` into ``out_dir``; return their paths."""
    import torch  # only this export needs it: the tokenizer package otherwise knows nothing of torch

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a directory, and this is a file")
    pickle_path, bytes_path = out / PICKLE_FILE, out / TOKEN_BYTES_FILE
    token_bytes = torch.tensor(tokenizer.token_bytes, dtype=torch.int32)
    try:
        # both written before either is renamed into place: never a new pickle beside old lengths
        with atomic_path(bytes_path) as bytes_tmp, atomic_path(pickle_path) as pickle_tmp:
            with open(pickle_tmp, "wb") as f:
                pickle.dump(nanochat_encoding(tokenizer), f)
            with open(bytes_tmp, "wb") as f:
                torch.save(token_bytes, f)
    except OSError as error:
        raise UserError(f"{error.filename or out}: cannot write: {error.strerror or error}") from None
    return pickle_path, bytes_path
