"""Render stage: W+ latents rendered to uint8 crops by a generator, by parts of `RENDER_PART` latents.

Each part renders its latents in batches of `RENDER_BATCH` and writes the crops [n, R, R, 3] uint8 to
one `.npy` as they come (never holding the part); the merge only links the parts into the result, in
the crops stage's layout, read back crop by crop (`CropStore`), never as a whole clip. The key is the
generator's (the tuned one's stage key, or the source's hash) and the latents' own hash (swept a batch
at a time: the latents may be computed on demand, `reenact.latents`), so the same
latents rendered again, e.g. to another output file or after an interrupted encode, are not rendered
twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from reenact.device import Runtime, autocast, to_device
from reenact.files import RowWriter
from reenact.gan.stylegan2 import Generator
from reenact.imaging import images_to_uint8
from reenact.latents import LatentSource, latent_digest
from reenact.progress import SILENT, Progress
from reenact.stages.base import STAGE_VERSION, FrameRange, link_parts, split_range
from reenact.stages.crops import CROPS_FILE, PART_PREFIX, CropStore
from reenact.workspace import StageKey, stage_key

RENDER_PART = 256
"""Latents per part: what an interrupted render loses at most."""
RENDER_BATCH = 8
"""Latents per generator call."""


class RenderStage:
    """Latents rendered to crops (see the module docstring)."""

    name = "render"

    def __init__(
        self,
        generator: Generator,
        latents: LatentSource,
        *,
        generator_digest: str,
        runtime: Runtime,
        progress: Progress = SILENT,
    ) -> None:
        self.generator = generator
        self.latents = latents  # [M, num_ws, w_dim]
        self.runtime = runtime
        self.progress = progress
        self.key: StageKey = stage_key(
            "render",
            {
                "version": STAGE_VERSION,
                "generator": generator_digest,
                "latents": latent_digest(latents),
                "autocast": str(runtime.autocast_dtype),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return split_range(FrameRange(0, len(self.latents)), size=RENDER_PART)

    def compute(self, frames: FrameRange, part: Path) -> None:
        resolution = self.generator.resolution
        with (
            self.progress.task("render", total=len(frames), unit="frame") as task,
            RowWriter(
                part / CROPS_FILE, rows=len(frames), row_shape=(resolution, resolution, 3), dtype=np.uint8
            ) as out,
        ):
            for start in range(frames.start, frames.stop, RENDER_BATCH):
                ws = to_device(
                    self.latents[start : min(start + RENDER_BATCH, frames.stop)], self.runtime.device
                )
                with torch.no_grad(), autocast(self.runtime):
                    images = self.generator.synthesis(ws, noise_mode="const").float()  # [B, 3, R, R]
                out.write(images_to_uint8(images).cpu().numpy())  # [B, R, R, 3]
                task.advance(len(ws))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=CROPS_FILE, prefix=PART_PREFIX)
        return {"crops": len(self.latents)}

    def load(self, directory: Path) -> CropStore:
        return CropStore(directory)
