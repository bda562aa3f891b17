"""The scrolling list of messages. It stays at the newest message while a reply streams,
unless the user scrolls up (``anchor``); ``jump_to_newest`` re-engages that."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widget import Widget

from tui.widgets.messages import AssistantMessage, Notice, UserMessage


class ChatLog(VerticalScroll):
    can_focus = False  # keys go to the message box; the mouse wheel still scrolls

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._messages: list[Widget] = []  # one widget per conversation message, in order

    def on_mount(self) -> None:
        self.anchor()

    @property
    def message_widgets(self) -> list[Widget]:
        return list(self._messages)

    async def add_message(self, message: dict) -> Widget:
        """Show a conversation message (system messages are shown as a notice)."""
        if message["role"] == "user":
            widget: Widget = UserMessage(message["content"])
        elif message["role"] == "assistant":
            widget = AssistantMessage(message["content"])
        else:
            widget = Notice(f"system: {message['content']}")
        await self.mount(widget)
        self._messages.append(widget)
        return widget

    async def start_reply(self) -> AssistantMessage:
        widget = AssistantMessage()
        await self.mount(widget)
        self._messages.append(widget)
        return widget

    async def add_notice(self, text: str) -> Notice:
        notice = Notice(text)
        await self.mount(notice)
        return notice

    async def truncate(self, count: int) -> None:
        """Remove the widgets of every message from index ``count`` on (and notices after them)."""
        if count >= len(self._messages):
            return
        first = self._messages[count]
        children = list(self.children)
        await self.remove_children(children[children.index(first):])
        del self._messages[count:]

    async def clear(self) -> None:
        await self.remove_children()
        self._messages.clear()

    def jump_to_newest(self) -> None:
        self.anchor()
