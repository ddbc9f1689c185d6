"""`reenact demo`: the whole pipeline, offline, on the synthetic world, where the right answer is known.

It writes a target and a driver clip rendered by the synthetic world's tiny generator (random weights
fixed by a seed: not a face model), runs `reenact.pipeline.transfer` on the video files exactly as
`reenact transfer --preset synthetic` does (sidecar landmarks instead of dlib, which finds no real face
in them), and writes next to the result:

- `transfer.mp4`: the output (target's timestamps and audio);
- `side_by_side.mp4`: target | driver | output | ground truth, one row per frame;
- `report.json`: stage times, face-region PSNR against the ground-truth transfer, and the same figure
  with the expression dropped (what the transfer adds).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reenact import pipeline, video
from reenact.config import DEMO_FRAMES, Config
from reenact.device import Runtime
from reenact.errors import ReenactError
from reenact.files import write_text_atomic
from reenact.gan.checkpoints import save_generator
from reenact.gan.source import load_generator_spec
from reenact.imaging import UINT8_PEAK, psnr_from_mse
from reenact.progress import SILENT, Progress
from reenact.synthetic import (
    SyntheticConfig,
    make_world,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)
from reenact.workspace import Workspace

MIN_MSE = 1e-10
DEMO_OUTPUTS = ("transfer.mp4", "side_by_side.mp4", "report.json")
"""The files the demo writes into its folder, never over a user's own without `--overwrite`."""


@dataclass
class DemoReport:
    output: Path
    side_by_side: Path
    report: Path
    seconds: float
    face_psnr: float
    """Mean face-region PSNR (dB) of the output against the ground-truth transfer."""
    face_psnr_no_expression: float
    """The same for the target itself (the expression dropped): the gap is what the transfer adds."""


def face_errors(frames: np.ndarray, truth: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Mean squared error of each frame against the truth over its face region: [T, H, W, 3] x2 -> [T]."""
    error = (frames.astype(np.float64) - truth.astype(np.float64)) ** 2  # [T, H, W, 3]
    return np.array([e[r].mean() for e, r in zip(error, regions, strict=True)])


def face_psnr(frames: np.ndarray, truth: np.ndarray, regions: np.ndarray) -> float:
    """PSNR (dB) over the face regions of the whole clip (pooled MSE, so no frame's exact match dominates)."""
    return float(
        psnr_from_mse(max(float(face_errors(frames, truth, regions).mean()), MIN_MSE), peak=UINT8_PEAK)
    )


def decode(path: Path) -> np.ndarray:
    """All frames of a video [T, H, W, 3] uint8 (upright)."""
    return np.stack([frame.image for frame in video.VideoReader(path).frames(upright=True)])


def write_side_by_side(
    path: Path, *, rows: list[np.ndarray], like: video.VideoInfo, audio_from: Path | None, settings: Config
) -> None:
    """Clips [T, H, W, 3] placed left to right, at the first clip's timestamps (frame index pts)."""
    with video.VideoWriter(
        path, like=like, config=settings.video, audio_from=audio_from, overwrite=True
    ) as writer:
        for frames in zip(*rows, strict=True):
            writer.write(np.concatenate(frames, axis=1), pts=None)


def run_demo(
    directory: Path,
    *,
    runtime: Runtime,
    num_frames: int = DEMO_FRAMES,
    overwrite: bool = False,
    progress: Progress = SILENT,
) -> DemoReport:
    """Build the world, run the transfer on its files and compare with the ground truth, in `directory`."""
    started = time.perf_counter()
    if directory.exists() and not directory.is_dir():
        raise ReenactError(f"{directory} is a file; the demo writes a folder (give another -o)")
    if not overwrite:
        existing = [name for name in DEMO_OUTPUTS if (directory / name).exists()]
        if existing:
            raise ReenactError(
                f"{directory} already holds {', '.join(existing)}; pass --overwrite to replace them"
            )
    directory.mkdir(parents=True, exist_ok=True)
    world_config = SyntheticConfig(num_frames=num_frames)
    settings = synthetic_settings()
    progress.note(
        f"synthetic world: {num_frames} frames, {world_config.resolution} px, seed {world_config.seed}, "
        f"on {runtime.describe()}"
    )
    world = make_world(world_config, device=runtime.device)
    files = write_world(world, directory / "world", video_config=settings.video, overwrite=True)
    generator_file = save_generator(world.generator, directory / "world" / "generator.safetensors")
    workspace = Workspace(directory / "work")
    source = load_generator_spec(str(generator_file), device=runtime.device, workspace=workspace)
    context = pipeline.make_context(
        workspace=workspace, source=source, settings=settings, runtime=runtime, progress=progress
    )
    output = directory / "transfer.mp4"
    run = pipeline.transfer(
        files.target_video,
        files.driver_video,
        output,
        context=context,
        target_landmarks=str(files.target_landmarks),
        driver_landmarks=str(files.driver_landmarks),
        overwrite=True,
    )
    truth, regions = true_transfer_frames(world, composite=settings.composite, ref=run.details["driver_ref"])
    frames = decode(output)
    target = decode(files.target_video)
    psnr = face_psnr(frames, truth, regions)
    psnr_target = face_psnr(target, truth, regions)
    side = directory / "side_by_side.mp4"
    write_side_by_side(
        side,
        rows=[target, decode(files.driver_video), frames, truth],
        like=video.probe(files.target_video),
        audio_from=files.target_video,
        settings=settings,
    )
    seconds = time.perf_counter() - started
    report_path = directory / "report.json"
    report = {
        "output": str(output),
        "side_by_side": str(side),
        "columns": ["target", "driver", "output", "ground truth"],
        "seconds": round(seconds, 2),
        "face_psnr_db": round(psnr, 3),
        "face_mse_per_frame": [round(float(value), 3) for value in face_errors(frames, truth, regions)],
        "face_psnr_db_without_expression": round(psnr_target, 3),
        "stages": [
            {
                "name": stage.name,
                "seconds": round(stage.seconds, 3),
                "cached": stage.cached,
                "detail": stage.detail,
            }
            for stage in run.stages
        ],
        **run.details,
    }
    write_text_atomic(report_path, json.dumps(report, indent=2))
    return DemoReport(
        output=output,
        side_by_side=side,
        report=report_path,
        seconds=seconds,
        face_psnr=psnr,
        face_psnr_no_expression=psnr_target,
    )
