"""Key chain stage: the warm chain of every `invert.key_stride`-th frame of each run, where inversion segments
start.

Inversion cuts a run (consecutive frames with a face in one shot) into segments of `invert.segment_frames`
(`stages.invert`). A segment started afresh lands elsewhere in W+ for the same picture, and a segment
that waits for the one before it cannot run beside it. So each run is first inverted coarsely: one warm
chain through its key frames (every `key_stride`-th frame, and the last frame before each segment),
its first frame from the start point with the full budget. Every segment then continues that chain
from the key pivot of the frame before it (a run's first segment: from its own first frame's), so all
segments start in one chain and run in any order, on any number of ranks. Nothing depends on the
ranks: the key frames and the segments are the clip's own.

Parts: one run each (its chain is sequential), its key pivots written as they finish. Merge: the key
pivots [K, num_ws, w_dim] and their frames [K], read one pivot at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reenact.config import Config, config_to_dict
from reenact.device import Runtime, numerics_key
from reenact.errors import ReenactError
from reenact.files import index_rows, save_array
from reenact.generator_source import GeneratorSource
from reenact.imaging import CropSource
from reenact.invert import invert_frames
from reenact.latents import LatentWriter, StoredLatents
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.stages.align import ClipAlignment
from reenact.stages.base import STAGE_VERSION, FrameRange, link_parts, split_range
from reenact.stages.crops import ClipCrops
from reenact.workspace import StageKey, stage_key

KEYS_FILE = "keys.npy"
"""A part's key pivots [k, num_ws, w_dim] float32; linked into the result as `keys-START-STOP.npy`."""
KEYS_PREFIX = "keys-"
KEY_FRAMES_FILE = "key_frames.npy"
"""Their clip frames [K] int64, ascending."""


def segments_of(alignment: ClipAlignment, *, size: int) -> list[FrameRange]:
    """The clip's inversion segments: its runs, each cut into pieces of `size` frames
    (`invert.segment_frames`)."""
    return [segment for run in alignment.runs() for segment in split_range(run, size=size)]


def key_frames(run: FrameRange, *, segment: int, stride: int) -> list[int]:
    """A run's key frames: every `stride`-th frame from its first, and the frame before each of its
    segments (of `segment` frames) but the first."""
    starts = range(run.start + segment, run.stop, segment)
    return sorted(set(range(run.start, run.stop, stride)) | {start - 1 for start in starts})


def chain_start(frames: FrameRange, run: FrameRange) -> int:
    """The key frame whose pivot segment `frames` of `run` starts from: the frame before it, or the
    run's first frame for its first segment."""
    return run.start if frames.start == run.start else frames.start - 1


def chain_starts(runs: list[FrameRange], segments: list[FrameRange]) -> list[int]:
    """The key frame each of `segments` (each inside one of `runs`) continues from (`chain_start`)."""
    return [
        chain_start(segment, next(run for run in runs if run.start <= segment.start < run.stop))
        for segment in segments
    ]


class KeyPivots:
    """The stored key pivots, read one at a time (the table grows with the clip)."""

    def __init__(self, directory: Path) -> None:
        self.frames = np.load(directory / KEY_FRAMES_FILE)  # [K]
        self.ws = StoredLatents(directory, prefix=KEYS_PREFIX)  # [K, num_ws, w_dim]

    def pivot(self, frame: int) -> torch.Tensor:
        """The key pivot [1, num_ws, w_dim] of clip frame `frame`."""
        index = int(np.searchsorted(self.frames, frame))
        if index >= len(self.frames) or self.frames[index] != frame:
            raise ReenactError(f"internal error: frame {frame} is not a key frame")
        return self.ws[index : index + 1]


class Selection:
    """Some of a crop source's crops (`slots` [n]), addressed from 0: itself a crop source, read a batch
    at a time."""

    def __init__(self, crops: CropSource, slots: np.ndarray) -> None:
        self.crops, self.slots = crops, slots

    def __len__(self) -> int:
        return len(self.slots)

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.crops[self.slots[index_rows(index, length=len(self.slots))]]


class KeysStage:
    """A clip's key chains (see the module docstring)."""

    name = "keys"

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
    ) -> None:
        self.crops = crops
        self.needs = [crops]
        self.alignment: ClipAlignment = crops.alignment
        self.source = source
        self.settings = settings
        self.perceptual = perceptual
        self.runtime = runtime
        self.progress = progress
        self.key = stage_key(
            "keys",
            {
                "version": STAGE_VERSION,
                "align": align.digest,
                "generator": source.digest,
                "invert": config_to_dict(settings.invert),
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return self.alignment.runs()

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """The warm chain through the run's key frames (a warm inversion of those crops in order)."""
        config = self.settings.invert
        keys = np.array(
            key_frames(frames, segment=config.segment_frames, stride=config.key_stride), dtype=np.int64
        )  # [K]
        slots = self.crops.slots(frames).start + keys - frames.start  # every frame of a run has a crop
        generator = self.source.generator
        with LatentWriter(
            part / KEYS_FILE, rows=len(keys), row_shape=(generator.num_ws, generator.w_dim)
        ) as out:  # a long run's chain is written as its key frames finish, never held
            renders = invert_frames(
                generator,
                Selection(self.crops.store(), slots),
                config=self.settings.invert,
                perceptual=self.perceptual,
                runtime=self.runtime,
                on_finished=lambda run: out.write(run.frames.start, run.latents),
                progress=self.progress,
            )
        save_array(part / KEY_FRAMES_FILE, keys)
        return renders

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=KEYS_FILE, prefix=KEYS_PREFIX)
        frames = np.concatenate([np.load(part / KEY_FRAMES_FILE) for part in parts])  # [K] int64
        save_array(directory / KEY_FRAMES_FILE, frames)
        return {"keys": len(frames)}

    def load(self, directory: Path) -> KeyPivots:
        return KeyPivots(directory)
