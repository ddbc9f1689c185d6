"""Key chain stage: the warm chain of every `invert.key_stride`-th frame of each run, where inversion segments
start and end.

Inversion cuts a run (consecutive frames with a face in one shot) into segments of `invert.segment_frames`
(`stages.invert`), a multiple of `key_stride`. A segment started afresh lands elsewhere in W+ for the
same picture, and a segment that waits for the one before it cannot run beside it. So the clip is first
inverted coarsely: one warm chain through its key frames (every `key_stride`-th frame of each run, so
every segment's first frame). Its first frame starts from the start point; the first key frame of every
later run (after a cut or a gap) starts from the last key pivot of the run before, with the same full
budget (`run_start_config`): a chain started afresh at a cut fits as well but may land in another basin
of W+, where the same face's expression moves along other directions (docs/distributed.md). Every
segment is then one warm chain from its first frame's key pivot to the next segment's first frame
(`segment_chain`), registered to the key chain (`register_to_keys`): it meets the key chain at every key
frame, both ends included, so all segments sit in one basin of W+ and run in any order, on any number of
ranks. Nothing depends on the ranks: the key frames and the segments are the clip's own.

Parts: one run each, computed in order by one rank (`owners`), each reading the last key pivot of the
part before it; its key pivots are written as they finish. Merge: the key pivots [K, num_ws, w_dim] and
their frames [K], read one pivot at a time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reenact.config import Config, InvertConfig, config_to_dict
from reenact.device import Runtime, numerics_key
from reenact.errors import ReenactError
from reenact.files import index_rows, save_array
from reenact.gan.stylegan2 import Generator
from reenact.generator_source import GeneratorSource
from reenact.imaging import CropSource
from reenact.invert import Finished, invert_frames, refit_frames
from reenact.latents import LatentSource, LatentWriter, StoredLatents
from reenact.progress import SILENT, Progress
from reenact.renders import NONE, Renders
from reenact.stages.align import ClipAlignment
from reenact.stages.base import STAGE_VERSION, FrameRange, link_parts, split_range
from reenact.stages.crops import ClipCrops
from reenact.workspace import StageKey, stage_key

KEYS_FILE = "keys.npy"
"""A part's key pivots [k, num_ws, w_dim] float32; linked into the result as `keys-START-STOP.npy`."""
KEYS_PREFIX = "keys-"
KEY_FRAMES_FILE = "key_frames.npy"
"""Their clip frames [K] int64, ascending."""
RUN_STARTS = "continued"
"""How a run after a clip's first starts its key chain (part of the stage key): from the key chain so far."""


def segments_of(alignment: ClipAlignment, *, size: int) -> list[FrameRange]:
    """The clip's inversion segments: its runs, each cut into pieces of `size` frames
    (`invert.segment_frames`)."""
    return [segment for run in alignment.runs() for segment in split_range(run, size=size)]


def key_frames(run: FrameRange, *, stride: int) -> list[int]:
    """A run's key frames: every `stride`-th frame from its first (every segment's first frame, as
    `invert.segment_frames` is a multiple of `stride`)."""
    return list(range(run.start, run.stop, stride))


def key_chain_config(config: InvertConfig) -> InvertConfig:
    """The inversion settings of a key chain: each key frame after a run's first gets `invert.key_steps`,
    as a step of the chain spans `key_stride` frames of motion, not one."""
    return replace(config, warm_steps=config.key_steps)


def run_start_config(config: InvertConfig) -> InvertConfig:
    """The settings of a later run's first key frame, warm-started from the run before: the budget of a
    frame from the start point (`invert.first_steps`), as a cut can change the whole picture."""
    return replace(config, warm_steps=config.first_steps)


def segment_chain(frames: FrameRange, run: FrameRange) -> FrameRange:
    """The frames segment `frames` of `run` is inverted over as one warm chain: from its first frame (a
    key frame: the chain starts from its key pivot) to the next segment's first frame (a key frame too,
    whose fit only registers the chain's end), so the chain meets the key chain at both ends."""
    return FrameRange(frames.start, min(frames.stop + 1, run.stop))


def invert_chain(
    generator: Generator,
    crops: CropSource,
    chain: FrameRange,
    *,
    keys: KeyPivots,
    config: InvertConfig,
    perceptual: nn.Module | None,
    runtime: Runtime,
    first_in_run: bool,
    progress: Progress = SILENT,
) -> tuple[torch.Tensor, Renders]:
    """The pivots [len(chain), num_ws, w_dim] of the clip frames `chain` (a `segment_chain`; `crops`
    its crops): one warm chain from its first frame's key pivot, registered to the key chain (a run's
    first segment, `first_in_run`, from its own first pivot: no segment before it to meet); and the
    renders made. Held until registered: at most `invert.segment_frames` + 1 rows. Registered, every
    pivot is fitted again from where the registration put it (`invert.refit_steps`): the correction
    keeps the key chain's basin but not the fit."""
    rows = torch.empty(len(chain), generator.num_ws, generator.w_dim)  # [n, num_ws, w_dim]

    def gather(run: Finished) -> None:
        rows[run.frames.start : run.frames.stop] = run.latents.detach().float().cpu()

    renders = invert_frames(
        generator,
        crops,
        config=config,
        perceptual=perceptual,
        runtime=runtime,
        on_finished=gather,
        progress=progress,
        start=keys.pivot(chain.start),
    )
    inside = keys.frames[(keys.frames >= chain.start) & (keys.frames < chain.stop)]  # [A]
    anchors = keys.rows(inside)  # [A, num_ws, w_dim]
    if first_in_run:  # nothing before it to meet: its own fit of its first frame stays
        anchors[0] = rows[0]
    registered = register_to_keys(rows, chain.start, key_frames=inside, keys=anchors)
    if config.refit_steps == 0:
        return registered, renders
    refitted, refit_renders = refit_frames(
        generator,
        crops,
        registered,
        config=config,
        perceptual=perceptual,
        runtime=runtime,
        steps=config.refit_steps,
    )
    return refitted, renders + refit_renders


def register_to_keys(
    ws: torch.Tensor, first: int, *, key_frames: np.ndarray, keys: torch.Tensor
) -> torch.Tensor:
    """A chain's pivots `ws` [n, num_ws, w_dim] of the consecutive clip frames from `first`, registered to
    the key chain: plus a correction that is `key − pivot` at each of its key frames (`key_frames` [A],
    ascending, inside the chain, the first its first frame; `keys` [A, num_ws, w_dim] their key pivots),
    linear in between and held after the last.

    A chain wanders off the key chain it started from along directions the picture does not see (W+
    holds many fits of one picture), so the next chain, which starts from the key chain again, would sit
    elsewhere in W+ (a step of many frames' motion, read as expression). Registered, the rows meet the
    key chain at its frames and keep the chain's own frame-to-frame detail between them: every chain of a
    run sits in one basin, the key chain's."""
    positions = key_frames - first  # [A] rows of the key frames
    if len(positions) == 0 or positions[0] != 0 or positions[-1] >= len(ws):
        raise ReenactError("internal error: a chain's key frames must start at its first frame, inside it")
    corrections = keys.to(ws) - ws[positions]  # [A, num_ws, w_dim]
    out = ws.clone()
    for low, high, before, after in zip(
        positions[:-1], positions[1:], corrections[:-1], corrections[1:], strict=True
    ):
        weight = torch.arange(high - low, dtype=ws.dtype).div(high - low).reshape(-1, 1, 1)  # [m, 1, 1]
        out[low:high] += (1 - weight) * before + weight * after
    out[positions[-1] :] += corrections[-1]
    return out


class KeyPivots:
    """A clip's key pivots (stored ones are read a few at a time: the table grows with the clip)."""

    def __init__(self, frames: np.ndarray, ws: LatentSource) -> None:
        self.frames = frames  # [K] ascending
        self.ws = ws  # [K, num_ws, w_dim]

    @classmethod
    def load(cls, directory: Path) -> KeyPivots:
        return cls(np.load(directory / KEY_FRAMES_FILE), StoredLatents(directory, prefix=KEYS_PREFIX))

    def pivot(self, frame: int) -> torch.Tensor:
        """The key pivot [1, num_ws, w_dim] of clip frame `frame`."""
        return self.rows(np.array([frame]))

    def rows(self, frames: np.ndarray) -> torch.Tensor:
        """The key pivots [n, num_ws, w_dim] of clip frames `frames` [n] (key frames, ascending)."""
        indices = np.searchsorted(self.frames, frames)  # [n]
        if np.any(indices >= len(self.frames)) or np.any(
            self.frames[indices.clip(max=len(self.frames) - 1)] != frames
        ):
            raise ReenactError(f"internal error: not all of frames {frames.tolist()} are key frames")
        return self.ws[indices]


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
        owner: int = 0,
    ) -> None:
        """`owner`: the rank that computes the clip's key chain (its runs in order, one sequential chain)."""
        self.crops = crops
        self.owner = owner
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
                "runs": RUN_STARTS,
                "numerics": numerics_key(runtime),
            },
        )

    def ranges(self) -> list[FrameRange]:
        return self.alignment.runs()

    @property
    def owners(self) -> list[int]:
        """The rank of each part (`stages.base.part_owners`): all on `owner`, as each continues the last."""
        return [self.owner] * len(self.ranges())

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """The warm chain through the run's key frames (a warm inversion of those crops in order). Its
        steps span `key_stride` frames of motion, so each key frame after the first gets
        `invert.key_steps`: every pivot of the run is registered to these. A run after the clip's first
        continues the chain: its first key frame starts from the last key pivot of the part before
        (`previous_pivot`), with `run_start_config`'s budget."""
        config = key_chain_config(self.settings.invert)
        keys = np.array(key_frames(frames, stride=config.key_stride), dtype=np.int64)  # [K]
        slots = self.crops.slots(frames).start + keys - frames.start  # every frame of a run has a crop
        crops = Selection(self.crops.store(), slots)
        generator = self.source.generator
        start = self.previous_pivot(frames, part)
        renders = NONE
        with LatentWriter(
            part / KEYS_FILE, rows=len(keys), row_shape=(generator.num_ws, generator.w_dim)
        ) as out:  # a long run's chain is written as its key frames finish, never held
            if start is not None:  # the run's first key frame, from the chain so far

                def first(run: Finished) -> None:
                    nonlocal start
                    out.write(0, run.latents)
                    start = run.latents.detach().float().cpu()

                renders += invert_frames(
                    generator,
                    Selection(self.crops.store(), slots[:1]),
                    config=run_start_config(config),
                    perceptual=self.perceptual,
                    runtime=self.runtime,
                    on_finished=first,
                    start=start,
                )
                crops = Selection(self.crops.store(), slots[1:])
            offset = len(keys) - len(crops)
            if len(crops):
                renders += invert_frames(
                    generator,
                    crops,
                    config=config,
                    perceptual=self.perceptual,
                    runtime=self.runtime,
                    on_finished=lambda run: out.write(offset + run.frames.start, run.latents),
                    progress=self.progress,
                    start=start,
                )
        save_array(part / KEY_FRAMES_FILE, keys)
        return renders

    def previous_pivot(self, frames: FrameRange, part: Path) -> torch.Tensor | None:
        """The last key pivot [1, num_ws, w_dim] of the run before `frames` (None for the clip's first),
        read from its finished part beside `part` (the runner computes a stage's parts in order)."""
        runs = self.ranges()
        index = runs.index(frames)
        if index == 0:
            return None
        previous = part.parent / runs[index - 1].name / KEYS_FILE
        if not previous.is_file():
            raise ReenactError(f"internal error: the key chain of {runs[index - 1]} is not finished")
        rows = np.load(previous, mmap_mode="r")  # [k, num_ws, w_dim]
        return torch.from_numpy(np.array(rows[-1:]))

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        link_parts(self.ranges(), parts, directory, file=KEYS_FILE, prefix=KEYS_PREFIX)
        frames = np.concatenate([np.load(part / KEY_FRAMES_FILE) for part in parts])  # [K] int64
        save_array(directory / KEY_FRAMES_FILE, frames)
        return {"keys": len(frames)}

    def load(self, directory: Path) -> KeyPivots:
        return KeyPivots.load(directory)
