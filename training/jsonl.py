"""The JSONL files a run's stages hand to each other (``data/*.jsonl``): written atomically, read
back with a one-line error naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from glasschat.atomic import atomic_write_text
from glasschat.errors import UserError


def write_jsonl(path: Path, records) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: missing — run the earlier stages first (glasschat train --stage data ...)")
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise UserError(f"{path}: line {line_no}: not valid JSON: {error}") from None
    return records
