"""`--help` reads right: no word of a command's text is lost (Rich markup once ate `[t]`, `[ref]` and
`[[job]]`), and every option that takes a value shows its default or says it is required."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from reenact_cli.main import app, run


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and sub-command of the CLI, with the words that call it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app), ()))


def test_every_command_is_checked() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "transfer", "batch", "weights", "weights list", "cache", "cache prune"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "reenact" for p, _ in COMMANDS])
def test_help_keeps_every_word_and_shows_every_default(
    path: tuple[str, ...], command: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*path, "--help"]) == 0
    shown = re.sub(r"(\w-)\n\s*", r"\1", capsys.readouterr().out).split()  # re-join words wrapped at hyphens
    texts = [command.help or ""] + [param.help or "" for param in command.params if hasattr(param, "help")]
    lost = [word for text in texts for word in text.split() if word not in shown]
    assert not lost, f"words lost from `reenact {' '.join(path)} --help`: {lost}"
    context = command.context_class(command)
    for param in command.params:
        if param.param_type_name != "option" or param.is_flag or param.required:
            continue
        record = param.get_help_record(context)
        assert record is not None and ("[default:" in record[1] or "default" in (param.help or "").lower()), (
            f"`reenact {' '.join(path)}` {'/'.join(param.opts)} shows no default"
        )


def test_the_transfer_formula_reads_whole(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["transfer", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "w_out[t] = w_target[t] + α·(w_driver[t] − w_driver[ref])" in out
    assert "[default: (1.0, from the preset's edit.strength)]" in out.replace("\n", " ")
