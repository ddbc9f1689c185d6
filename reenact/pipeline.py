"""The pipeline: composes the stages (align, invert, tune, edit, render + composite, encode) over files.

No maths lives here: every number is computed by a stage module (`faces.*`, `invert`, `pti`, `edit`,
`composite`). What this module adds is the plumbing a production run needs:

- every stage's result is cached in a `Workspace` under a key of what it depends on (input content
  hash, the stage's config, the generator's hash, the keys of earlier stages), so a second `transfer`
  with another driver re-uses the target's alignment, pivots and tuned generator;
- interrupted runs resume: inversion keeps each finished run of frames, PTI its checkpoints;
- the driver is inverted with the *original* generator, never the tuned one;
- frames without a face are passed through untouched; frames are written with their own timestamps
  and the audio is copied packet for packet (`reenact.video.VideoWriter`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from reenact import edit, video
from reenact.composite import composite_face, face_mask
from reenact.config import Config, EditConfig, config_to_dict
from reenact.device import Runtime, autocast, maybe_compile
from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, smooth_quads, warp_to_crop
from reenact.faces.landmarks import BUILTIN_LANDMARK_BACKENDS, make_backend
from reenact.faces.track import FaceTrack, track_faces, track_quads
from reenact.gan.checkpoints import load_generator, save_generator
from reenact.gan.stylegan2 import Generator, images_from_uint8, images_to_uint8
from reenact.invert import invert_clip
from reenact.pti import tune_generator
from reenact.workspace import (
    StageKey,
    Workspace,
    load_arrays,
    load_tensors,
    save_arrays,
    save_tensors,
    stage_key,
    tensor_digest,
)

ALIGN_FORMAT = "reenact-align/1"
STAGE_VERSION = 1
"""Bumped when a stage's stored result changes meaning, so old workspace entries are not reused."""
RANDOM_PREFIX = "random:"
RANDOM_TINY = re.compile(r"tiny(?:-(\d+))?")
RANDOM_TINY_RESOLUTION = 32
RANDOM_GENERATOR_SEED = 0
DEFAULT_GENERATOR = "stylegan2-ffhq-1024"
RENDER_BATCH = 8
"""Crops rendered per generator call when writing the output."""
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ------------------------------------------------------------------------------------------ generator


@dataclass(frozen=True)
class GeneratorSource:
    """The generator a run starts from, where it came from, and its content hash (part of stage keys)."""

    spec: str
    generator: Generator
    digest: str
    is_random: bool


def load_generator_spec(
    spec: str, *, device: torch.device | str = "cpu", workspace: Workspace | None = None
) -> GeneratorSource:
    """`NAME` from the weight registry, a checkpoint `PATH`, or `random:tiny[-RES]` (explicitly random).

    A missing registry file is a `ReenactError` naming the file and the `reenact weights` command.
    """
    from reenact import weights
    from reenact.synthetic import synthetic_generator

    if spec.startswith(RANDOM_PREFIX):
        match = RANDOM_TINY.fullmatch(spec[len(RANDOM_PREFIX) :])
        if match is None:
            raise ReenactError(
                f"unknown random generator {spec!r}; use random:tiny or random:tiny-RES (e.g. 64)"
            )
        resolution = int(match[1] or RANDOM_TINY_RESOLUTION)
        if resolution < 8 or resolution & (resolution - 1):
            raise ReenactError(f"{spec}: the resolution must be a power of two >= 8")
        generator = synthetic_generator(resolution=resolution, seed=RANDOM_GENERATOR_SEED, device=device)
        return GeneratorSource(
            spec=spec, generator=generator, digest=tensor_digest(generator.state_dict()), is_random=True
        )
    path = Path(spec)
    if spec in weights.registry():
        entry = weights.get_entry(spec)
        if entry.kind != "generator":
            raise ReenactError(f"{spec} is a {entry.kind} weight, not a generator")
        path = weights.weight_path(spec)
    elif not path.exists():
        raise ReenactError(
            f"generator {spec!r} is neither a file nor a known weight name; see `reenact weights list` "
            f"(default {DEFAULT_GENERATOR}), or pass random:tiny for a random test generator"
        )
    digest = (workspace or Workspace()).input_digest(path) if path.is_file() else spec
    generator = load_generator(path, device=device).eval().requires_grad_(False)
    return GeneratorSource(spec=spec, generator=generator, digest=digest, is_random=False)


def loss_networks(settings: Config, *, runtime: Runtime) -> tuple[nn.Module | None, nn.Module | None]:
    """The inversion's perceptual loss and PTI's LPIPS, each None when its weight is 0.

    Both need pretrained backbones (VGG16 / AlexNet): a missing file is a `ReenactError` saying how to
    get it, never a random stand-in.
    """
    from reenact.losses import LPIPS, Image2StyleGANPerceptual

    perceptual = None
    if settings.invert.perceptual_weight > 0:
        perceptual = Image2StyleGANPerceptual(device=runtime.device)
    lpips = None
    if settings.pti.lpips_weight > 0:
        lpips = LPIPS(net=settings.pti.lpips_net, device=runtime.device)
    return perceptual, lpips


# ------------------------------------------------------------------------------------------ alignment


@dataclass
class ClipAlignment:
    """One face followed through a clip: landmarks, smoothed FFHQ quads and frame -> crop matrices."""

    track: FaceTrack
    quads_raw: np.ndarray  # [T, 4, 2]
    quads: np.ndarray  # [T, 4, 2], smoothed; NaN where no face
    matrices: np.ndarray  # [T, 3, 3] frame -> crop; NaN where no face
    resolution: int

    @property
    def num_frames(self) -> int:
        return self.track.num_frames

    @property
    def valid(self) -> np.ndarray:
        """Frames that have a crop, [T] bool."""
        return np.isfinite(self.matrices).all(axis=(1, 2))

    def runs(self) -> list[tuple[int, int]]:
        """Maximal runs `[start, stop)` of consecutive frames with a crop, never across a scene cut."""
        valid = self.valid
        runs: list[tuple[int, int]] = []
        for first, last in self.track.segments:
            start = None
            for index in range(first, last + 1):
                inside = index < last and valid[index]
                if inside and start is None:
                    start = index
                elif not inside and start is not None:
                    runs.append((start, index))
                    start = None
        return runs

    def save(self, directory: Path) -> None:
        self.track.save(directory / "track.npz")
        save_arrays(
            directory / "align.npz",
            format=np.array(ALIGN_FORMAT),
            quads_raw=self.quads_raw,
            quads=self.quads,
            crop_matrices=self.matrices,
            resolution=np.array(self.resolution),
            segments=np.array(self.track.segments, dtype=np.int64).reshape(-1, 2),
            found=self.track.found,
        )

    @classmethod
    def load(cls, directory: Path) -> ClipAlignment:
        arrays = load_arrays(directory / "align.npz")
        return cls(
            track=FaceTrack.load(directory / "track.npz"),
            quads_raw=arrays["quads_raw"],
            quads=arrays["quads"],
            matrices=arrays["crop_matrices"],
            resolution=int(arrays["resolution"]),
        )


def compute_alignment(track: FaceTrack, *, settings: Config, resolution: int) -> ClipAlignment:
    """Raw quads from the landmarks, temporal smoothing within shots, and each frame's crop matrix."""
    quads_raw = track_quads(track)  # [T, 4, 2]
    quads = smooth_quads(quads_raw, segments=track.segments, config=settings.align)  # [T, 4, 2]
    matrices = np.full((track.num_frames, 3, 3), np.nan)  # frame -> crop
    for index in np.flatnonzero(np.isfinite(quads).all(axis=(1, 2))):
        matrices[index] = crop_matrix(quads[index], resolution)
    return ClipAlignment(
        track=track, quads_raw=quads_raw, quads=quads, matrices=matrices, resolution=resolution
    )


def track_clip(
    reader: video.VideoReader,
    *,
    settings: Config,
    landmarks: str | None = None,
    face_index: int = 0,
    face_at: tuple[float, float] | None = None,
    show_bar: bool = True,
) -> FaceTrack:
    """Detect and follow one face through the clip; `ReenactError` when no frame has a face."""
    backend = make_backend(settings.faces, landmarks=landmarks)
    with tqdm(
        total=reader.info.frame_count, unit="frame", desc="align", leave=False, disable=not show_bar
    ) as bar:

        def images() -> Iterator[np.ndarray]:
            for frame in reader.frames(upright=True):
                bar.update(1)
                yield frame.image

        track = track_faces(
            images(), backend=backend, config=settings.faces, face_index=face_index, face_at=face_at
        )
    if not track.found.any():
        raise ReenactError(
            f"no face found in {reader.path} ({track.num_frames} frames, {backend.name} landmarks); "
            "check the input, or try --landmarks fan or a landmarks file"
        )
    return track


def align_key(
    workspace: Workspace,
    path: Path,
    *,
    settings: Config,
    landmarks: str | None,
    resolution: int,
    face_index: int = 0,
    face_at: tuple[float, float] | None = None,
) -> StageKey:
    """Key of a clip's alignment: the clip's bytes, the landmark source (a sidecar by its bytes), settings."""
    source = landmarks or settings.faces.landmarks
    faces = config_to_dict(settings.faces)
    faces["landmarks"] = (
        source if source in BUILTIN_LANDMARK_BACKENDS else workspace.input_digest(Path(source))
    )
    return stage_key(
        "align",
        {
            "version": STAGE_VERSION,
            "input": workspace.input_digest(path),
            "faces": faces,
            "align": config_to_dict(settings.align),
            "resolution": resolution,
            "face_index": face_index,
            "face_at": face_at,
        },
    )


def align_stage(
    workspace: Workspace,
    path: Path,
    *,
    settings: Config,
    landmarks: str | None,
    resolution: int,
    show_bar: bool = True,
) -> tuple[ClipAlignment, StageKey, bool]:
    """The clip's alignment (cached). Returns it, its key and whether it came from the cache."""
    key = align_key(workspace, path, settings=settings, landmarks=landmarks, resolution=resolution)
    if workspace.done(key):
        return ClipAlignment.load(workspace.path(key)), key, True
    reader = video.VideoReader(path)
    track = track_clip(reader, settings=settings, landmarks=landmarks, show_bar=show_bar)
    alignment = compute_alignment(track, settings=settings, resolution=resolution)
    summary = {"frames": alignment.num_frames, "aligned": int(alignment.valid.sum())}
    with workspace.build(key, summary=summary) as directory:
        alignment.save(directory)
    return alignment, key, False


def read_crops(path: Path, alignment: ClipAlignment, *, show_bar: bool = False) -> torch.Tensor:
    """Aligned crops of every frame with a face, [N, 3, R, R] float32 in [-1, 1] (N = valid frames)."""
    valid = alignment.valid
    resolution = alignment.resolution
    crops = np.zeros((int(valid.sum()), resolution, resolution, 3), dtype=np.uint8)  # [N, R, R, 3]
    slot = np.cumsum(valid) - 1
    with tqdm(
        total=alignment.num_frames, unit="frame", desc="crops", leave=False, disable=not show_bar
    ) as bar:
        for frame in video.VideoReader(path).frames(upright=True):
            bar.update(1)
            if frame.index < alignment.num_frames and valid[frame.index]:
                crops[slot[frame.index]] = warp_to_crop(
                    frame.image, alignment.matrices[frame.index], resolution
                )
    return images_from_uint8(crops)  # [N, 3, R, R]


# ------------------------------------------------------------------------------------------ inversion


@dataclass
class Pivots:
    """W+ pivots of the frames that have a face."""

    frames: np.ndarray  # [N] frame indices
    ws: torch.Tensor  # [N, num_ws, w_dim]
    psnr: torch.Tensor  # [N] dB of G(pivot) against the crop

    def save(self, path: Path) -> None:
        save_tensors(
            path, {"frames": torch.from_numpy(self.frames.astype(np.int64)), "ws": self.ws, "psnr": self.psnr}
        )

    @classmethod
    def load(cls, path: Path, *, device: torch.device | str = "cpu") -> Pivots:
        tensors = load_tensors(path)
        return cls(frames=tensors["frames"].numpy(), ws=tensors["ws"].to(device), psnr=tensors["psnr"])


def invert_stage(
    workspace: Workspace,
    crops: Callable[[], torch.Tensor],
    *,
    alignment: ClipAlignment,
    align: StageKey,
    source: GeneratorSource,
    settings: Config,
    perceptual: nn.Module | None,
    runtime: Runtime,
    show_bar: bool = True,
) -> tuple[Pivots, StageKey, bool]:
    """W+ pivots of every frame with a face (cached), one warm-started `invert_clip` per run of frames.

    Each finished run is kept in the stage's scratch folder, so an interrupted inversion resumes there.
    `crops()` gives the aligned crops [N, 3, R, R]; it is called only when something must be computed.
    """
    key = stage_key(
        "invert",
        {
            "version": STAGE_VERSION,
            "align": align.digest,
            "generator": source.digest,
            "invert": config_to_dict(settings.invert),
        },
    )
    if workspace.done(key):
        return Pivots.load(workspace.path(key) / "pivots.safetensors", device=runtime.device), key, True
    slot = np.cumsum(alignment.valid) - 1
    scratch = workspace.scratch(key)
    generator = source.generator
    parts_ws, parts_psnr = [], []
    for start, stop in alignment.runs():
        part = scratch / f"run-{start}-{stop}.safetensors"
        if part.is_file():
            saved = load_tensors(part)
            parts_ws.append(saved["ws"].to(runtime.device))
            parts_psnr.append(saved["psnr"])
            continue
        targets = crops()[slot[start] : slot[stop - 1] + 1]
        with autocast(runtime):
            result = invert_clip(
                generator,
                targets,
                config=settings.invert,
                perceptual=perceptual,
                device=runtime.device,
                show_bar=show_bar,
            )
        save_tensors(part, {"ws": result.pivots, "psnr": result.psnr})
        parts_ws.append(result.pivots)
        parts_psnr.append(result.psnr.cpu())
    pivots = Pivots(
        frames=np.flatnonzero(alignment.valid),
        ws=torch.cat(parts_ws).float(),
        psnr=torch.cat(parts_psnr).float(),
    )
    with workspace.build(key, summary={"mean_psnr": float(pivots.psnr.mean())}) as directory:
        pivots.save(directory / "pivots.safetensors")
    return pivots, key, False


# ------------------------------------------------------------------------------------------ tuning


@dataclass
class Tuned:
    generator: Generator
    psnr_before: float
    psnr_after: float
    steps: int


def tune_stage(
    workspace: Workspace,
    crops: Callable[[], torch.Tensor],
    *,
    pivots: Pivots,
    invert: StageKey,
    source: GeneratorSource,
    settings: Config,
    lpips: nn.Module | None,
    runtime: Runtime,
    show_bar: bool = True,
) -> tuple[Tuned, StageKey, bool]:
    """ONE pivotal-tuning pass of the generator over the whole clip (cached; resumes from checkpoints).

    `crops()` gives the aligned crops [N, 3, R, R] of the pivots' frames, read only when tuning runs.
    """
    key = stage_key(
        "tune",
        {
            "version": STAGE_VERSION,
            "invert": invert.digest,
            "generator": source.digest,
            "pti": config_to_dict(settings.pti),
        },
    )
    if workspace.done(key):
        summary = workspace.manifest(key)["summary"]
        generator = load_generator(workspace.path(key) / "generator.safetensors", device=runtime.device)
        tuned = Tuned(
            generator=generator.eval().requires_grad_(False),
            psnr_before=summary["psnr_before"],
            psnr_after=summary["psnr_after"],
            steps=summary["steps"],
        )
        return tuned, key, True
    result = tune_generator(
        source.generator,
        crops(),
        pivots.ws,
        config=settings.pti,
        perceptual=lpips,
        device=runtime.device,
        autocast_dtype=runtime.autocast_dtype,
        checkpoint=workspace.scratch(key) / "checkpoint.safetensors",
        show_bar=show_bar,
    )
    tuned = Tuned(
        generator=result.generator.eval().requires_grad_(False),
        psnr_before=float(result.psnr_before.mean()),
        psnr_after=float(result.psnr_after.mean()),
        steps=result.steps,
    )
    summary = {"psnr_before": tuned.psnr_before, "psnr_after": tuned.psnr_after, "steps": tuned.steps}
    with workspace.build(key, summary=summary) as directory:
        save_generator(tuned.generator, directory / "generator.safetensors")
    return tuned, key, False


# ------------------------------------------------------------------------------------------ a clip


@dataclass
class StageReport:
    """One stage of a run: how long it took and whether its result came from the workspace."""

    name: str
    seconds: float
    cached: bool
    detail: str = ""
    location: Path | None = None
    """Where the stage's result is stored (its workspace folder or the output file)."""


@dataclass
class PreparedClip:
    """A clip's alignment and pivots (and, for a target, its tuned generator)."""

    path: Path
    alignment: ClipAlignment
    pivots: Pivots
    info: video.VideoInfo
    tuned: Tuned | None = None
    stages: list[StageReport] = field(default_factory=list)


@dataclass
class RunContext:
    """What every stage of one run shares."""

    workspace: Workspace
    source: GeneratorSource
    settings: Config
    runtime: Runtime
    perceptual: nn.Module | None = None
    lpips: nn.Module | None = None
    show_bar: bool = True
    log: Log = _quiet


def make_context(
    *,
    workspace: Workspace,
    source: GeneratorSource,
    settings: Config,
    runtime: Runtime,
    show_bar: bool = True,
    log: Log = _quiet,
) -> RunContext:
    """A run's shared state; the loss networks are built once, here (failing early if weights are missing)."""
    perceptual, lpips = loss_networks(settings, runtime=runtime)
    maybe_compile(source.generator.synthesis, runtime=runtime)
    return RunContext(
        workspace=workspace,
        source=source,
        settings=settings,
        runtime=runtime,
        perceptual=perceptual,
        lpips=lpips,
        show_bar=show_bar,
        log=log,
    )


def _timed(stages: list[StageReport], name: str, log: Log) -> Callable[..., None]:
    started = time.perf_counter()

    def finish(cached: bool, detail: str = "", location: Path | None = None) -> None:
        seconds = time.perf_counter() - started
        report = StageReport(name=name, seconds=seconds, cached=cached, detail=detail, location=location)
        stages.append(report)
        log(f"{name:<8} {'cached' if cached else f'{report.seconds:.1f} s':>8}  {detail}")

    return finish


def _once(compute: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """`compute` run at the first call only, its result reused (crops shared by inversion and tuning)."""
    result: list[torch.Tensor] = []

    def get() -> torch.Tensor:
        if not result:
            result.append(compute())
        return result[0]

    return get


def prepare_clip(
    path: Path, *, context: RunContext, landmarks: str | None = None, tune: bool = False, role: str = "target"
) -> PreparedClip:
    """Align and invert a clip with the original generator; `tune=True` adds the PTI pass."""
    workspace, settings = context.workspace, context.settings
    info = video.probe(path)
    stages: list[StageReport] = []
    resolution = context.source.generator.resolution
    done = _timed(stages, f"{role[:3]}-align", context.log)
    alignment, align, cached = align_stage(
        workspace,
        path,
        settings=settings,
        landmarks=landmarks,
        resolution=resolution,
        show_bar=context.show_bar,
    )
    done(
        cached,
        f"{int(alignment.valid.sum())}/{alignment.num_frames} frames with a face",
        workspace.path(align),
    )
    done = _timed(stages, f"{role[:3]}-invert", context.log)
    crops = _once(lambda: read_crops(path, alignment, show_bar=context.show_bar))  # [N, 3, R, R]
    pivots, invert, cached = invert_stage(
        workspace,
        crops,
        alignment=alignment,
        align=align,
        source=context.source,
        settings=settings,
        perceptual=context.perceptual,
        runtime=context.runtime,
        show_bar=context.show_bar,
    )
    done(cached, f"mean PSNR {float(pivots.psnr.mean()):.2f} dB", workspace.path(invert))
    prepared = PreparedClip(path=path, alignment=alignment, pivots=pivots, info=info, stages=stages)
    if tune:
        done = _timed(stages, f"{role[:3]}-tune", context.log)
        prepared.tuned, tune_key, cached = tune_stage(
            workspace,
            crops,
            pivots=pivots,
            invert=invert,
            source=context.source,
            settings=settings,
            lpips=context.lpips,
            runtime=context.runtime,
            show_bar=context.show_bar,
        )
        detail = f"PSNR {prepared.tuned.psnr_before:.2f} -> {prepared.tuned.psnr_after:.2f} dB"
        done(cached, detail, workspace.path(tune_key))
    return prepared


# ------------------------------------------------------------------------------------------ editing


def driver_deltas(
    driver: PreparedClip, *, config: EditConfig, num_ws: int, w_avg: torch.Tensor, ref: int | None
) -> tuple[torch.Tensor, int]:
    """Expression offsets of every driver frame [T_drv, num_ws, w_dim] and the reference frame used.

    `ref` (else `config.reference`) is a driver frame index, or None/`auto` for `edit.neutral_frame`.
    Frames without a face take the offset of the nearest frame with one.
    """
    mask = edit.layer_mask(config.layers, num_ws=num_ws).to(driver.pivots.ws.device)
    frames = driver.pivots.frames
    if ref is None and config.reference != "auto":
        ref = int(config.reference)
    if ref is None:
        ref_slot = edit.neutral_frame(driver.pivots.ws, mask=mask, w_avg=w_avg)
    else:
        if not 0 <= ref < driver.alignment.num_frames:
            raise ReenactError(
                f"driver reference frame {ref} is outside the driver's {driver.alignment.num_frames} frames"
            )
        if ref not in set(frames.tolist()):
            raise ReenactError(f"driver reference frame {ref} has no face; pick another with --driver-ref")
        ref_slot = int(np.flatnonzero(frames == ref)[0])
    deltas = edit.expression_deltas(
        driver.pivots.ws, ref=ref_slot, mask=mask, sigma=config.sigma, min_component=config.min_component
    )  # [N_drv, num_ws, w_dim]
    nearest = np.abs(np.arange(driver.alignment.num_frames)[:, None] - frames[None, :]).argmin(axis=1)
    return deltas[torch.from_numpy(nearest).to(deltas.device)], int(frames[ref_slot])


def transfer_latents(
    target: PreparedClip, driver: PreparedClip, *, config: EditConfig, w_avg: torch.Tensor, ref: int | None
) -> tuple[torch.Tensor, int]:
    """The target's pivots plus α·Δ_driver, one W+ per target frame with a face: [N_tgt, num_ws, w_dim]."""
    num_ws = target.pivots.ws.shape[1]
    deltas, ref_frame = driver_deltas(driver, config=config, num_ws=num_ws, w_avg=w_avg, ref=ref)
    which = edit.length_indices(target.alignment.num_frames, len(deltas), policy=config.length_policy)
    per_frame = deltas[torch.from_numpy(which[target.pivots.frames]).to(deltas.device)]
    return edit.transfer(target.pivots.ws, per_frame, strength=config.strength), ref_frame


# ------------------------------------------------------------------------------------------ rendering


class CropRenderer:
    """Renders W+ latents to uint8 crops in batches, ahead of the frames that need them."""

    def __init__(
        self, generator: Generator, latents: torch.Tensor, *, runtime: Runtime, batch: int = RENDER_BATCH
    ) -> None:
        self.generator = generator
        self.latents = latents  # [N, num_ws, w_dim]
        self.runtime = runtime
        self.batch = batch
        self._start = -1
        self._crops = np.zeros((0,), dtype=np.uint8)

    def crop(self, slot: int) -> np.ndarray:
        """The crop [R, R, 3] uint8 of latent `slot`."""
        if not self._start <= slot < self._start + len(self._crops):
            self._start = slot
            ws = self.latents[slot : slot + self.batch].to(self.runtime.device)
            with torch.no_grad(), autocast(self.runtime):
                images = self.generator.synthesis(ws, noise_mode="const").float()  # [B, 3, R, R]
            self._crops = images_to_uint8(images).cpu().numpy()  # [B, R, R, 3]
        return self._crops[slot - self._start]


def composite_frames(
    frames: Iterator[video.Frame],
    *,
    alignment: ClipAlignment,
    renderer: CropRenderer,
    slots: np.ndarray,
    settings: Config,
) -> Iterator[tuple[video.Frame, np.ndarray]]:
    """Each frame with its rendered face pasted back; frames without a face (slot -1) pass through unchanged.

    `slots[t]` is the latent index for frame `t` (or -1). Yields (decoded frame, output image).
    """
    resolution = alignment.resolution
    for frame in frames:
        index = min(frame.index, alignment.num_frames - 1)
        if slots[index] < 0:
            yield frame, frame.image
            continue
        matrix = alignment.matrices[index]
        points = alignment.track.points[index]
        mask = face_mask(
            points if alignment.track.found[index] else None,
            matrix=matrix,
            resolution=resolution,
            config=settings.composite,
        )
        crop = renderer.crop(int(slots[index]))
        yield (
            frame,
            composite_face(frame.image, crop, matrix=matrix, mask_crop=mask, config=settings.composite),
        )


def write_composite(
    output: Path,
    *,
    reader: video.VideoReader,
    frames: Iterator[tuple[video.Frame, np.ndarray]],
    like: video.VideoInfo,
    audio_from: Path | None,
    settings: Config,
    overwrite: bool,
    total: int,
    show_bar: bool,
) -> int:
    """Encode the composited frames with their own timestamps and the audio copied; returns frames written."""
    written = 0
    with (
        video.VideoWriter(
            output,
            like=like,
            config=settings.video,
            audio_from=audio_from,
            overwrite=overwrite,
            upright_frames=True,
            inputs=tuple(p for p in (reader.path, audio_from) if p is not None),
        ) as writer,
        tqdm(total=total, unit="frame", desc="render", leave=False, disable=not show_bar) as bar,
    ):
        for frame, image in frames:
            writer.write(image, pts=frame.pts)
            written += 1
            bar.update(1)
    return written


def slots_for(alignment: ClipAlignment, frames: np.ndarray) -> np.ndarray:
    """[T] latent slot of each frame (-1 where the frame has no latent)."""
    slots = np.full(alignment.num_frames, -1, dtype=np.int64)
    slots[frames] = np.arange(len(frames))
    return slots


# ------------------------------------------------------------------------------------------ commands


@dataclass
class RunReport:
    """What a command did: its output, frames written and every stage's time."""

    output: Path
    frames: int
    stages: list[StageReport]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def transfer(
    target_path: Path,
    driver_path: Path,
    output: Path,
    *,
    context: RunContext,
    target_landmarks: str | None = None,
    driver_landmarks: str | None = None,
    driver_ref: int | None = None,
    overwrite: bool = False,
) -> RunReport:
    """Put the driver's expressions on the target, in the target's video (or animate a still target)."""
    started = time.perf_counter()
    video.check_output(output, inputs=(target_path, driver_path), overwrite=overwrite)
    config = context.settings.edit
    target = prepare_clip(target_path, context=context, landmarks=target_landmarks, tune=True, role="target")
    driver = prepare_clip(driver_path, context=context, landmarks=driver_landmarks, role="driver")
    assert target.tuned is not None
    stages = [*target.stages, *driver.stages]
    done = _timed(stages, "render", context.log)
    w_avg = context.source.generator.mapping.w_avg
    still_target = target.info.is_image
    if still_target:
        # A still photo: the output follows the driver's timeline, one frame of the photo per driver frame.
        deltas, ref_frame = driver_deltas(
            driver, config=config, num_ws=context.source.generator.num_ws, w_avg=w_avg, ref=driver_ref
        )
        latents = edit.transfer(target.pivots.ws, deltas, strength=config.strength)  # [T_drv, num_ws, w_dim]
        photo = next(iter(video.VideoReader(target_path).frames(upright=True)))
        driver_reader = video.VideoReader(driver_path)
        timeline = (
            video.Frame(image=photo.image, pts=frame.pts, time_base=frame.time_base, index=0)
            for frame in driver_reader.frames(upright=True)
        )
        renderer = CropRenderer(target.tuned.generator, latents, runtime=context.runtime)
        frames = _still_frames(
            timeline, alignment=target.alignment, renderer=renderer, settings=context.settings
        )
        like = driver.info
        audio = driver_path if driver.info.has_audio else None
        reader = driver_reader
        total = driver.info.frame_count
    else:
        latents, ref_frame = transfer_latents(target, driver, config=config, w_avg=w_avg, ref=driver_ref)
        reader = video.VideoReader(target_path)
        renderer = CropRenderer(target.tuned.generator, latents, runtime=context.runtime)
        num_out = edit.output_length(
            target.alignment.num_frames, driver.alignment.num_frames, policy=config.length_policy
        )
        frames = composite_frames(
            (frame for frame in reader.frames(upright=True) if frame.index < num_out),
            alignment=target.alignment,
            renderer=renderer,
            slots=slots_for(target.alignment, target.pivots.frames),
            settings=context.settings,
        )
        like = target.info
        audio = target_path if target.info.has_audio else None
        total = num_out
    written = write_composite(
        output,
        reader=reader,
        frames=frames,
        like=like,
        audio_from=audio,
        settings=context.settings,
        overwrite=overwrite,
        total=total,
        show_bar=context.show_bar,
    )
    done(False, f"{written} frames", output)
    return RunReport(
        output=output,
        frames=written,
        stages=stages,
        seconds=time.perf_counter() - started,
        details={
            "driver_ref": ref_frame,
            "psnr_inversion": float(target.pivots.psnr.mean()),
            "psnr_tuned": target.tuned.psnr_after,
            "layers": config.layers,
            "strength": config.strength,
        },
    )


def _still_frames(
    timeline: Iterator[video.Frame], *, alignment: ClipAlignment, renderer: CropRenderer, settings: Config
) -> Iterator[tuple[video.Frame, np.ndarray]]:
    """The photo with frame `t`'s rendered face for each step `t` of the driver's timeline."""
    matrix = alignment.matrices[0]
    mask = face_mask(
        alignment.track.points[0], matrix=matrix, resolution=alignment.resolution, config=settings.composite
    )
    for position, frame in enumerate(timeline):
        crop = renderer.crop(min(position, len(renderer.latents) - 1))
        yield (
            frame,
            composite_face(frame.image, crop, matrix=matrix, mask_crop=mask, config=settings.composite),
        )


def edit_video(
    input_path: Path,
    output: Path,
    *,
    directions: list[tuple[Any, float]],
    context: RunContext,
    landmarks: str | None = None,
    layers: str | None = None,
    overwrite: bool = False,
) -> RunReport:
    """Attribute edit over a whole clip: every pivot moved along the given directions, tuned G renders."""
    started = time.perf_counter()
    video.check_output(output, inputs=(input_path,), overwrite=overwrite)
    clip = prepare_clip(input_path, context=context, landmarks=landmarks, tune=True, role="input")
    assert clip.tuned is not None
    stages = list(clip.stages)
    done = _timed(stages, "render", context.log)
    num_ws = context.source.generator.num_ws
    spec = layers or context.settings.edit.direction_layers
    mask = edit.layer_mask(spec, num_ws=num_ws).to(clip.pivots.ws.device)
    latents = clip.pivots.ws
    for direction, strength in directions:
        latents = edit.apply_direction(latents, direction, strength=strength, layers=mask)
    reader = video.VideoReader(input_path)
    renderer = CropRenderer(clip.tuned.generator, latents, runtime=context.runtime)
    frames = composite_frames(
        reader.frames(upright=True),
        alignment=clip.alignment,
        renderer=renderer,
        slots=slots_for(clip.alignment, clip.pivots.frames),
        settings=context.settings,
    )
    written = write_composite(
        output,
        reader=reader,
        frames=frames,
        like=clip.info,
        audio_from=input_path if clip.info.has_audio else None,
        settings=context.settings,
        overwrite=overwrite,
        total=clip.info.frame_count,
        show_bar=context.show_bar,
    )
    done(False, f"{written} frames", output)
    return RunReport(output=output, frames=written, stages=stages, seconds=time.perf_counter() - started)


def morph_video(
    first: Path,
    second: Path,
    output: Path,
    *,
    context: RunContext,
    num_frames: int,
    fps: int,
    crossover: int | None = None,
    overwrite: bool = False,
) -> RunReport:
    """Image2StyleGAN morph between the faces of two inputs (first frame of each) as an aligned-crop video.

    With `crossover=k`, the second face's layers >= k are swapped in instead (style crossover), one still.
    """
    started = time.perf_counter()
    video.check_output(output, inputs=(first, second), overwrite=overwrite)
    clips = [prepare_clip(path, context=context, role=role) for path, role in ((first, "a"), (second, "b"))]
    stages = [*clips[0].stages, *clips[1].stages]
    done = _timed(stages, "render", context.log)
    w_a, w_b = (clip.pivots.ws[:1] for clip in clips)  # [1, num_ws, w_dim] each
    if crossover is not None:
        latents = edit.crossover(w_a, w_b, layer=crossover).expand(num_frames, -1, -1)
    else:
        latents = edit.morph(w_a[0], w_b[0], num_frames=num_frames, ease=context.settings.edit.morph_ease)
    resolution = context.source.generator.resolution
    renderer = CropRenderer(context.source.generator, latents, runtime=context.runtime)
    info = video.new_video_info(width=resolution, height=resolution, fps=Fraction(fps))
    with video.VideoWriter(
        output, like=info, config=context.settings.video, overwrite=overwrite, inputs=(first, second)
    ) as writer:
        for index in range(num_frames):
            writer.write(renderer.crop(index), pts=index)
    done(False, f"{num_frames} frames", output)
    return RunReport(output=output, frames=num_frames, stages=stages, seconds=time.perf_counter() - started)
