"""The one shape of every stage, and the one helper that runs it: cached, else computed by parts.

A stage is a unit of work over a clip's frames:

- `key`: what its result depends on (input hashes, settings, generator, earlier stages' keys);
- `ranges()`: the frame ranges it is computed in, each a resumable part, computed in order (a part may
  read the finished parts before it: inversion continues its warm chain from the segment before);
- `compute(frames, part)`: the work of one range, written into the part's own folder; returns the
  generator evaluations (images rendered) it cost, for the run's report;
- `merge(parts, directory)`: the parts joined into the result, written into the result's folder;
- `load(directory)`: the stored result, for this and every later run.

A stage may name a `parts_key`: the key whose scratch folder holds its parts, when they are parts of
another result too (a slice's alignment computes parts of the whole clip's detection, so a later run on
the whole clip finds them done); computing it holds that key's lock as well, so two runs never write one
part at once and `reenact cache prune` leaves the parts alone meanwhile. By default a stage's parts are
its own.

A stage may name `needs`: inputs that other stages compute (an inversion needs its clip's crops). The
runner resolves them, only when the stage is computed (a cached inversion never decodes its clip), and
before any of its parts; the stage reads them (`Need.get()`) and never runs a stage itself. In a group
every rank resolves them together, as it runs every stage.

`run_stage` is the only place that decides between the cache and the work: a finished result is loaded;
otherwise every range whose part is not yet in the stage's scratch folder is computed (so a killed run
resumes at the first missing part), the parts are merged, and the result is published atomically.
This is the seam along which a clip is sharded: a part is a range of frames, stored on its own, so it
can be computed by any process that shares the workspace, and the merge needs only the stored parts.
Under `torchrun` (`group` of several ranks) each rank computes its own contiguous block of parts
(`reenact.distributed.shard`), the main rank merges, and every rank loads the result. A stage marked
`collective` (tuning: one optimisation) has its one part computed by all ranks together, and the main
rank's copy is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from safetensors import SafetensorError

from reenact.distributed import SINGLE, Group, shard_each
from reenact.errors import ReenactError
from reenact.progress import SILENT, Progress
from reenact.renders import NONE, Renders
from reenact.workspace import StageKey, Workspace, file_hashes

Result = TypeVar("Result")
Result_co = TypeVar("Result_co", covariant=True)
Value = TypeVar("Value")
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

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """Compute one part into `part`; returns what the generator rendered for it."""
        ...

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        """Write the result into `directory`; returns the summary kept in its manifest."""
        ...

    def load(self, directory: Path) -> Result_co: ...


@dataclass
class Work:
    """What one process computed of a stage: parts, frames, generator renders and seconds."""

    parts: int = 0
    resumed: int = 0
    frames: int = 0
    renders: Renders = NONE
    seconds: float = 0.0

    def add(self, frames: FrameRange, *, renders: Renders, seconds: float) -> None:
        self.parts += 1
        self.frames += len(frames)
        self.renders += renders
        self.seconds += seconds


@dataclass(frozen=True)
class StageJob:
    """A stage as a run reports it: the name of its stage line and the text `detail(result)` of it."""

    stage: Stage[Any]
    name: str
    detail: Callable[[Any], str]


class Need(Generic[Result]):
    """An input of a stage that another stage computes: declared in the stage's `needs`, resolved by the
    runner (see the module docstring), read by the stage with `get()`."""

    def __init__(self, job: StageJob) -> None:
        self.job = job
        self._value: Result | None = None
        self._resolved = False

    @property
    def resolved(self) -> bool:
        return self._resolved

    def resolve(self, value: Result) -> None:
        self._value, self._resolved = value, True

    def get(self) -> Result:
        if not self._resolved:
            raise ReenactError(f"internal error: {self.job.name} was not resolved before it was needed")
        return self._value  # type: ignore[return-value]


def needs_of(stage: Stage[Any]) -> list[Need[Any]]:
    """The inputs `stage` declares (none by default)."""
    return list(getattr(stage, "needs", ()))


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
    work: Work = field(default_factory=Work)
    """What this process computed of it (in a group: this rank's share)."""
    needs: list[tuple[Need[Any], StageRun[Any]]] = field(default_factory=list)
    """The needs this run resolved for the stage, each with its own run."""


def run_stage(
    workspace: Workspace,
    stage: Stage[Result],
    *,
    progress: Progress = SILENT,
    group: Group = SINGLE,
) -> StageRun[Result]:
    """`stage`'s result: loaded when stored, else computed part by part (resuming), merged and stored.

    Computing holds the stage's lock in the workspace (the main rank holds it for its group): another
    process that needs the same result waits, then loads it (several commands, jobs or ranks on one
    workspace compute a shared stage once). In a group, every rank must call this for the same stage; a
    `ReenactError` on any rank is raised on all.
    """
    (outcome,) = run_stages(workspace, [stage], progress=progress, group=group)
    return outcome


def run_stages(
    workspace: Workspace,
    stages: list[Stage[Any]],
    *,
    progress: Progress = SILENT,
    group: Group = SINGLE,
) -> list[StageRun[Any]]:
    """Several independent stages run as one (`run_stage` for each): in a group, their parts are shared
    out together, so two clips' inversions keep every rank busy at once. A stage with an `owners` list
    (the rank of each of its parts) keeps it; the others' parts are cut into contiguous blocks together
    (`shard`). Locks are taken in key order, so two groups never wait for each other in a circle. A stage
    given twice (a transfer of a clip onto itself) is run once; its second report is `cached`."""
    firsts: dict[StageKey, int] = {}
    for index, stage in enumerate(stages):
        firsts.setdefault(stage.key, index)
    if len(firsts) < len(stages):
        unique = run_stages(
            workspace,
            [stages[index] for index in firsts.values()],
            progress=progress,
            group=group,
        )
        by_key = dict(zip(firsts, unique, strict=True))
        return [
            by_key[stage.key]
            if firsts[stage.key] == index
            else replace(by_key[stage.key], cached=True, work=Work())
            for index, stage in enumerate(stages)
        ]
    started = time.perf_counter()
    for stage in stages:
        workspace.hold(stage.key)  # in use from now on: never pruned under this run
    runs: dict[int, StageRun[Any]] = {}

    def cached(index: int, result: Any) -> None:
        stage = stages[index]
        elapsed = time.perf_counter() - started
        runs[index] = StageRun(result, stage.key, True, 0, 0, elapsed, workspace.path(stage.key))

    stored = [load_stored(workspace, stage, progress=progress) for stage in stages]
    everywhere = [
        all(flags) for flags in zip(*group.gather([value is not None for value in stored]), strict=True)
    ]
    for index, found in enumerate(everywhere):
        if found:
            cached(index, stored[index])
    todo = [index for index in range(len(stages)) if index not in runs]
    if not todo:
        return [runs[index] for index in range(len(stages))]

    with contextlib.ExitStack() as held:
        if group.is_main:
            for index in sorted(todo, key=lambda index: str(stages[index].key)):
                stage, location = stages[index], workspace.path(stages[index].key)
                note = f"{stage.name}: waiting for another run that is computing {location}"
                held.enter_context(workspace.lock(stage.key, on_wait=lambda note=note: progress.note(note)))
                if parts_key(stage) != stage.key:  # shared parts: one process writes them at a time
                    held.enter_context(
                        workspace.lock(parts_key(stage), on_wait=lambda note=note: progress.note(note))
                    )
                stored[index] = load_stored(workspace, stage, progress=progress)  # finished meanwhile
        finished = group.broadcast([stored[index] is not None for index in todo])
        for index, done in zip(todo, finished, strict=True):
            if done:
                result = stored[index]
                cached(
                    index,
                    result if result is not None else stages[index].load(workspace.path(stages[index].key)),
                )
        todo = [index for index in todo if index not in runs]
        needed = resolve_needs(workspace, [stages[index] for index in todo], progress=progress, group=group)
        resolved = {todo[position]: runs_of for position, runs_of in needed.items()}
        ranges = [stages[index].ranges() for index in todo]
        parts = [
            [workspace.scratch(parts_key(stages[index])) / frames.name for frames in stage_ranges]
            for index, stage_ranges in zip(todo, ranges, strict=True)
        ]
        owners = part_owners([stages[index] for index in todo], ranges, shards=group.size)

        def compute() -> list[Work]:
            return [
                compute_parts(stages[index], *job, group=group)
                for index, job in zip(todo, zip(ranges, parts, owners, strict=True), strict=True)
            ]

        works = together(group, compute)
        assert works is not None

        def merge() -> None:
            if not group.is_main:
                return
            for index, stage_parts in zip(todo, parts, strict=True):
                summary: dict[str, Any] = {}
                with workspace.build(stages[index].key, summary=summary) as directory:
                    summary.update(stages[index].merge(stage_parts, directory))

        together(group, merge)
    for index, work in zip(todo, works, strict=True):
        stage = stages[index]
        location = workspace.path(stage.key)
        result = stage.load(location)
        elapsed = time.perf_counter() - started
        runs[index] = StageRun(
            result,
            stage.key,
            False,
            work.resumed,
            work.parts,
            elapsed,
            location,
            work,
            resolved.pop(index, []),
        )
    return [runs[index] for index in range(len(stages))]


def resolve_needs(
    workspace: Workspace, stages: list[Stage[Any]], *, progress: Progress, group: Group
) -> dict[int, list[tuple[Need[Any], StageRun[Any]]]]:
    """Run (cached or computed, together) the unresolved needs of the stages about to be computed, and
    resolve them; returns the needs each stage had resolved, with their runs, by the stage's index. A
    stage needed by several is run once; one that another need needs too (a key chain needs the crops
    an inversion needs) runs before it."""
    pending: dict[StageKey, list[Need[Any]]] = {}
    first_by_key: dict[StageKey, int] = {}
    for index, stage in enumerate(stages):
        for need in needs_of(stage):
            if not need.resolved:
                pending.setdefault(need.job.stage.key, []).append(need)
                first_by_key.setdefault(need.job.stage.key, index)
    inner = {deeper.job.stage.key for needs in pending.values() for deeper in needs_of(needs[0].job.stage)}
    resolved: dict[int, list[tuple[Need[Any], StageRun[Any]]]] = {}
    for level in ([key for key in pending if key in inner], [key for key in pending if key not in inner]):
        if not level:
            continue
        outcomes = run_stages(
            workspace, [pending[key][0].job.stage for key in level], progress=progress, group=group
        )
        for key, outcome in zip(level, outcomes, strict=True):
            for need in pending[key]:
                need.resolve(outcome.result)
            resolved.setdefault(first_by_key[key], []).append((pending[key][0], outcome))
    return resolved


def parts_key(stage: Stage[Any]) -> StageKey:
    """The key whose scratch folder holds `stage`'s parts: its `parts_key` when it shares them (see the
    module docstring), else its own key."""
    shared: StageKey | None = getattr(stage, "parts_key", None)
    return stage.key if shared is None else shared


def part_owners(stages: list[Stage[Any]], ranges: list[list[FrameRange]], *, shards: int) -> list[list[int]]:
    """The rank of each part of each stage: a stage's own `owners` when it has them, else contiguous blocks
    of about equal frames over the parts of all the other stages together."""
    free = [index for index, stage in enumerate(stages) if getattr(stage, "owners", None) is None]
    joint = iter(shard_each([[len(frames) for frames in ranges[index]] for index in free], shards=shards))
    return [
        next(joint) if index in free else list(stage.owners)  # type: ignore[attr-defined]
        for index, stage in enumerate(stages)
    ]


def together(group: Group, work: Callable[[], Value]) -> Value | None:
    """`work()` on every rank of `group`; a `ReenactError` on any rank is raised on all of them (in one
    process, as it is). Returns this rank's value."""
    if not group.distributed:
        return work()
    value, error = None, None
    try:
        value = work()
    except ReenactError as exc:
        error = str(exc)
    group.raise_any(error)
    return value


def compute_parts(
    stage: Stage[Any],
    ranges: list[FrameRange],
    parts: list[Path],
    owners: list[int],
    *,
    group: Group,
) -> Work:
    """This rank's parts of `stage`, each computed unless already intact, and what they cost.

    One process computes every part, in order. In a group, each rank computes the parts it `owners`; a
    `collective` stage's parts are computed by all ranks together, and the main rank's copy is kept."""
    collective = bool(getattr(stage, "collective", False))
    work = Work()
    for index, (frames, part) in enumerate(zip(ranges, parts, strict=True)):
        mine = collective or owners[index] == group.rank
        if not mine:
            continue
        intact = group.broadcast(part_intact(part)) if collective else part_intact(part)
        if intact:  # a collective part: the main rank's view, so all ranks skip it or none
            work.resumed += 1
        else:
            started = time.perf_counter()
            renders = compute_part(stage, frames, part, keep=group.is_main or not collective)
            work.add(frames, renders=renders, seconds=time.perf_counter() - started)
    return work


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


def compute_part(stage: Stage[Any], frames: FrameRange, part: Path, *, keep: bool = True) -> Renders:
    """Compute one part into a private folder and move it into place complete, or leave nothing
    (`keep=False`: a collective part's copy on a rank other than the main one, dropped). Returns what
    the generator rendered for it."""
    if keep:
        shutil.rmtree(part, ignore_errors=True)  # an unfinished part of a killed run
    building = Path(tempfile.mkdtemp(prefix=f".{part.name}.tmp-", dir=part.parent))
    try:
        renders = stage.compute(frames, building)
        if keep:
            (building / PART_DONE).write_text(json.dumps(file_hashes(building, skip=(PART_DONE,))))
            building.rename(part)
        else:
            shutil.rmtree(building)
        return renders
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
    """A result of row tables from its parts: each part's `file` linked in as `PREFIX-START-STOP.EXT`
    (EXT: the file's own), the layout `reenact.files.RowParts` and `ImageParts` read back as one table."""
    for frames, part in zip(ranges, parts, strict=True):
        adopt(part / file, directory / f"{prefix}{frames.name}{Path(file).suffix}")
