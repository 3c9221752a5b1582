"""Every subcommand's --help explains every option, and names the default of each that has one."""

from __future__ import annotations

import argparse
import subprocess

import pytest
from handshaker.cli import build_parser
from service_kit import HANDSHAKER


def _subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subcommands(sub, (*path, name))
    return found


SUBCOMMANDS = _subcommands(build_parser())


@pytest.mark.parametrize(
    ("path", "parser"), SUBCOMMANDS, ids=[" ".join(p) or "handshaker" for p, _ in SUBCOMMANDS]
)
def test_every_option_is_explained_with_its_default(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{path} {name}: no help"
        default = action.default
        has_default = default not in (None, False, argparse.SUPPRESS) and not action.required
        if has_default and action.option_strings:
            assert "default" in action.help, f"{' '.join(path)} {name}: the default is not named"


@pytest.mark.parametrize(
    "command", [["serve"], ["terminate"], ["connect"], ["keys", "ca"], ["keys", "allow"]]
)
def test_help_prints_and_exits_zero(command: list[str]) -> None:
    result = subprocess.run(
        [str(HANDSHAKER), *command, "--help"], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert b"--" in result.stdout
