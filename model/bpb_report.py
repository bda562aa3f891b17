"""``glasschat eval --bpb FILE...``: bits per byte of a checkpoint on text files, one document each.

A file that cannot be measured (missing, a directory, binary, not UTF-8, empty, only whitespace)
is one line on stderr and the others are still measured. Exit code: 0 when every file was
measured, 1 when some were skipped, 2 when none could be (a ``UserError``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from glasschat.errors import UserError
from model.bpb import ByteLoss, document_ids, measure_ids, score_span, token_bytes_tensor
from model.checkpoint import parameter_count

PROGRESS_EVERY_S = 0.2


@dataclass
class FileResult:
    path: str
    loss: ByteLoss
    seconds: float

    def to_json(self) -> dict:
        return {"path": self.path, "bpb": self.loss.bpb, "tokens": self.loss.tokens, "bytes": self.loss.bytes,
                "seconds": round(self.seconds, 3)}


def read_document(path: Path) -> str:
    """The text of one file, or a ``UserError`` naming it and saying why it is no document."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a text file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    if not data:
        raise UserError(f"{path}: empty file")
    if b"\0" in data:
        raise UserError(f"{path}: binary file (it holds NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})") from None
    if not text.strip():
        raise UserError(f"{path}: only whitespace, nothing to measure")
    return text


class Progress:
    """One self-rewriting status line on a terminal (nothing when ``stream`` is not one)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = stream.isatty()
        self.shown = False

    def start(self, name: str, total: int):
        """A callback taking the targets scored since its last call; shows ``name: 0/total`` at once."""
        done, start, last = 0, time.perf_counter(), 0.0
        if self.enabled:  # a d12 takes tens of seconds per window: say at once what is being measured
            self.stream.write(f"\r\x1b[K{name}: 0/{total:,} tokens")
            self.stream.flush()
            self.shown = True

        def update(tokens: int) -> None:
            nonlocal done, last
            done += tokens
            now = time.perf_counter()
            if not self.enabled or now - last < PROGRESS_EVERY_S:
                return
            last = now
            rate = done / max(now - start, 1e-9)
            left = (total - done) / rate if rate else 0.0
            self.stream.write(f"\r\x1b[K{name}: {done:,}/{total:,} tokens  {rate:,.0f} tokens/s  {left:,.0f} s left")
            self.stream.flush()
            self.shown = True

        return update

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def evaluate_files(paths: list[str], checkpoint: Path, as_json: bool = False, threads: int = 1,
                   out: TextIO | None = None, err: TextIO | None = None, quantize: str | None = None,
                   server: str | None = None, api_key: str | None = None) -> int:
    """Measure each file; an int8 model (stored int8, or ``quantize="int8"``) is measured through
    the engine, with the int8 weights the chat runs, and an fp32 one through ``GPT`` (the same
    numbers as nanochat's ``evaluate_bpb``). With ``server``, the model served there scores the
    text (``RemoteBackend.surprisal``; ``checkpoint`` gives the tokenizer), in windows of its
    ``score_window`` tokens."""
    from model.checkpoint import load_engine, load_model, read_config

    out, err = out or sys.stdout, err or sys.stderr
    documents, skipped = [], []
    for name in paths:
        try:
            documents.append((name, read_document(Path(name))))
        except UserError as error:
            print(f"glasschat: error: {error}", file=err)
            skipped.append({"path": name, "error": str(error)})
    if not documents:
        raise UserError("no file could be measured")

    if server:
        if quantize:
            raise UserError("--quantize: applies to a model run here, not to one on --server")
        from model.remote import connect

        model = connect(server, str(checkpoint), api_key)
        tokenizer = model.tokenizer
        heading = f"bits per byte of {model.model} served by {model.url} (windows of {score_span(model)} tokens, " \
                  f"the most a prompt may hold in its context of {model.sequence_len} and leave room for a token)"
        facts = {"server": model.url, "model": model.model}
    else:
        if quantize or read_config(checkpoint)[1].get("weight_format") == "int8":
            model, tokenizer = load_engine(checkpoint, quantize)
            weight_format, parameters = model.weight_format, parameter_count(model.config)
        else:
            model, tokenizer = load_model(checkpoint)
            weight_format, parameters = "fp32", model.num_parameters()
        config = model.config
        heading = f"bits per byte of {checkpoint} ({parameters / 1e6:.1f}M parameters, {weight_format}, vocab " \
                  f"{config.vocab_size}, windows of {config.sequence_len} + 1 tokens), {threads} thread{'s' * (threads != 1)}"
        facts = {"checkpoint": str(checkpoint), "weights": weight_format}
    token_bytes = token_bytes_tensor(tokenizer)
    progress = Progress(err)
    results = []
    try:
        for name, text in documents:
            start = time.perf_counter()
            ids = document_ids(tokenizer, text)
            del text
            targets = len(ids) - -(-len(ids) // score_span(model))  # one per token but each window's first
            loss = measure_ids(model, token_bytes, ids, progress=progress.start(name, targets))
            progress.clear()
            results.append(FileResult(name, loss, time.perf_counter() - start))
    finally:
        progress.clear()
        if server:
            model.close()

    total = ByteLoss()
    for result in results:
        total.add(result.loss)
    seconds = sum(r.seconds for r in results)
    if as_json:
        report = {"bpb": total.bpb, "tokens": total.tokens, "bytes": total.bytes, "seconds": round(seconds, 3),
                  "tokens_per_second": total.tokens / seconds if seconds else None, "threads": threads,
                  **facts, "files": [r.to_json() for r in results], "skipped": skipped}
        print(json.dumps(report, indent=2), file=out)
    else:
        print(heading, file=out)
        print(format_table(results, total), file=out)
        print(f"{total.tokens:,} tokens in {seconds:.1f} s: {total.tokens / max(seconds, 1e-9):,.0f} tokens/s", file=out)
    return 1 if skipped else 0


def format_table(results: list[FileResult], total: ByteLoss) -> str:
    rows = [(r.path, r.loss) for r in results]
    if len(rows) > 1:
        rows.append(("all files", total))
    width = max(len("file"), *(len(name) for name, _ in rows))
    lines = [f"{'file':<{width}}  {'tokens':>12}  {'bytes':>12}  {'bpb':>7}"]
    lines += [f"{name:<{width}}  {loss.tokens:>12,}  {loss.bytes:>12,}  {loss.bpb:>7.4f}" for name, loss in rows]
    return "\n".join(lines)
