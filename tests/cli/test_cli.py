"""The command line frame: every subcommand's help renders, and help never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from curate.cli import COMMANDS, build_parser, main


def test_every_subcommand_help_renders(capsys: pytest.CaptureFixture[str]) -> None:
    names = [name.replace("_", "-") for name in COMMANDS]
    names = ["sql" if n == "query" else n for n in names]
    for name in names:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        assert f"usage: curate {name}" in capsys.readouterr().out
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(names)


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from curate.cli import build_parser; build_parser().format_help(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
