"""Slash commands typed in the chat input (``/temperature 0.7``, ``/save chat.md``, ...).

This module only knows the commands and parses them; the app runs them. A message that should
start with a slash is typed with two (``//etc`` sends ``/etc``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from glasschat.errors import UserError
from model.events import SamplingParams


class SlashCommandError(UserError):
    """An unknown slash command or a bad argument."""


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str
    aliases: tuple[str, ...] = ()
    param: str | None = None  # the SamplingParams field it sets, if any


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("temperature", "/temperature T", "sampling temperature (0 = greedy)", ("temp",), "temperature"),
    SlashCommand("topk", "/topk K", "sample among the K most likely tokens (0 = off)", ("top_k",), "top_k"),
    SlashCommand("topp", "/topp P", "nucleus sampling: the smallest set with probability P (1 = off)", ("top_p",), "top_p"),
    SlashCommand("seed", "/seed S | /seed random", "fixed seed for reproducible replies, or a new one each reply", (), "seed"),
    SlashCommand("max", "/max N", "the most tokens in one reply", ("max_tokens",), "max_tokens"),
    SlashCommand("clear", "/clear", "start a new conversation", ("new",)),
    SlashCommand("save", "/save FILE", "export the conversation: FILE.md (Markdown) or FILE.jsonl (chat file)"),
    SlashCommand("export", "/export FILE", 'write the rendered conversation as JSON {"ids", "mask"}'),
    SlashCommand("regen", "/regen", "generate the last reply again with a new seed", ("regenerate",)),
    SlashCommand("edit", "/edit", "take back the last message to edit and resend it"),
    SlashCommand("confidence", "/confidence", "colour every generated token by its probability (F8)", ("conf",)),
    SlashCommand("help", "/help", "list keys and commands"),
)

_BY_NAME = {alias: command for command in COMMANDS for alias in (command.name, *command.aliases)}


def parse(text: str) -> tuple[SlashCommand, str] | None:
    """``(command, argument)`` for a slash command, None for an ordinary message."""
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, argument = text[1:].strip().partition(" ")
    command = _BY_NAME.get(name.lower())
    if command is None:
        raise SlashCommandError(f"unknown command /{name} — /help lists the commands")
    return command, argument.strip()


def message_text(text: str) -> str:
    """The text to send for an ordinary message (``//x`` is sent as ``/x``)."""
    return text[1:] if text.startswith("//") else text


def set_param(params: SamplingParams, command: SlashCommand, argument: str) -> SamplingParams:
    """``params`` with the command's field set from ``argument``; ``UserError`` when it is invalid."""
    field = command.param
    if field is None:
        raise ValueError(f"/{command.name} sets no sampling parameter")
    if not argument:
        raise SlashCommandError(f"usage: {command.usage}")
    if field == "seed" and argument.lower() in ("random", "none", "off"):
        return replace(params, seed=None)
    kind = float if field in ("temperature", "top_p") else int
    try:
        value = kind(argument)
    except ValueError:
        expected = "a number" if kind is float else "an integer"
        raise SlashCommandError(f"/{command.name}: {argument!r} is not {expected}") from None
    return replace(params, **{field: value})  # SamplingParams checks the range
