"""Render stage: W+ latents rendered to uint8 crops by a generator, by parts of `RENDER_PART` latents.

Each part renders its latents in batches of `RENDER_BATCH` and writes the crops [n, R, R, 3] uint8 to
one losslessly compressed part file as they come (`reenact.files.ImageWriter`, never holding the part);
the merge only links the parts into the result, in the crops stage's layout, read back crop by crop
(`CropStore`), never as a whole clip. The key is the generator's (the tuned one's stage key, or the
source's hash) and the latents' own hash (swept a batch at a time: the latents may be computed on
demand, `reenact.latents`), so the same latents are not rendered twice within a run, after a killed
render or after an interrupted encode.

Renders are cheap to redo (one generator forward per frame) and as large as the crops, so they do not
stay: once the encode that consumed them has succeeded, `RenderStream` drops the stage's result and
scratch (`Workspace.drop`). A killed run keeps them, and the next run resumes from them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reenact.device import Runtime, autocast, numerics_key, to_device
from reenact.distributed import part_size
from reenact.files import ImageWriter, read_images
from reenact.gan.stylegan2 import Generator
from reenact.imaging import images_to_uint8
from reenact.latents import LatentSource, latent_digest
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.stages.base import STAGE_VERSION, FrameRange, link_parts, split_range
from reenact.stages.crops import CROPS_FILE, PART_PREFIX, CropStore
from reenact.workspace import StageKey, stage_key

RENDER_PART = 64
"""Latents per part: what an interrupted render loses at most."""
RENDER_BATCH = 8
"""Latents per generator call."""
RENDER_PNG_LEVEL = 1
"""zlib level of a rendered crop: the fastest, as renders live only until their encode succeeds."""


class RenderCancelled(Exception):
    """The render's consumer stopped; the unfinished part is dropped, the finished ones are kept."""


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
        cancel: threading.Event | None = None,
        shards: int = 1,
    ) -> None:
        self.generator = generator
        self.shards = shards
        """Ranks the rendering is split over; the result does not depend on it."""
        self.cancel = cancel
        """Set by a consumer that gave up (`RenderStream`): the part in work stops at its next batch."""
        self.latents = latents  # [M, num_ws, w_dim]
        self.runtime = runtime
        self.progress = progress
        self.key: StageKey = stage_key(
            "render",
            {
                "version": STAGE_VERSION,
                "generator": generator_digest,
                "latents": latent_digest(latents),
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        count = len(self.latents)
        return split_range(FrameRange(0, count), size=part_size(count, limit=RENDER_PART, shards=self.shards))

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        resolution = self.generator.resolution
        with (
            self.progress.task("render", total=len(frames), unit="frame") as task,
            ImageWriter(
                part / CROPS_FILE,
                rows=len(frames),
                image_shape=(resolution, resolution, 3),
                level=RENDER_PNG_LEVEL,
            ) as out,
        ):
            for start in range(frames.start, frames.stop, RENDER_BATCH):
                if self.cancel is not None and self.cancel.is_set():
                    raise RenderCancelled
                ws = to_device(
                    self.latents[start : min(start + RENDER_BATCH, frames.stop)], self.runtime.device
                )
                with torch.no_grad(), autocast(self.runtime):
                    images = self.generator.synthesis(ws, noise_mode="const").float()  # [B, 3, R, R]
                out.write(images_to_uint8(images).cpu().numpy())  # [B, R, R, 3]
                task.advance(len(ws))
        return Renders(forward=len(frames))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=CROPS_FILE, prefix=PART_PREFIX)
        return {"crops": len(self.latents)}

    def load(self, directory: Path) -> CropStore:
        return CropStore(directory)


class RenderStream:
    """The render stage run in a background thread while the caller pastes back and encodes: a
    producer/consumer pipeline, so the CPU's paste-back overlaps the generator's rendering.

    `run(on_part)` runs the stage (cached or computed) and returns its `CropStore`; each part is handed
    over as soon as it is finished, and `crop(slot)` waits for the part that holds `slot`. Leaving the
    `with` block on an error cancels the render at its next batch (finished parts stay in the workspace)
    and waits for the thread; an error of the render is raised in the consumer. Leaving it without one
    calls `drop` (the main rank's: remove the renders, consumed), after the render has finished.
    """

    def __init__(
        self,
        run: Callable[[Callable[[FrameRange, Path], None]], CropStore],
        *,
        ranges: list[FrameRange],
        cancel: threading.Event,
        drop: Callable[[], None] | None = None,
    ) -> None:
        self._run = run
        self._drop = drop
        self._starts = np.array([frames.start for frames in ranges], dtype=np.int64)
        self._count = ranges[-1].stop if ranges else 0
        self._cancel = cancel
        self._ready = threading.Condition()
        self._parts: dict[int, Path] = {}  # part number -> its finished crops file
        self._store: CropStore | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._produce, name="render", daemon=True)

    def __len__(self) -> int:
        return self._count

    def __enter__(self) -> RenderStream:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self._cancel.set()
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error
        if exc_type is None and self._drop is not None:
            self._drop()

    def _produce(self) -> None:
        try:
            store = self._run(self._part_done)
        except BaseException as error:  # handed to the consumer, which raises it
            with self._ready:
                self._error = error
                self._ready.notify_all()
            return
        with self._ready:
            self._store = store
            self._ready.notify_all()

    def _part_done(self, frames: FrameRange, part: Path) -> None:
        with self._ready:
            self._parts[int(np.searchsorted(self._starts, frames.start))] = part / CROPS_FILE
            self._ready.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Wait (holding the condition) until `ready()`; the render's error is raised here."""
        while not ready():
            if self._error is not None:
                raise self._error
            self._ready.wait()

    def crop(self, slot: int) -> np.ndarray:
        """The rendered crop [R, R, 3] uint8 of latent `slot`, once its part is finished."""
        number = int(np.searchsorted(self._starts, slot, side="right")) - 1
        with self._ready:
            self._wait(lambda: self._store is not None or number in self._parts)
            store, path = self._store, self._parts.get(number)
        if store is None and path is not None:
            try:
                return read_images(path, slot - int(self._starts[number]))
            except FileNotFoundError:  # the merge has moved the part into the result meanwhile
                with self._ready:
                    self._wait(lambda: self._store is not None)
                    store = self._store
        assert store is not None
        return store.crop(slot)
