"""The confidence colours' widgets: a reply's tokens coloured by the probability each was
sampled with, the sparkline and figures under a finished reply, and the legend.

Clicking a token or a sparkline bar posts ``Inspect``: the app opens that token in the token
pane's inspector."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import Static

from tui import confidence
from tui.widgets.token_lines import TokenLinesWidget
from tui.widgets.token_view import CURSOR_STYLE

# special tokens that end a reply say nothing the reply's figures do not: they are not drawn
HIDDEN_SPECIALS = {"<|assistant_end|>", "<|bos|>"}


@dataclass(frozen=True)
class ReplyToken:
    text: str
    special: bool
    prob: float | None
    forced: bool


def reply_tokens(tokenizer, ids: list[int], probs: list[float | None], forced: list[bool]) -> list[ReplyToken]:
    """A saved reply's tokens as they streamed: text through the same streaming decoder as the
    engine's (a token that ends inside a UTF-8 character shows nothing; its bytes come with the
    next), special tokens by name."""
    decoder = tokenizer.stream_decoder()
    tokens = []
    for k, token in enumerate(ids):
        name = tokenizer.special_name(token)
        text = decoder.feed(token)
        tokens.append(ReplyToken(name or text, name is not None, probs[k] if k < len(probs) else None,
                                 forced[k] if k < len(forced) else False))
    return tokens


class Inspect(Message):
    """Open token ``index`` of the reply to conversation message ``message`` in the inspector."""

    def __init__(self, message: int, index: int) -> None:
        super().__init__()
        self.message = message
        self.index = index


class ReplyTokens(TokenLinesWidget):
    """A reply's tokens, each on the colour of its probability; forced tokens grey."""

    def __init__(self, message: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.tokens: list[ReplyToken] = []

    def token_count(self) -> int:
        return len(self.tokens)

    def token_pieces(self, index: int) -> list[tuple[str, Style, Style]]:
        token = self.tokens[index]
        if token.special and token.text in HIDDEN_SPECIALS:
            return []
        style = confidence.token_style(token.prob, token.forced)
        if token.special:  # by name, in bold, on its own probability's colour
            style += Style(bold=True)
        return [(token.text, style, style + CURSOR_STYLE)]

    def extend(self, tokens: list[ReplyToken]) -> None:
        """Add streamed tokens: only they are laid out."""
        first = len(self.tokens)
        self.tokens.extend(tokens)
        self.relayout(first)

    def show(self, tokens: list[ReplyToken]) -> None:
        self.tokens = list(tokens)
        self.relayout(0)

    def on_click(self, event) -> None:
        index = self.event_token(event)
        if index is not None:
            self.post_message(Inspect(self.message, index))


class ConfidenceSpark(Static):
    """Under a finished reply: one bar per run of tokens (its least likely one), then the figures."""

    BARS = 40

    def __init__(self, message: int, **kwargs) -> None:
        super().__init__(classes="confidence-spark", **kwargs)
        self.message = message
        self.stats: confidence.ReplyStats | None = None

    def show(self, tokens: list[ReplyToken]) -> None:
        probs = [t.prob for t in tokens]
        forced = [t.forced for t in tokens]
        self.stats = confidence.reply_stats(probs, forced)
        text = Text("p ", style="dim")
        for bar, style, index in confidence.sparkline(probs, forced, self.BARS):
            text.append(bar, style + Style(meta={"reply_token": index}))
        text.append("\n" + confidence.describe(self.stats), style="dim")
        self.update(text)

    def on_click(self, event) -> None:
        index = event.style.meta.get("reply_token")
        if index is not None:
            self.post_message(Inspect(self.message, index))


def legend() -> Text:
    """``confidence p 1.0 0.8 … 0.0 forced  brighter = less likely · p < 0.2 is unsure``: one line."""
    text = Text("confidence ", style="bold")
    text.append("p ")
    for label, style in confidence.legend_steps():
        text.append(label, style)
    text.append("  ")
    text.append(" forced ", confidence.FORCED_STYLE)
    text.append(f"  brighter = less likely · p < {confidence.LOW_P:g} is unsure", style="dim")
    return text


class ConfidenceLegend(Static):
    """The colour key, above the chat while the colours are on."""

    def on_mount(self) -> None:
        self.update(legend())
