"""Terminal input: keys pressed in a burst and bracketed pastes reach the app as typed."""

from textual import events

from tui.terminal_input import InputParser, clean_paste, install


def parse(*chunks: str) -> list[tuple[str, str]]:
    parser = InputParser()
    out = []
    for chunk in chunks:
        for event in parser.feed(chunk):
            out.append(("paste", event.text) if isinstance(event, events.Paste) else ("key", event.key))
    return out


def test_a_burst_of_escape_and_control_keys_inserts_no_caret():
    # Esc Ctrl+R Ctrl+E F2 F3 as one read: Textual alone turns the ESC into a printable "^"
    keys = parse("\x1b\x12\x05\x1bOQ\x1bOR" + "hi")
    assert keys == [("key", "escape"), ("key", "ctrl+r"), ("key", "ctrl+e"), ("key", "f2"), ("key", "f3"),
                    ("key", "h"), ("key", "i")]
    assert ("key", "circumflex_accent") not in keys


def test_a_typed_caret_and_function_keys_are_unchanged():
    assert parse("^") == [("key", "circumflex_accent")]
    assert parse("\x1b[12~a") == [("key", "f2"), ("key", "a")]


def test_a_paste_with_escape_sequences_keeps_its_order_and_fires_no_keys():
    assert parse("a\x1b[200~one\x1b[Atwo\x1bOQthree\x1b[201~b") == [
        ("key", "a"), ("paste", "onetwothree"), ("key", "b")]


def test_a_paste_split_across_reads_arrives_whole():
    assert parse("x\x1b[20", "0~hel", "lo\r\nworld\x1b[2", "01~y") == [
        ("key", "x"), ("paste", "hello\nworld"), ("key", "y")]


def test_clean_paste_keeps_text_tabs_and_newlines():
    assert clean_paste("a\tb\r\nc\x00d\x1b]0;title\x07e") == "a\tb\ncde"


def test_install_points_the_linux_driver_at_the_parser():
    from textual.drivers import linux_driver

    original = linux_driver.XTermParser
    try:
        install()
        assert linux_driver.XTermParser is InputParser
    finally:
        linux_driver.XTermParser = original
