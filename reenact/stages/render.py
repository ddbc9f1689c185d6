"""Rendering: W+ latents rendered to uint8 crops [R, R, 3] by a generator, handed to paste-back in order.

One process renders every latent itself, `RENDER_BATCH` at a time (`render_batches`), and hands each
batch to paste-back through a bounded queue in memory (`RenderStream`: at most `QUEUE_BATCHES` batches
wait), so rendering, paste-back and encoding overlap and memory stays flat in the clip's length. On a
CUDA run a batch stays on the device: paste-back takes it there (`reenact.composite_torch`), with no
copy to the host and back.

Renders never go to the workspace in one process: redoing them costs a killed run one generator forward
per frame, a small share of what the run spent per frame, while storing them would cost every run their
PNG encoding, hashing and decoding on the ending's path (`docs/architecture.md` has the measurement). A
killed run loses only renders; the next run renders them again, to the same bits.

Under `torchrun` the main rank renders the first share of the latents in memory in the same way
(`main_share`), and the other ranks render the rest as a workspace stage (`RenderStage`): parts of
`RENDER_PART` latents, each written as losslessly compressed crops (`reenact.files.ImageWriter`), merged
by linking, read back batch by batch (`stored_batches`) after the main rank's own share. Its key is the
generator's (the tuned one's stage key, or the source's hash) and the latents' own hash (swept a batch at
a time: the latents may be computed on demand, `reenact.latents`), so a group that failed in its encode
resumes from the stored parts; the main rank drops them once the encode has succeeded
(`Workspace.drop`).
"""

from __future__ import annotations

import collections.abc
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reenact.device import Runtime, autocast, numerics_key, to_device
from reenact.distributed import part_size, shard
from reenact.files import ImageWriter
from reenact.gan.stylegan2 import Generator
from reenact.imaging import images_to_uint8
from reenact.latents import ComputedLatents, LatentSource, latent_digest
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.stages.base import STAGE_VERSION, FrameRange, Work, link_parts, split_range
from reenact.stages.crops import CROPS_FILE, PART_PREFIX, CropStore
from reenact.workspace import StageKey, stage_key

RENDER_PART = 64
"""Latents per part of the other ranks' share: what an interrupted group render loses at most."""
RENDER_BATCH = 8
"""Latents per generator call, and crops per batch handed to paste-back."""
RENDER_PNG_LEVEL = 1
"""zlib level of a stored rendered crop: the fastest, as stored renders live only until their encode
succeeds."""
QUEUE_BATCHES = 2
"""Rendered batches that wait for paste-back at most: enough to absorb either side's jitter. Besides
them, one batch is being rendered and paste-back reads from one."""

Crops = torch.Tensor | np.ndarray
"""Rendered crops [n, R, R, 3] uint8: a tensor on the render's device, or a host array read from the
workspace."""


class RenderCancelled(Exception):
    """Paste-back stopped taking crops (it finished or failed): the render stops at its next batch."""


@dataclass(frozen=True)
class CropBatch:
    """Consecutive rendered crops [n, R, R, 3] uint8, of latents `start` to `start + n`."""

    start: int
    crops: Crops

    @property
    def stop(self) -> int:
        return self.start + len(self.crops)


Batches = collections.abc.Generator[CropBatch, None, None]
"""A render's batches, in order (`render_batches`, `stored_batches`, or both in turn)."""


def render_batch(generator: Generator, ws: torch.Tensor, *, runtime: Runtime) -> torch.Tensor:
    """Latents [B, num_ws, w_dim] rendered to crops [B, R, R, 3] uint8, left on the run's device."""
    with torch.no_grad(), autocast(runtime):
        images = generator.synthesis(
            to_device(ws, runtime.device), noise_mode="const"
        ).float()  # [B, 3, R, R]
    return images_to_uint8(images)  # [B, R, R, 3]


def render_batches(
    generator: Generator,
    latents: LatentSource,
    *,
    stop: int,
    runtime: Runtime,
    work: Work,
    progress: Progress = SILENT,
) -> Batches:
    """Latents [0, stop) of `latents` [M, num_ws, w_dim] rendered `RENDER_BATCH` at a time, in order, on the
    run's device; each batch's frames, renders and seconds are added to `work`."""
    with progress.task("render", total=stop, unit="frame") as task:
        for start in range(0, stop, RENDER_BATCH):
            frames = FrameRange(start, min(start + RENDER_BATCH, stop))
            began = time.perf_counter()
            crops = render_batch(generator, latents[frames.start : frames.stop], runtime=runtime)
            work.add(frames, renders=Renders(forward=len(frames)), seconds=time.perf_counter() - began)
            task.advance(len(frames))
            yield CropBatch(start, crops)


def stored_batches(store: CropStore, *, offset: int) -> Batches:
    """A stored render's crops as host batches of `RENDER_BATCH`, numbered from `offset` (the latents
    before it are the main rank's own share)."""
    for start in range(0, len(store), RENDER_BATCH):
        rows = np.arange(start, min(start + RENDER_BATCH, len(store)), dtype=np.int64)
        yield CropBatch(offset + start, store.rows.read(rows))  # [n, R, R, 3]


def main_share(count: int, *, ranks: int) -> int:
    """Latents [0, share) of `count` that the main rank renders itself, in memory: about 1 / `ranks` of
    them (all of them in one process); the other ranks render the rest (`RenderStage`)."""
    return -(-count // max(ranks, 1))


class RenderStage:
    """The other ranks' share of a group's render, stored in the shared workspace (see the module
    docstring): `latents` [M, num_ws, w_dim] rendered by the ranks `ranks`, each a contiguous block of
    parts."""

    name = "render"

    def __init__(
        self,
        generator: Generator,
        latents: LatentSource,
        *,
        generator_digest: str,
        runtime: Runtime,
        ranks: range,
        progress: Progress = SILENT,
    ) -> None:
        self.generator = generator
        self.latents = latents  # [M, num_ws, w_dim]
        self.runtime = runtime
        self.progress = progress
        self.ranks = ranks
        """The ranks that compute its parts; the result does not depend on them."""
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
        return split_range(
            FrameRange(0, count), size=part_size(count, limit=RENDER_PART, shards=len(self.ranks))
        )

    @property
    def owners(self) -> list[int]:
        """The rank of each part (`stages.base.part_owners`)."""
        sizes = [len(frames) for frames in self.ranges()]
        return [self.ranks.start + owner for owner in shard(sizes, shards=len(self.ranks))]

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
                ws = self.latents[start : min(start + RENDER_BATCH, frames.stop)]
                out.write(
                    render_batch(self.generator, ws, runtime=self.runtime).cpu().numpy()
                )  # [B, R, R, 3]
                task.advance(len(ws))
        return Renders(forward=len(frames))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=CROPS_FILE, prefix=PART_PREFIX)
        return {"crops": len(self.latents)}

    def load(self, directory: Path) -> CropStore:
        return CropStore(directory)


def latent_rows(latents: LatentSource, *, start: int) -> LatentSource:
    """The rows of `latents` from `start` on, addressed from 0 (the other ranks' share)."""
    return ComputedLatents(
        len(latents) - start,
        row_shape=tuple(latents.shape[1:]),
        rows=lambda rows: latents[rows + start],
    )


class RenderStream:
    """Rendered crops handed to paste-back through a bounded queue, in slot order: `produce()` yields
    `CropBatch`es in order, in a background thread, while the caller pastes back and encodes.

    At most `capacity` batches wait in the queue (`peak` says how many did at once); the render blocks
    until paste-back takes one. `crop(slot)` waits for the batch that holds `slot`; slots are asked for in
    order (a slot may be asked for again, the rest of its batch too). Leaving the `with` block stops the
    render at its next batch (paste-back is done, or failed: its error goes on) and waits for the thread;
    an error of the render is raised in the caller, at its next `crop` or when the block ends.
    """

    def __init__(self, produce: Callable[[], Batches], *, count: int, capacity: int = QUEUE_BATCHES) -> None:
        self._produce = produce
        self._count = count
        self._capacity = capacity
        self._ready = threading.Condition()
        self._queue: deque[CropBatch] = deque()
        self._finished = False  # the render yielded its last batch
        self._stopped = False  # paste-back left: the render stops
        self._error: BaseException | None = None
        self._batch: CropBatch | None = None  # the batch paste-back reads from
        self.peak = 0
        """The most batches that waited in the queue at once."""
        self._thread = threading.Thread(target=self._run, name="render", daemon=True)

    def __len__(self) -> int:
        return self._count

    def __enter__(self) -> RenderStream:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        with self._ready:
            self._stopped = True
            self._queue.clear()
            self._ready.notify_all()
        self._thread.join()
        self._batch = None
        if exc_type is None and self._error is not None and not isinstance(self._error, RenderCancelled):
            raise self._error

    def _run(self) -> None:
        try:
            with contextlib.closing(self._produce()) as batches:  # closed at once when paste-back leaves
                for batch in batches:
                    self._put(batch)
        except BaseException as error:  # handed to the consumer, which raises it
            with self._ready:
                self._error = error
                self._ready.notify_all()
            return
        with self._ready:
            self._finished = True
            self._ready.notify_all()

    def _put(self, batch: CropBatch) -> None:
        with self._ready:
            while len(self._queue) >= self._capacity and not self._stopped:
                self._ready.wait()
            if self._stopped:
                raise RenderCancelled
            self._queue.append(batch)
            self.peak = max(self.peak, len(self._queue))
            self._ready.notify_all()

    def _next(self) -> CropBatch:
        """The next batch of the queue, once the render has put it there; the render's error is raised."""
        with self._ready:
            while not self._queue:
                if self._error is not None:
                    raise self._error
                if self._finished or self._stopped:
                    raise IndexError(
                        f"internal error: the render ended before the last crop of {self._count}"
                    )
                self._ready.wait()
            batch = self._queue.popleft()
            self._ready.notify_all()
            return batch

    def crop(self, slot: int) -> Crops:
        """The rendered crop [R, R, 3] uint8 of latent `slot`: a view of its batch, where it was rendered (on
        the device) or read (on the host)."""
        while self._batch is None or slot >= self._batch.stop:
            self._batch = self._next()
        if slot < self._batch.start:
            raise IndexError(f"internal error: crop {slot} asked for after crop {self._batch.start}")
        return self._batch.crops[slot - self._batch.start]
