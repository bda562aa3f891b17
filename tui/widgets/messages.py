"""The chat's message widgets: the user's message, the assistant's streamed reply (Markdown
blocks and tool-call blocks), and notices from glasschat itself."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from tui.reply_blocks import OUTPUT, PYTHON, TEXT, Piece

STOP_LABELS = {
    "cancelled": "stopped",
    "max_tokens": "cut at the max-tokens limit",
    "context_full": "cut: the context window is full",
    "bos": "ended with <|bos|>",
    "error": "failed",
}


class UserMessage(Static):
    """What the user sent, shown literally (no Markdown, no markup)."""

    def __init__(self, content: str) -> None:
        super().__init__(Text(content), classes="message user")
        self.border_title = "you"


class ToolCall(Vertical):
    """One calculator call: the expression the model wrote and the output the engine forced."""

    def __init__(self, expression: str = "", output: str | None = None) -> None:
        super().__init__(classes="tool-call")
        self.border_title = "calculator"
        self.expression = expression
        self.output = output

    def compose(self) -> ComposeResult:
        yield Static(Text(self.expression), classes="tool-expression")
        yield Static(Text(self._output_text()), classes="tool-output")

    def _output_text(self) -> str:
        return "…" if self.output is None else f"= {self.output}"

    def append(self, kind: str, text: str) -> None:
        if kind == PYTHON:
            self.expression += text
            self.query_one(".tool-expression", Static).update(Text(self.expression))
        else:
            self.output = (self.output or "") + text
            self.query_one(".tool-output", Static).update(Text(self._output_text()))


class AssistantMessage(Vertical):
    """A reply: Markdown for its text, a ``ToolCall`` per calculator call.

    Built from saved content, or streamed: ``write`` takes pieces from ``tui.reply_blocks`` and
    appends them through one ``MarkdownStream`` per text block.
    """

    def __init__(self, content: str | list[dict] | None = None) -> None:
        super().__init__(classes="message assistant")
        self.border_title = "assistant"
        self._content = content
        self._targets: dict[int, Markdown | ToolCall] = {}
        self._streams: list[MarkdownStream] = []
        self._last_tool: ToolCall | None = None

    def compose(self) -> ComposeResult:
        if self._content is None:
            return
        parts = [{"type": TEXT, "text": self._content}] if isinstance(self._content, str) else self._content
        tool: ToolCall | None = None
        for part in parts:
            if part["type"] == TEXT:
                tool = None
                yield Markdown(part["text"])
            elif part["type"] == PYTHON:
                tool = ToolCall(part["text"])
                yield tool
            elif tool is not None:
                tool.output = part["text"]
            else:
                yield ToolCall("", part["text"])

    @property
    def text(self) -> str:
        """The visible text of the reply's Markdown blocks (for tests and copying)."""
        return "".join(md.source for md in self.query(Markdown))

    async def write(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            target = self._targets.get(piece.block)
            if target is None:
                target = await self._new_target(piece.kind)
                self._targets[piece.block] = target
            if isinstance(target, ToolCall):
                target.append(piece.kind, piece.text)
            elif piece.text:
                await self._streams[-1].write(piece.text)

    async def _new_target(self, kind: str) -> Markdown | ToolCall:
        if kind == TEXT:
            self._last_tool = None
            markdown = Markdown()
            await self.mount(markdown)
            self._streams.append(Markdown.get_stream(markdown))
            return markdown
        if kind == OUTPUT and self._last_tool is not None:
            return self._last_tool
        tool = ToolCall()
        await self.mount(tool)
        self._last_tool = tool if kind == PYTHON else None
        return tool

    async def finish(self, stop_reason: str | None) -> None:
        """Flush the streams and say why the reply ended, unless it ended normally."""
        for stream in self._streams:
            await stream.stop()
        self._streams.clear()
        if stop_reason in STOP_LABELS:
            await self.mount(Label(STOP_LABELS[stop_reason], classes="stop-reason"))


class Notice(Static):
    """A line from glasschat itself in the chat (context dropped, replay progress, ...)."""

    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="notice")
