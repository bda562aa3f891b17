"""The first screen: shown in the chat area until the first message, it says what model is
loaded (name, size, context, weight format, where it came from), offers three prompts the model
handles well (from its own card: ``model.facts``), and names the keys that matter most.

A prompt is picked by clicking it, or by Tab to it and Enter: it goes into the message box
(``Welcome.PromptChosen``) to be sent with Enter, or changed first. The app decides when the
screen shows (``GlasschatApp.refresh_welcome``)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from model.backend import ModelInfo
from tui.actions import ACTIONS, key_label

KEY_ACTIONS = ("toggle_tokens", "help", "stop")  # the three keys that matter first, from the one table
NO_PROMPTS = ("No example prompts come with this model (a checkpoint lists them under \"## Example prompts\" in "
              "its MODEL_CARD.md): ask it anything, and watch the tokens it reads and writes in the token pane.")


def size_line(info: ModelInfo) -> str:
    """``5.2M parameters · context 1,024 tokens · weights stored as fp16, run as fp32 on cpu``."""
    size = f"{info.size_label} parameters" if info.parameters else "size not given"
    parts = [size, f"context {info.sequence_len:,} tokens"]
    if info.stored_as and info.weight_format and info.stored_as != info.weight_format:
        weights = f"weights stored as {info.stored_as}, run as {info.weight_format}"
    elif info.stored_as or info.weight_format:
        weights = f"weights {info.stored_as or info.weight_format}"
    else:
        weights = ""
    if weights:
        parts.append(f"{weights} on {info.runs_on}" if info.runs_on else weights)  # a server says neither
    return " · ".join(parts)


def keys_line() -> Text:
    """``F2 tokens   F1 help   Esc stop``: keys and words from ``tui.actions``."""
    by_name = {action.action: action for action in ACTIONS}
    text = Text()
    for name in KEY_ACTIONS:
        action = by_name[name]
        if text:
            text.append("   ")
        text.append(key_label(action.key), style="bold")
        text.append(f" {(action.label or action.title).lower()}")
    return text


class ExamplePrompt(Static):
    """One example prompt: click it, or focus it and press Enter, to put it in the message box."""

    can_focus = True
    BINDINGS = [Binding("enter", "choose", "Use this prompt", show=False)]

    def __init__(self, prompt: str) -> None:
        super().__init__(Text(f"› {prompt}"), classes="example-prompt")
        self.prompt = prompt

    def on_click(self) -> None:
        self.action_choose()

    def action_choose(self) -> None:
        self.post_message(Welcome.PromptChosen(self.prompt))


class Welcome(Vertical):
    """What is loaded, what to try, which keys: see the module docstring."""

    class PromptChosen(Message):
        def __init__(self, prompt: str) -> None:
            super().__init__()
            self.prompt = prompt

    def __init__(self, info: ModelInfo, **kwargs) -> None:
        super().__init__(**kwargs)
        self.info = info
        self.border_title = "glasschat"

    def compose(self) -> ComposeResult:
        info = self.info
        yield Static(Text(info.name, style="bold"), id="welcome-name")
        yield Static(Text(size_line(info)), classes="welcome-fact")
        if info.source:
            yield Static(Text(f"source: {info.source}"), classes="welcome-fact")
        if info.example_prompts:
            yield Static(Text("Try one (click it, or Tab to it and press Enter; it goes into the message box):"),
                         classes="welcome-heading")
            for prompt in info.example_prompts:
                yield ExamplePrompt(prompt)
        else:
            yield Static(Text(NO_PROMPTS), classes="welcome-heading")
        yield Static(keys_line(), id="welcome-keys")

    @property
    def prompts(self) -> list[str]:
        return [widget.prompt for widget in self.query(ExamplePrompt)]
