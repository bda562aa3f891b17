"""Reading files a user hands glasschat, or that it finds on disk: one reader per format, bounded.

Every JSON file (checkpoint and tokenizer configs, conversations for ``tokenizer render``) and
every chat-JSONL file (replay scripts, transcripts, saved chats) is read through here, so each
one gets the same guards and the same one-line errors (a ``UserError`` naming the file and,
where there is one, the line):

- only a regular file is opened (a FIFO or a device would block or never end), opened
  non-blocking so that even a file swapped for a FIFO after the check cannot hang the reader;
- at most ``max_bytes`` are read;
- the text must be UTF-8;
- JSON nests at most ``MAX_DEPTH`` deep (the JSON parser itself recurses, and so does every
  reader of what it returns) and its integers have at most Python's 4300 digits;
- a lone surrogate (JSON can spell ``"\\ud800"``; UTF-8 cannot hold it) becomes U+FFFD —
  exactly what the tokenizer makes of it — so text read here can always be written back.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from glasschat.errors import UserError

MAX_DEPTH = 64  # a chat record nests 6 deep; nothing glasschat reads needs more
MAX_JSON_BYTES = 16 * 2**20  # config files, tokenizer metadata, one conversation
MAX_CHAT_FILE_BYTES = 256 * 2**20  # replay scripts, transcripts and saved chats


class LoadError(UserError):
    """A file that cannot be read as what it should be."""


def scrub_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (and a surrogate pair joined), as
    tiktoken does before encoding: the one rule for text that UTF-8 cannot hold."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def read_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of regular file ``path``, at most ``max_bytes`` of them."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except OSError as error:
        raise LoadError(f"{path}: cannot read: {_reason(error)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise LoadError(f"{path}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise LoadError(f"{path}: not a regular file (a pipe, socket or device)")
        if info.st_size > max_bytes:
            raise LoadError(f"{path}: {info.st_size:,} bytes, more than the {max_bytes:,} this file may have")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:  # it grew while being read
            raise LoadError(f"{path}: more than the {max_bytes:,} bytes this file may have")
        return b"".join(chunks)
    except OSError as error:
        raise LoadError(f"{path}: cannot read: {_reason(error)}") from None
    finally:
        os.close(fd)


def decode_utf8(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise LoadError(f"{source}: line {line}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_text(path: str | os.PathLike, max_bytes: int = MAX_CHAT_FILE_BYTES) -> str:
    """The UTF-8 text of regular file ``path`` (``-`` reads standard input)."""
    if os.fspath(path) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise LoadError(f"standard input: more than the {max_bytes:,} bytes it may have")
        return decode_utf8(data, "standard input")
    return decode_utf8(read_bytes(path, max_bytes), str(path))


def parse_json(text: str, source: str, line: int | None = None) -> object:
    """Parse one JSON document; errors name ``source`` and the line (``line`` is the number of
    the document's first line when it is one line of a larger file)."""
    where = f"{source}: line {line}" if line is not None else source
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        at = f"{source}: line {error.lineno if line is None else line}, column {error.colno}"
        raise LoadError(f"{at}: not valid JSON: {error.msg}") from None
    except RecursionError:
        raise LoadError(f"{where}: JSON nested more than {MAX_DEPTH} deep") from None
    except ValueError:  # an integer beyond Python's conversion limit
        raise LoadError(f"{where}: an integer of more than {sys.get_int_max_str_digits()} digits") from None
    return _checked(value, where)


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> object:
    """The one JSON document in file ``path`` (``-``: standard input)."""
    source = "standard input" if os.fspath(path) == "-" else str(path)
    return parse_json(read_text(path, max_bytes), source)


def read_json_lines(path: str | os.PathLike, max_bytes: int = MAX_CHAT_FILE_BYTES) -> list[tuple[int, object]]:
    """``(line number, value)`` of a JSONL file — or, when the file is one JSON list, of each of
    its items (numbered from 1). Blank lines are skipped."""
    text = read_text(path, max_bytes)
    source = str(path)
    if text.lstrip().startswith("["):
        items = parse_json(text, source)
        if not isinstance(items, list):
            raise LoadError(f"{source}: expected a JSON list or one JSON object per line")
        return list(enumerate(items, start=1))
    return [(number, parse_json(line, source, number))
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _checked(value: object, where: str) -> object:
    """``value`` with its depth checked and lone surrogates scrubbed from its strings (keys too).

    Iterative, so no depth of input can exhaust the stack here."""
    if isinstance(value, str):
        return scrub_text(value)
    if not isinstance(value, (list, dict)):
        return value
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LoadError(f"{where}: JSON nested more than {MAX_DEPTH} deep")
        if isinstance(node, list):
            for i, item in enumerate(node):
                if type(item) is str:
                    if not item.isascii():
                        node[i] = scrub_text(item)
                elif isinstance(item, (list, dict)):
                    stack.append((item, depth + 1))
        else:
            if not all(key.isascii() for key in node):
                scrubbed = {scrub_text(key): item for key, item in node.items()}
                node.clear()
                node.update(scrubbed)
            for key, item in node.items():
                if type(item) is str:
                    if not item.isascii():
                        node[key] = scrub_text(item)
                elif isinstance(item, (list, dict)):
                    stack.append((item, depth + 1))
    return value


def _reason(error: OSError) -> str:
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a file"
    return error.strerror or type(error).__name__
