"""Entry point of the `reenact` command: the typer app and the error boundary.

Commands live in their own modules (`cli/video_cmds.py`, …) and are registered here. `run()` is
the console script: it turns `ReenactError` into `error: <message>` with exit code 1, usage errors
(typer's own and `UsageError`: a bad option value, options that conflict) into exit code 2, and shows a
traceback only with `--verbose`.

Every command module is imported here, for every command: at import time they take only typer, the
standard library and light parts of reenact (`config`, `errors`, `progress`); torch, the pipeline, PyAV
and OpenCV are imported inside the command functions. So `--help`, `--version`, `probe` and
`weights list` answer in a fraction of a second, without torch (tests/test_cli.py checks it).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback

import typer

from reenact import __version__
from reenact.errors import ReenactError, UsageError
from reenact.threads import short_spinning
from reenact_cli import (
    align_cmd,
    batch_cmd,
    cache_cmd,
    demo_cmd,
    evaluate_cmd,
    generate_cmd,
    people_cmd,
    pipeline_cmds,
    video_cmds,
    weights_cmd,
)
from reenact_cli.common import os_error_message

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SIGNAL_BASE = 128
"""A command stopped by signal N exits with 128 + N (Ctrl-C: 130, SIGTERM: 143), as shells do."""
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
VERBOSE_FLAGS = ("--verbose", "-v")

app = typer.Typer(
    name="reenact",
    help="Face reenactment in real video: from video file to finished video, audio and timing kept.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help text is plain text: Rich markup would eat `[t]`, `[ref]`, `[[job]]`
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"reenact {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, *VERBOSE_FLAGS, help="Show full tracebacks on errors."),
) -> None:
    """reenact: put one face's expressions on another, in real video."""


app.command("probe")(video_cmds.probe)
app.command("reencode")(video_cmds.reencode)
app.command("align")(align_cmd.align)
app.command("people")(people_cmd.people)
app.command("invert")(pipeline_cmds.invert)
app.command("tune")(pipeline_cmds.tune)
app.command("transfer")(pipeline_cmds.transfer)
app.command("edit")(pipeline_cmds.edit)
app.command("morph")(pipeline_cmds.morph)
app.command("batch")(batch_cmd.batch)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("demo")(demo_cmd.demo)
app.command("generate")(generate_cmd.generate)
app.add_typer(weights_cmd.app, name="weights")
app.add_typer(cache_cmd.app, name="cache")


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM, raised from the signal handler so that every `with` block unwinds (partial
    outputs are removed, locks released) before the command exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    code = EXIT_ERROR
    try:
        code = _run(sys.argv[1:] if argv is None else argv)
        return code
    finally:
        group = sys.modules.get("reenact.distributed")  # only a command that ran under torchrun opened one
        if group is not None:
            group.leave(finished=code == 0)


def _run(args: list[str]) -> int:
    verbose = any(flag in args for flag in VERBOSE_FLAGS)
    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can it catch signals
    handlers = (
        {signum: signal.signal(signum, _interrupt) for signum in INTERRUPT_SIGNALS} if in_main_thread else {}
    )
    try:
        # standalone mode: typer reports usage errors itself (exit 2) and raises SystemExit.
        app(args=args, prog_name="reenact", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except UsageError as exc:  # a mistake in the options that typer could not see (e.g. REENACT_THREADS)
        typer.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except Interrupted as exc:
        typer.echo(f"error: interrupted ({exc}); finished stages are kept, partial outputs removed", err=True)
        return EXIT_SIGNAL_BASE + exc.signum
    except (
        ReenactError,
        OSError,
    ) as exc:  # a user's mistake, or the system refused (full disk, no permission)
        if verbose:
            traceback.print_exc()
        typer.echo(f"error: {os_error_message(exc) if isinstance(exc, OSError) else exc}", err=True)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except Exception as exc:  # the boundary: never show a bare traceback to a user
        if verbose:
            traceback.print_exc()
        typer.echo(
            f"error: internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            "run again with --verbose for the traceback and please report it",
            err=True,
        )
        return EXIT_ERROR
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return 0


def entry() -> None:
    """The console script: idle OpenMP threads spin only briefly (set before commands import torch).

    A rank under `torchrun` ends with `os._exit` once its group is closed and its output flushed: its work
    is done, and the interpreter's teardown of torch's communication objects can abort the process
    (SIGABRT, "terminate called without an active exception"), which `torchrun` reports as a failed run."""
    short_spinning(os.environ)
    code = run()
    group = sys.modules.get("reenact.distributed")
    if group is not None and group.launched():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
