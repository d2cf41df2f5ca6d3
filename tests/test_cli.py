"""The `harness` front door: help lists every subcommand; library errors are one line, exit 1."""

import subprocess
import sys
import types

import pytest

from harness import cli


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True, check=True)
    for name in cli.COMMANDS:
        assert name in out.stdout


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_library_errors_become_one_line_exit_1(monkeypatch, capsys):
    from scaledet.errors import DataError

    def boom(_args):
        raise DataError("annotations.json: field 'images' missing")

    command = types.SimpleNamespace(HELP="raises", configure=lambda parser: None, run=boom)
    monkeypatch.setitem(cli.COMMANDS, "frobnicate", command)
    assert cli.main(["frobnicate"]) == 1
    err = capsys.readouterr().err
    assert "error: annotations.json: field 'images' missing" in err and "Traceback" not in err


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == 2
