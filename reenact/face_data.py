"""A training set of FFHQ-aligned face crops, made by reenact's own people, align and crops stages.

Every person found in each clip or photo is aligned as `reenact align --person ID` aligns them (dlib
landmarks, FFHQ quads, temporal smoothing), and their crops are warped by the crops stage, so the
face world is trained on exactly the crops the pipeline later inverts. Per person, the last
`held_out_share` of the frames is held aside (a contiguous block: neighbouring frames are near copies,
so a held-out frame amid training frames would not be unseen), then every `every`-th frame of each part
is kept. Faces smaller in the frame than the crop are left out (they would be upscaled blur).

The result: `faces-R.npz` per resolution R (uint8 `train` [N, R, R, 3] and `held_out` [M, R, R, 3],
with each row's `*_source` index into the manifest and `*_frame` number) and `manifest.json` (the
settings, and per source its licence, origin, sha256, people and frames used, or why it was skipped).
Horizontal flips are the trainer's business (`TrainConfig.mirror`), not stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reenact.config import Config
from reenact.device import Runtime
from reenact.errors import ReenactError
from reenact.faces.align import quad_size
from reenact.files import load_arrays, save_arrays, sha256_file, write_text_atomic
from reenact.progress import SILENT, Progress
from reenact.stages.align import FaceChoice
from reenact.stages.base import StageJob
from reenact.stages.crops import CropsStage, CropStore
from reenact.stages.people import NoFaceError
from reenact.workspace import Workspace

DEFAULT_EVERY = 2
"""Keep every second frame: neighbouring frames are near copies, so this halves the file and loses little."""
DEFAULT_HELD_OUT_SHARE = 0.1
"""Share of each person's frames (the last ones) held aside for the in-domain inversion check."""
MIN_FRAMES_TO_HOLD_OUT = 20
"""A person seen in fewer frames (a photo, a short track) gives all of them to training."""
MIN_FACE_SCALE = 1.0
"""A frame is used only where the face's crop square is at least this many crop sides in the frame."""
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def dataset_name(resolution: int) -> str:
    """File name of the dataset at one resolution."""
    return f"faces-{resolution}.npz"


@dataclass(frozen=True)
class FaceSource:
    """A clip or photo to take faces from, with where it came from and under what licence."""

    path: Path
    licence: str
    origin: str
    """Where the file was fetched from (repository, path, commit)."""


@dataclass
class _Rows:
    """Crops of one resolution and split, with their source index and frame number."""

    images: list[np.ndarray] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    def add(self, images: np.ndarray, *, source: int, frames: np.ndarray) -> None:
        self.images.append(images)
        self.sources.extend([source] * len(frames))
        self.frames.extend(int(frame) for frame in frames)

    def arrays(self, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        empty = np.zeros((0, resolution, resolution, 3), np.uint8)
        images = np.concatenate(self.images) if self.images else empty
        return images, np.asarray(self.sources, np.int32), np.asarray(self.frames, np.int32)


def split_frames(frames: np.ndarray, *, every: int, held_out_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) frame numbers of one person: the last `held_out_share` held aside as a block
    (none below MIN_FRAMES_TO_HOLD_OUT frames), then every `every`-th frame of each part."""
    held = math.ceil(len(frames) * held_out_share) if len(frames) >= MIN_FRAMES_TO_HOLD_OUT else 0
    cut = len(frames) - held
    return frames[:cut][::every], frames[cut:][::every]


def build_face_dataset(
    sources: list[FaceSource],
    *,
    out_dir: Path,
    workspace: Workspace,
    runtime: Runtime,
    resolutions: tuple[int, ...] = (64,),
    every: int = DEFAULT_EVERY,
    held_out_share: float = DEFAULT_HELD_OUT_SHARE,
    settings: Config | None = None,
    progress: Progress = SILENT,
    kept_out: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Align every person of every source, write `faces-R.npz` for each resolution and the manifest
    into `out_dir`; return the manifest. Stages are cached in `workspace` (a second build is quick).
    `kept_out`: files deliberately left out of `sources` (the clips the face world is checked on as
    faces it never saw), recorded in the manifest."""
    from reenact import pipeline  # local: the pipeline imports most of reenact

    if every < 1:
        raise ReenactError(f"every must be >= 1, got {every}")
    if not 0.0 <= held_out_share < 1.0:
        raise ReenactError(f"held_out_share must be in [0, 1), got {held_out_share}")
    if not resolutions:
        raise ReenactError("no resolution asked for")
    context = pipeline.RunContext(
        workspace=workspace, settings=settings or Config.from_preset(), runtime=runtime, progress=progress
    )
    rows = {(resolution, split): _Rows() for resolution in resolutions for split in ("train", "held_out")}
    entries: list[dict[str, Any]] = []
    for index, source in enumerate(sources):
        entry: dict[str, Any] = {
            "file": source.path.name,
            "licence": source.licence,
            "origin": source.origin,
            "sha256": sha256_file(source.path),
            "people": [],
        }
        entries.append(entry)
        try:
            people, _ = pipeline.clip_people(source.path, context=context, role="faces")
        except NoFaceError:
            entry["skipped"] = "no face found"
            continue
        for person in people.ids:
            used: dict[str, Any] = {"person": person}
            for resolution in resolutions:
                alignment, align = pipeline.align_clip(
                    source.path,
                    context=context,
                    resolution=resolution,
                    face=FaceChoice(person=person),
                    role="faces",
                )
                stage = CropsStage(
                    source.path,
                    alignment,
                    align=align.key,
                    progress=progress,
                    fps=context.fps,
                    colour=align.info.colour,
                )
                (store,) = context.run(StageJob(stage, name="crops", detail=lambda s: f"{len(s)} crops"))
                valid = np.flatnonzero(alignment.valid)  # frame of each crop slot
                large = quad_size(alignment.quads[valid]) >= MIN_FACE_SCALE * resolution
                train, held = split_frames(valid[large], every=every, held_out_share=held_out_share)
                for split, frames in (("train", train), ("held_out", held)):
                    slots = np.searchsorted(valid, frames)
                    rows[resolution, split].add(_read(store, slots), source=index, frames=frames)
                used[f"train_frames_{resolution}"] = [int(f) for f in train]
                used[f"held_out_frames_{resolution}"] = [int(f) for f in held]
            entry["people"].append(used)

    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for resolution in resolutions:
        train, train_source, train_frame = rows[resolution, "train"].arrays(resolution)
        held, held_source, held_frame = rows[resolution, "held_out"].arrays(resolution)
        save_arrays(
            out_dir / dataset_name(resolution),
            train=train,
            train_source=train_source,
            train_frame=train_frame,
            held_out=held,
            held_out_source=held_source,
            held_out_frame=held_frame,
        )
        counts[str(resolution)] = {"train": len(train), "held_out": len(held)}
    manifest = {
        "version": MANIFEST_VERSION,
        "resolutions": list(resolutions),
        "every": every,
        "held_out_share": held_out_share,
        "min_face_scale": MIN_FACE_SCALE,
        "counts": counts,
        "sources": entries,
        "kept_out": list(kept_out),
    }
    write_text_atomic(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _read(store: CropStore, slots: np.ndarray) -> np.ndarray:
    """uint8 crops [n, R, R, 3] of the store's slots, bit for bit as warped."""
    if len(slots) == 0:
        resolution = store.resolution
        return np.zeros((0, resolution, resolution, 3), np.uint8)
    return store.rows.read(slots)


def load_face_dataset(path: Path, *, split: str = "train") -> np.ndarray:
    """The uint8 crops [N, R, R, 3] of one split ('train' or 'held_out') of a `faces-R.npz`."""
    if not path.is_file():
        raise ReenactError(f"face dataset not found: {path}")
    arrays = load_arrays(path)
    if split not in arrays:
        raise ReenactError(f"{path} has no {split!r} split (it has {', '.join(sorted(arrays))})")
    images = arrays[split]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ReenactError(f"{path}: {split} is not uint8 [N, R, R, 3] crops")
    return images
