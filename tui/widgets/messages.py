"""The chat's message widgets: the user's message, the assistant's streamed reply (Markdown
blocks and tool-call blocks), and notices from glasschat itself."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from tui.reply_blocks import OUTPUT, PYTHON, TEXT, Piece
from tui.widgets.confidence import ConfidenceSpark, ReplyToken, ReplyTokens

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

    def __init__(self, content: str | list[dict] | None = None, message: int = -1) -> None:
        super().__init__(classes="message assistant")
        self.border_title = "assistant"
        self.message = message  # its index in the conversation's messages (-1: not known)
        self._content = content
        self._targets: dict[int, Markdown | ToolCall] = {}
        self._streams: list[MarkdownStream] = []
        self._last_tool: ToolCall | None = None
        self.streaming = content is None
        self.tokens: list[ReplyToken] = []  # the streamed tokens, for the confidence colours
        self.confident = False  # shown as coloured tokens (tui.widgets.confidence) instead of Markdown
        self._held: list[Piece] = []  # text streamed while coloured: given to the Markdown when it is shown

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
        if self.confident:  # the Markdown is hidden: parsing it now would cost the stream for nothing
            self._held.extend(pieces)
            return
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
            await self.mount(markdown, before=self._tail())
            self._streams.append(Markdown.get_stream(markdown))
            return markdown
        if kind == OUTPUT and self._last_tool is not None:
            return self._last_tool
        tool = ToolCall()
        await self.mount(tool, before=self._tail())
        self._last_tool = tool if kind == PYTHON else None
        return tool

    def _tail(self):
        """What new blocks go before: the sparkline or the stop label (text released after the
        reply ended comes above them); None: the end."""
        return next(iter(self.query(".confidence-spark, .stop-reason")), None)

    async def finish(self, stop_reason: str | None) -> None:
        """Flush the streams and say why the reply ended, unless it ended normally."""
        self.streaming = False
        for stream in self._streams:
            await stream.stop()
        self._streams.clear()
        if self.confident:
            await self._show_spark()
        if stop_reason in STOP_LABELS:
            await self.mount(Label(STOP_LABELS[stop_reason], classes="stop-reason"))

    # ---- confidence colours

    def add_tokens(self, events, special_name) -> None:
        """The streamed ``TokenEvent``s, kept (and drawn, when coloured) token by token;
        ``special_name`` (``Tokenizer.special_name``) names the special ones."""
        tokens = []
        for event in events:
            name = special_name(event.id)
            tokens.append(ReplyToken(name or event.text, name is not None, event.prob, event.forced))
        self.tokens.extend(tokens)
        if self.confident:
            self.query_one(ReplyTokens).extend(tokens)

    async def set_confident(self, on: bool, tokens: list[ReplyToken] | None = None) -> None:
        """Show the reply as coloured tokens (``tokens``, when it was not streamed here) with
        its sparkline, or as Markdown again."""
        if tokens is not None and not self.tokens:
            self.tokens = tokens
        if on and not self.streaming and not self.tokens:
            on = False  # not generated here (a file without its tokens): nothing to colour, shown as written
        self.confident = on
        self.set_class(on, "confident")
        if on:
            view = next(iter(self.query(ReplyTokens)), None)
            if view is None:
                view = ReplyTokens(self.message)
                await self.mount(view, before=0)
            view.show(self.tokens)
            if not self.streaming:
                await self._show_spark()
        elif self._held:  # what streamed while coloured goes to the Markdown now
            held, self._held = self._held, []
            await self.write(held)
            if not self.streaming:
                for stream in self._streams:
                    await stream.stop()
                self._streams.clear()

    async def _show_spark(self) -> None:
        spark = next(iter(self.query(ConfidenceSpark)), None)
        if spark is None:
            spark = ConfidenceSpark(self.message)
            stop = next(iter(self.query(".stop-reason")), None)
            await self.mount(spark, before=stop) if stop is not None else await self.mount(spark)
        spark.show(self.tokens)


class Notice(Static):
    """A line from glasschat itself in the chat (context dropped, replay progress, ...)."""

    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="notice")
