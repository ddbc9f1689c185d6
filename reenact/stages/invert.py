"""Inversion stage: W+ pivots of every frame with a face, with the ORIGINAL generator.

Parts: the clip's runs of consecutive frames with a face (never across a scene cut), cut into segments
of at most `SEGMENT_FRAMES`, each inverted by one warm-started `reenact.invert.invert_clip`. A run's
first segment starts like a shot (its first frame from the start point with the full first-frame
budget); every later segment continues the warm chain from the last pivot of the segment before it,
read from that finished part. So a long shot resumes at its first unfinished segment and has no seam:
a segment started afresh lands elsewhere in W+ for the same picture (`benchmarks/bench_invert.py
--segment` measures the jump), which the driver's offsets would show as a pop. The price is order:
a run's segments are computed one after another. Targets are read from the crops stage a batch at a
time.

Over several ranks (`plan_segments`), the segments of all the clips a command inverts (a transfer's
target and driver) are planned together: made short enough that every rank gets some, and cut into
contiguous blocks of about equal frames, one per rank (`reenact.distributed.shard`), run together
(`run_stages`). A rank continues the chain within its block. Where a block starts inside a run, it
cannot wait for the block before it, so the chain starts afresh there: a chain break. Two ranks on a
transfer whose clips are about as long as each other take one clip each, with no break; in general there
are at most `ranks - 1` breaks per command. The breaks are in the key, so a result is shared exactly by
runs that break the same chains (one rank never does).

Merge: the parts' pivot tables linked in frame order (`pivots-START-STOP.npy`, read back a batch
at a time), with the frames and PSNRs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reenact.config import Config, config_to_dict
from reenact.device import Runtime, numerics_key
from reenact.distributed import part_size, shard_each
from reenact.errors import ReenactError
from reenact.files import save_array
from reenact.generator_source import GeneratorSource
from reenact.invert import invert_clip
from reenact.latents import LatentSource, StoredLatents
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.stages.align import ClipAlignment
from reenact.stages.base import STAGE_VERSION, FrameRange, link_parts, split_range
from reenact.stages.crops import ClipCrops
from reenact.workspace import StageKey, stage_key

PIVOTS_FILE = "pivots.npy"
"""A part's pivots [n, num_ws, w_dim] float32; linked into the result as `pivots-START-STOP.npy`."""
PIVOTS_PREFIX = "pivots-"
PSNR_FILE = "psnr.npy"
FRAMES_FILE = "frames.npy"
SEGMENT_FRAMES = 256
"""Frames per inversion part at most: what an interrupted inversion loses, and one cold start each."""


@dataclass(frozen=True)
class SegmentPlan:
    """One clip's inversion segments (its parts) and the rank that inverts each."""

    segments: list[FrameRange]
    owners: list[int]


def plan_segments(alignments: list[ClipAlignment], *, shards: int) -> list[SegmentPlan]:
    """The segments of each clip's runs, and their ranks: `shards` contiguous blocks of about equal frames
    over all the clips together (see the module docstring); everything on rank 0 for one process."""
    runs = [alignment.runs() for alignment in alignments]
    size = part_size(sum(len(run) for clip in runs for run in clip), limit=SEGMENT_FRAMES, shards=shards)
    segments = [[segment for run in clip for segment in split_range(run, size=size)] for clip in runs]
    owners = shard_each([[len(segment) for segment in clip] for clip in segments], shards=shards)
    return [SegmentPlan(segments=clip, owners=ranks) for clip, ranks in zip(segments, owners, strict=True)]


@dataclass
class Pivots:
    """W+ pivots of the frames that have a face: `ws` is read from the workspace a batch at a time."""

    frames: np.ndarray  # [N] frame indices
    ws: LatentSource  # [N, num_ws, w_dim]
    psnr: torch.Tensor  # [N] dB of G(pivot) against the crop

    @classmethod
    def load(cls, directory: Path) -> Pivots:
        return cls(
            frames=np.load(directory / FRAMES_FILE),
            ws=StoredLatents(directory, prefix=PIVOTS_PREFIX),
            psnr=torch.from_numpy(np.load(directory / PSNR_FILE)),
        )


class InvertStage:
    """A clip's pivots (see the module docstring)."""

    name = "invert"

    def __init__(
        self,
        crops: ClipCrops,
        *,
        align: StageKey,
        source: GeneratorSource,
        settings: Config,
        perceptual: nn.Module | None,
        runtime: Runtime,
        progress: Progress = SILENT,
        plan: SegmentPlan | None = None,
    ) -> None:
        """`plan`: the segments and their ranks (`plan_segments`); by default this clip's, on one process."""
        self.crops = crops
        self.needs = [crops]
        self.plan = plan or plan_segments([crops.alignment], shards=1)[0]

        self.alignment: ClipAlignment = crops.alignment
        self.source = source
        self.settings = settings
        self.perceptual = perceptual
        self.runtime = runtime
        self.progress = progress
        self.key = stage_key(
            "invert",
            {
                "version": STAGE_VERSION,
                "align": align.digest,
                "generator": source.digest,
                "invert": config_to_dict(settings.invert),
                "chain_breaks": self.chain_breaks(),
                "numerics": numerics_key(runtime),
            },
        )

    @property
    def owners(self) -> list[int]:
        """The rank of each part (`run_stages` keeps them)."""
        return self.plan.owners

    def ranges(self) -> list[FrameRange]:
        return list(self.plan.segments)

    def chain_breaks(self) -> list[int]:
        """First frames of the segments that start afresh inside a run: those whose predecessor in the run
        is another rank's."""
        segments, owners = self.plan.segments, self.plan.owners
        run_starts = {run.start for run in self.alignment.runs()}
        return [
            segments[index].start
            for index in range(1, len(segments))
            if segments[index].start not in run_starts and owners[index - 1] != owners[index]
        ]

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        result = invert_clip(
            self.source.generator,
            self.crops.store().window(self.crops.slots(frames)),
            config=self.settings.invert,
            perceptual=self.perceptual,
            runtime=self.runtime,
            progress=self.progress,
            start=self.chain_start(frames, scratch=part.parent),
        )
        save_array(part / PIVOTS_FILE, result.pivots.detach().float().cpu().numpy())
        save_array(part / PSNR_FILE, result.psnr.detach().float().cpu().numpy())
        return result.renders

    def chain_start(self, frames: FrameRange, *, scratch: Path) -> torch.Tensor | None:
        """The last pivot [1, num_ws, w_dim] of the segment before `frames` in the same run (None for a
        run's first segment), read from its finished part: the chain continues from it."""
        before = [earlier for earlier in self.ranges() if earlier.stop == frames.start]
        if not before or frames.start in {run.start for run in self.alignment.runs()}:
            return None
        if frames.start in self.chain_breaks():
            return None
        path = scratch / before[0].name / PIVOTS_FILE
        if not path.is_file():
            raise ReenactError(f"inversion segment {frames.name} needs its predecessor's pivots {path}")
        return torch.from_numpy(np.array(np.load(path, mmap_mode="r")[-1:]))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=PIVOTS_FILE, prefix=PIVOTS_PREFIX)
        psnr = np.concatenate([np.load(part / PSNR_FILE) for part in parts])  # [N]
        save_array(directory / PSNR_FILE, psnr)
        save_array(directory / FRAMES_FILE, np.flatnonzero(self.alignment.valid).astype(np.int64))
        return {"mean_psnr": float(psnr.mean())}

    def load(self, directory: Path) -> Pivots:
        return Pivots.load(directory)
