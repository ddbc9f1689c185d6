"""Expression stage: a driver's expression read on a base in W (`edit.driver_base = "w"`).

A driver's W+ pivots fit its pictures along directions the pictures barely show; offsets measured between
them draw, on the target, what the driver never showed. Here the driver's neutral frame is fitted in W
(one w on every layer, `BaseStage`), and every frame's expression layers alone are fitted from that base,
every other layer held (`ExpressionStage`); the offsets are the fits' differences on those layers
(`pipeline.driver_offsets`).

Parts: the base is one part (the neutral frame); the frames are the clip's runs cut into
`invert.segment_frames` pieces. Every frame starts from the base, never from a neighbour, so the parts
run in any order and on any number of ranks with the same result.

Merge: the parts' codes [n, num_ws, w_dim] linked in frame order, read back a batch at a time, with the
frames and PSNRs (the result has the shape of the inversion's, `stages.invert.Pivots`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reenact.config import Config, config_to_dict
from reenact.device import Runtime, numerics_key
from reenact.files import save_array
from reenact.generator_source import GeneratorSource
from reenact.invert import fit_in_w, refit_frames
from reenact.progress import SILENT, Progress
from reenact.pti import clip_psnr
from reenact.renders import NONE, Renders
from reenact.stages.base import STAGE_VERSION, FrameRange, Need, adopt
from reenact.stages.crops import ClipCrops
from reenact.stages.invert import Pivots, merge_pivot_parts, save_pivot_part
from reenact.stages.keys import segments_of
from reenact.workspace import StageKey, stage_key

BASE_FILE = "base.npy"
"""The base [1, num_ws, w_dim] float32 (the neutral frame's code in W)."""


class BaseStage:
    """The driver's neutral frame `ref` fitted in W from the start point (`edit.base_steps`)."""

    name = "base"

    def __init__(
        self,
        crops: ClipCrops,
        *,
        ref: int,
        align: StageKey,
        source: GeneratorSource,
        settings: Config,
        perceptual: nn.Module | None,
        runtime: Runtime,
    ) -> None:
        self.crops = crops
        self.needs: list[Need[Any]] = [crops]
        self.ref = ref
        self.source = source
        self.config = settings.invert
        self.steps = settings.edit.base_steps
        self.perceptual = perceptual
        self.runtime = runtime
        self.key = stage_key(
            "base",
            {
                "version": STAGE_VERSION,
                "align": align.digest,
                "generator": source.digest,
                "ref": ref,
                "invert": config_to_dict(self.config),
                "steps": self.steps,
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return [FrameRange(self.ref, self.ref + 1)]

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        base, renders = fit_in_w(
            self.source.generator,
            self.crops.store().window(self.crops.slots(frames)),
            config=self.config,
            perceptual=self.perceptual,
            runtime=self.runtime,
            steps=self.steps,
        )  # [1, num_ws, w_dim]
        save_array(part / BASE_FILE, base.float().numpy())
        return renders

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        (part,) = parts
        adopt(part / BASE_FILE, directory / BASE_FILE)
        return {"ref": self.ref}

    def load(self, directory: Path) -> torch.Tensor:
        return torch.from_numpy(np.load(directory / BASE_FILE))


class ExpressionStage:
    """Every driver frame's expression layers (`free`) fitted from the base, every other layer held."""

    name = "expression"

    def __init__(
        self,
        crops: ClipCrops,
        *,
        base: Need[torch.Tensor],
        base_key: StageKey,
        free: torch.Tensor,
        source: GeneratorSource,
        settings: Config,
        perceptual: nn.Module | None,
        runtime: Runtime,
        progress: Progress = SILENT,
    ) -> None:
        """`free`: bool [num_ws], the layers fitted (`edit.layer_mask` of `edit.layers`)."""
        self.crops = crops
        self.base = base
        self.needs: list[Need[Any]] = [crops, base]
        self.segments = segments_of(crops.alignment, size=settings.invert.segment_frames)
        self.free = free.bool()
        self.source = source
        self.config = settings.invert
        self.steps = settings.edit.expression_steps
        self.perceptual = perceptual
        self.runtime = runtime
        self.progress = progress
        self.key = stage_key(
            "expression",
            {
                "version": STAGE_VERSION,
                "base": base_key.digest,
                "free": self.free.tolist(),
                "steps": self.steps,
                "invert": config_to_dict(self.config),
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return list(self.segments)

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        generator = self.source.generator
        store, slots = self.crops.store(), self.crops.slots(frames)
        targets = store.window(slots)
        base = self.base.get()  # [1, num_ws, w_dim]
        fitted, renders = [], NONE
        with self.progress.task("expression", total=len(frames), unit="frame") as task:
            for begin in range(0, len(frames), self.config.batch_size):
                stop = min(begin + self.config.batch_size, len(frames))
                chunk = store.window(slice(slots.start + begin, slots.start + stop))
                codes, cost = refit_frames(
                    generator,
                    chunk,
                    base.expand(len(chunk), -1, -1),
                    config=self.config,
                    perceptual=self.perceptual,
                    runtime=self.runtime,
                    steps=self.steps,
                    free=self.free,
                )  # [b, num_ws, w_dim]
                fitted.append(codes)
                renders += cost
                task.advance(len(chunk))
        codes = torch.cat(fitted)  # [n, num_ws, w_dim]
        psnr = clip_psnr(generator, targets, codes, frames=torch.arange(len(frames)))  # [n]
        save_pivot_part(part, codes, psnr)
        return renders + Renders(forward=len(frames))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        return merge_pivot_parts(self.ranges(), parts, directory, alignment=self.crops.alignment)

    def load(self, directory: Path) -> Pivots:
        return Pivots.load(directory)
