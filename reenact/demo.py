"""`reenact demo`: the whole pipeline, offline, on a world where the right answer is known.

It writes a target and a driver clip with known latents, rendered by one of two worlds:

- `faces` (the default): the face world (`reenact.face_world`), reenact's own 64 px StyleGAN2 of real
  faces; the driver opens and closes its mouth along a direction found in the face world's W+. The run
  uses the `face-world` preset, as `reenact transfer --generator face-world` does, with the driver read on
  a base in W (`world_settings`).
- `random`: the synthetic world's tiny generator (random weights fixed by a seed: not a face model), with
  the `synthetic` preset, as `reenact transfer --generator random:tiny` does; the fast tests use it.

It runs `reenact.pipeline.transfer` on the video files (sidecar landmarks instead of dlib: the world knows
where its faces are), and writes next to the result (`DEMO_FILES`, every video H.264 4:2:0 at the
target's timestamps, with its audio):

- `transfer.mp4`: the output;
- `target.mp4`, `driver.mp4`: the two input clips;
- `side_by_side.mp4`: target | driver | output | ground truth, labelled, each panel scaled up;
- `side_by_side.png`: its frame where the driver's expression is strongest;
- `report.json`: the files, stage times, face-region PSNR against the ground-truth transfer, and the
  same figure with the expression dropped (what the transfer adds).

The measurement needs 4:4:4 chroma (`reenact.synthetic.MEASURED_PIX_FMT`): the transfer runs on the
world's 4:4:4 clips in `world/` and writes its 4:4:4 output there, which the PSNR is measured on;
`transfer.mp4` is that output encoded again in 4:2:0 (the report gives its PSNR too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from reenact import face_world, pipeline, video
from reenact.config import DEMO_FRAMES, Config, VideoConfig
from reenact.device import Runtime
from reenact.errors import ReenactError
from reenact.files import write_text_atomic
from reenact.gan.checkpoints import save_generator
from reenact.generator_source import load_generator_spec
from reenact.imaging import UINT8_PEAK, psnr_from_mse
from reenact.progress import SILENT, Progress
from reenact.sampling import FaceCounter
from reenact.synthetic import (
    SyntheticConfig,
    SyntheticWorld,
    make_world,
    measured_settings,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)
from reenact.workspace import Workspace

DemoWorld = Literal["faces", "random"]
"""The worlds the demo renders in: the face world, or the synthetic world's random generator."""
DEMO_WORLDS: tuple[str, ...] = get_args(DemoWorld)
DEFAULT_WORLD: DemoWorld = "faces"
FACE_CHECK_SIDE = 224
"""Frames are upscaled by a whole factor so that the face is about this many pixels across before dlib
looks for it (`face_check_factor`): its detector finds faces from about 80 px, and its verdict on a face
world's face moves with the face's size in pixels (at twice this size it misses some of the truth's
own), so every world is checked at one face size."""
MIN_MSE = 1e-10
DEMO_FILES = {
    "transfer.mp4": "the target with the driver's expression (the output)",
    "target.mp4": "the target clip (its face, motion, timing and audio are kept)",
    "driver.mp4": "the driver clip (its expression is transferred)",
    "side_by_side.mp4": "target | driver | output | ground truth, labelled, one row per frame",
    "side_by_side.png": "the side-by-side where the driver's expression is strongest",
    "report.json": "these files, stage times and face-region PSNR against the ground truth",
}
"""The files the demo writes into its folder and what each shows; never over a user's own without
`--overwrite`."""
WORLD_RESOLUTIONS: dict[str, int] = {
    "faces": face_world.FACE_WORLD_RESOLUTION,
    "random": SyntheticConfig().resolution,
}
"""Each demo world's generator resolution: whether a second CPU thread pays off depends on it
(`reenact.threads.is_small_work`)."""
WORLD_FRAME_SCALES: dict[str, float] = {"faces": 2.0, "random": 1.0}
"""Each demo world's frame and face size over `SyntheticConfig`'s (128x96 frames, a 56 px face). The face
world draws its face at 112 px in 256x192 frames: larger than its generator's 64 px crops, as a face in
real footage is, so the crops are drawn down from the face, not up; at 56 px the crops lose more to the
two resamplings than the expression moves (docs/face-world.md). The random world stays small (fast tests)."""
WORLD_FOLDER = "world"
"""Subfolder of the world's 4:4:4 clips, landmarks, ground truth and generator, and the measured output."""
MEASURED_OUTPUT = "transfer_yuv444.mp4"
"""The transfer's own 4:4:4 output in `WORLD_FOLDER`, which the PSNR is measured on."""
COLUMNS = ("target", "driver", "output", "truth")
"""Labels of the side-by-side's panels, left to right."""
MIN_PANEL_HEIGHT = 256
"""Smallest height (px) of a side-by-side panel: frames are scaled up by a whole factor to reach it."""
LABEL_HEIGHT = 40
"""Height (px) of the black strip above each panel that holds its label."""
LABEL_SCALE = 1.0
"""Font scale of the labels (cv2's Hershey simplex: about 22 px high capitals)."""
LABEL_THICKNESS = 2
"""Stroke width (px) of the labels."""
LABEL_MARGIN = 10
"""Distance (px) of a label from its panel's left edge and from the strip's bottom."""
LABEL_COLOUR = (255, 255, 255)
"""RGB of the labels (white on the black strip)."""


@dataclass
class DemoReport:
    files: dict[Path, str]
    """Each file the demo wrote (`DEMO_FILES`) and what it shows."""
    seconds: float
    face_psnr: float
    """Mean face-region PSNR (dB) of the 4:4:4 output against the ground-truth transfer."""
    face_psnr_no_expression: float
    """The same for the target itself (the expression dropped): the gap is what the transfer adds."""
    face_rate: float
    """Share of the output frames in which dlib finds a face (`output_face_rate`)."""
    truth_face_rate: float
    """The same for the ground truth: what the check can ask of the output."""
    expression_share: float
    """How much of the driver's expression the output carries (`transferred_share`; doing nothing: 0)."""


def face_errors(frames: np.ndarray, truth: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Mean squared error of each frame against the truth over its face region: [T, H, W, 3] x2 -> [T]."""
    error = (frames.astype(np.float64) - truth.astype(np.float64)) ** 2  # [T, H, W, 3]
    return np.array([e[r].mean() for e, r in zip(error, regions, strict=True)])


def transferred_share(
    frames: np.ndarray, target: np.ndarray, truth: np.ndarray, regions: np.ndarray
) -> float:
    """How much of the truth's change from the target the output carries, over the face regions: the
    projection of (output - target) on (truth - target), pooled over the clip. 1: all of it; 0: the output
    is the target (doing nothing) or moves across the expression, not along it."""
    target = target.astype(np.float64)
    change = (frames.astype(np.float64) - target) * regions[..., None]  # [T, H, W, 3]
    wanted = (truth.astype(np.float64) - target) * regions[..., None]
    return float((change * wanted).sum() / max(float((wanted * wanted).sum()), MIN_MSE))


def face_psnr(frames: np.ndarray, truth: np.ndarray, regions: np.ndarray) -> float:
    """PSNR (dB) over the face regions of the whole clip (pooled MSE, so no frame's exact match dominates)."""
    return float(
        psnr_from_mse(max(float(face_errors(frames, truth, regions).mean()), MIN_MSE), peak=UINT8_PEAK)
    )


def decode(path: Path) -> np.ndarray:
    """All frames of a video [T, H, W, 3] uint8 (upright)."""
    return np.stack([frame.image for frame in video.VideoReader(path).frames(upright=True)])


def panel_scale(height: int) -> int:
    """Whole factor that scales a frame `height` px high to at least `MIN_PANEL_HEIGHT` (nearest neighbour:
    the tiny world's pixels stay sharp)."""
    return max(1, -(-MIN_PANEL_HEIGHT // height))


def labelled_panel(image: np.ndarray, label: str) -> np.ndarray:
    """`image` [H, W, 3] scaled up by `panel_scale`, under a black strip with `label`: [L + sH, sW, 3]."""
    scale = panel_scale(image.shape[0])
    panel = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    strip = np.zeros((LABEL_HEIGHT, panel.shape[1], 3), dtype=np.uint8)
    cv2.putText(
        strip,
        label,
        (LABEL_MARGIN, LABEL_HEIGHT - LABEL_MARGIN),
        cv2.FONT_HERSHEY_SIMPLEX,
        LABEL_SCALE,
        LABEL_COLOUR,
        LABEL_THICKNESS,
        cv2.LINE_AA,
    )
    return np.concatenate([strip, panel], axis=0)


def side_by_side_frame(images: list[np.ndarray], labels: tuple[str, ...] = COLUMNS) -> np.ndarray:
    """Frames [H, W, 3] placed left to right, each scaled up and labelled: [L + sH, n sW, 3], even sizes
    when W and H are."""
    return np.concatenate(
        [labelled_panel(image, label) for image, label in zip(images, labels, strict=True)], axis=1
    )


def write_side_by_side(
    path: Path,
    *,
    rows: list[np.ndarray],
    timing_from: Path,
    config: VideoConfig,
) -> None:
    """Clips [T, H, W, 3] placed left to right and labelled (`COLUMNS`), at the timestamps and with the
    audio of `timing_from` (a clip of T frames)."""
    times = [frame.pts for frame in video.VideoReader(timing_from).frames()]
    with video.VideoWriter(
        path, like=video.probe(timing_from), config=config, audio_from=timing_from, overwrite=True
    ) as writer:
        for pts, *frames in zip(times, *rows, strict=True):
            writer.write(side_by_side_frame(frames), pts=pts)


def strongest_expression(world: SyntheticWorld) -> int:
    """Index of the frame where the driver's expression is strongest (the side-by-side's still)."""
    return int(np.argmax(world.driver.expression_weights))


def write_png(path: Path, image: np.ndarray) -> None:
    """An RGB image [H, W, 3] uint8 as a PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ReenactError(f"cannot write {path}")


def world_settings(world: DemoWorld) -> Config:
    """The preset a run in `world` uses: `synthetic`, or `face-world` with three changes. The colour match
    is off: the truth is drawn by the very generator the run inverts, so there is no colour cast to
    correct. The strength is the driver's own amount (the preset's is half): the truth moves by all of it.
    The driver's expression is read on a base in W (`edit.driver_base = "w"`, `stages.expression`): the
    demo's driver is drawn by the face world itself, where this reading recovers the expression and the
    W+ pivots' offsets draw what the driver never showed; a real driver is read from its pivots (the
    preset's), as on the kept-out real pair the W base wrecked the output (docs/face-world.md)."""
    if world == "random":
        return synthetic_settings()
    return Config.from_preset(face_world.FACE_WORLD).with_values(
        composite={"color_match": False}, edit={"driver_base": "w", "strength": 1.0}
    )


def face_check_factor(face_size: float) -> int:
    """The whole factor that brings a face `face_size` px across nearest `FACE_CHECK_SIDE` (at least 1)."""
    return max(1, round(FACE_CHECK_SIDE / face_size))


def output_face_rate(frames: np.ndarray, *, face_size: float) -> float:
    """Share of frames [T, H, W, 3] uint8 in which dlib finds a face, each upscaled by
    `face_check_factor(face_size)` (the faces' size in the frames, px)."""
    factor = face_check_factor(face_size)
    counter = FaceCounter()
    found = [
        counter.has_face_at(cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC))
        for frame in frames
    ]
    return float(np.mean(found)) if found else 0.0


def scaled_frames(config: SyntheticConfig, *, scale: float) -> SyntheticConfig:
    """`config` with its frame and face `scale` times as large."""
    if scale <= 0:
        raise ReenactError(f"the frame scale must be positive, got {scale}")
    return replace(
        config,
        frame_width=round(config.frame_width * scale),
        frame_height=round(config.frame_height * scale),
        face_size=config.face_size * scale,
    )


def demo_world_config(
    world_name: DemoWorld, *, num_frames: int = DEMO_FRAMES, seed: int = 0, frame_scale: float | None = None
) -> SyntheticConfig:
    """The settings of a demo world's clips: `SyntheticConfig`'s, scaled by `frame_scale` (by default the
    world's own, `WORLD_FRAME_SCALES`)."""
    scale = WORLD_FRAME_SCALES[world_name] if frame_scale is None else frame_scale
    return scaled_frames(SyntheticConfig(num_frames=num_frames, seed=seed), scale=scale)


def run_demo(
    directory: Path,
    *,
    runtime: Runtime,
    num_frames: int = DEMO_FRAMES,
    world_name: DemoWorld = DEFAULT_WORLD,
    overwrite: bool = False,
    progress: Progress = SILENT,
    frame_scale: float | None = None,
) -> DemoReport:
    """Build the world, run the transfer on its files and compare with the ground truth, in `directory`.

    `frame_scale` sets the world's frame and face size over `SyntheticConfig`'s (by default the world's
    own, `WORLD_FRAME_SCALES`; benchmarks: how much the clips' own resampling costs)."""
    if world_name not in DEMO_WORLDS:
        raise ReenactError(f"unknown demo world {world_name!r}; use one of {', '.join(DEMO_WORLDS)}")
    started = time.perf_counter()
    if directory.exists() and not directory.is_dir():
        raise ReenactError(f"{directory} is a file; the demo writes a folder (give another -o)")
    if not overwrite:
        existing = [name for name in DEMO_FILES if (directory / name).exists()]
        if existing:
            raise ReenactError(
                f"{directory} already holds {', '.join(existing)}; pass --overwrite to replace them"
            )
    directory.mkdir(parents=True, exist_ok=True)
    base = demo_world_config(world_name, num_frames=num_frames, frame_scale=frame_scale)
    settings = world_settings(world_name)
    measured = measured_settings(settings)
    workspace = Workspace(directory / "work")
    world_folder = directory / WORLD_FOLDER
    if world_name == "faces":
        spec = face_world.FACE_WORLD
        source = load_generator_spec(spec, device=runtime.device, workspace=workspace)
        world = face_world.make_face_world(base, device=runtime.device, generator=source.generator)
    else:
        world = make_world(base, device=runtime.device)
    progress.note(
        f"{world_name} world: {num_frames} frames, {world.config.resolution} px, seed {world.config.seed}, "
        f"on {runtime.describe()}"
    )
    files = write_world(world, world_folder, video_config=measured.video, overwrite=True)
    if world_name == "random":
        spec = str(save_generator(world.generator, world_folder / "generator.safetensors"))
        source = load_generator_spec(spec, device=runtime.device, workspace=workspace)
    context = pipeline.make_context(
        workspace=workspace, source=source, settings=measured, runtime=runtime, progress=progress
    )
    measured_output = world_folder / MEASURED_OUTPUT
    run = pipeline.transfer(
        files.target_video,
        files.driver_video,
        measured_output,
        context=context,
        target_landmarks=str(files.target_landmarks),
        driver_landmarks=str(files.driver_landmarks),
        overwrite=True,
    )
    paths = {name: directory / name for name in DEMO_FILES}
    for source_clip, name in (
        (measured_output, "transfer.mp4"),
        (files.target_video, "target.mp4"),
        (files.driver_video, "driver.mp4"),
    ):
        video.reencode(video.VideoReader(source_clip), paths[name], config=settings.video, overwrite=True)
    truth, regions = true_transfer_frames(world, composite=settings.composite, ref=run.details["driver_ref"])
    frames = decode(measured_output)
    target = decode(files.target_video)
    rows = [target, decode(files.driver_video), frames, truth]
    write_side_by_side(
        paths["side_by_side.mp4"], rows=rows, timing_from=files.target_video, config=settings.video
    )
    still = strongest_expression(world)
    write_png(paths["side_by_side.png"], side_by_side_frame([clip[still] for clip in rows]))
    psnr = face_psnr(frames, truth, regions)
    psnr_target = face_psnr(target, truth, regions)
    face_rate = output_face_rate(frames, face_size=world.config.face_size)
    truth_face_rate = output_face_rate(truth, face_size=world.config.face_size)
    share = transferred_share(frames, target, truth, regions)
    seconds = time.perf_counter() - started
    report = {
        "world": world_name,
        "generator": spec if world_name == "faces" else "random (seeded, in world/generator.safetensors)",
        "files": {str(paths[name]): shows for name, shows in DEMO_FILES.items()},
        "measured_output": str(measured_output),
        "columns": list(COLUMNS),
        "side_by_side_png_frame": still,
        "seconds": round(seconds, 2),
        "face_psnr_db": round(psnr, 3),
        "face_psnr_db_yuv420p": round(face_psnr(decode(paths["transfer.mp4"]), truth, regions), 3),
        "face_mse_per_frame": [round(float(value), 3) for value in face_errors(frames, truth, regions)],
        "face_psnr_db_without_expression": round(psnr_target, 3),
        "output_face_rate": round(face_rate, 3),
        "truth_face_rate": round(truth_face_rate, 3),
        "face_check_factor": face_check_factor(world.config.face_size),
        "expression_share": round(share, 3),
        "stages": [stage.to_dict() for stage in run.stages],
        **run.details,
    }
    write_text_atomic(paths["report.json"], json.dumps(report, indent=2))
    return DemoReport(
        files={paths[name]: shows for name, shows in DEMO_FILES.items()},
        seconds=seconds,
        face_psnr=psnr,
        face_psnr_no_expression=psnr_target,
        face_rate=face_rate,
        truth_face_rate=truth_face_rate,
        expression_share=share,
    )
