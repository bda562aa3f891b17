"""The wire protocol of ``glasschat serve`` and of the remote backend: the OpenAI-style
``/v1/completions`` subset that vLLM speaks, with its token-level fields.

One request model (``CompletionRequest``, ``ChatRequest``: parsed and checked once, a bad field
is a ``ProtocolError`` naming it, which the server answers with a 400), one place that turns the
engine's events into wire chunks (``ChunkWriter``), and the reverse for the client
(``parse_chunk``). Field names and shapes follow vLLM's, so the same client reads both servers:

- request: ``prompt`` as token ids or text, ``max_tokens``, ``temperature``, ``top_k`` (0 or -1
  = off), ``top_p``, ``seed``, ``stream``, ``logprobs`` (alternatives per token, at most 20),
  ``return_token_ids``, ``return_tokens_as_token_ids``, ``stop_token_ids``,
  ``skip_special_tokens``, ``include_stop_str_in_output``, ``prompt_logprobs`` (the log
  probability of every prompt token given those before it, with that many alternatives: how
  text is scored, e.g. for bits per byte).
- a streamed chunk: ``choices[0]`` with ``text``, ``token_ids``, ``logprobs.{tokens,
  token_logprobs, top_logprobs}`` (keys ``token_id:N`` when asked), ``finish_reason``
  (``stop`` or ``length``) and ``stop_reason`` (the stop token's id); an error after the stream
  started is a ``{"error": {...}}`` chunk. With ``prompt_logprobs``, the answer's ``choices[0]``
  (the first chunk's, when streamed) holds ``prompt_logprobs``: ``null`` for the first token,
  then per token ``{"<id>": {"logprob", "rank", "decoded_token"}}`` for the token itself and
  the most likely alternatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from glasschat.errors import UserError
from model.events import SamplingParams, Stop, TokenEvent

MAX_LOGPROBS = 20
MAX_BODY_BYTES = 1 << 20  # a request body larger than this is refused (413)
FINISH = {"assistant_end": "stop", "bos": "stop", "stop_token": "stop", "max_tokens": "length",
          "context_full": "length"}
# fields a client may send at their no-op value (the official client and vLLM clients do)
_NO_OP = {"n": 1, "best_of": 1, "echo": False, "frequency_penalty": 0, "presence_penalty": 0,
          "stop": None, "user": None, "suffix": None, "logit_bias": None}


class ProtocolError(UserError):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error_body(message: str, status: int) -> dict:
    """OpenAI's (and vLLM's) error object."""
    kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
            413: "BadRequestError", 503: "ServiceUnavailableError"}.get(status, "InternalServerError")
    return {"error": {"message": message, "type": kind, "code": status}}


# ---- requests


def _field(body: dict, name: str, kind, default, check=None, rule: str = ""):
    value = body.get(name, default)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok or (check is not None and not check(value)):
        names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}
        raise ProtocolError(f"{name}: must be {rule or names.get(kind, kind.__name__)}, got {value!r}")
    return value


def _check_unknown(body: dict, known: set[str]) -> None:
    for name, value in body.items():
        if name in known:
            continue
        if name in _NO_OP and (value == _NO_OP[name] or value in (None, [], {})):
            continue
        raise ProtocolError(f"{name}: not supported by this server")


@dataclass(frozen=True)
class CompletionRequest:
    prompt: list[int] | str
    params: SamplingParams
    stream: bool = False
    logprobs: int | None = None
    return_token_ids: bool = False
    tokens_as_ids: bool = False
    stop_token_ids: tuple[int, ...] = ()
    skip_special_tokens: bool = True
    include_stop_str: bool = False
    include_usage: bool = False
    model: str | None = None
    prompt_logprobs: int | None = None

    FIELDS = frozenset({"model", "prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "stream",
                        "logprobs", "return_token_ids", "return_tokens_as_token_ids", "stop_token_ids",
                        "skip_special_tokens", "include_stop_str_in_output", "stream_options", "prompt_logprobs"})

    @classmethod
    def parse(cls, body: Any, vocab_size: int, context: int) -> CompletionRequest:
        if not isinstance(body, dict):
            raise ProtocolError("the request body must be a JSON object")
        _check_unknown(body, cls.FIELDS)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (list, str)):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str):
            if not prompt:
                raise ProtocolError("prompt: must not be empty")
        elif isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
            if not all(0 <= t < vocab_size for t in prompt):
                raise ProtocolError(f"prompt: token ids must lie in 0..{vocab_size - 1}")
        else:
            raise ProtocolError("prompt: must be a non-empty string or a non-empty list of token ids "
                                "(one prompt per request)")
        stop_ids = _field(body, "stop_token_ids", list, [])
        if not all(type(t) is int and 0 <= t < vocab_size for t in stop_ids):
            raise ProtocolError(f"stop_token_ids: must be token ids in 0..{vocab_size - 1}")
        logprobs = body.get("logprobs")
        if logprobs is not None:
            logprobs = _field(body, "logprobs", int, 0, lambda v: 0 <= v <= MAX_LOGPROBS,
                              f"an integer from 0 to {MAX_LOGPROBS}")
        prompt_logprobs = body.get("prompt_logprobs")
        if prompt_logprobs is not None:
            prompt_logprobs = _field(body, "prompt_logprobs", int, 0, lambda v: 0 <= v <= MAX_LOGPROBS,
                                     f"an integer from 0 to {MAX_LOGPROBS}")
        options = body.get("stream_options") or {}
        return cls(
            prompt=prompt,
            params=sampling(body, context, default_max_tokens=16, default_temperature=1.0,
                            top_alternatives=logprobs or 0),
            stream=_field(body, "stream", bool, False),
            logprobs=logprobs,
            return_token_ids=_field(body, "return_token_ids", bool, False),
            tokens_as_ids=_field(body, "return_tokens_as_token_ids", bool, False),
            stop_token_ids=tuple(stop_ids),
            skip_special_tokens=_field(body, "skip_special_tokens", bool, True),
            include_stop_str=_field(body, "include_stop_str_in_output", bool, False),
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
            model=body.get("model"),
            prompt_logprobs=prompt_logprobs,
        )


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False
    model: str | None = None

    FIELDS = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_k",
                        "top_p", "seed", "stream", "stream_options"})

    @classmethod
    def parse(cls, body: Any, context: int) -> ChatRequest:
        if not isinstance(body, dict):
            raise ProtocolError("the request body must be a JSON object")
        _check_unknown(body, cls.FIELDS)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ProtocolError("messages: must be a non-empty list")
        plain = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise ProtocolError(f"messages[{index}]: must be an object with role and content")
            content = message.get("content")
            if isinstance(content, list):  # OpenAI's content parts: text only
                if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                           for p in content):
                    raise ProtocolError(f"messages[{index}].content: only text parts are supported")
                content = "".join(p["text"] for p in content)
            if not isinstance(content, str):
                raise ProtocolError(f"messages[{index}].content: must be a string")
            plain.append({"role": message.get("role"), "content": content})
        if "max_completion_tokens" in body and "max_tokens" not in body:
            body = {**body, "max_tokens": body["max_completion_tokens"]}
        options = body.get("stream_options") or {}
        return cls(plain, sampling(body, context, default_max_tokens=context, default_temperature=1.0),
                   stream=_field(body, "stream", bool, False),
                   include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
                   model=body.get("model"))


def sampling(body: dict, context: int, default_max_tokens: int, default_temperature: float,
             top_alternatives: int = 0) -> SamplingParams:
    """The sampling fields of a request, checked; ``max_tokens`` at most the model's context."""
    top_k = _field(body, "top_k", int, 0, lambda v: v >= -1, "an integer >= -1 (0 or -1: off)")
    return SamplingParams(
        temperature=_field(body, "temperature", float, default_temperature,
                           lambda v: 0 <= v <= 100 and math.isfinite(v), "a number from 0 to 100"),
        top_k=max(0, top_k),
        top_p=_field(body, "top_p", float, 1.0, lambda v: 0 < v <= 1, "a number in (0, 1]"),
        seed=_field(body, "seed", int, None),
        max_tokens=_field(body, "max_tokens", int, min(default_max_tokens, context),
                          lambda v: 1 <= v <= context, f"an integer from 1 to the model's context ({context})"),
        top_alternatives=top_alternatives,
    )


# ---- events to chunks (the server)


def prompt_logprobs(scores: tuple[list, list, list, list], prompt: list[int], name) -> list[dict | None]:
    """The ``prompt_logprobs`` of a prompt from its ``scores`` (``Batcher.score``: each token's
    log probability and rank after the first, and the alternatives there). ``name(id)`` is a
    token's ``decoded_token``."""
    chosen, ranks, top_ids, top_values = scores
    entries: list[dict | None] = [None]
    for i, token in enumerate(prompt[1:]):
        entry = {str(token): {"logprob": chosen[i], "rank": ranks[i], "decoded_token": name(token)}}
        if top_ids:
            for rank, (t, value) in enumerate(zip(top_ids[i], top_values[i]), 1):
                entry.setdefault(str(t), {"logprob": value, "rank": rank, "decoded_token": name(t)})
        entries.append(entry)
    return entries


def prompt_token_logprobs(entries: Any, prompt: list[int]) -> list[float]:
    """From an answer's ``prompt_logprobs``, the log probability of each prompt token after the
    first; a ``ValueError`` naming what is missing."""
    if not isinstance(entries, list) or len(entries) != len(prompt):
        raise ValueError(f"prompt_logprobs: expected {len(prompt)} entries, one per prompt token")
    values = []
    for i, (entry, token) in enumerate(zip(entries[1:], prompt[1:]), 1):
        found = entry.get(str(token)) if isinstance(entry, dict) else None
        logprob = found.get("logprob") if isinstance(found, dict) else None
        if not isinstance(logprob, (int, float)):
            raise ValueError(f"prompt_logprobs: no log probability for prompt token {i} (id {token})")
        values.append(float(logprob))
    return values


@dataclass
class ChunkWriter:
    """Turns one completion's engine events into the ``choices[0]`` of its wire chunks, and
    keeps the totals a non-streamed answer needs."""

    tokenizer: Any
    request: CompletionRequest
    text: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # each token's text_offset
    offset: int = 0  # characters of text so far

    def __post_init__(self) -> None:
        self.decoder = self.tokenizer.stream_decoder()

    def name(self, token: int) -> str:
        """A token as the answer names it: ``token_id:N`` when asked, else its text."""
        if self.request.tokens_as_ids:
            return f"token_id:{token}"
        return self.tokenizer.decode_single_token_bytes(token).decode("utf-8", "replace")

    def chunk(self, events: list[TokenEvent], stop_ids) -> dict:
        """``choices[0]`` of one chunk carrying ``events``, one or more generated tokens in order
        (vLLM's shape for a chunk of several: the lists run in step)."""
        logprobs = self.request.logprobs is not None
        start, texts = len(self.token_ids), []
        for event in events:
            special = self.tokenizer.special_name(event.id)
            text = self.decoder.feed(event.id)
            if special is not None and not self.request.skip_special_tokens:
                if event.id not in stop_ids or self.request.include_stop_str:
                    text += special
            self.offsets.append(self.offset)
            self.offset += len(text)
            texts.append(text)
            self.token_ids.append(event.id)
            if logprobs:
                self.tokens.append(self.name(event.id))
                self.token_logprobs.append(_log(event.prob))
                top = {self.name(t): _log(p) for t, p in event.top} if self.request.logprobs else None
                self.top_logprobs.append(top)
        self.text.extend(texts)
        choice: dict = {"index": 0, "text": "".join(texts), "logprobs": None, "finish_reason": None,
                        "stop_reason": None}
        if self.request.return_token_ids:
            choice["token_ids"] = self.token_ids[start:]
        if logprobs:
            choice["logprobs"] = {"tokens": self.tokens[start:], "token_logprobs": self.token_logprobs[start:],
                                  "top_logprobs": self.top_logprobs[start:], "text_offset": self.offsets[start:]}
        return choice

    def stop(self, stop: Stop, last_id: int | None) -> dict:
        """``choices[0]`` of the last chunk."""
        finish = FINISH.get(stop.reason, "stop")
        tail = self.decoder.flush()
        self.text.append(tail)
        choice = {"index": 0, "text": tail, "logprobs": None, "finish_reason": finish,
                  "stop_reason": last_id if finish == "stop" else None}
        if self.request.return_token_ids:
            choice["token_ids"] = []
        return choice

    def whole(self, finish: dict) -> dict:
        """``choices[0]`` of a non-streamed answer."""
        choice = {"index": 0, "text": "".join(self.text), "finish_reason": finish["finish_reason"],
                  "stop_reason": finish["stop_reason"], "logprobs": None}
        if self.request.return_token_ids:
            choice["token_ids"] = self.token_ids
        if self.request.logprobs is not None:
            choice["logprobs"] = {"tokens": self.tokens, "token_logprobs": self.token_logprobs,
                                  "top_logprobs": self.top_logprobs, "text_offset": self.offsets}
        return choice


@dataclass
class ChatWriter:
    """Turns one chat reply's engine events into ``delta.content`` text, as ``glasschat ask``
    prints a reply (calculator calls as ``[calculator: ...][result: ...]``, no stop token)."""

    tokenizer: Any
    text: list[str] = field(default_factory=list)
    tokens: int = 0

    def __post_init__(self) -> None:
        self.decoder = self.tokenizer.stream_decoder()

    def token(self, event: TokenEvent) -> str:
        from model.ask import readable

        self.tokens += 1
        piece = self.decoder.feed(event.id)
        name = self.tokenizer.special_name(event.id)
        if name not in ("<|assistant_end|>", "<|bos|>"):
            piece = readable(self.tokenizer, TokenEvent(event.id, piece, event.forced))
        self.text.append(piece)
        return piece

    def stop(self, stop: Stop) -> tuple[str, str]:
        """The last text and the ``finish_reason``."""
        tail = self.decoder.flush()
        self.text.append(tail)
        return tail, FINISH.get(stop.reason, "stop")


def _log(prob: float | None) -> float | None:
    if prob is None:
        return None
    return math.log(prob) if prob > 0 else -9999.0


# ---- chunks to events (the client)


@dataclass(frozen=True)
class ParsedChunk:
    tokens: list[TokenEvent]  # text left empty: the client decodes ids itself
    finish_reason: str | None
    stop_reason: int | None


def parse_chunk(chunk: Any) -> ParsedChunk:
    """The tokens of one streamed ``/v1/completions`` chunk; ``ValueError`` for a chunk that is
    not one (a usage-only chunk has no tokens)."""
    if not isinstance(chunk, dict):
        raise ValueError("a chunk is not a JSON object")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ValueError(f"the server reported an error: {message}")
    choices = chunk.get("choices")
    if not choices:
        return ParsedChunk([], None, None)
    choice = choices[0]
    ids = choice.get("token_ids")
    if ids is None:
        raise ValueError("the server sent no token_ids (it does not speak return_token_ids)")
    logprobs = choice.get("logprobs") or {}
    token_logprobs = logprobs.get("token_logprobs") or [None] * len(ids)
    top_logprobs = logprobs.get("top_logprobs") or [None] * len(ids)
    events = []
    for index, token in enumerate(ids):
        logprob = token_logprobs[index] if index < len(token_logprobs) else None
        top = top_logprobs[index] if index < len(top_logprobs) else None
        alternatives = ()
        if top:
            pairs = [(_token_id(key), math.exp(value)) for key, value in top.items()]
            alternatives = tuple(sorted(pairs, key=lambda pair: -pair[1]))
        events.append(TokenEvent(id=int(token), text="", forced=False,
                                 prob=None if logprob is None else math.exp(logprob), top=alternatives))
    stop = choice.get("stop_reason")
    return ParsedChunk(events, choice.get("finish_reason"), stop if isinstance(stop, int) else None)


def _token_id(key: str) -> int:
    if not key.startswith("token_id:"):
        raise ValueError(f"alternative {key!r} is not keyed token_id:N (return_tokens_as_token_ids)")
    return int(key.removeprefix("token_id:"))
