"""Reading nanochat's ``tokenizer.pkl`` (a pickled ``tiktoken.Encoding``) safely.

Unpickling runs whatever callables a file names, so a pickle from elsewhere is untrusted. The
unpickler here resolves exactly one global, ``tiktoken.core.Encoding``, and maps it to an inert
record that only keeps the state it is given; any other global is refused. The state is then
checked field by field: name, split pattern, ranks (bytes -> int), special tokens (str -> int).
"""

from __future__ import annotations

import io
import os
import pickle

from glasschat.errors import UserError
from glasschat.loading import read_bytes

MAX_PICKLE_BYTES = 64 * 1024 * 1024  # a 256k-token vocabulary is ~4 MB; refuse anything absurd


class UnsafePickleError(UserError):
    """A pickle that is not a plain tiktoken Encoding."""


class _EncodingState:
    """Stands in for ``tiktoken.core.Encoding`` while unpickling: records the state, runs nothing."""

    def __setstate__(self, state: object) -> None:
        self.state = state


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ("tiktoken.core", "Encoding"):
            return _EncodingState
        raise _RefusedGlobal(f"it names {module}.{name}")


def load_encoding_state(path: str | os.PathLike) -> dict:
    """Return the checked state dict of a pickled ``tiktoken.Encoding`` at ``path``."""
    data = read_bytes(path, MAX_PICKLE_BYTES)  # a regular file of bounded size, or one line saying why not
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as error:
        raise UnsafePickleError(f"{path}: not a plain tiktoken Encoding pickle ({error}); refusing to load it") from None
    except Exception as error:  # truncated or corrupt data: any of a dozen exception types
        raise UnsafePickleError(f"{path}: not a valid pickle ({type(error).__name__}: {error})") from None
    if not isinstance(obj, _EncodingState):
        raise UnsafePickleError(f"{path}: holds a {type(obj).__name__}, not a tiktoken Encoding")
    return _check_state(obj.state, path)


def _check_state(state: object, path: str | os.PathLike) -> dict:
    if isinstance(state, str):
        raise UnsafePickleError(f"{path}: refers to the registered tiktoken encoding {state!r} by name; "
                                "only a self-contained tokenizer can be loaded offline")
    fields = {"name": str, "pat_str": str, "mergeable_ranks": dict, "special_tokens": dict}
    if not isinstance(state, dict) or set(state) - (set(fields) | {"explicit_n_vocab"}):
        raise UnsafePickleError(f"{path}: unexpected Encoding state")
    for field, kind in fields.items():
        if not isinstance(state.get(field), kind):
            raise UnsafePickleError(f"{path}: Encoding field {field!r} must be a {kind.__name__}")
    if not all(type(k) is bytes and type(v) is int for k, v in state["mergeable_ranks"].items()):
        raise UnsafePickleError(f"{path}: mergeable_ranks must map bytes to int")
    if not all(type(k) is str and type(v) is int for k, v in state["special_tokens"].items()):
        raise UnsafePickleError(f"{path}: special_tokens must map str to int")
    if sorted(state["mergeable_ranks"].values()) != list(range(len(state["mergeable_ranks"]))):
        raise UnsafePickleError(f"{path}: mergeable_ranks must be exactly 0..n-1")
    return state
