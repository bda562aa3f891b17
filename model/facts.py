"""What the first screen says about a checkpoint beyond its size: where it came from, how its
weights are stored, and a few prompts it handles well.

The prompts come from the checkpoint itself, so another model shows its own: the list under
``## Example prompts`` in its ``MODEL_CARD.md`` (``glasschat train`` writes one, from prompts the
model answered right in evaluation), else ``metadata.example_prompts`` in ``config.json``, else
none (the app then says so in a generic line). Everything here is optional decoration: a card
or config that cannot be read gives no facts, never an error (loading the checkpoint is what
checks it). No torch is imported, so the engine process and tests read facts cheaply.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from glasschat import paths
from glasschat.loading import LoadError, read_json

CARD_FILE = "MODEL_CARD.md"
PROMPTS_HEADING = "## Example prompts"
EXAMPLE_PROMPTS = 3  # how many the first screen shows
MAX_CARD_BYTES = 256 * 1024  # a card is a page of Markdown; a bigger file is read only this far
MAX_PROMPT_CHARS = 200  # a prompt is one line in the message box, not a document
MAX_SOURCE_CHARS = 300  # a path or a URL; config metadata could hold anything
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*\S)\s*$")
# config.json names torch dtypes; the engine names what runs fp32/int8: one spelling for both
_SHORT_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Facts:
    source: str = ""  # "bundled with glasschat", a path, "imported from nanochat ...", "served by URL"
    stored_as: str = ""  # the weights' format on disk: fp16, bf16, fp32, int8
    example_prompts: tuple[str, ...] = ()


def checkpoint_facts(directory: str | os.PathLike) -> Facts:
    """The facts of the checkpoint directory ``directory`` (already loaded, so it exists)."""
    directory = Path(directory)
    config = _config(directory)
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    prompts = card_prompts(directory / CARD_FILE) or metadata_prompts(metadata)
    return Facts(_one_line(source(directory, metadata), MAX_SOURCE_CHARS), stored_as(config), prompts)


def _config(directory: Path) -> dict:
    try:
        data = read_json(directory / "config.json")
    except (LoadError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def source(directory: Path, metadata: dict) -> str:
    """Where the model came from, in a few words."""
    if metadata.get("imported_from") == "nanochat":  # a converted nanochat folder: name the folder, not the cache
        generation = metadata.get("nanochat_generation")
        step = metadata.get("step")
        details = ", ".join(part for part in (f"generation {generation}" if generation else "",
                                               f"step {step}" if step is not None else "") if part)
        return f"imported from nanochat{f' ({details})' if details else ''}: {metadata.get('source', directory)}"
    try:
        bundled = directory.resolve() == paths.default_checkpoint_dir().resolve()
    except OSError:
        bundled = False
    if bundled:
        return "bundled with glasschat"
    quantized_from = metadata.get("quantized_from")
    return f"{directory} (int8 copy of {quantized_from})" if quantized_from else str(directory)


def stored_as(config: dict) -> str:
    """The weights' format on disk (what runs may differ: fp16 is run as fp32 on a CPU)."""
    if config.get("weight_format") == "int8":
        return "int8"
    dtype = config.get("dtype")
    return _SHORT_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else ""


def card_prompts(path: Path) -> tuple[str, ...]:
    """The list items under ``## Example prompts`` in the model card at ``path`` (the first
    ``EXAMPLE_PROMPTS``); none when there is no card or no such section."""
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_CARD_BYTES).decode("utf-8", "replace")
    except OSError:
        return ()
    prompts: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("#"):  # any heading ends the section; ours starts it
            inside = line.strip().lower() == PROMPTS_HEADING.lower()
            continue
        match = _LIST_ITEM.match(line) if inside else None
        if match:
            prompts.append(match.group(1))
    return _clean(prompts)


def metadata_prompts(metadata: dict) -> tuple[str, ...]:
    """``metadata.example_prompts`` of a config.json, when it is a list of strings."""
    prompts = metadata.get("example_prompts")
    return _clean([p for p in prompts if isinstance(p, str)]) if isinstance(prompts, list) else ()


def _clean(prompts: list[str]) -> tuple[str, ...]:
    """Prompts as the message box takes them: one line each, Markdown code quotes taken off,
    no control characters, clipped; empty ones dropped."""
    cleaned = []
    for prompt in prompts:
        prompt = _one_line(prompt, len(prompt))
        if len(prompt) >= 2 and prompt[0] == prompt[-1] == "`":
            prompt = prompt.strip("`").strip()
        if prompt:
            cleaned.append(prompt[:MAX_PROMPT_CHARS])
    return tuple(cleaned[:EXAMPLE_PROMPTS])


def _one_line(text: str, limit: int) -> str:
    """``text`` with control characters (a newline, an escape sequence) as spaces, clipped."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def card_section(prompts: list[str]) -> str:
    """The ``## Example prompts`` section a model card carries, for ``card_prompts`` to read."""
    items = "\n".join(f"- {_one_line(prompt, MAX_PROMPT_CHARS)}" for prompt in prompts)
    return (f"{PROMPTS_HEADING}\n\nPrompts this model answered right in evaluation (greedy); the chat's first "
            f"screen offers them.\n\n{items}\n")
