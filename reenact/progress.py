"""Progress of long work: the one interface through which the library reports it.

Library code never draws anything. A long loop asks its `Progress` for a task and advances it; a stage
that finishes reports one line through `note`. The base class ignores everything (the library's
default, and what tests use); the CLI draws bars on a terminal and writes sparse plain lines into logs
(`reenact_cli.progress`).

    with progress.task("invert", total=len(frames), unit="frame") as task:
        for ...:
            task.advance()
"""

from __future__ import annotations

from types import TracebackType


class ProgressTask:
    """One long loop's counter. The base class does nothing."""

    def advance(self, count: int = 1) -> None:
        """`count` more units are done."""

    def close(self) -> None:
        """The loop is over (also on errors)."""

    def __enter__(self) -> ProgressTask:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Progress:
    """Where progress goes. The base class is silent; subclass it to show something."""

    def task(self, name: str, *, total: int | None, unit: str, initial: int = 0) -> ProgressTask:
        """A counter for a loop of `total` units (None when unknown), `initial` of them already done."""
        return ProgressTask()

    def note(self, line: str) -> None:
        """One finished step worth a line (a stage's time, a warning that is not an error)."""


SILENT = Progress()
"""Reports nothing: the default of every library function."""
