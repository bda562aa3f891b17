"""Which backend the chat and replay use: the engine in a child process for the app, in this
process for headless commands. The seam itself (``Backend``, ``ModelInfo``) is ``model.backend``.
"""

from __future__ import annotations

from model.backend import Backend, open_backend


def load_backend(checkpoint: str | None, *, in_process: bool = False, quantize: str | None = None,
                 progress=None, server: str | None = None, api_key: str | None = None) -> Backend:
    """Load a checkpoint directory (or the bundled default model); ``quantize="int8"`` runs it
    int8, ``progress(done_bytes, total_bytes)`` follows the load. With ``server``, connect to
    the model served there instead (``model.remote``; the checkpoint then only gives the tokenizer).

    The chat runs the engine in its own process (``tui.engine_process``: a UI and an engine
    sharing one interpreter lock slow each other down); headless commands, where nothing else
    runs, use it in-process. Loading imports torch, so it happens only in commands that need it.
    """
    if in_process or server:
        return open_backend(checkpoint, server=server, api_key=api_key, quantize=quantize, progress=progress)
    from tui.engine_process import EngineProcess

    return EngineProcess(checkpoint, quantize=quantize, progress=progress)
