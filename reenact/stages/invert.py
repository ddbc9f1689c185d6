"""Inversion stage: W+ pivots of every frame with a face, with the ORIGINAL generator.

Parts: the clip's inversion segments, fixed by the clip alone (`stages.keys.segments_of`: its runs of
consecutive frames with a face, never across a scene cut, cut into `invert.segment_frames` pieces), each
inverted by one warm chain from the key pivot of its first frame on to the next segment's first frame,
registered to the run's key chain (`stages.keys.invert_chain`): so no segment starts afresh inside a run,
every segment sits where the key chain does in W+, and the segments run in any order and on any number
of ranks with the same result: ranks only choose who computes which (`plan_segments`, contiguous blocks
of about equal frames over all the clips a command inverts, `reenact.distributed.shard`), never what is
computed. A segment's chain is held until it is registered (`invert.segment_frames` + 1 rows). In cold
mode (every frame from the start point) there is no chain and no key stage, and pivots are written as
they finish (`reenact.latents.LatentWriter`). Targets are read from the crops stage a batch at a time.

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
from reenact.distributed import shard_each
from reenact.errors import ReenactError
from reenact.files import save_array
from reenact.generator_source import GeneratorSource
from reenact.invert import Finished, invert_frames
from reenact.latents import LatentSource, LatentWriter, StoredLatents
from reenact.progress import SILENT, Progress
from reenact.pti import clip_psnr
from reenact.renders import Renders
from reenact.stages.align import ClipAlignment
from reenact.stages.base import STAGE_VERSION, FrameRange, Need, link_parts
from reenact.stages.crops import ClipCrops
from reenact.stages.keys import KeyPivots, invert_chain, segment_chain, segments_of
from reenact.workspace import StageKey, stage_key

PIVOTS_FILE = "pivots.npy"
"""A part's pivots [n, num_ws, w_dim] float32; linked into the result as `pivots-START-STOP.npy`."""
PIVOTS_PREFIX = "pivots-"
PSNR_FILE = "psnr.npy"
FRAMES_FILE = "frames.npy"
CHAINS = "registered"
"""How warm segments' pivots are made (in the stage key): each chain registered to the key chain."""


def plan_segments(alignments: list[ClipAlignment], *, size: int, shards: int) -> list[list[int]]:
    """The rank of each inversion segment of each clip (`segments_of`, `size` frames): `shards`
    contiguous blocks of about equal frames over all the clips together; everything on rank 0 for one
    process. What is computed never depends on it."""
    segments = [segments_of(alignment, size=size) for alignment in alignments]
    return shard_each([[len(segment) for segment in clip] for clip in segments], shards=shards)


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
        keys: Need[KeyPivots] | None = None,
        owners: list[int] | None = None,
    ) -> None:
        """`keys`: the clip's key chains (`stages.keys`; warm mode needs them, cold mode has none).
        `owners`: the rank of each segment (`plan_segments`); by default all on one process."""
        if (keys is None) != (settings.invert.mode == "cold"):
            raise ReenactError("internal error: warm inversion needs the key chains, cold has none")
        self.crops = crops
        self.keys = keys
        self.needs: list[Need[Any]] = [crops] if keys is None else [crops, keys]
        self.runs = crops.alignment.runs()
        self.segments = segments_of(crops.alignment, size=settings.invert.segment_frames)
        self.owners = owners if owners is not None else [0] * len(self.segments)

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
                "keys": None if keys is None else keys.job.stage.key.digest,
                "chains": CHAINS,
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return list(self.segments)

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        return self.cold(frames, part) if self.keys is None else self.chain(frames, part)

    def cold(self, frames: FrameRange, part: Path) -> Renders:
        """Every frame of `frames` from the start point, its pivots stored as they finish."""
        generator = self.source.generator
        psnr = np.empty(len(frames), dtype=np.float32)  # [n]
        with LatentWriter(
            part / PIVOTS_FILE, rows=len(frames), row_shape=(generator.num_ws, generator.w_dim)
        ) as out:

            def store(run: Finished) -> None:  # the pivots go to the file as they finish
                out.write(run.frames.start, run.latents)
                psnr[run.frames.start : run.frames.stop] = run.psnr.detach().float().cpu().numpy()

            renders = invert_frames(
                generator,
                self.crops.store().window(self.crops.slots(frames)),
                config=self.settings.invert,
                perceptual=self.perceptual,
                runtime=self.runtime,
                on_finished=store,
                progress=self.progress,
            )
        save_array(part / PSNR_FILE, psnr)
        return renders

    def chain(self, frames: FrameRange, part: Path) -> Renders:
        """The segment `frames` as one warm chain registered to its run's key chain
        (`stages.keys.segment_chain`, `invert_chain`); the PSNRs are the registered pivots'."""
        assert self.keys is not None
        run = next(run for run in self.runs if run.start <= frames.start < run.stop)
        chain = segment_chain(frames, run)
        registered, renders = invert_chain(
            self.source.generator,
            self.crops.store().window(self.crops.slots(chain)),
            chain,
            keys=self.keys.get(),
            config=self.settings.invert,
            perceptual=self.perceptual,
            runtime=self.runtime,
            first_in_run=frames.start == run.start,
            progress=self.progress,
        )
        registered = registered[: len(frames)]  # [n, num_ws, w_dim]: the next segment's first frame dropped
        psnr = clip_psnr(
            self.source.generator,
            self.crops.store().window(self.crops.slots(frames)),
            registered,
            frames=torch.arange(len(frames)),
        )  # [n]
        save_pivot_part(part, registered, psnr)
        return renders + Renders(forward=len(frames))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        return merge_pivot_parts(self.ranges(), parts, directory, alignment=self.alignment)

    def load(self, directory: Path) -> Pivots:
        return Pivots.load(directory)


def save_pivot_part(part: Path, codes: torch.Tensor, psnr: torch.Tensor) -> None:
    """A part's codes [n, num_ws, w_dim] and their PSNRs [n], as `merge_pivot_parts` reads them."""
    save_array(part / PIVOTS_FILE, codes.numpy())
    save_array(part / PSNR_FILE, psnr.numpy().astype(np.float32))


def merge_pivot_parts(
    ranges: list[FrameRange], parts: list[Path], directory: Path, *, alignment: ClipAlignment
) -> dict[str, Any]:
    """The parts' code tables linked in frame order, with their PSNRs and the frames with a face: a
    `Pivots` result."""
    link_parts(ranges, parts, directory, file=PIVOTS_FILE, prefix=PIVOTS_PREFIX)
    psnr = np.concatenate([np.load(part / PSNR_FILE) for part in parts])  # [N]
    save_array(directory / PSNR_FILE, psnr)
    save_array(directory / FRAMES_FILE, np.flatnonzero(alignment.valid).astype(np.int64))
    return {"mean_psnr": float(psnr.mean())}
