"""The one shape of every stage, and the one helper that runs it: cached, else computed by parts.

A stage is a unit of work over a clip's frames:

- `key`: what its result depends on (input hashes, settings, generator, earlier stages' keys);
- `ranges()`: the frame ranges it is computed in, each a resumable part, computed in order (a part may
  read the finished parts before it: inversion continues its warm chain from the segment before);
- `compute(frames, part)`: the work of one range, written into the part's own folder;
- `merge(parts, directory)`: the parts joined into the result, written into the result's folder;
- `load(directory)`: the stored result, for this and every later run.

`run_stage` is the only place that decides between the cache and the work: a finished result is loaded;
otherwise every range whose part is not yet in the stage's scratch folder is computed (so a killed run
resumes at the first missing part), the parts are merged, and the result is published atomically.
This is the seam along which a clip is sharded: a part is a range of frames, stored on its own, so it
can be computed by any process that shares the workspace, and the merge needs only the stored parts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from safetensors import SafetensorError

from reenact.errors import ReenactError
from reenact.progress import SILENT, Progress
from reenact.workspace import StageKey, Workspace, file_hashes

Result = TypeVar("Result")
Result_co = TypeVar("Result_co", covariant=True)
STAGE_VERSION = 1
"""Bumped when a stage's stored result changes meaning, so old workspace entries are not reused."""
PART_DONE = "part.done"
"""Written last into a part's folder: the part is complete; it holds the hashes of the part's files."""
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, SafetensorError, ReenactError)
"""What loading a damaged file raises."""


@dataclass(frozen=True, order=True)
class FrameRange:
    """Frames `[start, stop)` of a clip (or of a stage's items, e.g. the frames with a face)."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.stop:
            raise ValueError(f"bad frame range [{self.start}, {self.stop})")

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"{self.start:08d}-{self.stop:08d}"


def split_range(frames: FrameRange, *, size: int) -> list[FrameRange]:
    """`frames` cut into consecutive ranges of at most `size` frames."""
    if size < 1:
        raise ValueError(f"part size must be >= 1, got {size}")
    return [
        FrameRange(start, min(start + size, frames.stop)) for start in range(frames.start, frames.stop, size)
    ]


class Stage(Protocol[Result_co]):
    """What `run_stage` needs of a stage (see the module docstring)."""

    name: str
    key: StageKey

    def ranges(self) -> list[FrameRange]: ...

    def compute(self, frames: FrameRange, part: Path) -> None: ...

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        """Write the result into `directory`; returns the summary kept in its manifest."""
        ...

    def load(self, directory: Path) -> Result_co: ...


@dataclass
class StageRun(Generic[Result]):
    """A stage's result and how it was obtained."""

    result: Result
    key: StageKey
    cached: bool
    """Loaded from the workspace, nothing computed."""
    resumed: int
    """Parts found finished in the scratch folder of an interrupted run."""
    computed: int
    """Parts computed by this run."""
    seconds: float
    location: Path


def run_stage(
    workspace: Workspace,
    stage: Stage[Result],
    *,
    progress: Progress = SILENT,
    on_part: Callable[[FrameRange, Path], None] | None = None,
) -> StageRun[Result]:
    """`stage`'s result: loaded when stored, else computed part by part (resuming), merged and stored.

    Computing holds the stage's lock in the workspace: another process that needs the same result waits,
    then loads it (several commands, or ranks, on one workspace compute a shared stage once).
    `on_part(frames, part)` is told of each finished part (found or computed) before the merge, so a
    consumer can use the parts while the rest are computed.
    """
    started = time.perf_counter()
    key = stage.key
    location = workspace.path(key)
    workspace.hold(key)  # in use from now on: never pruned under this run
    stored = load_stored(workspace, stage, progress=progress)
    if stored is not None:
        return StageRun(stored, key, True, 0, 0, time.perf_counter() - started, location)

    def waiting() -> None:
        progress.note(f"{stage.name}: waiting for another run that is computing {location}")

    with workspace.lock(key, on_wait=waiting):
        stored = load_stored(workspace, stage, progress=progress)  # finished by the run we waited for
        if stored is not None:
            return StageRun(stored, key, True, 0, 0, time.perf_counter() - started, location)
        scratch = workspace.scratch(key)
        parts, resumed, computed = [], 0, 0
        for frames in stage.ranges():
            part = scratch / frames.name
            if part_intact(part):
                resumed += 1
            else:
                compute_part(stage, frames, part)
                computed += 1
            parts.append(part)
            if on_part is not None:
                on_part(frames, part)
        summary: dict[str, Any] = {}
        with workspace.build(key, summary=summary) as directory:
            summary.update(stage.merge(parts, directory))
    result = stage.load(location)
    return StageRun(result, key, False, resumed, computed, time.perf_counter() - started, location)


def load_stored(workspace: Workspace, stage: Stage[Result], *, progress: Progress) -> Result | None:
    """The stage's stored result when it is intact (stage results are never None), else None; a damaged
    one is removed, with a warning, so it is computed again."""
    key, location = stage.key, workspace.path(stage.key)
    if not workspace.done(key):
        return None
    problem = workspace.damage(key)
    if problem is None:
        try:
            return stage.load(location)
        except UNREADABLE as exc:  # files that hash right but do not load: written damaged
            problem = f"it does not load ({type(exc).__name__})"
    progress.note(
        f"warning: the stored {stage.name} result {location} is damaged ({problem}); computing it again"
    )
    workspace.discard(key)
    return None


def part_intact(part: Path) -> bool:
    """Whether a stored part is complete and every file in it is what it was when it was written."""
    try:
        expected = json.loads((part / PART_DONE).read_text())
    except (OSError, ValueError):
        return False
    return expected == file_hashes(part, skip=(PART_DONE,))


def compute_part(stage: Stage[Any], frames: FrameRange, part: Path) -> None:
    """Compute one part into a private folder and move it into place complete, or leave nothing."""
    shutil.rmtree(part, ignore_errors=True)  # an unfinished part of a killed run
    building = Path(tempfile.mkdtemp(prefix=f".{part.name}.tmp-", dir=part.parent))
    try:
        stage.compute(frames, building)
        (building / PART_DONE).write_text(json.dumps(file_hashes(building, skip=(PART_DONE,))))
        building.rename(part)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def adopt(source: Path, destination: Path) -> None:
    """Put a part's file into the result being built, leaving the part intact (a hard link, else a copy),
    so a merge that fails half-way can be done again from the same parts."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def link_parts(
    ranges: list[FrameRange], parts: list[Path], directory: Path, *, file: str, prefix: str
) -> None:
    """A result of row tables from its parts: each part's `file` linked in as `PREFIX-START-STOP.npy`,
    the layout `reenact.files.RowParts` reads back as one table."""
    for frames, part in zip(ranges, parts, strict=True):
        adopt(part / file, directory / f"{prefix}{frames.name}.npy")
