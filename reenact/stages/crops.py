"""The aligned crops of a clip, read for inversion and tuning.

Today the crops of every frame with a face are decoded and warped once, at the first request, and kept
for both stages (a cached stage never asks). This is the one place that reads crops, so a streaming
crop source (an on-disk crop cache, or decode-and-warp on demand) replaces it without touching a stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reenact import video
from reenact.faces.align import warp_to_crop
from reenact.imaging import images_from_uint8
from reenact.progress import SILENT, Progress
from reenact.stages.align import ClipAlignment
from reenact.stages.base import FrameRange


class ClipCrops:
    """Aligned crops of a clip's frames with a face, as [n, 3, R, R] float32 in [-1, 1]."""

    def __init__(self, path: Path, alignment: ClipAlignment, *, progress: Progress = SILENT) -> None:
        self.path = path
        self.alignment = alignment
        self.progress = progress
        self.slot = np.cumsum(alignment.valid) - 1  # [T] index of each frame among the frames with a face
        self._crops: torch.Tensor | None = None

    def frames(self, frames: FrameRange) -> torch.Tensor:
        """Crops of the frames in `frames` (all of which have a face): [len, 3, R, R]."""
        return self.all()[self.slot[frames.start] : self.slot[frames.stop - 1] + 1]

    def all(self) -> torch.Tensor:
        """Crops of every frame with a face: [N, 3, R, R]."""
        if self._crops is None:
            self._crops = self._read()
        return self._crops

    def _read(self) -> torch.Tensor:
        alignment, valid = self.alignment, self.alignment.valid
        resolution = alignment.resolution
        crops = np.zeros((int(valid.sum()), resolution, resolution, 3), dtype=np.uint8)  # [N, R, R, 3]
        with self.progress.task("crops", total=alignment.num_frames, unit="frame") as task:
            for frame in video.VideoReader(self.path).frames(upright=True):
                task.advance()
                if frame.index < alignment.num_frames and valid[frame.index]:
                    crops[self.slot[frame.index]] = warp_to_crop(
                        frame.image, alignment.matrices[frame.index], resolution
                    )
        return images_from_uint8(crops)  # [N, 3, R, R]
