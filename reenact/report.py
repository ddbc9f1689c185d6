"""What a run reports: one `StageReport` per stage, and the run's summary as data.

The pipeline builds the summary (`summarise`: every stage's time and result, generator renders in all
and per frame, peak memory, the workspace's size and, in a group, each rank's work gathered from every
rank); the CLI, the batch runner, the demo and the benchmarks only print or store it. A stage report
becomes JSON in one place, `StageReport.to_dict`.
"""

from __future__ import annotations

import dataclasses
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reenact.device import Runtime
from reenact.distributed import Group
from reenact.renders import Renders
from reenact.stages.base import Work
from reenact.workspace import Workspace
from reenact.workspace_cache import folder_bytes

KIB = 1024
PROC_STATUS = Path("/proc/self/status")
RENDER_KINDS = tuple(kind.name for kind in dataclasses.fields(Renders))
"""The kinds of generator render counted."""


@dataclass
class StageReport:
    """One stage of a run: how long it took and whether its result came from the workspace."""

    name: str
    seconds: float
    cached: bool
    detail: str = ""
    location: Path | None = None
    """Where the stage's result is stored (its workspace folder or the output file)."""
    resumed: int = 0
    """Parts of an interrupted run that were found finished and not computed again."""
    work: Work = field(default_factory=Work)
    """What this process computed of the stage (in a group: this rank's share)."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON data (without the work, which the summary gives by rank)."""
        return {
            "name": self.name,
            "seconds": round(self.seconds, 3),
            "cached": self.cached,
            "resumed": self.resumed,
            "detail": self.detail,
            "location": str(self.location) if self.location else None,
        }


def stage_line(stage: dict[str, Any]) -> str:
    """`name  time|cached  detail`: the line a finished stage prints (`stage`: `StageReport.to_dict()`)."""
    took = "cached" if stage["cached"] else f"{stage['seconds']:.1f} s"
    return f"{stage['name']:<11} {took:>8}  {stage['detail']}"


@dataclass
class RunReport:
    """What a command did: its output (None for `invert`/`tune`), the frames it wrote (or inverted),
    every stage's report, its time, the command's own details and the run's summary (`summarise`; empty
    on the ranks other than the main one)."""

    output: Path | None
    frames: int
    stages: list[StageReport]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def peak_memory_bytes() -> int:
    """This process's peak resident memory: VmHWM (its own since exec, and resettable through
    /proc/self/clear_refs), else ru_maxrss."""
    try:
        status = PROC_STATUS.read_text().splitlines()
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) * KIB
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB


def resource_usage(*, workspace: Workspace, runtime: Runtime) -> dict[str, int | None]:
    """What a run's summary reports besides time: this process's peak host memory, the device's peak
    (CUDA; None elsewhere), the workspace's size on disk and the CPU threads it computed with."""
    device = torch.cuda.max_memory_allocated(runtime.device) if runtime.device.type == "cuda" else None
    return {
        "threads": torch.get_num_threads(),
        "peak_memory_bytes": peak_memory_bytes(),
        "peak_device_memory_bytes": device,
        "workspace_bytes": folder_bytes(workspace.root) if workspace.root.is_dir() else 0,
    }


def rank_work(stages: list[StageReport]) -> dict[str, Any]:
    """What this process computed, by stage and in all: the summary's entry for its rank."""
    by_stage = {stage.name: dataclasses.asdict(stage.work) for stage in stages if stage.work.parts}
    return {
        "stages": by_stage,
        "frames": sum(work["frames"] for work in by_stage.values()),
        "renders": {kind: sum(work["renders"][kind] for work in by_stage.values()) for kind in RENDER_KINDS},
        "seconds": round(sum(work["seconds"] for work in by_stage.values()), 3),
    }


def stage_renders(ranks: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Each stage's generator renders, by kind, summed over the ranks' work."""
    totals: dict[str, dict[str, int]] = {}
    for rank in ranks:
        for name, work in rank["stages"].items():
            entry = totals.setdefault(name, dict.fromkeys(RENDER_KINDS, 0))
            for kind in RENDER_KINDS:
                entry[kind] += work["renders"][kind]
    return totals


def render_cost(by_stage: dict[str, dict[str, int]], *, frames: int) -> dict[str, Any]:
    """The run's generator renders by kind, in all and per frame (output frames, or the clip's)."""
    totals = {kind: sum(stage[kind] for stage in by_stage.values()) for kind in RENDER_KINDS}
    per_frame = {kind: round(count / frames, 2) if frames else None for kind, count in totals.items()}
    return {**totals, "frames": frames, "per_frame": per_frame}


def summarise(report: RunReport, *, workspace: Workspace, runtime: Runtime, group: Group) -> dict[str, Any]:
    """The run's summary as data (what `--json` prints); every rank of `group` calls it (it gathers each
    rank's work) and the main one gets it, the others `{}`."""
    usage = resource_usage(workspace=workspace, runtime=runtime)
    ranks = group.gather({**rank_work(report.stages), "peak_memory_bytes": usage["peak_memory_bytes"]})
    if not group.is_main:
        return {}
    by_stage = stage_renders(ranks)
    nothing = dict.fromkeys(RENDER_KINDS, 0)
    return {
        "stages": [
            {**stage.to_dict(), "renders": by_stage.get(stage.name, nothing)} for stage in report.stages
        ],
        "output": None if report.output is None else str(report.output),
        "frames": report.frames,
        "seconds": round(report.seconds, 3),
        **report.details,
        "renders": render_cost(by_stage, frames=report.frames),
        **usage,
        "ranks": ranks,
    }
