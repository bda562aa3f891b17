"""The scrolling list of messages. It stays at the newest message while a reply streams,
unless the user scrolls up (``anchor``); ``jump_to_newest`` re-engages that.

It shows the newest ``MAX_SHOWN`` messages at most: every widget costs layout time on every
update, so a resumed 2000-message chat would otherwise take minutes to open and seconds per
keystroke. Older messages stay in the conversation (and its file, and the token pane); a
notice at the top says how many are not shown."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget

from tui.widgets.messages import AssistantMessage, Notice, UserMessage


MAX_SHOWN = 150  # message widgets kept; older ones are dropped from the view (not the chat)


class ChatLog(VerticalScroll):
    can_focus = False  # keys go to the message box; the mouse wheel still scrolls

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._messages: list[Widget] = []  # one widget per shown conversation message, in order
        self._hidden = 0  # the oldest conversation messages not shown
        self._hidden_notice: Notice | None = None

    def on_mount(self) -> None:
        self.anchor()

    @property
    def message_widgets(self) -> list[Widget]:
        return list(self._messages)

    @staticmethod
    def _widget(message: dict) -> Widget:
        if message["role"] == "user":
            return UserMessage(message["content"])
        if message["role"] == "assistant":
            return AssistantMessage(message["content"])
        return Notice(f"system: {message['content']}")  # a system message is shown as a notice

    def message_index(self, widget: Widget) -> int:
        """The conversation index of the message ``widget`` shows (-1: none)."""
        try:
            return self._hidden + self._messages.index(widget)
        except ValueError:
            return -1

    async def add_message(self, message: dict) -> Widget:
        """Show a conversation message."""
        widget = self._widget(message)
        await self.mount(widget)
        self._messages.append(widget)
        await self._trim()
        return widget

    async def load(self, messages: list[dict]) -> None:
        """Show a whole conversation in place of this one: its newest ``MAX_SHOWN`` messages,
        mounted at once."""
        await self.clear()
        self._hidden = max(0, len(messages) - MAX_SHOWN)
        widgets = [self._widget(message) for message in messages[self._hidden:]]
        await self._show_hidden_notice()
        if widgets:
            await self.mount_all(widgets)
        self._messages = widgets

    async def start_reply(self) -> AssistantMessage:
        widget = AssistantMessage()
        await self.mount(widget)
        self._messages.append(widget)
        await self._trim()
        return widget

    async def _trim(self) -> None:
        """Drop the oldest widgets once well over ``MAX_SHOWN`` (in batches: removals relayout)."""
        extra = len(self._messages) - MAX_SHOWN
        if extra < MAX_SHOWN // 4:
            return
        first_kept = self._messages[extra]
        children = list(self.children)
        await self.remove_children([c for c in children[:children.index(first_kept)] if c is not self._hidden_notice])
        del self._messages[:extra]
        self._hidden += extra
        await self._show_hidden_notice()

    async def _show_hidden_notice(self) -> None:
        text = (f"{self._hidden} earlier message{'s are' if self._hidden != 1 else ' is'} not shown here "
                "(they are still in the conversation, its saved file and the token pane)")
        if not self._hidden:
            if self._hidden_notice is not None:
                await self._hidden_notice.remove()
                self._hidden_notice = None
        elif self._hidden_notice is None:
            self._hidden_notice = Notice(text)
            if self.children:
                await self.mount(self._hidden_notice, before=0)
            else:
                await self.mount(self._hidden_notice)
        else:
            self._hidden_notice.update(Text(text))

    async def add_notice(self, text: str) -> Notice:
        notice = Notice(text)
        await self.mount(notice)
        return notice

    async def truncate(self, count: int) -> None:
        """Remove the widgets of every message from conversation index ``count`` on (and notices
        after them)."""
        local = max(0, count - self._hidden)
        if local >= len(self._messages):
            return
        first = self._messages[local]
        children = list(self.children)
        await self.remove_children(children[children.index(first):])
        del self._messages[local:]
        if count < self._hidden:  # taken back into what was not shown
            self._hidden = count
            await self._show_hidden_notice()

    async def clear(self) -> None:
        await self.remove_children()
        self._messages.clear()
        self._hidden, self._hidden_notice = 0, None

    def jump_to_newest(self) -> None:
        self.anchor()
