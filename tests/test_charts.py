"""Charts: the terminal text plotext draws and the PNG files matplotlib writes, from one
chart description."""

import re
import struct

import pytest

from glasschat.atomic import WriteError
from glasschat.charts import Bars, Lines, Series
from glasschat.image_chart import png_bytes, write_png
from glasschat.term_chart import render, terminal_width

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def loss_lines() -> Lines:
    steps = list(range(1, 41))
    return Lines("pretrain: loss", [Series("train", steps, [5.0 - 0.05 * s for s in steps]),
                                   Series("held-out", [10, 20, 30, 40], [4.6, 4.1, 3.6, 3.1])],
                 xlabel="step", ylabel="loss")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_a_line_chart_fits_the_width_and_names_its_series():
    text = render(loss_lines(), width=70, height=16)
    lines = text.splitlines()
    assert len(lines) == 16
    assert max(len(line) for line in lines) <= 70
    assert "pretrain: loss" in lines[0]
    assert "train" in text and "held-out" in text and "step" in text
    assert not ANSI.search(text)  # no colour unless asked: a pipe or a file gets plain text


def test_colour_only_when_asked():
    assert ANSI.search(render(loss_lines(), width=70, color=True))


def test_horizontal_bars_list_categories_top_down_in_the_given_order():
    chart = Bars("bytes per token", ["first.md", "second/*.py", "third.txt"], {"bytes/token": [4.0, 2.0, 3.0]},
                 horizontal=True)
    lines = render(chart, width=60).splitlines()
    rows = {name: next(i for i, line in enumerate(lines) if name in line) for name in chart.categories}
    assert rows["first.md"] < rows["second/*.py"] < rows["third.txt"]
    # bar lengths follow the values: the first (4.0) is the longest, the second (2.0) the shortest
    length = {name: lines[row].count("█") for name, row in rows.items()}
    assert length["first.md"] > length["third.txt"] > length["second/*.py"] > 0


def test_several_horizontal_series_are_a_chart_each_and_keep_their_axis_end():
    chart = Bars("accuracy", ["arithmetic", "spelling"], {"greedy": [10.0, 20.0], "T=0.7": [5.0, 0.0]},
                 ylabel="% right", horizontal=True, value_max=100)
    text = render(chart, width=60)
    assert "accuracy — greedy" in text and "accuracy — T=0.7" in text
    assert text.count("100") == 2  # the axis runs to 100 even though no bar gets near it


def test_vertical_bars_with_two_series_tell_them_apart_without_colour():
    chart = Bars("token lengths", ["1", "2", "3"], {"vocabulary": [10.0, 50.0, 40.0], "as used": [60.0, 30.0, 10.0]},
                 xlabel="bytes", ylabel="% of tokens")
    text = render(chart, width=60)
    assert "vocabulary" in text and "as used" in text
    assert "█" in text and "▒" in text


def test_bars_need_a_value_per_category():
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        Bars("x", ["a", "b", "c"], {"n": [1.0, 2.0]})


def test_terminal_width_follows_columns_within_bounds(monkeypatch):
    monkeypatch.setenv("COLUMNS", "73")
    assert terminal_width() == 73
    monkeypatch.setenv("COLUMNS", "500")
    assert terminal_width() == 100  # a very wide chart is harder to read, not easier
    monkeypatch.setenv("COLUMNS", "10")
    assert terminal_width() == 40


def test_png_panels_stack_one_chart_each():
    one = png_bytes([loss_lines()])
    two = png_bytes([loss_lines(), Bars("b", ["x", "y"], {"n": [1.0, 2.0]})])
    (w1, h1), (w2, h2) = png_size(one), png_size(two)
    assert w1 == w2 == 800
    assert h2 == pytest.approx(2 * h1, abs=2)


def test_write_png_writes_a_png_atomically(tmp_path):
    path = tmp_path / "out" / "loss.png"
    write_png(path, [loss_lines()])
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data.endswith(b"IEND\xaeB`\x82")
    assert png_size(data)[0] == 800
    assert [p.name for p in path.parent.iterdir()] == ["loss.png"]  # no temporary file left


def test_a_failed_drawing_leaves_the_old_image(tmp_path):
    path = tmp_path / "chart.png"
    path.write_bytes(b"old")
    with pytest.raises(ValueError):
        write_png(path, [])
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]


def test_an_unwritable_target_is_a_one_line_error(tmp_path):
    with pytest.raises(WriteError, match="is a directory"):
        write_png(tmp_path, [loss_lines()])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriteError, match="is a file, not a directory"):
        write_png(blocker / "chart.png", [loss_lines()])


def test_a_step_axis_has_whole_number_ticks():
    steps = list(range(1, 201))
    text = render(Lines("loss", [Series("train", steps, [1 / s for s in steps])], xlabel="step"), width=70)
    ticks = text.splitlines()[-2].split()
    assert ticks == ["1", "51", "100", "150", "200"]
