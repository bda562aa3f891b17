"""What a chat talks to: the one seam between the users of a model (the chat app, replay,
``ask``, evaluation, a server) and wherever the model runs.

A ``Backend`` streams the engine's events (``model.events``) for a prompt, closes, and says
what the status bar shows (``ModelInfo``). The in-process engine (``LocalBackend``), the engine
in a child process (``tui.engine_process.EngineProcess``) and a remote one all implement it;
the calculator's rule that every backend applies is ``model.tool``. This module imports no
torch (loading does, inside ``load_local_backend``), so the TUI and tests can name the seam.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from glasschat.errors import UserError
from model.events import SamplingParams, Stop, TokenEvent

if TYPE_CHECKING:
    from model.engine import Engine
    from tokenizer import Tokenizer


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar and the first screen say about the model. ``weight_format`` (``fp32``,
    ``int8``, ...: what runs) and ``runs_on`` (``cpu``, a host, ...) are shown when a backend
    knows them; ``source`` (where it came from), ``stored_as`` (the weights' format on disk) and
    ``example_prompts`` (prompts it handles well, from its card) come from ``model.facts``."""

    name: str
    parameters: int
    sequence_len: int
    weight_format: str = ""
    runs_on: str = ""
    source: str = ""
    stored_as: str = ""
    example_prompts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``name (4.2M)``, with the weight format and where it runs when known."""
        size = self.size_label if self.parameters else ""  # a server does not say
        details = ", ".join(part for part in (size, self.weight_format, self.runs_on) if part)
        return f"{self.name} ({details})"

    @property
    def size_label(self) -> str:
        """``4.2M``-style parameter count."""
        n = self.parameters
        for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
            if n >= scale:
                return f"{n / scale:.1f}{unit}"
        return str(n)


@runtime_checkable
class Backend(Protocol):
    """A model that generates: ``stream`` yields ``TokenEvent``s and ends each row with one
    ``Stop`` (the contract of ``model.events``), stopping within a token once ``cancel`` is set;
    ``surprisal`` scores given tokens instead (the token pane's surprise view); ``attention``
    says what a token attended to (the attention view); ``close`` frees
    what the backend holds (a process, a connection); ``tokenizer`` renders conversations for
    it; ``info`` is what the status bar shows."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def info(self) -> ModelInfo: ...

    def stream(self, prompt_ids: list[int], params: SamplingParams = SamplingParams(),
               cancel: threading.Event | None = None) -> Iterator[TokenEvent | Stop]: ...

    def surprisal(self, ids: list[int]) -> list[float]:
        """For each token of ``ids`` after the first, ``-log2 p`` of it given the tokens before it
        (``nan`` where nothing precedes it in the model's context): ``model.bpb.surprisal``."""
        ...

    def attention(self, ids: list[int], position: int) -> list[list[list[float]]]:
        """``weights[layer][head][key]``: how the token at ``position`` of ``ids`` attended to the
        keys ``0..position``, by an exact reference forward (``model.attention``); a one-line
        ``UserError`` where it cannot be computed, or not quickly."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """The engine in this process: for headless commands, where nothing else competes for it."""

    def __init__(self, engine: Engine, tokenizer: Tokenizer, info: ModelInfo, directory: Path | None = None) -> None:
        """``directory``: the checkpoint the engine was loaded from (the attention view loads its
        weights again, in fp32, when first asked)."""
        self.engine = engine
        self.tokenizer = tokenizer
        self.info = info
        self.directory = directory
        self._probe = None

    def stream(self, prompt_ids: list[int], params: SamplingParams = SamplingParams(),
               cancel: threading.Event | None = None) -> Iterator[TokenEvent | Stop]:
        return self.engine.stream(prompt_ids, params, cancel)

    def surprisal(self, ids: list[int]) -> list[float]:
        from model.bpb import surprisal

        return surprisal(self.engine, ids)

    def attention(self, ids: list[int], position: int) -> list[list[list[float]]]:
        if self._probe is None:
            from model.attention import engine_probe

            self._probe = engine_probe(self.engine, self.directory)
        return self._probe.attention(ids, position)

    def close(self) -> None:
        pass  # the weights go with the object


def load_local_backend(checkpoint: str | None, quantize: str | None = None, progress=None) -> LocalBackend:
    """Load a checkpoint directory (or the bundled default model) into this process, mapped and
    packed straight into the engine (``model.checkpoint.load_engine``): ``quantize="int8"``
    runs the weights int8; ``progress(done_bytes, total_bytes)`` follows the load."""
    from model.checkpoint import load_engine, resolve_checkpoint_dir

    directory = resolve_checkpoint_dir(checkpoint)
    engine, tokenizer = load_engine(directory, quantize, progress=progress)
    return LocalBackend(engine, tokenizer, model_info(directory, engine), directory)


def open_backend(checkpoint: str | None, *, server: str | None = None, api_key: str | None = None,
                 quantize: str | None = None, progress=None) -> Backend:
    """The model of a headless command: the one served at ``server`` (``model.remote``; the
    checkpoint then only gives the tokenizer), else the checkpoint loaded in this process."""
    if server:
        if quantize:
            raise UserError("--quantize: applies to a model run here, not to one on --server")
        from model.remote import connect

        return connect(server, checkpoint, api_key)
    return load_local_backend(checkpoint, quantize, progress)


def model_info(directory, engine: Engine) -> ModelInfo:
    """What the status bar shows for ``engine`` loaded from ``directory``."""
    from model.checkpoint import parameter_count
    from model.facts import checkpoint_facts

    config = engine.config
    facts = checkpoint_facts(directory)
    return ModelInfo(model_name(directory), parameter_count(config), config.sequence_len, engine.weight_format,
                     engine.device.type, facts.source, facts.stored_as, facts.example_prompts)


def model_name(directory) -> str:
    """``checkpoints/default``-style: the checkpoint directory with its parent."""
    path = Path(directory).resolve()
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
