"""The attention view, driven by Pilot against a real (tiny, random) model: the heat strip over the
conversation is the probe's weights for the selected token, layer and head switch without a new
forward, and a model too large gets its notice."""

from __future__ import annotations

import pytest
import torch
from test_tui_app import SIZE, idle, send, wait_until
from tui_fakes import scripted_backend

from model.attention import AttentionProbe
from model.backend import LocalBackend, ModelInfo
from model.engine import Engine
from model.events import SamplingParams
from model.gpt import GPT, GPTConfig
from tui import attention as at
from tui.app import GlasschatApp
from tui.store import ConversationStore

torch.set_num_threads(1)


class CountingBackend(LocalBackend):
    """The in-process backend, counting its attention requests."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.attention_calls = []

    def attention(self, ids, position):
        self.attention_calls.append((list(ids), position))
        return super().attention(ids, position)


@pytest.fixture
def model(tiny_tokenizer):
    config = GPTConfig(sequence_len=256, vocab_size=tiny_tokenizer.vocab_size, n_layer=3, n_head=4, n_kv_head=2,
                       n_embd=32, windows=(16, 16, 256))
    return GPT(config).init_weights(seed=5, zero_outputs=False).eval()


def app_with(tokenizer, gpt, tmp_path):
    backend = CountingBackend(Engine(gpt, tokenizer), tokenizer, ModelInfo("tiny", gpt.num_parameters(), 256))
    return GlasschatApp(backend, store=ConversationStore(tmp_path / "store"),
                        params=SamplingParams(max_tokens=12, seed=1))


def panel(app) -> str:
    return app.query_one("#attention-panel").render().plain


async def select(pilot, view, position):
    view.cursor = position
    await wait_until(pilot, lambda: (pilot.app.attention.drawn or ((), 0))[0] == (tuple(c.id for c in view.cells),
                                                                                   position))


async def test_the_strip_is_the_probes_weights_and_layer_and_head_switch(tiny_tokenizer, model, tmp_path):
    app = app_with(tiny_tokenizer, model, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello there, what did you look at?")
        await wait_until(pilot, idle(app, 2), timeout=20)
        await pilot.press("f2")
        view = app.debug_pane.conversation_view
        view.focus()
        ids = [c.id for c in view.cells]
        position = len(ids) - 3
        view.cursor = position
        await pilot.press("a")  # the token pane's key: the view turns on and asks about the selected token
        await wait_until(pilot, lambda: "attention of" in panel(app), timeout=10)
        expected = torch.tensor(AttentionProbe(model.config, lambda: model).attention(ids, position))
        # heads and layers averaged at first: the strip is the probe's weights, nothing after the token
        assert view.attention[position + 1:] == [None] * (len(ids) - position - 1)
        assert torch.allclose(torch.tensor(view.attention[: position + 1]), expected.mean(dim=(0, 1)), atol=1e-6)
        assert f"attention of #{position}" in panel(app) and "all layers · heads averaged" in panel(app)
        best = int(expected.mean(dim=(0, 1)).argmax())
        assert f"#{best} " in panel(app).splitlines()[1]  # the most attended token heads the list
        # the heat strip is drawn: the most attended token in the hottest colour
        assert view.token_style(best).bgcolor == at.attention_style(1.0, 1.0).bgcolor
        calls = len(app.backend.attention_calls)

        await pilot.press("right_square_bracket")  # layer 1, heads averaged
        assert torch.allclose(torch.tensor(view.attention[: position + 1]), expected[0].mean(0), atol=1e-6)
        await pilot.press("right_square_bracket", "full_stop", "full_stop")  # layer 2, head 2
        assert "layer 2/3 · head 2/4" in panel(app)
        assert torch.allclose(torch.tensor(view.attention[: position + 1]), expected[1, 1], atol=1e-6)
        await pilot.press("comma", "comma", "comma")  # head 1, heads averaged, then the last head
        assert "head 4/4" in panel(app)
        assert torch.allclose(torch.tensor(view.attention[: position + 1]), expected[1, 3], atol=1e-6)
        await pilot.press("left_square_bracket", "left_square_bracket")  # back through layer 1 to all layers
        assert "all layers · head 4/4" in panel(app)
        assert torch.allclose(torch.tensor(view.attention[: position + 1]), expected[:, 3].mean(0), atol=1e-6)
        assert len(app.backend.attention_calls) == calls  # switching reads the answer it has
        assert panel(app).splitlines()[-1].startswith("per layer: L1 #")

        # another token: asked for anew, and the strip follows it (windowed layer 1 sees 17 keys)
        await pilot.press("right_square_bracket")
        await select(pilot, view, len(ids) - 1)
        late = torch.tensor(AttentionProbe(model.config, lambda: model).attention(ids, len(ids) - 1))
        assert torch.allclose(torch.tensor(view.attention), late[0, 3], atol=1e-6)
        assert view.attention[: len(ids) - 1 - 16] == [0.0] * (len(ids) - 1 - 16)
        assert app.backend.attention_calls[-1] == (ids, len(ids) - 1)

        await pilot.press("a")  # off: the strip goes, the panel too
        assert view.attention is None and not app.query_one("#attention-panel").display


async def test_the_palette_and_f1_list_the_attention_keys(tiny_tokenizer, tmp_path):
    from tui import actions
    from tui.screens.help import key_sections

    titles = {a.title: a for a in actions.palette_actions(replaying=False)}
    assert titles["Toggle the attention view"].palette_help.startswith("A in the token pane: attention view")
    assert titles["Attention: next layer"].palette_help.startswith("] in the token pane")
    rows = dict(dict(key_sections())["Token pane (F2, then Tab to focus it)"])
    assert rows["A"].startswith("attention view") and rows[","].endswith("(or heads averaged)")
    # from the palette, with the token pane closed: it opens with the view on
    app = GlasschatApp(scripted_backend(tiny_tokenizer, ["Hi."]), store=ConversationStore(tmp_path / "store"))
    async with app.run_test(size=SIZE) as pilot:
        await app.run_action("attention('toggle')")
        await pilot.pause()
        assert app.debug_pane.display and app.attention.on
        assert "select a token" in panel(app)


async def test_a_model_too_large_gets_a_notice_and_no_forward(tiny_tokenizer, model, tmp_path, monkeypatch):
    import model.attention as attention

    monkeypatch.setattr(attention, "MAX_COST", 1.0)  # every model is too large now
    app = app_with(tiny_tokenizer, model, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_until(pilot, idle(app, 2), timeout=20)
        await pilot.press("f2")
        view = app.debug_pane.conversation_view
        view.focus()
        view.cursor = 4
        await pilot.press("a")
        await wait_until(pilot, lambda: "too large to compute quickly" in panel(app), timeout=10)
        assert view.attention is None and app.backend._probe._gpt is None  # nothing was computed
        assert "\n" not in panel(app).strip()


async def test_nothing_is_asked_while_a_reply_streams(tiny_tokenizer, tmp_path):
    app = GlasschatApp(scripted_backend(tiny_tokenizer, ["Hello there my friend"], hold_after=2),
                       store=ConversationStore(tmp_path / "store"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await wait_until(pilot, app.backend.holding.is_set)
        await pilot.press("f2")
        view = app.debug_pane.conversation_view
        view.focus()
        view.cursor = 2
        await pilot.press("a")
        await pilot.pause()
        assert "computed when the reply ends" in panel(app) and app.backend.attention_calls == []
        await pilot.press("escape")
        await wait_until(pilot, idle(app, 2))
        await wait_until(pilot, lambda: "attention of #2" in panel(app))
        assert len(app.backend.attention_calls) == 1


def test_attention_view_snapshot(snap_compare, tiny_tokenizer, tmp_path):
    """The token pane with the attention view on a reply's token: the heat strip, the top 5, the
    per-layer line (the scripted backend's made-up weights, so the picture is fixed)."""
    from test_tui_snapshots import SIZE as SNAPSHOT_SIZE
    from test_tui_snapshots import app_for, chat_once

    async def run_before(pilot):
        await chat_once(pilot)
        app = pilot.app
        await pilot.press("f2")
        view = app.debug_pane.conversation_view
        view.focus()
        view.cursor = len(view.cells) - 6
        await pilot.press("a", "right_square_bracket", "full_stop")
        while app.attention.drawn is None or "head 1/2" not in panel(app):
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app_for(tiny_tokenizer, tmp_path), terminal_size=SNAPSHOT_SIZE, run_before=run_before)


async def test_turning_the_view_on_warms_the_backend_up_before_a_token_is_chosen(tiny_tokenizer, tmp_path):
    app = GlasschatApp(scripted_backend(tiny_tokenizer, ["Hi there."]), store=ConversationStore(tmp_path / "store"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_until(pilot, idle(app, 2))
        await app.run_action("attention('toggle')")
        view = app.debug_pane.conversation_view
        await wait_until(pilot, lambda: app.attention.answer is not None)
        assert app.backend.attention_calls == [([tiny_tokenizer.bos_id], 0)] and "select a token" in panel(app)
        assert view.attention is None
        view.cursor = 3
        await wait_until(pilot, lambda: "attention of #3" in panel(app))
        assert app.backend.attention_calls[-1] == ([c.id for c in view.cells], 3)
