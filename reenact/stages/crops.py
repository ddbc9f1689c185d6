"""Crops stage: the aligned crops of a clip's frames with a face, cached on disk, read a batch at a time.

Inversion and tuning read crops many times and in any order (tuning draws its batches from the whole
clip), so the crops are warped once and stored in the workspace, losslessly compressed (one PNG per crop,
`CROP_PNG_LEVEL`), in parts of `CROP_PART_FRAMES` clip frames (`crops-START-STOP.pngs`, only the frames
with a face; `reenact.files.ImageWriter`). Every crop can be read alone, so readers open the part files
they need for one batch (`reenact.files.ImageParts`), decode only its crops and let them go: nothing held
grows with the clip, and a crop reads back bit for bit as it was warped.
The stage runs only when a stage that needs pixels computes: a cached inversion and tuning never ask.

Disk: a compressed crop per frame with a face (docs/architecture.md gives the measured size);
`reenact cache` shows and prunes it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reenact.colour import FACE_COLOUR, SourceColour, to_face_space
from reenact.distributed import part_size
from reenact.faces.align import warp_to_crop
from reenact.files import ImageParts, ImageWriter, index_rows
from reenact.imaging import images_from_uint8
from reenact.progress import SILENT, Progress
from reenact.renders import NONE, Renders
from reenact.stages.align import ClipAlignment, FrameCursor
from reenact.stages.base import STAGE_VERSION, FrameRange, Need, StageJob, link_parts, split_range
from reenact.timeline import Window
from reenact.workspace import StageKey, stage_key

CROP_PART_FRAMES = 256
"""Clip frames per part: what an interrupted crop pass loses at most."""
MEGABYTE = 1e6
CROP_PNG_LEVEL = 3
"""zlib level of a stored crop: the measured trade of size against encoding time (docs/architecture.md,
`benchmarks/bench_crops.py --codecs`); any level reads back the same pixels."""
CROPS_FILE = "crops.pngs"
PART_PREFIX = "crops-"
PART_SUFFIX = ".pngs"


class CropStore:
    """The stored crops, addressed by slot (the index of a frame among the frames with a face).

    `store[a:b]` or `store[indices]` gives float32 crops [n, 3, R, R] in [-1, 1] on the CPU; a [N, 3, R, R]
    tensor answers the same two questions, so the maths takes either."""

    def __init__(self, directory: Path) -> None:
        self.rows = ImageParts(directory, prefix=PART_PREFIX, suffix=PART_SUFFIX)
        self.resolution = self.rows.row_shape[0] if self.rows.row_shape else 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def disk_bytes(self) -> int:
        return self.rows.disk_bytes

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        return images_from_uint8(self.rows.read(index_rows(index, length=len(self))))  # [n, 3, R, R]

    def crop(self, slot: int) -> np.ndarray:
        """The crop [R, R, 3] uint8 of one slot (paste-back reads them one at a time)."""
        return self.rows.read(np.array([slot], dtype=np.int64))[0]

    def window(self, slots: slice) -> CropWindow:
        """The crops of `slots` alone, addressed from 0 (one inversion segment's targets)."""
        return CropWindow(self, slots)


class CropWindow:
    """A contiguous run of a store's slots, addressed from 0: itself a `CropSource`."""

    def __init__(self, store: CropStore, slots: slice) -> None:
        self.store = store
        self.start, self.stop, _ = slots.indices(len(store))

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return self.store[slice(self.start + start, self.start + stop, step)]
        return self.store[np.asarray(index, dtype=np.int64) + self.start]


class CropsStage:
    """A clip's aligned crops at one resolution (see the module docstring)."""

    name = "crops"

    def __init__(
        self,
        path: Path,
        alignment: ClipAlignment,
        *,
        align: StageKey,
        progress: Progress = SILENT,
        shards: int = 1,
        window: Window | None = None,
        fps: Fraction | None = None,
        colour: SourceColour = FACE_COLOUR,
    ) -> None:
        """`window`: the slice of the clip that `alignment` aligned (its key is in `align`); `fps`: the
        clip's frame rate when it is an image sequence (`video.probe`); `colour`: the clip's, which each
        crop is moved out of into the faces' (`colour.to_face_space`)."""
        self.colour = colour
        self.path = path
        self.shards = shards
        """Ranks the crops are split over; the result does not depend on it."""
        self.alignment = alignment
        self.progress = progress
        converted = colour.key()  # None where nothing is converted: the key stays as it was
        self.key = stage_key(
            "crops",
            {"version": STAGE_VERSION, "align": align.digest, "resolution": alignment.resolution}
            | ({} if converted is None else {"colour": converted}),
        )
        self._cursor = FrameCursor(path, fps=fps, window=window)

    def ranges(self) -> list[FrameRange]:
        frames = self.alignment.num_frames
        return split_range(
            FrameRange(0, frames), size=part_size(frames, limit=CROP_PART_FRAMES, shards=self.shards)
        )

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """Decode and warp the part's frames, each crop written to the part's file as it is made."""
        alignment, resolution = self.alignment, self.alignment.resolution
        count = int(alignment.valid[frames.start : frames.stop].sum())
        indices = range(frames.start, frames.stop)
        with (
            self.progress.task("crops", total=len(frames), unit="frame") as task,
            ImageWriter(
                part / CROPS_FILE, rows=count, image_shape=(resolution, resolution, 3), level=CROP_PNG_LEVEL
            ) as out,
        ):
            for index, image in zip(indices, self._cursor.images(frames), strict=False):
                task.advance()
                if alignment.valid[index]:
                    crop = warp_to_crop(image, alignment.matrices[index], resolution)  # [R, R, 3]
                    out.write(to_face_space(crop, self.colour))
        return NONE

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=CROPS_FILE, prefix=PART_PREFIX)
        return {"crops": int(self.alignment.valid.sum())}

    def load(self, directory: Path) -> CropStore:
        return CropStore(directory)


class ClipCrops(Need[CropStore]):
    """A clip's crops as a stage's need (`reenact.stages.base.Need`): the runner runs the crops stage
    (cached) only when a stage that needs pixels computes, so a run whose inversion and tuning are cached
    never decodes the clip for them."""

    def __init__(self, stage: CropsStage, *, name: str) -> None:
        super().__init__(
            StageJob(
                stage,
                name=name,
                detail=lambda store: f"{len(store)} crops, {store.disk_bytes / MEGABYTE:.1f} MB on disk",
            )
        )
        self.alignment = stage.alignment

    def store(self) -> CropStore:
        return self.get()

    def slots(self, frames: FrameRange) -> slice:
        """The slots of `frames` (all of which have a face)."""
        before = int(self.alignment.valid[: frames.start].sum())
        return slice(before, before + len(frames))
