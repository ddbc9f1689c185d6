"""How the CLI shows the library's progress: bars on a terminal, sparse plain lines in a log.

`cli_progress(quiet=...)` picks one for the command's stderr:
- a terminal: tqdm bars, one per running task, cleared when it ends, and the stage lines;
- anything else (a file, a pipe, CI): the stage lines, plus at most one line per `LINE_INTERVAL_S` for a
  task that is still running, so a log holds what a person would read, not bar redraws;
- `--quiet`: nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

from reenact.progress import SILENT, Progress, ProgressTask

LINE_INTERVAL_S = 10.0
"""Least time between two plain progress lines of one task."""


class BarTask(ProgressTask):
    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def advance(self, count: int = 1) -> None:
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()


class BarProgress(Progress):
    """tqdm bars and stage lines on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def task(self, name: str, *, total: int | None, unit: str, initial: int = 0) -> ProgressTask:
        return BarTask(
            tqdm(total=total, initial=initial, unit=unit, desc=name, leave=False, file=self.stream)
        )

    def note(self, line: str) -> None:
        tqdm.write(line, file=self.stream)


class LineTask(ProgressTask):
    """Writes `name done/total unit (rate, eta)` at most every `interval` seconds."""

    def __init__(
        self, stream: TextIO, *, name: str, total: int | None, unit: str, initial: int, interval: float
    ) -> None:
        self.stream = stream
        self.name = name
        self.total = total
        self.unit = unit
        self.done = initial
        self.interval = interval
        self.started = time.monotonic()
        self.last_line = self.started
        self.initial = initial

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last_line >= self.interval:
            self.last_line = now
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        rate = (self.done - self.initial) / max(now - self.started, 1e-9)
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = f", {left:.0f} s left" if left != float("inf") else ""
            return f"  {self.name} {self.done}/{self.total} {self.unit}s ({rate:.2f}/s{eta})"
        return f"  {self.name} {self.done} {self.unit}s ({rate:.2f}/s)"


class LineProgress(Progress):
    """Plain lines for a log: stage lines, and a task's state at most every `interval` seconds."""

    def __init__(self, stream: TextIO, *, interval: float = LINE_INTERVAL_S) -> None:
        self.stream = stream
        self.interval = interval

    def task(self, name: str, *, total: int | None, unit: str, initial: int = 0) -> ProgressTask:
        return LineTask(
            self.stream, name=name, total=total, unit=unit, initial=initial, interval=self.interval
        )

    def note(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def cli_progress(*, quiet: bool, stream: TextIO | None = None) -> Progress:
    """The progress display for a command writing to `stream` (stderr by default)."""
    if quiet:
        return SILENT
    stream = stream or sys.stderr
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)
