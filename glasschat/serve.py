"""``glasschat serve``: the engine behind an HTTP API that vLLM clients and the official
``openai`` client speak (see ``glasschat.protocol`` for the fields).

- ``POST /v1/completions``: a prompt (token ids or text) continued as a plain completion: no
  tool, stops at ``<|assistant_end|>``, ``<|bos|>`` and the request's ``stop_token_ids``.
- ``POST /v1/chat/completions``: the conversation rendered by glasschat's tokenizer, the reply
  generated with the calculator tool, its content as ``glasschat ask`` prints it.
- ``GET /v1/models``: the one model served, with ``max_model_len``.
- ``POST /tokenize``: ``{"prompt": TEXT}`` to ids (special-token names become their ids, as a
  Hugging Face tokenizer does): how a client checks the server's tokenizer is its own.

Requests from many clients decode together (``model.batching.Batcher``: continuous batching,
in a process of its own, ``model.batch_process``); each request's events reach its response
through the event loop, and a client that goes away cancels its generation. Starlette and
uvicorn do the HTTP (parsing, streaming, disconnects); this module only maps requests to the
batcher and events to chunks. Binds to 127.0.0.1 unless told otherwise; with ``--api-key``
every ``/v1`` request needs ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from glasschat.protocol import (
    MAX_BODY_BYTES,
    ChatRequest,
    ChatWriter,
    ChunkWriter,
    CompletionRequest,
    ProtocolError,
    error_body,
    prompt_logprobs,
)
from model.events import Stop, TokenEvent
from model.sampling_options import add_quantize_argument

MAX_WAITING = 256  # requests queued beyond the batch; more are refused with 503


@dataclass(frozen=True)
class Served:
    """What the server needs: the batcher, the tokenizer, and the model's name and context."""

    batcher: object  # model.batch_process.BatcherProcess, or a model.batching.Batcher in this process
    tokenizer: object
    name: str
    context: int
    api_key: str | None = None
    stream_interval_s: float = 0.05  # a streamed response goes out at most this often (see _Events)


def _error(message: str, status: int):
    from starlette.responses import JSONResponse

    return JSONResponse(error_body(message, status), status_code=status)


async def _body(request):
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise ProtocolError(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
    raw = b""
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY_BYTES:
            raise ProtocolError(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"the request body is not JSON: {error}") from None


def _sse(payload) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def _choice_sse(head: bytes, choice: dict) -> bytes:
    """A chunk of one choice after ``head`` (the response's fixed fields, encoded once)."""
    return head + json.dumps(choice, ensure_ascii=False).encode() + b"]}\n\n"


def _head(fields: dict) -> bytes:
    return b"data: " + json.dumps(fields, ensure_ascii=False).encode()[:-1] + b', "choices": ['


class _Events:
    """One request's events, carried from the batcher's thread to the event loop.

    The batcher appends to a deque and wakes the loop only when the response has no wake-up
    pending: while the loop is behind, many events cost one wake-up (a system call) instead of
    one each. The loop clears the flag before it drains, so an event appended meanwhile either
    is drained or schedules a new wake-up.

    A response also goes out at most once per ``stream_interval_s`` (its first token and its
    stop at once): a token that comes sooner waits for a timer, with the tokens after it, and
    they leave as one chunk. With many requests decoding together this is what keeps the
    server's share of the cores small: each chunk costs a JSON document, a socket write and a
    client's wake-up, and at 16 requests a chunk per token cost more than the model did."""

    def __init__(self, served: Served, loop: asyncio.AbstractEventLoop):
        self.served, self.loop = served, loop
        self.pending: deque = deque()
        self.ready = asyncio.Event()
        self.scheduled = False  # a wake-up is on its way: now, or ...
        self.timed = False  # ... by a timer (an event that must not wait still wakes the loop now)
        self.next_send = 0.0  # time.monotonic() before which a token waits
        self.cancel = threading.Event()

    def put(self, item) -> None:  # on the batcher's thread
        self.pending.append(item)
        urgent = not isinstance(item, TokenEvent)  # the stop (or a failure): its client waits on it
        if self.scheduled and not (urgent and self.timed):
            return
        delay = 0.0 if urgent else self.next_send - time.monotonic()
        self.scheduled, self.timed = True, delay > 0
        try:
            if delay > 0:
                self.loop.call_soon_threadsafe(self.loop.call_later, delay, self.ready.set)
            else:
                self.loop.call_soon_threadsafe(self.ready.set)
        except RuntimeError:  # the server has shut down: nobody is listening
            self.cancel.set()

    def start(self, prompt: list[int], params, stop_ids: dict[int, str], tools: bool) -> None:
        if self.served.batcher.waiting >= MAX_WAITING:
            raise ProtocolError("the server is busy: too many requests waiting", 503)
        try:
            self.served.batcher.submit(prompt, params, self.put, self.cancel, stop_ids, tools)
        except RuntimeError as error:  # the engine process has ended: every request is refused
            raise ProtocolError(str(error), 503) from None

    async def batches(self):
        """Lists of events as they arrive (all that is ready at once), the ``Stop`` last."""
        while True:
            await self.ready.wait()
            self.ready.clear()
            self.next_send = time.monotonic() + self.served.stream_interval_s
            self.scheduled = self.timed = False
            items = []
            while self.pending:
                items.append(self.pending.popleft())
            if not items:
                continue
            for item in items:
                if isinstance(item, BaseException):
                    raise item
            yield items
            if isinstance(items[-1], Stop):
                return

    def close(self) -> None:
        """The response is over (finished, failed, or the client went away): stop generating."""
        self.cancel.set()
        self.served.batcher.wake()


def create_app(served: Served):
    """The Starlette application (imported here: ``glasschat --help`` stays fast)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    tokenizer = served.tokenizer
    special = tokenizer.special_ids
    default_stops = {special["<|assistant_end|>"]: "assistant_end", special["<|bos|>"]: "bos"}

    def authorised(request: Request) -> bool:
        if served.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {served.api_key}".encode())

    def check_model(name) -> None:
        if name is not None and name != served.name:
            raise ProtocolError(f"model: this server serves {served.name!r}, not {name!r}", 404)

    def endpoint(handler):
        async def wrapped(request: Request) -> Response:
            if not authorised(request):
                return _error("missing or wrong API key (Authorization: Bearer KEY)", 401)
            try:
                return await handler(request)
            except ProtocolError as error:
                return _error(str(error), error.status)
        return wrapped

    async def models(request: Request) -> Response:
        card = {"id": served.name, "object": "model", "created": int(time.time()), "owned_by": "glasschat",
                "root": served.name, "max_model_len": served.context, "logprobs_mode": "raw_logprobs"}
        return JSONResponse({"object": "list", "data": [card]})

    async def tokenize(request: Request) -> Response:
        body = await _body(request)
        text = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise ProtocolError("prompt: must be a string")
        ids = encode_with_specials(tokenizer, text)
        return JSONResponse({"tokens": ids, "count": len(ids), "max_model_len": served.context})

    async def completions(request: Request) -> Response:
        body = await _body(request)
        req = CompletionRequest.parse(body, tokenizer.vocab_size, served.context)
        check_model(req.model)
        prompt = req.prompt if isinstance(req.prompt, list) else tokenizer.encode(req.prompt)
        if len(prompt) >= served.context:
            raise ProtocolError(f"prompt: {len(prompt)} tokens leave no room in the model's context of "
                                f"{served.context}")
        stops = {**default_stops, **{t: default_stops.get(t, "stop_token") for t in req.stop_token_ids}}
        writer = ChunkWriter(tokenizer, req)
        scored = None
        if req.prompt_logprobs is not None:  # one forward over the prompt, off the event loop
            scored = await asyncio.to_thread(score_prompt, served, prompt, req.prompt_logprobs, writer.name)
        events = _Events(served, asyncio.get_running_loop())
        events.start(prompt, req.params, stops, tools=False)
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": served.name}
        prefix = _head(head)

        async def chunks():
            last, unsent = None, scored  # the prompt_logprobs go with the first chunk, as vLLM sends them
            try:
                async for batch in events.batches():
                    out = []
                    tokens = [item for item in batch if isinstance(item, TokenEvent)]
                    if tokens:  # one chunk for all of them
                        last = tokens[-1].id
                        choice = writer.chunk(tokens, stops)
                        if unsent is not None:
                            choice["prompt_logprobs"], unsent = unsent, None
                        out.append(_choice_sse(prefix, choice))
                    if isinstance(batch[-1], Stop):
                        out.append(_choice_sse(prefix, writer.stop(batch[-1], last)))
                        if req.include_usage:
                            out.append(_sse({**head, "choices": [], "usage": _usage(prompt, writer)}))
                        out.append(b"data: [DONE]\n\n")
                    yield b"".join(out)
            except Exception as error:  # after the headers went out: an error chunk, as vLLM sends
                yield _sse(error_body(f"generation failed: {error}", 500))
            finally:
                events.close()

        if req.stream:
            return StreamingResponse(chunks(), media_type="text/event-stream")
        try:
            last, finish = None, None
            async for batch in events.batches():
                tokens = [item for item in batch if isinstance(item, TokenEvent)]
                if tokens:
                    last = tokens[-1].id
                    writer.chunk(tokens, stops)
                if isinstance(batch[-1], Stop):
                    finish = writer.stop(batch[-1], last)
        finally:
            events.close()
        choice = writer.whole(finish)
        if scored is not None:
            choice["prompt_logprobs"] = scored
        return JSONResponse({**head, "choices": [choice], "usage": _usage(prompt, writer)})

    async def chat(request: Request) -> Response:
        body = await _body(request)
        req = ChatRequest.parse(body, served.context)
        check_model(req.model)
        try:
            prompt = tokenizer.render_for_completion({"messages": req.messages})
        except ProtocolError:
            raise
        except Exception as error:  # the tokenizer's ConversationError names the message
            raise ProtocolError(f"messages: {error}") from None
        if len(prompt) >= served.context:
            raise ProtocolError(f"messages: {len(prompt)} tokens leave no room in the model's context of "
                                f"{served.context}")
        events = _Events(served, asyncio.get_running_loop())
        events.start(prompt, req.params, default_stops, tools=True)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": served.name}
        writer = ChatWriter(tokenizer)

        def usage() -> dict:
            return {"prompt_tokens": len(prompt), "completion_tokens": writer.tokens,
                    "total_tokens": len(prompt) + writer.tokens}

        if req.stream:
            async def chunks():
                try:
                    yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "finish_reason": None}]})
                    async for batch in events.batches():
                        text, finish = [], None
                        for item in batch:
                            if isinstance(item, TokenEvent):
                                text.append(writer.token(item))
                            else:
                                tail, finish = writer.stop(item)
                                text.append(tail)
                        out = [_sse({**head, "choices": [{"index": 0, "delta": {"content": "".join(text)},
                                                          "finish_reason": finish}]})]
                        if finish is not None:
                            if req.include_usage:
                                out.append(_sse({**head, "choices": [], "usage": usage()}))
                            out.append(b"data: [DONE]\n\n")
                        yield b"".join(out)
                except Exception as error:
                    yield _sse(error_body(f"generation failed: {error}", 500))
                finally:
                    events.close()
            return StreamingResponse(chunks(), media_type="text/event-stream")

        finish = "stop"
        try:
            async for batch in events.batches():
                for item in batch:
                    if isinstance(item, TokenEvent):
                        writer.token(item)
                    else:
                        finish = writer.stop(item)[1]
        finally:
            events.close()
        message = {"role": "assistant", "content": "".join(writer.text)}
        return JSONResponse({**head, "object": "chat.completion",
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": usage()})

    async def not_found(request: Request, exc) -> Response:
        return _error(f"no such endpoint: {request.method} {request.url.path}", exc.status_code)

    routes = [
        Route("/v1/models", endpoint(models), methods=["GET"]),
        Route("/v1/completions", endpoint(completions), methods=["POST"]),
        Route("/v1/chat/completions", endpoint(chat), methods=["POST"]),
        Route("/tokenize", endpoint(tokenize), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def score_prompt(served: Served, prompt: list[int], alternatives: int, name) -> list[dict | None]:
    """A request's ``prompt_logprobs``: the engine's log probabilities at every prompt position
    (``Batcher.score``), with ``alternatives`` per token named by ``name``."""
    try:
        scores = served.batcher.score(prompt, alternatives)
    except RuntimeError as error:  # the engine process has ended (or the engine failed)
        raise ProtocolError(str(error), 503) from None
    return prompt_logprobs(scores, prompt, name)


def _usage(prompt: list[int], writer: ChunkWriter) -> dict:
    return {"prompt_tokens": len(prompt), "completion_tokens": len(writer.token_ids),
            "total_tokens": len(prompt) + len(writer.token_ids)}


def encode_with_specials(tokenizer, text: str) -> list[int]:
    """Ids of ``text`` where a special token's name stands for the special token (what a Hugging
    Face tokenizer does with its added tokens); everything else is ordinary text."""
    import re

    names = sorted(tokenizer.special_ids, key=len, reverse=True)
    ids: list[int] = []
    for index, part in enumerate(re.split("(" + "|".join(map(re.escape, names)) + ")", text)):
        if index % 2:
            ids.append(tokenizer.special_ids[part])
        elif part:
            ids.extend(tokenizer.encode(part))
    return ids


# ---- the command


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="Serve a model over HTTP (OpenAI/vLLM-style /v1/completions, /v1/chat/completions).",
        description="Serve a checkpoint over HTTP: /v1/completions (prompt as token ids or text, streamed "
        "token ids and alternatives), /v1/chat/completions (with the calculator), /v1/models and /tokenize. "
        "Concurrent requests decode together in one batch.")
    serve.add_argument("--checkpoint", metavar="DIR", default=None,
                       help="model checkpoint directory (default: the bundled model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--api-key", metavar="KEY", default=None,
                       help="require 'Authorization: Bearer KEY' on every request (default: none)")
    serve.add_argument("--max-batch", type=int, default=16, metavar="N",
                       help="the most requests decoded together (default 16); more wait their turn")
    serve.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default 1)")
    serve.add_argument("--stream-interval-ms", type=float, default=50.0, metavar="MS",
                       help="send a streamed response at most this often, its tokens since the last send "
                       "in one chunk (default 50: 20 sends a second; the first token and the end go at once; "
                       "0: every token as it comes)")
    add_quantize_argument(serve)
    serve.set_defaults(func=run_serve)


def load_served(checkpoint: str | None, api_key: str | None, max_batch: int, quantize: str | None = None,
                progress=None, stream_interval_s: float = 0.05, threads: int = 1) -> Served:
    """The checkpoint loaded as every local command loads it (``model.backend``), its engine
    behind a ``Batcher`` in a process of its own (``model.batch_process``: the decode loop and
    the event loop each get an interpreter and a core)."""
    from model.batch_process import BatcherProcess
    from tokenizer import Tokenizer

    batcher = BatcherProcess(checkpoint, max_batch, quantize, threads, progress)
    return Served(batcher, Tokenizer.load(batcher.tokenizer_directory), batcher.name, batcher.sequence_len, api_key,
                  stream_interval_s)


def run_serve(args) -> int:
    import socket

    import uvicorn

    from glasschat.errors import UserError

    if not 1 <= args.max_batch <= 256:
        raise UserError("--max-batch: must be from 1 to 256")
    if not 0 <= args.port <= 65535:
        raise UserError("--port: must be from 0 to 65535")
    from glasschat.progress import LoadProgress

    if args.threads < 1:
        raise UserError("--threads: must be >= 1")
    if not 0 <= args.stream_interval_ms <= 10_000:
        raise UserError("--stream-interval-ms: must be from 0 to 10000")
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # no Nagle on the connections (they inherit it from this socket): a streamed response is the
    # headers, then small chunks; on a kept-alive connection Nagle held the first chunk back until
    # the client acknowledged the headers, which Linux delays by up to 40 ms, the whole of the
    # time to first token seen by a client that reuses its connection
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        raise UserError(f"--host {args.host} --port {args.port}: cannot listen there: {error.strerror}") from None
    host, port = sock.getsockname()[:2]
    try:  # bound before the model loads: a port in use is refused before a long load, not after
        served = load_served(args.checkpoint, args.api_key, args.max_batch, args.quantize, LoadProgress(),
                             args.stream_interval_ms / 1000, args.threads)
    except BaseException:
        sock.close()
        raise
    # listening before the first line goes out: a script that reads it and connects at once
    # must not find a bound socket that refuses (uvicorn's own listen() comes later)
    sock.listen(2048)
    # the first line says where it listens (with --port 0, the port picked): scripts read it
    print(f"glasschat serve: {served.name} on http://{host}:{port}/v1 (batch up to {args.max_batch})", flush=True)
    config = uvicorn.Config(create_app(served), log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        served.batcher.close()
    return 0
