"""``glasschat ask``: one question, one streamed answer, on stdout.

The prompt becomes a one-turn conversation rendered for completion; the reply streams as it
is generated, with a calculator call shown as ``[calculator: 12+30]`` and its forced result
as ``[result: 42]``. ``--json`` prints one object instead:
``{"text", "ids", "stop_reason", "ttft_ms", "tokens_per_s"}`` where ``text`` is the decoded
reply (tool tokens by name, the final stop token left out) and ``ids`` are all its tokens.
"""

from __future__ import annotations

import json
import sys

from model.events import SamplingParams, Stop, TokenEvent

# how the special tokens inside a reply show in the terminal
TOOL_MARKERS = {
    "<|python_start|>": "[calculator: ",
    "<|python_end|>": "]",
    "<|output_start|>": "[result: ",
    "<|output_end|>": "]",
}


def readable(tokenizer, event: TokenEvent) -> str:
    """What one event adds to the terminal: its text, or a marker for a tool token."""
    name = tokenizer.special_name(event.id)
    if name is None:
        return event.text
    return event.text + TOOL_MARKERS.get(name, "")


def ask(prompt: str, params: SamplingParams, checkpoint: str | None = None, as_json: bool = False,
        quantize: str | None = None, server: str | None = None, api_key: str | None = None) -> int:
    """Answer ``prompt`` with the model in ``checkpoint`` (default: the bundled one;
    ``quantize="int8"`` runs it int8; ``server``: the model served there), streaming the reply to
    stdout, or printing one JSON object when ``as_json``."""
    from glasschat.progress import LoadProgress
    from model.backend import open_backend

    backend = open_backend(checkpoint, server=server, api_key=api_key, quantize=quantize, progress=LoadProgress())
    try:
        return _answer(backend, prompt, params, as_json)
    finally:
        backend.close()


def _answer(backend, prompt: str, params: SamplingParams, as_json: bool) -> int:
    tokenizer = backend.tokenizer
    prompt_ids = tokenizer.render_for_completion({"messages": [{"role": "user", "content": prompt}]})

    ids: list[int] = []
    stop: Stop | None = None
    for event in backend.stream(prompt_ids, params):
        if isinstance(event, Stop):
            stop = event
            continue
        ids.append(event.id)
        if not as_json:
            sys.stdout.write(readable(tokenizer, event))
            sys.stdout.flush()

    if as_json:
        reply = ids[:-1] if stop.reason in ("assistant_end", "bos") else ids
        result = {
            "text": tokenizer.decode(reply),
            "ids": ids,
            "stop_reason": stop.reason,
            "ttft_ms": round(stop.stats.ttft_s * 1000, 3),
            "tokens_per_s": round(stop.stats.tokens_per_s, 3),
        }
        print(json.dumps(result, ensure_ascii=False))
    else:
        print()
        if stop.reason not in ("assistant_end", "bos"):
            print(f"glasschat: reply cut short ({stop.reason})", file=sys.stderr)
    return 0
