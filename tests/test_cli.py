"""The CLI boundary: version, help, exit codes, one-line errors, tracebacks only with --verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reenact import __version__
from reenact_cli.main import EXIT_ERROR, EXIT_USAGE, run
from tests.videotools import write_preroll_clip

LIGHT_COMMAND_SCRIPT = (
    "import sys\n"
    "from reenact_cli.main import run\n"
    "code = run(sys.argv[1:])\n"
    "print(f'exit {code}, torch imported: {\"torch\" in sys.modules}')\n"
)
"""Runs the CLI in a fresh interpreter and says, on the last stdout line, whether torch got imported."""
CLIP_FRAMES = 3


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"reenact {__version__}"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("probe", "reencode"):
        assert command in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["no-such-command"]) == EXIT_USAGE
    assert run(["reencode"]) == EXIT_USAGE
    assert run(["probe", "--no-such-flag", "x"]) == EXIT_USAGE


def test_error_is_one_line_and_verbose_adds_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.mp4")
    assert run(["probe", missing]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err == f"error: input not found: {missing}\n"
    assert run(["--verbose", "probe", missing]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith(f"error: input not found: {missing}")


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The installed entry point exits with the code `run` returns (no traceback on stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "reenact_cli.main", "probe", str(tmp_path / "nope.mp4")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == EXIT_ERROR
    assert result.stderr.startswith("error: input not found") and "Traceback" not in result.stderr


TEARDOWN_PROBE = """
import atexit, sys
import reenact.distributed
from reenact_cli.main import entry
atexit.register(lambda: print("teardown"))
sys.argv = ["reenact", "--version"]
entry()
"""


@pytest.mark.parametrize("launched", [False, True], ids=["alone", "torchrun"])
def test_a_rank_skips_the_interpreter_teardown(launched: bool) -> None:
    """Under a launcher the command's output is flushed and the process ends without the interpreter's
    teardown (where torch's communication objects can abort it); alone, it exits normally."""
    env = {key: value for key, value in os.environ.items() if key != "WORLD_SIZE"}
    if launched:
        env["WORLD_SIZE"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", TEARDOWN_PROBE], capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout
    assert ("teardown" in result.stdout) is not launched


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["transfer", "--help"], ["probe", "CLIP"], ["weights", "list"]],
    ids=lambda args: " ".join(args),
)
def test_light_commands_do_not_import_torch(args: list[str], tmp_path: Path) -> None:
    """Version, help, probe and the weight list answer without loading torch (it costs seconds)."""
    clip = tmp_path / "clip.mp4"
    write_preroll_clip(clip, preroll=0, frames=CLIP_FRAMES)
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_COMMAND_SCRIPT, *(str(clip) if arg == "CLIP" else arg for arg in args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "REENACT_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "exit 0, torch imported: False"


RUN_COMMANDS = ("invert", "tune", "transfer", "edit", "morph", "batch")
"""The commands that run the pipeline: each takes every run option, declared once (`RunOptions`)."""


def test_every_pipeline_command_takes_every_run_option_from_one_declaration() -> None:
    import dataclasses

    import typer

    from reenact_cli.common import RunOptions
    from reenact_cli.main import app

    click_app = typer.main.get_command(app)
    declared = {field.name for field in dataclasses.fields(RunOptions)}
    for name in RUN_COMMANDS:
        command = click_app.commands[name]  # type: ignore[attr-defined]
        params = {param.name: param for param in command.params}
        assert declared <= params.keys(), (name, sorted(declared - params.keys()))
        defaults = {field.name: field.default for field in dataclasses.fields(RunOptions)}
        for option in declared:
            assert params[option].default == defaults[option], (name, option)
    helps = {
        name: tuple(param.help for param in click_app.commands[name].params if param.name in declared)  # type: ignore[attr-defined]
        for name in RUN_COMMANDS
    }
    assert len(set(helps.values())) == 1, "one declaration: the same help text in every command"
