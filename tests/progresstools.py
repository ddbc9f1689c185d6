"""A `Progress` that records what the library reports, for tests of progress reporting."""

from __future__ import annotations

from reenact.progress import Progress, ProgressTask


class RecordingTask(ProgressTask):
    """Keeps what a task was told: its advances and whether it was closed."""

    def __init__(self) -> None:
        self.advances: list[int] = []
        self.closed = False

    def advance(self, count: int = 1) -> None:
        self.advances.append(count)

    def close(self) -> None:
        self.closed = True


class RecordingProgress(Progress):
    """Keeps every task opened: (name, total, unit, initial, advances, closed)."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, int | None, str, int, RecordingTask]] = []

    def task(self, name: str, *, total: int | None, unit: str, initial: int = 0) -> ProgressTask:
        task = RecordingTask()
        self.opened.append((name, total, unit, initial, task))
        return task

    @property
    def tasks(self) -> list[tuple[str, int | None, str, int, list[int], bool]]:
        return [
            (name, total, unit, initial, t.advances, t.closed)
            for name, total, unit, initial, t in self.opened
        ]

    def done(self, name: str) -> int:
        """Units a task named `name` reached: its starting count plus its advances (0 if never opened)."""
        return sum(initial + sum(advances) for n, _, _, initial, advances, _ in self.tasks if n == name)
