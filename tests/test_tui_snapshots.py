"""What the app looks like: a few screens compared with reviewed SVG snapshots
(``pytest --snapshot-update`` rewrites them after a deliberate change)."""

from __future__ import annotations

from tui_fakes import scripted_backend

from model.events import SamplingParams
from tui.app import GlasschatApp
from tui.store import ConversationStore

SIZE = (110, 32)
TOOL_REPLY = [{"type": "text", "text": "Let me **compute** that. "}, {"type": "python", "text": "12+30"},
              {"type": "python_output", "text": "42"}, {"type": "text", "text": "It is 42."}]


def app_for(tokenizer, tmp_path):
    backend = scripted_backend(tokenizer, [TOOL_REPLY], timings=(0.012, 0.112))
    return GlasschatApp(backend, store=ConversationStore(tmp_path), params=SamplingParams(seed=1))


async def chat_once(pilot):
    app = pilot.app
    app.chat_input.load_text("What is 12 + 30?")
    await pilot.press("enter")
    while app.live_reply is not None or len(app.session.messages) < 2:
        await pilot.pause(0.02)
    await pilot.pause()


def test_chat_with_a_tool_call(snap_compare, tiny_tokenizer, tmp_path):
    assert snap_compare(app_for(tiny_tokenizer, tmp_path), terminal_size=SIZE, run_before=chat_once)


def test_token_pane_with_draft_preview(snap_compare, tiny_tokenizer, tmp_path):
    async def run_before(pilot):
        await chat_once(pilot)
        await pilot.press("f2", *"<|user_end|>")
        while not pilot.app.debug_pane.draft_view.cells:
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app_for(tiny_tokenizer, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_raw_view(snap_compare, tiny_tokenizer, tmp_path):
    async def run_before(pilot):
        await chat_once(pilot)
        await pilot.press("f3")
        await pilot.pause()

    assert snap_compare(app_for(tiny_tokenizer, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, tiny_tokenizer, tmp_path):
    assert snap_compare(app_for(tiny_tokenizer, tmp_path), terminal_size=(110, 48), press=["f1"])
