"""Every action of the chat, described once: the app's key bindings, the F1 help's key rows and
the command palette's entries are all generated from ``ACTIONS``.

An action is a Textual action string run on the app (``"settings('top_k')"`` calls
``action_settings("top_k")``); one with a key gets a binding, every one gets a palette entry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from textual.binding import Binding

_KEY_NAMES = {"escape": "Esc", "left": "←", "right": "→", "up": "↑", "down": "↓", "delete": "Del",
              "pageup": "PgUp", "pagedown": "PgDn", "left_square_bracket": "[", "right_square_bracket": "]",
              "comma": ",", "full_stop": "."}


def key_label(keys: str) -> str:
    """``ctrl+n,f2`` -> ``Ctrl+N / F2``."""
    def one(key: str) -> str:
        *modifiers, name = key.split("+")
        if name in _KEY_NAMES:
            name = _KEY_NAMES[name]
        else:
            name = name.upper() if len(name) == 1 or (name[0] == "f" and name[1:].isdigit()) else name.capitalize()
        return "+".join([*(m.capitalize() for m in modifiers), name])

    return " / ".join(one(key.strip()) for key in keys.split(","))


@dataclass(frozen=True)
class Action:
    action: str  # run on the app: "stop" calls action_stop
    title: str  # its name in the command palette
    help: str  # what it does: the binding's tooltip, the F1 line, the palette's help
    key: str = ""  # Textual key(s) of its binding; "" for none
    label: str = ""  # the binding's short description (the footer's word)
    also: str = ""  # other ways to it, named in the palette: "/clear", "I in the token pane"
    priority: bool = False  # the binding wins over the focused widget's (the message box's Ctrl keys)
    show: bool = True  # the binding is shown in a footer
    replay: bool = False  # only while a replay plays

    def binding(self) -> Binding:
        return Binding(self.key, self.action, self.label or self.title, show=self.show, priority=self.priority,
                       tooltip=self.help)

    @property
    def palette_help(self) -> str:
        """``Ctrl+N or /clear: start a new conversation``."""
        ways = " or ".join(way for way in (key_label(self.key) if self.key else "", self.also) if way)
        return f"{ways}: {self.help}" if ways else self.help


def _setting(field: str, usage: str, what: str) -> Action:
    return Action(f"settings('{field}')", f"Set {what}", f"open the sampling settings at {what}", also=usage)


ACTIONS: tuple[Action, ...] = (
    Action("stop", "Stop the reply", "stop the reply: it is kept and closed with <|assistant_end|>", "escape",
           "Stop"),
    Action("regenerate", "Regenerate", "generate the last reply again, with a new seed", "ctrl+r",
           also="/regen", priority=True),
    Action("edit_last", "Edit last message", "take back the last message (and its reply) to edit and resend",
           "ctrl+e", "Edit last", also="/edit", priority=True),
    Action("new_conversation", "New conversation", "start a new conversation", "ctrl+n", "New", also="/clear",
           priority=True),
    Action("open_conversations", "Open a saved conversation", "open a saved conversation", "ctrl+o", "Open",
           priority=True),
    Action("help", "Help: keys and commands", "this list of keys and commands", "f1", "Help", also="/help"),
    Action("toggle_tokens", "Toggle the token pane",
           "token pane: the conversation as tokens, the draft's tokens, the inspector", "f2", "Tokens"),
    Action("toggle_raw", "Toggle the raw view", "raw view: the chat as the exact token stream", "f3", "Raw"),
    Action("toggle_surprise", "Toggle the surprise view",
           "surprise view in the token pane: every token coloured by its surprisal under the model (-log2 p), "
           "bits per byte of your text and of the replies", "f7", "Surprise",
           priority=True),  # over the message box's own F7 (select all)
    Action("toggle_confidence", "Toggle confidence colours",
           "confidence colours: every generated token, in the chat and the token pane, coloured by the "
           "probability it was sampled with; a sparkline and figures under each reply", "f8", "Confidence",
           also="/confidence", priority=True),
    Action("settings", "Sampling settings", "sampling settings", "f4", "Settings"),
    Action("replay_pause", "Pause or resume the replay", "pause or resume a replay", "f5", "Pause replay",
           show=False, replay=True),
    Action("replay_step", "Play the next replay turn", "play the next turn of a paused replay", "f6",
           "Step replay", priority=True, show=False, replay=True),
    Action("jump_to_newest", "Jump to the newest message", "jump to the newest message and follow the stream again",
           "ctrl+end", "Newest message", also="End at the end of the input", priority=True, show=False),
    _setting("temperature", "/temperature T", "temperature"),
    _setting("top_k", "/topk K", "top-k"),
    _setting("top_p", "/topp P", "top-p"),
    _setting("seed", "/seed S or /seed random", "seed"),
    _setting("max_tokens", "/max N", "max tokens"),
    Action("prefill('/save ')", "Save the conversation as Markdown or JSONL",
           "export the conversation: FILE.md (Markdown) or FILE.jsonl (chat file)", also="/save FILE"),
    Action("prefill('/export ')", 'Export {"ids", "mask"} as JSON',
           'write the rendered conversation as JSON {"ids", "mask"}', also="/export FILE"),
    Action("token_view('toggle_whitespace')", "Toggle visible whitespace in the token pane",
           "show spaces, tabs and newlines in the token pane", also="W in the token pane"),
    Action("token_view('toggle_ids')", "Toggle token ids in the token pane", "show each token's id in the token pane",
           also="I in the token pane"),
    Action("token_view('next_low')", "Jump to the next unsure token",
           "move the token pane's cursor to the next generated token sampled with p < 0.2",
           also="L in the token pane"),
)

# The token pane's own keys (bound on its token views, so typing in the message box never hits
# them): each runs an app action, and is listed in F1's token pane section and in the palette.
PANE_ACTIONS: tuple[Action, ...] = (
    Action("attention('toggle')", "Toggle the attention view",
           "attention view: the earlier tokens the selected token attended to, as a heat strip (an exact forward, "
           "on demand)", "a", "Attention"),
    Action("attention('layer', -1)", "Attention: previous layer", "attention view: previous layer (or all layers)",
           "left_square_bracket", "Layer -"),
    Action("attention('layer', 1)", "Attention: next layer", "attention view: next layer (or all layers)",
           "right_square_bracket", "Layer +"),
    Action("attention('head', -1)", "Attention: previous head", "attention view: previous head (or heads averaged)",
           "comma", "Head -"),
    Action("attention('head', 1)", "Attention: next head", "attention view: next head (or heads averaged)",
           "full_stop", "Head +"),
)


def pane_bindings() -> list[Binding]:
    """The token views' bindings for ``PANE_ACTIONS``: app actions, run from the focused pane."""
    return [Binding(a.key, f"app.{a.action}", a.label or a.title, show=False, tooltip=a.help) for a in PANE_ACTIONS]


def bindings() -> list[Binding]:
    """The app's ``BINDINGS``: every action with a key."""
    return [action.binding() for action in ACTIONS if action.key]


def key_rows() -> list[tuple[str, str]]:
    """``(keys, what they do)`` for the F1 help, in the table's order."""
    return [(key_label(action.key), action.help) for action in ACTIONS if action.key]


def palette_actions(replaying: bool) -> list[Action]:
    """The command palette's entries (the replay's only while one plays)."""
    return [action for action in ACTIONS if replaying or not action.replay] + [
        replace(action, also=f"{key_label(action.key)} in the token pane", key="") for action in PANE_ACTIONS]
