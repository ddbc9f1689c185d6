"""The pipeline: the stages composed into commands (transfer, edit, morph) over files.

No maths and no stage internals live here. Each stage (`reenact.stages.*`) is a unit with a content key,
parts over ranges of frames, a merge, load and save; `run_stage` takes it from the workspace or computes
it (resuming finished parts). What this module adds is the order:

    align ─► invert (original G) ─► tune (target only) ─► latents (`reenact.edit`) ─► render ─► paste + encode

so a second `transfer` with another driver re-uses the target's alignment, pivots and tuned generator;
the driver is inverted with the *original* generator, never the tuned one.

A command on a slice (`window`, from `--start/--duration`) runs every stage on the slice as a clip of its
own, keyed with the slice: its output is the slice alone, from time 0 (`reenact.timeline`). A later run on
the whole clip reuses the slice's face detection (`stages.align`); its alignment, pivots, tuned generator
and renders are the slice's own (they depend on every frame aligned and inverted), never the whole clip's.

Under `torchrun` every rank runs the same command with the run's `group`: each stage is shared out
between the ranks (`reenact.stages.base.run_stage`), and the main rank alone pastes back and writes the
output, so the file is written once, exactly as by one process.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reenact import checks, edit, video
from reenact.config import Config
from reenact.device import Runtime, maybe_compile
from reenact.distributed import SINGLE, Group
from reenact.gan.stylegan2 import Generator
from reenact.generator_source import GeneratorSource
from reenact.latents import LatentSource
from reenact.progress import SILENT, Progress
from reenact.stages.align import LARGEST_FACE, AlignStage, ClipAlignment, FaceChoice
from reenact.stages.base import FrameRange, Stage, StageRun, Work, run_stage, run_stages
from reenact.stages.crops import ClipCrops, CropsStage, CropStore
from reenact.stages.invert import InvertStage, Pivots, plan_segments
from reenact.stages.output import composite_frames, slots_for, still_frames, write_video
from reenact.stages.render import RenderStage, RenderStream
from reenact.stages.tune import Tuned, TuneStage
from reenact.timeline import Window
from reenact.workspace import Workspace
from reenact.workspace_cache import folder_bytes

MEGABYTE = 1e6
KIB = 1024
PROC_STATUS = Path("/proc/self/status")


def loss_networks(settings: Config, *, runtime: Runtime) -> tuple[nn.Module | None, nn.Module | None]:
    """The inversion's perceptual loss and PTI's LPIPS, each None when its weight is 0.

    Both need pretrained backbones (VGG16 / AlexNet): a missing file is a `ReenactError` saying how to
    get it, never a random stand-in.
    """
    from reenact import weights
    from reenact.losses import IMAGE2STYLEGAN_ARCH, Image2StyleGANPerceptual
    from reenact.metrics import lpips_model

    perceptual = None
    if settings.invert.perceptual_weight > 0:
        perceptual = Image2StyleGANPerceptual(
            backbone_weights=weights.backbone_path(IMAGE2STYLEGAN_ARCH), device=runtime.device
        )
    lpips = (
        lpips_model(settings.pti.lpips_net, device=runtime.device) if settings.pti.lpips_weight > 0 else None
    )
    return perceptual, lpips


# ------------------------------------------------------------------------------------------ a run


@dataclass
class StageReport:
    """One stage of a run: how long it took and whether its result came from the workspace."""

    name: str
    seconds: float
    cached: bool
    detail: str = ""
    location: Path | None = None
    """Where the stage's result is stored (its workspace folder or the output file)."""
    resumed: int = 0
    """Parts of an interrupted run that were found finished and not computed again."""
    work: Work = field(default_factory=Work)
    """What this process computed of the stage (in a group: this rank's share)."""


@dataclass
class RunContext:
    """What every stage of one run shares."""

    workspace: Workspace
    source: GeneratorSource
    settings: Config
    runtime: Runtime
    perceptual: nn.Module | None = None
    lpips: nn.Module | None = None
    progress: Progress = SILENT
    group: Group = SINGLE
    """The ranks running this command together (`torchrun`); one process by default."""

    def run(
        self, stage: Stage[Any], *, name: str, stages: list[StageReport], detail: Callable[[Any], str]
    ) -> Any:
        """`run_reported` in this run's workspace, with its progress and group."""
        return run_reported(
            self.workspace,
            stage,
            name=name,
            stages=stages,
            progress=self.progress,
            detail=detail,
            group=self.group,
        )


def run_reported(
    workspace: Workspace,
    stage: Stage[Any],
    *,
    name: str,
    stages: list[StageReport],
    progress: Progress,
    detail: Callable[[Any], str],
    on_part: Callable[[FrameRange, Path], None] | None = None,
    group: Group = SINGLE,
) -> Any:
    """Run `stage` (cached or computed), report it as `name` (a stage line), and return its result.

    `detail(result)` is the text of its stage line; `on_part` and `group` go to `run_stage`.
    """
    outcome: StageRun[Any] = run_stage(workspace, stage, progress=progress, on_part=on_part, group=group)
    report_stage(outcome, name=name, stages=stages, progress=progress, detail=detail)
    return outcome.result


def run_reported_all(
    workspace: Workspace,
    jobs: list[tuple[Stage[Any], str, Callable[[Any], str]]],
    *,
    reports: list[list[StageReport]],
    progress: Progress,
    group: Group = SINGLE,
) -> list[Any]:
    """`run_reported` for independent stages run together (`run_stages`): each job is (stage, name,
    detail) and is reported into its own list of `reports`; returns the results in order."""
    outcomes = run_stages(workspace, [stage for stage, _, _ in jobs], progress=progress, group=group)
    for outcome, (_, name, detail), stages in zip(outcomes, jobs, reports, strict=True):
        report_stage(outcome, name=name, stages=stages, progress=progress, detail=detail)
    return [outcome.result for outcome in outcomes]


def report_stage(
    outcome: StageRun[Any],
    *,
    name: str,
    stages: list[StageReport],
    progress: Progress,
    detail: Callable[[Any], str],
) -> None:
    """Append a finished stage's report to `stages` and print its stage line."""
    text = detail(outcome.result)
    if outcome.resumed:
        text += f" (resumed: {outcome.resumed} of {outcome.resumed + outcome.computed} parts were done)"
    report = StageReport(
        name=name,
        seconds=outcome.seconds,
        cached=outcome.cached,
        detail=text,
        location=outcome.location,
        resumed=outcome.resumed,
        work=outcome.work,
    )
    stages.append(report)
    progress.note(stage_line(report))


def stage_line(report: StageReport) -> str:
    """`name  time|cached  detail`: the line a finished stage prints."""
    took = "cached" if report.cached else f"{report.seconds:.1f} s"
    return f"{report.name:<11} {took:>8}  {report.detail}"


def peak_memory_bytes() -> int:
    """This process's peak resident memory: VmHWM (its own since exec, and resettable through
    /proc/self/clear_refs), else ru_maxrss."""
    try:
        status = PROC_STATUS.read_text().splitlines()
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) * KIB
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB


def resource_usage(*, workspace: Workspace, runtime: Runtime) -> dict[str, int | None]:
    """What a run's summary reports besides time: this process's peak host memory, the device's peak
    (CUDA; None elsewhere), the workspace's size on disk and the CPU threads it computed with."""
    device = torch.cuda.max_memory_allocated(runtime.device) if runtime.device.type == "cuda" else None
    return {
        "threads": torch.get_num_threads(),
        "peak_memory_bytes": peak_memory_bytes(),
        "peak_device_memory_bytes": device,
        "workspace_bytes": folder_bytes(workspace.root) if workspace.root.is_dir() else 0,
    }


def make_context(
    *,
    workspace: Workspace,
    source: GeneratorSource,
    settings: Config,
    runtime: Runtime,
    progress: Progress = SILENT,
    group: Group = SINGLE,
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
        progress=progress,
        group=group,
    )


# ------------------------------------------------------------------------------------------ a clip


@dataclass(frozen=True)
class FaceCounts:
    """How many of a clip's frames have the face: the one count that the stage line, the `align` summary
    and `--json` all give."""

    frames: int
    detected: int
    """Frames where the tracker found the face."""
    aligned: int
    """Frames with a crop: the detected ones and the short gaps between them, interpolated
    (`align.max_gap`); these are the frames the face is reenacted in."""

    @classmethod
    def of(cls, alignment: ClipAlignment) -> FaceCounts:
        return cls(
            frames=alignment.num_frames,
            detected=int(alignment.track.found.sum()),
            aligned=int(alignment.valid.sum()),
        )

    def text(self) -> str:
        """`264/264 frames with a face (263 detected, 1 interpolated)`."""
        interpolated = self.aligned - self.detected
        gaps = f", {interpolated} interpolated" if interpolated else ""
        return f"{self.aligned}/{self.frames} frames with a face ({self.detected} detected{gaps})"


@dataclass
class PreparedClip:
    """A clip's alignment and pivots (and, for a target, its tuned generator)."""

    path: Path
    alignment: ClipAlignment
    pivots: Pivots
    info: video.VideoInfo
    tune_digest: str = ""
    tuned: Tuned | None = None
    stages: list[StageReport] = field(default_factory=list)


def align_clip(
    path: Path,
    *,
    workspace: Workspace,
    settings: Config,
    resolution: int,
    runtime: Runtime,
    landmarks: str | None = None,
    face: FaceChoice = LARGEST_FACE,
    role: str = "input",
    progress: Progress = SILENT,
    stages: list[StageReport] | None = None,
    group: Group = SINGLE,
    window: Window | None = None,
) -> tuple[ClipAlignment, AlignStage]:
    """The clip's (or its `window`'s) alignment, crops of `resolution` px (cached): what `reenact align`
    computes too."""
    stage = AlignStage(
        workspace,
        path,
        settings=settings,
        landmarks=landmarks,
        resolution=resolution,
        face=face,
        runtime=runtime,
        progress=progress,
        shards=group.size,
        window=window,
    )
    if stage.info.frames_missing:
        progress.note(
            video.lost_frames_warning(
                path, lost=stage.info.frames_missing, announced=stage.info.frames_announced
            )
        )
    alignment = run_reported(
        workspace,
        stage,
        name=f"{role[:3]}-align",
        stages=[] if stages is None else stages,
        progress=progress,
        detail=lambda a: FaceCounts.of(a).text(),
        group=group,
    )
    return alignment, stage


@dataclass(frozen=True)
class ClipRequest:
    """A clip a command prepares: its file, landmark source, the face to follow, its role and the slice
    of it that is used (None: all of it)."""

    path: Path
    landmarks: str | None = None
    face: FaceChoice = LARGEST_FACE
    role: str = "target"
    window: Window | None = None


def prepare_clips(
    requests: list[ClipRequest], *, context: RunContext, tune_first: bool = False
) -> list[PreparedClip]:
    """Align and invert clips with the original generator; `tune_first=True` adds the PTI pass of the first.

    The clips' inversions run together (`run_stages`), so in a group every rank has work at once
    (`stages.invert.plan_segments`). In a group, the crops are stored before any part needs them: every
    rank must run a stage together, never from inside a part that only one rank computes."""
    group = context.group
    clips: list[tuple[ClipAlignment, AlignStage, ClipCrops, list[StageReport]]] = []
    for request in requests:
        stages: list[StageReport] = []
        alignment, align = align_clip(
            request.path,
            workspace=context.workspace,
            settings=context.settings,
            resolution=context.source.generator.resolution,
            runtime=context.runtime,
            landmarks=request.landmarks,
            face=request.face,
            role=request.role,
            progress=context.progress,
            stages=stages,
            group=group,
            window=request.window,
        )
        crops = ClipCrops(
            CropsStage(
                request.path,
                alignment,
                align=align.key,
                progress=context.progress,
                shards=group.size,
                window=request.window,
            ),
            run=lambda stage, role=request.role, stages=stages: context.run(
                stage,
                name=f"{role[:3]}-crops",
                stages=stages,
                detail=lambda store: f"{len(store)} crops, {store.disk_bytes / MEGABYTE:.1f} MB on disk",
            ),
        )
        clips.append((alignment, align, crops, stages))
    plans = plan_segments([alignment for alignment, *_ in clips], shards=group.size)
    inverts = [
        InvertStage(
            crops,
            align=align.key,
            source=context.source,
            settings=context.settings,
            perceptual=context.perceptual,
            runtime=context.runtime,
            progress=context.progress,
            plan=plan,
        )
        for (_, align, crops, _), plan in zip(clips, plans, strict=True)
    ]
    if group.distributed:
        for (_, _, crops, _), invert in zip(clips, inverts, strict=True):
            if not group.broadcast(context.workspace.done(invert.key)):
                crops.store()
    pivots = run_reported_all(
        context.workspace,
        [
            (invert, f"{request.role[:3]}-invert", lambda p: f"mean PSNR {float(p.psnr.mean()):.2f} dB")
            for invert, request in zip(inverts, requests, strict=True)
        ],
        reports=[stages for *_, stages in clips],
        progress=context.progress,
        group=group,
    )
    prepared = [
        PreparedClip(
            path=request.path, alignment=alignment, pivots=clip_pivots, info=align.info, stages=stages
        )
        for request, (alignment, align, _, stages), clip_pivots in zip(requests, clips, pivots, strict=True)
    ]
    if tune_first:  # tuning's one part is computed by all ranks together, so each asks for the crops
        stage = TuneStage(
            clips[0][2],
            pivots=pivots[0],
            invert=inverts[0].key,
            source=context.source,
            settings=context.settings,
            lpips=context.lpips,
            runtime=context.runtime,
            progress=context.progress,
            group=group,
        )
        prepared[0].tuned = context.run(
            stage,
            name=f"{requests[0].role[:3]}-tune",
            stages=prepared[0].stages,
            detail=lambda t: (
                f"PSNR {t.psnr_before:.2f} -> {t.psnr_after:.2f} dB"
                + (f" (resumed from step {stage.resumed_from})" if stage.resumed_from else "")
            ),
        )
        prepared[0].tune_digest = stage.key.digest
    return prepared


def prepare_clip(
    path: Path,
    *,
    context: RunContext,
    landmarks: str | None = None,
    face: FaceChoice = LARGEST_FACE,
    tune: bool = False,
    role: str = "target",
    window: Window | None = None,
) -> PreparedClip:
    """One clip (or its `window`) aligned and inverted (`prepare_clips`); `tune=True` adds the PTI pass."""
    request = ClipRequest(path=path, landmarks=landmarks, face=face, role=role, window=window)
    (clip,) = prepare_clips([request], context=context, tune_first=tune)
    return clip


def render(
    generator: Generator,
    latents: LatentSource,
    *,
    generator_digest: str,
    context: RunContext,
    stages: list[StageReport],
) -> RenderStream:
    """`latents` [M, num_ws, w_dim] rendered to crops by `generator` (cached by both), in a background
    thread: use it as a context manager around the paste-back and encoding that consume its crops; the
    renders are dropped from the workspace when it ends without an error."""
    cancel = threading.Event()
    stage = RenderStage(
        generator,
        latents,
        generator_digest=generator_digest,
        runtime=context.runtime,
        progress=context.progress,
        cancel=cancel,
        shards=context.group.size,
    )

    def run(on_part: Callable[[FrameRange, Path], None]) -> CropStore:
        return run_reported(
            context.workspace,
            stage,
            name="render",
            stages=stages,
            progress=context.progress,
            detail=lambda c: f"{len(c)} crops",
            on_part=on_part,
            group=context.group,
        )

    def drop() -> None:  # the encode consumed them: renders do not stay (`stages.render`)
        if context.group.is_main:
            context.workspace.drop(stage.key)
        else:  # this rank's share is rendered: let the main rank drop them
            context.workspace.release(stage.key)

    return RenderStream(run, ranges=stage.ranges(), cancel=cancel, drop=drop)


# ------------------------------------------------------------------------------------------ commands


@dataclass
class RunReport:
    """What a command did: its output, frames written and every stage's time."""

    output: Path
    frames: int
    stages: list[StageReport]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def encode(
    output: Path,
    frames: Iterator[tuple[video.Frame, np.ndarray]],
    *,
    like: video.VideoInfo,
    audio_from: Path | None,
    inputs: tuple[Path, ...],
    total: int,
    overwrite: bool,
    context: RunContext,
    stages: list[StageReport],
    render: RenderStream,
    audio_window: Window | None = None,
) -> int:
    """Write the output (`stages.output.write_video`) and report it as the `encode` stage; returns frames.

    `frames` consume `render`'s crops while it renders (a producer/consumer pipeline): the output is
    written inside its context, so a failure on either side stops both. In a group, the other ranks take
    their share of the render and the main rank alone writes the output."""
    started = time.perf_counter()
    written = 0
    with render:
        if context.group.is_main:
            written = write_video(
                output,
                frames,
                like=like,
                audio_from=audio_from,
                inputs=inputs,
                settings=context.settings,
                overwrite=overwrite,
                total=total,
                progress=context.progress,
                audio_window=audio_window,
            )
    report = StageReport(
        name="encode",
        seconds=time.perf_counter() - started,
        cached=False,
        detail=f"{written} frames" if context.group.is_main else "written by the main rank",
        location=output,
    )
    stages.append(report)
    context.progress.note(stage_line(report))
    return written


def transfer(
    target_path: Path,
    driver_path: Path,
    output: Path,
    *,
    context: RunContext,
    target_landmarks: str | None = None,
    driver_landmarks: str | None = None,
    face: FaceChoice = LARGEST_FACE,
    driver_ref: int | None = None,
    overwrite: bool = False,
    window: Window | None = None,
) -> RunReport:
    """Put the driver's expressions on the target (its `face`), in the target's video (or animate a still).

    `window`: a slice of the target, the output's frames (from time 0, with their audio); the driver is
    used from its first frame, as for a whole target, its length fitted by `edit.length_policy`."""
    started = time.perf_counter()
    video.check_output(output, inputs=(target_path, driver_path), overwrite=overwrite)
    video.check_encodable(video.probe(target_path))  # bad inputs stop the run now, not after the tuning
    config = context.settings.edit
    checks.check_layers(config.layers, option="edit.layers", num_ws=context.source.generator.num_ws)
    checks.check_driver_ref(driver_ref, info=video.probe(driver_path))  # so do bad option values
    target, driver = prepare_clips(
        [
            ClipRequest(target_path, landmarks=target_landmarks, face=face, role="target", window=window),
            ClipRequest(driver_path, landmarks=driver_landmarks, role="driver"),
        ],
        context=context,
        tune_first=True,
    )
    assert target.tuned is not None
    stages = [*target.stages, *driver.stages]
    deltas, ref_frame = edit.driver_deltas(
        driver.pivots.ws,
        driver.pivots.frames,
        num_frames=driver.alignment.num_frames,
        config=config,
        w_avg=context.source.generator.mapping.w_avg,
        ref=driver_ref,
    )  # [T_drv, num_ws, w_dim]
    if target.info.is_image:
        # A still photo: the output follows the driver's timeline, one frame of the photo per driver frame.
        latents = edit.transfer_to_still(target.pivots.ws[0:1], deltas, strength=config.strength)
    else:
        latents = edit.transfer_to_frames(
            target.pivots.ws,
            target.pivots.frames,
            deltas,
            num_target=target.alignment.num_frames,
            config=config,
        )  # [N_tgt, num_ws, w_dim]
    crops = render(
        target.tuned.generator,
        latents,
        generator_digest=target.tune_digest,
        context=context,
        stages=stages,
    )
    if target.info.is_image:
        photo = next(iter(video.VideoReader(target_path).frames(upright=True)))
        timeline = (
            video.Frame(image=photo.image, pts=frame.pts, time_base=frame.time_base, index=0)
            for frame in video.VideoReader(driver_path).frames(upright=True)
        )
        frames = still_frames(
            timeline,
            alignment=target.alignment,
            crops=crops,
            settings=context.settings,
            device=context.runtime.device,
        )
        like, audio, total = (
            driver.info,
            (driver_path if driver.info.has_audio else None),
            driver.info.frame_count,
        )
    else:
        num_out = edit.output_length(
            target.alignment.num_frames, driver.alignment.num_frames, policy=config.length_policy
        )
        frames = composite_frames(
            (
                frame
                for frame in video.VideoReader(target_path, window=window).frames(upright=True)
                if frame.index < num_out
            ),
            alignment=target.alignment,
            crops=crops,
            slots=slots_for(target.alignment, target.pivots.frames),
            settings=context.settings,
            device=context.runtime.device,
        )
        like, audio, total = target.info, (target_path if target.info.has_audio else None), num_out
    written = encode(
        output,
        frames,
        like=like,
        audio_from=audio,
        inputs=(target_path, driver_path),
        overwrite=overwrite,
        total=total,
        context=context,
        stages=stages,
        render=crops,
        audio_window=window,
    )
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
            "slice": None if window is None else window.describe(),
        },
    )


def edit_video(
    input_path: Path,
    output: Path,
    *,
    directions: list[tuple[Any, float]],
    context: RunContext,
    landmarks: str | None = None,
    face: FaceChoice = LARGEST_FACE,
    overwrite: bool = False,
    window: Window | None = None,
) -> RunReport:
    """Attribute edit over a whole clip (or its `window`, from time 0): every pivot moved along the
    directions on `edit.direction_layers`."""
    started = time.perf_counter()
    video.check_output(output, inputs=(input_path,), overwrite=overwrite)
    video.check_encodable(video.probe(input_path))
    layers = context.settings.edit.direction_layers
    checks.check_layers(layers, option="edit.direction_layers", num_ws=context.source.generator.num_ws)
    clip = prepare_clip(
        input_path, context=context, landmarks=landmarks, face=face, tune=True, role="input", window=window
    )
    assert clip.tuned is not None
    stages = list(clip.stages)
    mask = edit.layer_mask(context.settings.edit.direction_layers, num_ws=context.source.generator.num_ws)
    latents = edit.apply_directions(clip.pivots.ws, directions, layers=mask)
    crops = render(
        clip.tuned.generator, latents, generator_digest=clip.tune_digest, context=context, stages=stages
    )
    frames = composite_frames(
        video.VideoReader(input_path, window=window).frames(upright=True),
        alignment=clip.alignment,
        crops=crops,
        slots=slots_for(clip.alignment, clip.pivots.frames),
        settings=context.settings,
        device=context.runtime.device,
    )
    written = encode(
        output,
        frames,
        like=clip.info,
        audio_from=input_path if clip.info.has_audio else None,
        inputs=(input_path,),
        overwrite=overwrite,
        total=clip.info.frame_count,
        context=context,
        stages=stages,
        render=crops,
        audio_window=window,
    )
    return RunReport(output=output, frames=written, stages=stages, seconds=time.perf_counter() - started)


def morph_video(
    first: Path,
    second: Path,
    output: Path,
    *,
    context: RunContext,
    fps: int,
    face: FaceChoice = LARGEST_FACE,
    crossover: int | None = None,
    overwrite: bool = False,
) -> RunReport:
    """Image2StyleGAN morph between the faces of two inputs (first frame of each) as an aligned-crop video,
    `edit.morph_frames` long. With `crossover=k`, the second face's layers >= k are swapped in instead
    (style crossover), one still held as long."""
    started = time.perf_counter()
    video.check_output(output, inputs=(first, second), overwrite=overwrite)
    clips = prepare_clips(
        [ClipRequest(first, face=face, role="a"), ClipRequest(second, face=face, role="b")], context=context
    )
    stages = [*clips[0].stages, *clips[1].stages]
    num_frames = context.settings.edit.morph_frames
    w_a, w_b = (clip.pivots.ws[:1] for clip in clips)  # [1, num_ws, w_dim] each
    if crossover is not None:
        latents = edit.crossover(w_a, w_b, layer=crossover).expand(num_frames, -1, -1)
    else:
        latents = edit.morph(w_a[0], w_b[0], num_frames=num_frames, ease=context.settings.edit.morph_ease)
    crops = render(
        context.source.generator,
        latents,
        generator_digest=context.source.digest,
        context=context,
        stages=stages,
    )
    resolution = context.source.generator.resolution
    info = video.new_video_info(width=resolution, height=resolution, fps=Fraction(fps))
    frames = (
        (video.Frame(image=crop, pts=index, time_base=info.time_base_fraction, index=index), crop)
        for index, crop in ((index, crops.crop(index)) for index in range(num_frames))
    )
    written = encode(
        output,
        frames,
        like=info,
        audio_from=None,
        inputs=(first, second),
        overwrite=overwrite,
        total=num_frames,
        context=context,
        stages=stages,
        render=crops,
    )
    return RunReport(output=output, frames=written, stages=stages, seconds=time.perf_counter() - started)
