"""Tuning stage: ONE pivotal-tuning pass of the generator over the whole clip (`reenact.pti`).

The one stage that is a single optimisation, so it has one part over all pivots, computed by every
rank of a group together (`collective`: data-parallel, `reenact.pti`). It is resumable all the same:
its checkpoints live in the stage's scratch folder (the parent of the part being built), so a killed
run continues from the last one and ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from reenact.config import Config, config_to_dict
from reenact.device import Runtime, maybe_compile, numerics_key
from reenact.distributed import SINGLE, Group
from reenact.gan.checkpoints import load_generator, save_generator
from reenact.gan.stylegan2 import Generator
from reenact.generator_source import GeneratorSource
from reenact.progress import SILENT, Progress
from reenact.pti import CheckpointError, TuneResult, times_drawn, tune_generator, tuning_batch
from reenact.renders import Renders
from reenact.stages.base import STAGE_VERSION, FrameRange, adopt
from reenact.stages.crops import ClipCrops
from reenact.stages.invert import Pivots
from reenact.workspace import MANIFEST, StageKey, stage_key

GENERATOR_FILE = "generator.safetensors"
SUMMARY_FILE = "tune.json"
CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class Tuned:
    """The tuned generator and what tuning bought."""

    generator: Generator
    psnr_before: float
    psnr_after: float
    steps: int


class TuneStage:
    """A clip's tuned generator (see the module docstring)."""

    name = "tune"
    collective = True

    def __init__(
        self,
        crops: ClipCrops,
        *,
        pivots: Pivots,
        invert: StageKey,
        source: GeneratorSource,
        settings: Config,
        lpips: nn.Module | None,
        runtime: Runtime,
        progress: Progress = SILENT,
        group: Group = SINGLE,
    ) -> None:
        self.crops = crops
        self.needs = [crops]
        self.group = group
        self.pivots = pivots
        self.source = source
        self.settings = settings
        self.lpips = lpips
        self.runtime = runtime
        self.progress = progress
        self.resumed_from = 0
        """The checkpoint step this process's tuning resumed from (0: fresh, or not computed here)."""
        self.key = stage_key(
            "tune",
            {
                "version": STAGE_VERSION,
                "invert": invert.digest,
                "generator": source.digest,
                "pti": config_to_dict(settings.pti),
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return [FrameRange(0, len(self.pivots.frames))]

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """Tune on every frame with a face (`frames` is the one part, all of them)."""
        checkpoint = part.parent / CHECKPOINT_FILE

        def tune() -> TuneResult:
            return tune_generator(
                self.source.generator,
                self.crops.store(),
                self.pivots.ws,
                config=self.settings.pti,
                perceptual=self.lpips,
                runtime=self.runtime,
                checkpoint=checkpoint,
                progress=self.progress,
                group=self.group,
                pivot_psnr=self.pivots.psnr,
            )

        try:
            result = tune()
        except CheckpointError as exc:  # this stage's own scratch: damaged or swapped, so start over
            self.progress.note(f"warning: {exc}; tuning starts over")
            checkpoint.unlink(missing_ok=True)
            result = tune()
        self.resumed_from = result.resumed_from
        save_generator(result.generator, part / GENERATOR_FILE)
        per_shot = self.frames_drawn_per_shot(result.steps)
        covered = int((per_shot > 0).sum())
        self.progress.note(
            f"tune: batches drew from {covered} of {len(per_shot)} shots with a face "
            f"(fewest frames drawn from one: {int(per_shot.min())})"
        )
        summary = {
            "psnr_before": float(result.psnr_before.mean()),
            "psnr_after": float(result.psnr_after.mean()),
            "steps": result.steps,
            "resumed_from": result.resumed_from,
            "frames_drawn_per_shot": per_shot.tolist(),
        }
        (part / SUMMARY_FILE).write_text(json.dumps(summary))
        return result.renders

    def frames_drawn_per_shot(self, steps: int) -> np.ndarray:
        """Frames tuning's batches drew from each shot that has a face, over `steps` steps: [shots]."""
        config = self.settings.pti
        drawn = times_drawn(
            steps,
            num_frames=len(self.pivots.frames),
            batch_size=tuning_batch(len(self.pivots.frames), config=config, ranks=self.group.size),
            seed=config.seed,
        )
        starts = np.array([first for first, _ in self.crops.alignment.track.segments], dtype=np.int64)
        shot = np.searchsorted(starts, self.pivots.frames, side="right") - 1  # [N] shot of each frame
        per_shot = np.bincount(shot, weights=drawn, minlength=len(starts)).astype(np.int64)
        return per_shot[np.unique(shot)]

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        (part,) = parts
        adopt(part / GENERATOR_FILE, directory / GENERATOR_FILE)
        return json.loads((part / SUMMARY_FILE).read_text())

    def load(self, directory: Path) -> Tuned:
        summary = json.loads((directory / MANIFEST).read_text())["summary"]
        generator = load_generator(directory / GENERATOR_FILE, device=self.runtime.device)
        maybe_compile(generator.synthesis, runtime=self.runtime)  # the render runs compiled under --compile
        return Tuned(
            generator=generator.eval().requires_grad_(False),
            psnr_before=summary["psnr_before"],
            psnr_after=summary["psnr_after"],
            steps=summary["steps"],
        )
