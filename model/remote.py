"""A model on a server: ``RemoteBackend`` streams from a vLLM server or ``glasschat serve`` and
yields the same ``TokenEvent``/``Stop`` events as the local engine, so the app (token pane,
inspector), ``ask``, replay and eval work unchanged.

- Prompts are rendered by glasschat's own tokenizer and sent as token ids to
  ``/v1/completions`` with ``return_token_ids``, ``return_tokens_as_token_ids`` and
  ``logprobs``. Text is decoded here from the ids with the tokenizer's streaming decoder; the
  server's ``text`` is never read (vLLM's is lossy on a character split across tokens).
- Probabilities are what the server reports: vLLM's are the raw model's unless it runs with
  ``--logprobs-mode processed_logprobs`` (``/v1/models`` of ``glasschat serve`` says which);
  ``probabilities`` holds ``raw`` or ``processed``.
- The calculator runs here, with the rule every backend applies (``model.tool``): the request
  stops at ``<|python_end|>``; a well-formed call's ``<|output_start|> result <|output_end|>``
  is yielded as forced tokens, and a new request continues from the prompt, everything
  generated and those tokens.
- At connect, ``/tokenize`` of a text with special-token names, CJK and emoji must give our
  ids: a server running another tokenizer is refused in one line.
- Cancelling (Esc) closes the HTTP stream, which aborts the request on the server. Connection
  refused, timeouts, 4xx/5xx and an error chunk in the stream each raise a ``RemoteError``: one
  line, never a traceback.

httpx is the HTTP client: one connection pool shared by the threads of a concurrent replay,
streaming responses that close their connection when the reader stops.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import httpx

from glasschat.errors import UserError
from glasschat.protocol import parse_chunk, prompt_token_logprobs
from model.backend import ModelInfo
from model.events import GenerationStats, SamplingParams, Stop, TokenEvent
from model.tool import ToolState

API_KEY_ENV = "GLASSCHAT_API_KEY"
# what /tokenize must give our ids for: ordinary text in several scripts, and every special
# token's name (which a server tokenizer maps to the special token)
CHECK_TEXT = "Hello, wörld! 日本語のテキスト 🎉👍🏽 12 + 30 = 42\n\tdef f(x): return x"


class RemoteError(UserError):
    """The server could not be reached or answered with an error."""


def api_key_from(args_key: str | None) -> str | None:
    return args_key if args_key else os.environ.get(API_KEY_ENV) or None


class RemoteBackend:
    """The backend of a model served over HTTP (see the module docstring)."""

    def __init__(self, url: str, tokenizer, api_key: str | None = None, connect_timeout_s: float = 10.0,
                 read_timeout_s: float = 120.0, max_connections: int = 64):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UserError(f"--server {url}: expected an http:// or https:// URL")
        self.url = url.rstrip("/").removesuffix("/v1")
        self.tokenizer = tokenizer
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(base_url=self.url, headers=headers, limits=limits,
                                    timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s))
        special = tokenizer.special_ids
        self._stops = {special["<|assistant_end|>"]: "assistant_end", special["<|bos|>"]: "bos"}
        self._python_end = special["<|python_end|>"]
        try:
            card = self._model_card()
            self.model: str = card["id"]
            self.sequence_len: int = int(card.get("max_model_len") or 0)
            if self.sequence_len <= 0:
                raise RemoteError(f"{self.url}: /v1/models does not say the model's context (max_model_len)")
            mode = str(card.get("logprobs_mode") or "raw_logprobs")
            self.probabilities = "processed" if mode.startswith("processed") else "raw"
            self._check_tokenizer()
        except BaseException:
            self._client.close()
            raise

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def info(self) -> ModelInfo:
        """What the status bar shows: the served model's name, where it runs (a server says
        nothing of its size, weights or example prompts)."""
        return ModelInfo(self.model, 0, self.sequence_len, runs_on=self.host, source=f"served by {self.url}")

    # ---- connecting

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise RemoteError(self._describe(error)) from None
        if response.status_code != 200:
            raise RemoteError(f"{self.url}{path}: {_error_message(response.status_code, response.read())}")
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{self.url}{path}: the answer is not JSON") from None

    def _model_card(self) -> dict:
        data = self._request("GET", "/v1/models").get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise RemoteError(f"{self.url}/v1/models: lists no model")
        return data[0]

    def _check_tokenizer(self) -> None:
        names = list(self.tokenizer.special_ids)
        text = CHECK_TEXT + "".join(names) + CHECK_TEXT
        expected = self.tokenizer.encode(CHECK_TEXT) + [self.tokenizer.special_ids[n] for n in names] \
            + self.tokenizer.encode(CHECK_TEXT)
        try:
            answer = self._request("POST", "/tokenize", {"model": self.model, "prompt": text,
                                                         "add_special_tokens": False})
        except RemoteError as error:
            raise RemoteError(f"{error} (the server's tokenizer cannot be checked; a vLLM server needs the "
                              "tokenizer that glasschat export-hf writes, not --skip-tokenizer-init)") from None
        got = answer.get("tokens")
        if got != expected:
            first = next((i for i, (a, b) in enumerate(zip(got or [], expected)) if a != b),
                         min(len(got or []), len(expected)))
            raise RemoteError(f"{self.url}: the server's tokenizer is not this model's ({len(got or [])} ids where "
                              f"ours gives {len(expected)}, first difference at token {first}); refusing to use it")

    def _describe(self, error: httpx.HTTPError) -> str:
        if isinstance(error, httpx.ConnectError):
            return f"{self.url}: cannot connect ({_reason(error)})"
        if isinstance(error, httpx.TimeoutException):
            return f"{self.url}: the server did not answer in time ({type(error).__name__})"
        return f"{self.url}: {type(error).__name__}: {_reason(error)}"

    # ---- generating

    def stream(self, prompt_ids: list[int], params: SamplingParams = SamplingParams(),
               cancel: threading.Event | None = None) -> Iterator[TokenEvent | Stop]:
        if params.num_samples != 1:
            raise UserError("a remote model generates one sample per request (num_samples must be 1)")
        prompt = list(prompt_ids)
        start = time.perf_counter()
        decoder, tool = self.tokenizer.stream_decoder(), ToolState(self.tokenizer)
        generated: list[int] = []
        ttft = [0.0]

        def stop(reason: str) -> Stop:
            total = time.perf_counter() - start
            return Stop(reason, GenerationStats(len(prompt), len(generated), ttft[0] if generated else total, total))

        def emit(event: TokenEvent) -> TokenEvent:
            generated.append(event.id)
            if len(generated) == 1:
                ttft[0] = time.perf_counter() - start
            return replace(event, text=decoder.feed(event.id))

        def limit() -> str | None:
            if len(generated) >= params.max_tokens:
                return "max_tokens"
            if len(prompt) + len(generated) >= self.sequence_len:
                return "context_full"
            return None

        while True:
            while tool.forced:  # the calculator's result, forced into the reply
                yield emit(TokenEvent(tool.forced.popleft(), "", forced=True))
                if (reason := limit()) is not None:
                    yield stop(reason)
                    return
            if cancel is not None and cancel.is_set():
                yield stop("cancelled")
                return
            budget = min(params.max_tokens - len(generated), self.sequence_len - len(prompt) - len(generated))
            last = None
            for event in self._completion(prompt + generated, params, budget, cancel):
                if event is None:  # cancelled mid-stream: the connection is closed
                    yield stop("cancelled")
                    return
                yield emit(event)
                tool.feed(event.id)
                last = event.id
            if (reason := limit()) is not None:
                yield stop(reason)
                return
            if last in self._stops:
                yield stop(self._stops[last])
                return
            if last != self._python_end:
                raise RemoteError(f"{self.url}: the server ended the reply early (after token {last}) "
                                  "without a stop token or reaching max_tokens")
            # stopped at <|python_end|> so that the calculator can run here: go on

    def _completion(self, ids: list[int], params: SamplingParams, max_tokens: int,
                    cancel: threading.Event | None) -> Iterator[TokenEvent | None]:
        """One streamed request; yields its tokens (text empty), None if cancelled."""
        body = {
            "model": self.model, "prompt": ids, "max_tokens": max_tokens, "stream": True,
            "temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p,
            "logprobs": max(1, params.top_alternatives), "return_token_ids": True,
            "return_tokens_as_token_ids": True, "skip_special_tokens": False,
            "include_stop_str_in_output": True, "stop_token_ids": [*self._stops, self._python_end],
        }
        if params.seed is not None:
            body["seed"] = params.seed
        finished = False
        try:
            with self._client.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code != 200:
                    raise RemoteError(f"{self.url}/v1/completions: "
                                      f"{_error_message(response.status_code, response.read())}")
                for line in response.iter_lines():
                    if cancel is not None and cancel.is_set():
                        yield None  # leaving the with-block closes the connection: the server aborts
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        # read on to the body's end (it ends here): a response left unread
                        # cannot go back to the pool, and every request would open a new connection
                        continue
                    try:
                        parsed = parse_chunk(json.loads(data))
                    except ValueError as error:
                        raise RemoteError(f"{self.url}/v1/completions: {error}") from None
                    for event in parsed.tokens:
                        n = params.top_alternatives
                        yield replace(event, top=event.top[:n] if n else ())
                    if parsed.finish_reason is not None:
                        finished = True
        except httpx.HTTPError as error:
            raise RemoteError(self._describe(error)) from None
        if not finished:
            raise RemoteError(f"{self.url}/v1/completions: the stream ended without a finish_reason")

    @property
    def score_window(self) -> int:
        """Tokens per scored window: a prompt must leave the server room for the one token a
        completion generates, so a window holds ``sequence_len - 1`` tokens (a model run here
        scores ``sequence_len + 1``)."""
        return self.sequence_len - 1

    def surprisal(self, ids: list[int]) -> list[float]:
        """``Backend.surprisal`` from the server's ``prompt_logprobs`` (vLLM's field; ``glasschat
        serve`` gives it too), one request per window of ``score_window`` tokens, the model's raw
        probabilities; a server that does not return them is a one-line ``RemoteError``."""
        from model.bpb import surprisal

        return surprisal(self, ids)

    def prompt_logprobs(self, window: list[int]) -> list[float]:
        """The log probability of each token of ``window`` after the first, given those before
        it: one completion request asking for ``prompt_logprobs``."""
        body = {"model": self.model, "prompt": window, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0}
        choices = self._request("POST", "/v1/completions", body).get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        try:
            return prompt_token_logprobs(choice.get("prompt_logprobs"), window)
        except ValueError as error:
            raise RemoteError(f"{self.url}/v1/completions: {error} (the server does not score prompts, which "
                              "the surprise view and bits per byte need)") from None

    def attention(self, ids: list[int], position: int) -> list[list[list[float]]]:
        """Not offered: the attention view's reference forward reads the model's weights."""
        raise RemoteError("attention needs the model's weights; not available on a server")

    def close(self) -> None:
        self._client.close()


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


def _error_message(status: int, raw: bytes) -> str:
    """One line from an error answer: the OpenAI/vLLM ``error.message`` when there is one."""
    message = None
    try:
        body = json.loads(raw)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(body, dict):
            message = body.get("message") or error or body.get("detail")
    except ValueError:
        message = raw.decode("utf-8", "replace").strip()[:200] or None
    first = str(message).splitlines()[0] if message else ""
    return f"HTTP {status}" + (f": {first}" if first else "")


def connect(url: str, checkpoint: str | None, api_key: str | None) -> RemoteBackend:
    """A ``RemoteBackend`` on ``url`` with the tokenizer of ``checkpoint`` (default: the bundled
    model's), the API key from the option or ``GLASSCHAT_API_KEY``."""
    from model.checkpoint import TOKENIZER_DIR, resolve_checkpoint_dir
    from tokenizer import Tokenizer

    tokenizer = Tokenizer.load(resolve_checkpoint_dir(checkpoint) / TOKENIZER_DIR)
    return RemoteBackend(url, tokenizer, api_key_from(api_key))
