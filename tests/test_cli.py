"""The command line's contract: help for every command, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from glasschat.cli import build_parser, main
from glasschat.errors import UserError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glasschat", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "usage: glasschat" in result.stdout


def test_the_tokenizer_trainer_starts_without_torch(tmp_path):
    """Training a tokenizer needs no model: torch, most of a second to import, stays out of it
    (a small corpus trains in about as long)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 50)
    code = ("import sys; from glasschat.cli import main; "
            f"code = main(['tokenizer', 'train', {str(corpus)!r}, '--vocab-size', '300', '--out', {str(tmp_path / 'tok')!r}]); "
            "print('torch' in sys.modules); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_every_subcommand_has_help():
    parser = build_parser()
    commands = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0].choices
    for name, sub in commands.items():
        help_text = sub.format_help()
        assert help_text.startswith("usage: glasschat " + name), name


def test_unknown_command_is_exit_2_without_traceback():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_user_error_is_one_line_exit_2(capsys, monkeypatch):
    def failing_handler(args):
        raise UserError("conversation.json: message 3: role must be 'user' or 'assistant'")

    import glasschat.cli as cli

    original = cli.build_parser

    def parser_with_failing_command():
        parser = original()
        sub = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
        sub.add_parser("fail").set_defaults(func=failing_handler)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_failing_command)
    assert main(["fail"]) == 2
    err = capsys.readouterr().err
    assert err == "glasschat: error: conversation.json: message 3: role must be 'user' or 'assistant'\n"


@pytest.mark.parametrize("args", [["--version"]])
def test_version(args):
    result = run_cli(*args)
    assert result.returncode == 0 and result.stdout.startswith("glasschat ")


def test_library_modules_do_not_import_the_command_line():
    """The command line sits on top: a package's library (and its ``cli``) never imports
    ``glasschat.cli``, and ``model.ask`` never imports ``model.cli``."""
    code = ("import sys, tokenizer.cli, bench.cli, model.ask, tokenizer.trainer; "
            "print(sorted(m for m in ('glasschat.cli', 'model.cli') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
