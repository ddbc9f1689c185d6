"""The pipeline: the stages composed into commands (transfer, edit, morph) over files.

No maths and no stage internals live here. Each stage (`reenact.stages.*`) is a unit with a content key,
parts over ranges of frames, a merge, load and save; `RunContext.run` takes stages from the workspace or
computes them (resuming finished parts, resolving what they need first) and reports each. What this
module adds is the order:

    align ─► invert (original G) ─► tune (target only) ─► latents (`reenact.edit`) ─► render ─► paste + encode

with one ending for every command that writes a video (`render_and_encode`); every command returns its
`RunReport` with the run's summary as data (`reenact.report`), which the CLI only prints. So a second
`transfer` with another driver re-uses the target's alignment, pivots and tuned generator; the driver is
inverted with the *original* generator, never the tuned one.

A command on a slice (`window`, from `--start/--duration`) runs every stage on the slice as a clip of its
own, keyed with the slice: its output is the slice alone, from time 0 (`reenact.timeline`). A later run on
the whole clip reuses the slice's face detection (`stages.align`); its alignment, pivots, tuned generator
and renders are the slice's own (they depend on every frame aligned and inverted), never the whole clip's.

Under `torchrun` every rank runs the same command with the run's `group`: each stage is shared out
between the ranks (`reenact.stages.base.run_stage`), and the main rank alone pastes back and writes the
output, so the file is written once, exactly as by one process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from reenact import checks, edit, video
from reenact.cast import CastMember
from reenact.composite import host_image
from reenact.config import Config, EditConfig
from reenact.device import Runtime, maybe_compile
from reenact.distributed import SINGLE, Group
from reenact.errors import ReenactError, UsageError
from reenact.gan.stylegan2 import Generator
from reenact.generator_source import GeneratorSource
from reenact.latents import ComputedLatents, LatentSource
from reenact.progress import SILENT, Progress
from reenact.renders import NONE
from reenact.report import RunReport, StageReport, stage_line, summarise
from reenact.stages.align import LARGEST_FACE, AlignStage, ClipAlignment, FaceChoice
from reenact.stages.base import FrameRange, Need, StageJob, StageRun, Work, run_stages
from reenact.stages.crops import ClipCrops, CropsStage, CropStore
from reenact.stages.expression import BaseStage, ExpressionStage
from reenact.stages.invert import InvertStage, Pivots, plan_segments
from reenact.stages.keys import KeyPivots, KeysStage
from reenact.stages.output import (
    Composited,
    PastedFace,
    cast_frames,
    composite_frames,
    slots_for,
    still_frames,
    write_video,
)
from reenact.stages.people import (
    ClipPeople,
    PeopleStage,
    choose_person,
    reference_descriptor,
    same_person_distance,
)
from reenact.stages.render import (
    Batches,
    RenderStage,
    RenderStream,
    latent_rows,
    main_share,
    render_batches,
    stored_batches,
)
from reenact.stages.tune import Tuned, TuneStage
from reenact.timeline import Window
from reenact.workspace import StageKey, Workspace


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
class RunContext:
    """What every stage of one run shares, and the run's reports: every stage the run computed or found
    goes through `run`, which reports it (a stage line, and `reports` for the summary)."""

    workspace: Workspace
    settings: Config
    runtime: Runtime
    source: GeneratorSource | None = None
    """The generator the run inverts with (None for a run without one: `reenact align`)."""
    perceptual: nn.Module | None = None
    lpips: nn.Module | None = None
    progress: Progress = SILENT
    group: Group = SINGLE
    """The ranks running this command together (`torchrun`); one process by default."""
    fps: Fraction | None = None
    """The frame rate of the run's image sequence inputs (the CLI's `--fps`; None: not given, and a
    sequence input is refused in one line). Every probe and reader of an input is given it."""
    reports: list[StageReport] = field(default_factory=list)
    """Every stage of the command so far, in the order they finished (a stage's needs before it)."""

    def begin(self) -> float:
        """A command starts on this context (a context may serve several in turn): its reports start
        empty; returns the start time for `finish`."""
        self.reports = []
        return time.perf_counter()

    @property
    def generator_source(self) -> GeneratorSource:
        """The run's generator (a run that inverts has one)."""
        if self.source is None:
            raise ReenactError("internal error: this run has no generator")
        return self.source

    def run(self, *jobs: StageJob) -> list[Any]:
        """Run the jobs' stages together (`run_stages`: cached or computed, their needs resolved first),
        report each, and return their results in order."""
        outcomes = run_stages(
            self.workspace, [job.stage for job in jobs], progress=self.progress, group=self.group
        )
        for outcome in outcomes:
            self._report_needs(outcome)
        for job, outcome in zip(jobs, outcomes, strict=True):
            self._report(job, outcome)
        return [outcome.result for outcome in outcomes]

    def _report_needs(self, outcome: StageRun[Any]) -> None:
        """The needs a run resolved, each after its own."""
        for need, need_run in outcome.needs:
            self._report_needs(need_run)
            self._report(need.job, need_run)

    def _report(self, job: StageJob, outcome: StageRun[Any]) -> None:
        """Report a stage, once a run: a cached one already reported (a cast's people, found once for
        every person) is not listed again."""
        if outcome.cached and any(
            report.location == outcome.location for report in self.reports if report.location
        ):
            return
        text = job.detail(outcome.result)
        if outcome.resumed:
            text += f" (resumed: {outcome.resumed} of {outcome.resumed + outcome.computed} parts were done)"
        self.add_report(
            StageReport(
                name=job.name,
                seconds=outcome.seconds,
                cached=outcome.cached,
                detail=text,
                location=outcome.location,
                resumed=outcome.resumed,
                work=outcome.work,
            )
        )

    def add_report(self, report: StageReport) -> None:
        """Report a finished step: its stage line now, its entry in the summary later."""
        self.reports.append(report)
        self.progress.note(stage_line(report.to_dict()))

    def finish(
        self, *, output: Path | None, frames: int, started: float, details: dict[str, Any] | None = None
    ) -> RunReport:
        """The run's report with its summary (`reenact.report.summarise`: every rank calls this)."""
        report = RunReport(
            output=output,
            frames=frames,
            stages=list(self.reports),
            seconds=time.perf_counter() - started,
            details=details or {},
        )
        report.summary = summarise(report, workspace=self.workspace, runtime=self.runtime, group=self.group)
        return report


def make_context(
    *,
    workspace: Workspace,
    source: GeneratorSource,
    settings: Config,
    runtime: Runtime,
    progress: Progress = SILENT,
    group: Group = SINGLE,
    fps: Fraction | None = None,
) -> RunContext:
    """A run's shared state (`fps`: its image sequence inputs' frame rate); the loss networks are built
    once, here (failing early if weights are missing)."""
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
        fps=fps,
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
    crops: ClipCrops | None = None
    """Its crops (stored when a stage that needs them computes), for stages after the inversion."""
    align_key: StageKey | None = None
    settings: Config | None = None
    """The settings its inversion ran with (`clip_settings`)."""


def note_lost_frames(path: Path, info: video.VideoInfo, *, context: RunContext) -> None:
    """Warn when the clip's container announced more frames than decode."""
    if info.frames_missing:
        context.progress.note(
            video.lost_frames_warning(path, lost=info.frames_missing, announced=info.frames_announced)
        )


def align_clip(
    path: Path,
    *,
    context: RunContext,
    resolution: int,
    landmarks: str | None = None,
    face: FaceChoice = LARGEST_FACE,
    role: str = "input",
    window: Window | None = None,
) -> tuple[ClipAlignment, AlignStage]:
    """The alignment of the person `face` chooses in the clip (or its `window`), crops of `resolution` px
    (cached): the clip's people first (`clip_people`), then that person's face in every frame. What
    `reenact align` computes too."""
    people, people_stage = clip_people(path, context=context, landmarks=landmarks, window=window, role=role)
    person = resolve_person(people, people_stage, face, path=path, landmarks=landmarks, context=context)
    stage = AlignStage(
        people,
        people_key=people_stage.key,
        person=person,
        path=path,
        info=people_stage.info,
        settings=context.settings,
        resolution=resolution,
        window=window,
    )
    (alignment,) = context.run(
        StageJob(stage, name=f"{role[:3]}-align", detail=lambda a: FaceCounts.of(a).text())
    )
    return alignment, stage


def resolve_person(
    people: ClipPeople,
    stage: PeopleStage,
    face: FaceChoice,
    *,
    path: Path,
    landmarks: str | None,
    context: RunContext,
) -> int:
    """The id of the person of `people` (the clip at `path`) that `face` chooses; a reference photo is
    described as the clip's faces are (`stages.people.choose_person`)."""
    reference = None
    if face.ref is not None:
        reference = reference_descriptor(
            face.ref,
            settings=context.settings,
            landmarks=landmarks,
            descriptor=stage.descriptor,
            runtime=context.runtime,
        )
    return choose_person(
        people, face, path=path, reference=reference, threshold=same_person_distance(stage.descriptor)
    )


def clip_people(
    path: Path,
    *,
    context: RunContext,
    landmarks: str | None = None,
    window: Window | None = None,
    role: str | None = None,
) -> tuple[ClipPeople, PeopleStage]:
    """Every person in the clip (or its `window`), cached: what `reenact people` shows, and what every
    alignment chooses its person from."""
    stage = PeopleStage(
        context.workspace,
        path,
        settings=context.settings,
        landmarks=landmarks,
        runtime=context.runtime,
        progress=context.progress,
        shards=context.group.size,
        window=window,
        fps=context.fps,
    )
    note_lost_frames(path, stage.info, context=context)
    name = "people" if role is None else f"{role[:3]}-people"
    (people,) = context.run(StageJob(stage, name=name, detail=ClipPeople.text))
    return people, stage


@dataclass(frozen=True)
class ClipRequest:
    """A clip a command prepares: its file, landmark source, the face to follow, its role, the slice
    of it that is used (None: all of it), and whether it drives another (its offsets are the expression)."""

    path: Path
    landmarks: str | None = None
    face: FaceChoice = LARGEST_FACE
    role: str = "target"
    window: Window | None = None
    drives: bool = False


def clip_settings(settings: Config, *, drives: bool) -> Config:
    """The settings a clip is inverted with: a driver's inversion never pulls its W+ layers together
    (`invert.spread_weight`), since its expression lives on some layers and the pull spreads it over all."""
    if not drives or not settings.invert.spread_weight:
        return settings
    return replace(settings, invert=replace(settings.invert, spread_weight=0.0))


def person_request(
    path: Path, person: int, *, landmarks: str | None = None, window: Window | None = None
) -> ClipRequest:
    """The request for one person of a clip with several (their stages keyed by their id)."""
    return ClipRequest(
        path, landmarks=landmarks, face=FaceChoice(person=person), role=f"p{person}", window=window
    )


def slot_ranges(ranges: list[FrameRange], frames: np.ndarray) -> list[range]:
    """Frame ranges whose every frame has a face (runs, segments) as ranges of rows of the pivots of
    `frames` [N] (the frames with a face, ascending)."""
    starts = np.searchsorted(frames, [part.start for part in ranges])
    return [range(int(start), int(start) + len(part)) for start, part in zip(starts, ranges, strict=True)]


def key_chains(
    crops: ClipCrops, *, align: StageKey, role: str, settings: Config, context: RunContext, owner: int
) -> Need[KeyPivots] | None:
    """The clip's key chain (`stages.keys`), which warm inversion segments start from, computed by rank
    `owner`; None in cold mode."""
    if settings.invert.mode == "cold":
        return None
    stage = KeysStage(
        crops,
        align=align,
        source=context.generator_source,
        settings=settings,
        perceptual=context.perceptual,
        runtime=context.runtime,
        progress=context.progress,
        owner=owner,
    )
    return Need(
        StageJob(stage, name=f"{role[:3]}-keys", detail=lambda keys: f"{len(keys.frames)} key frames")
    )


def prepare_clips(
    requests: list[ClipRequest], *, context: RunContext, tune_first: bool = False
) -> list[PreparedClip]:
    """Align and invert clips with the original generator; `tune_first=True` adds the PTI pass of the first.

    The clips' inversions run together, so in a group every rank has work at once
    (`stages.invert.plan_segments`); each needs its clip's crops, which the runner stores first when the
    inversion (or the tuning) is computed."""
    source = context.generator_source
    clips: list[tuple[ClipAlignment, AlignStage, ClipCrops]] = []
    for request in requests:
        alignment, align = align_clip(
            request.path,
            context=context,
            resolution=source.generator.resolution,
            landmarks=request.landmarks,
            face=request.face,
            role=request.role,
            window=request.window,
        )
        crops = ClipCrops(
            CropsStage(
                request.path,
                alignment,
                align=align.key,
                progress=context.progress,
                shards=context.group.size,
                window=request.window,
                fps=context.fps,
                colour=align.info.colour,
            ),
            name=f"{request.role[:3]}-crops",
        )
        clips.append((alignment, align, crops))
    owners = plan_segments(
        [alignment for alignment, *_ in clips],
        size=context.settings.invert.segment_frames,
        shards=context.group.size,
    )
    inverts = []
    clip_configs = []
    for (_, align, crops), clip_owners, request in zip(clips, owners, requests, strict=True):
        settings = clip_settings(context.settings, drives=request.drives)
        clip_configs.append(settings)
        inverts.append(
            InvertStage(
                crops,
                align=align.key,
                source=source,
                settings=settings,
                perceptual=context.perceptual,
                runtime=context.runtime,
                progress=context.progress,
                keys=key_chains(
                    crops,
                    align=align.key,
                    role=request.role,
                    settings=settings,
                    context=context,
                    owner=clip_owners[0] if clip_owners else 0,
                ),
                owners=clip_owners,
            )
        )
    pivots = context.run(
        *(
            StageJob(
                invert,
                name=f"{request.role[:3]}-invert",
                detail=lambda p: f"mean PSNR {float(p.psnr.mean()):.2f} dB",
            )
            for invert, request in zip(inverts, requests, strict=True)
        )
    )
    prepared = [
        PreparedClip(
            path=request.path,
            alignment=alignment,
            pivots=clip_pivots,
            info=align.info,
            crops=crops,
            align_key=align.key,
            settings=settings,
        )
        for (alignment, align, crops), clip_pivots, settings in zip(clips, pivots, clip_configs, strict=True)
    ]
    if tune_first:
        stage = TuneStage(
            clips[0][2],
            pivots=pivots[0],
            invert=inverts[0].key,
            source=source,
            settings=context.settings,
            lpips=context.lpips,
            runtime=context.runtime,
            progress=context.progress,
            group=context.group,
        )
        (prepared[0].tuned,) = context.run(
            StageJob(
                stage,
                name=f"{requests[0].role[:3]}-tune",
                detail=lambda t: (
                    f"PSNR {t.psnr_before:.2f} -> {t.psnr_after:.2f} dB"
                    + (f" (resumed from step {stage.resumed_from})" if stage.resumed_from else "")
                ),
            )
        )
        prepared[0].tune_digest = stage.key.digest
    return prepared


def prepare_people(
    path: Path,
    people: list[int],
    *,
    context: RunContext,
    landmarks: str | None = None,
    window: Window | None = None,
    tune: bool = False,
) -> list[PreparedClip]:
    """Each of `people` of the clip prepared in turn (`--people all`): aligned, inverted and, with
    `tune`, tuned on their own frames."""
    return [
        clip
        for person in people
        for clip in prepare_clips(
            [person_request(path, person, landmarks=landmarks, window=window)],
            context=context,
            tune_first=tune,
        )
    ]


def person_summary(person: int | None, clip: PreparedClip) -> dict[str, Any]:
    """One person's line of a run over several people: frames, inversion and tuned PSNR."""
    return {
        "person": person,
        "frames": len(clip.pivots.frames),
        "psnr_inversion": float(clip.pivots.psnr.mean()),
        "psnr_tuned": None if clip.tuned is None else clip.tuned.psnr_after,
    }


def prepare(
    path: Path,
    *,
    context: RunContext,
    landmarks: str | None = None,
    face: FaceChoice = LARGEST_FACE,
    tune: bool = False,
    window: Window | None = None,
    everyone: bool = False,
) -> tuple[list[PreparedClip], RunReport]:
    """`reenact invert` (`tune=False`) and `reenact tune`: one clip (or its `window`) aligned and
    inverted, and with `tune=True` the PTI pass over it; the clip and the run's report (its frames: the
    frames inverted). `everyone`: every person of the clip in turn, one prepared clip each (`face` unused),
    and a `people` list in the report's details."""
    started = context.begin()
    if not everyone:
        request = ClipRequest(path=path, landmarks=landmarks, face=face, role="input", window=window)
        clips = prepare_clips([request], context=context, tune_first=tune)
        return clips, context.finish(output=None, frames=len(clips[0].pivots.frames), started=started)
    people = people_ids(path, context=context, landmarks=landmarks, window=window, role="input")
    clips = prepare_people(path, people, context=context, landmarks=landmarks, window=window, tune=tune)
    details = {"people": [person_summary(person, clip) for person, clip in zip(people, clips, strict=True)]}
    frames = sum(len(clip.pivots.frames) for clip in clips)
    return clips, context.finish(output=None, frames=frames, started=started, details=details)


# ------------------------------------------------------------------------------------------ the ending


Composite = Callable[[RenderStream], Iterator[Composited]]
"""The output's frames, each with its image, pasted back from the crops a `RenderStream` hands over."""


@dataclass(frozen=True)
class OutputPlan:
    """The output file of a command and what it is written like: its timing (`like`), audio, length, and
    the inputs it must not overwrite."""

    path: Path
    like: video.VideoInfo
    audio_from: Path | None
    inputs: tuple[Path, ...]
    total: int
    overwrite: bool
    audio_window: Window | None = None
    matte: Path | None = None
    """Where the face matte goes (`video.MatteWriter`); None: no matte."""

    @classmethod
    def following(
        cls,
        path: Path,
        *,
        clip: Path,
        info: video.VideoInfo,
        inputs: tuple[Path, ...],
        total: int,
        overwrite: bool,
        window: Window | None = None,
        matte: Path | None = None,
    ) -> OutputPlan:
        """An output with the timing and audio of `clip` (of its `window`: the slice's audio)."""
        return cls(
            path,
            like=info,
            audio_from=clip if video.copies_streams(info) else None,
            inputs=inputs,
            total=total,
            overwrite=overwrite,
            audio_window=window,
            matte=matte,
        )


def check_output_format(
    output: Path,
    *,
    like: video.VideoInfo,
    context: RunContext,
    window: Window | None,
    inputs: tuple[Path, ...] = (),
    overwrite: bool = False,
    matte: Path | None = None,
    pixels: video.VideoInfo | None = None,
) -> None:
    """Stop the run now, not after the tuning, when its output cannot be written as asked
    (`video.check_output`, on a sequence's first file as it will be numbered; `video.output_format`: codec,
    container, bit depth, timecode, frame size), nor its `matte`, when the
    faces cannot be pasted in its colour space (HDR, wide gamut: `video.check_face_colour`), or when
    Poisson blending (8-bit only) is asked of a deeper source; notes the source's subtitle and data streams
    the output cannot hold (`video.dropped_streams_note`). `pixels`: the clip whose frames are written
    when it is not `like` (a photo animated on a driver's timing), whose size the codec must take."""
    first_number = video.first_output_number(like, window)
    video.check_output(output, inputs=inputs, overwrite=overwrite, first_number=first_number)
    chosen = video.output_format(output, like=like, config=context.settings.video, window=window)
    if pixels is not None:
        video.check_encodable(pixels, codec=chosen.codec)
    video.check_face_colour(like)
    dropped = video.dropped_streams_note(like.path, output) if video.copies_streams(like) else None
    if dropped is not None:
        context.progress.note(dropped)
    if matte is not None:
        if matte.resolve() == output.resolve():
            raise ReenactError(f"--matte {matte} is the output itself: give the matte a file of its own")
        video.check_matte(matte, inputs=(*inputs, output), overwrite=overwrite, first_number=first_number)
    if context.settings.composite.poisson and like.bit_depth > video.EIGHT_BITS:
        raise ReenactError(
            f"composite.poisson blends 8-bit frames only, and {like.path} has {like.bit_depth}-bit samples: "
            "turn it off to keep their depth"
        )


@dataclass(frozen=True)
class RenderJob:
    """Latents [M, num_ws, w_dim] for `generator` (whose digest keys stored renders) to render."""

    generator: Generator
    latents: LatentSource
    digest: str


def render_and_encode(
    generator: Generator,
    latents: LatentSource,
    *,
    generator_digest: str,
    composite: Composite,
    output: OutputPlan,
    context: RunContext,
    started: float,
    details: dict[str, Any] | None = None,
) -> RunReport:
    """The one ending of `transfer`, `edit` and `morph`: `latents` [M, num_ws, w_dim] rendered by
    `generator` and pasted back by `composite` (`render_and_encode_all` with one job)."""
    return render_and_encode_all(
        [RenderJob(generator, latents, generator_digest)],
        composite=lambda streams: composite(streams[0]),
        output=output,
        context=context,
        started=started,
        details=details,
    )


def render_and_encode_all(
    jobs: list[RenderJob],
    *,
    composite: Callable[[list[RenderStream]], Iterator[Composited]],
    output: OutputPlan,
    context: RunContext,
    started: float,
    details: dict[str, Any] | None = None,
) -> RunReport:
    """Each job's latents rendered in a background thread of its own and handed over in memory, a few
    batches at a time (`stages.render.RenderStream`, one per job), while `composite` pastes the crops of
    all of them back and the output is written (`stages.output.write_video`); returns the run's report.
    A failure on either side stops both; no render is stored.

    In a group, the main rank renders its own share of each job in the same way, and the other ranks
    render the rest into the workspace meanwhile (`stages.render.RenderStage`, keyed by the job's
    generator digest); the main rank reads it after its own share, writes the output alone, and drops it
    once the encode has succeeded."""
    group = context.group
    shares = [main_share(len(job.latents), ranks=group.size) for job in jobs]
    others = [
        RenderStage(
            job.generator,
            latent_rows(job.latents, start=share),
            generator_digest=job.digest,
            runtime=context.runtime,
            progress=context.progress,
            ranks=range(1, group.size),
        )
        if share < len(job.latents)
        else None
        for job, share in zip(jobs, shares, strict=True)
    ]
    pending = [stage for stage in others if stage is not None]

    def run_others() -> list[StageRun[CropStore]]:
        return run_stages(context.workspace, pending, progress=context.progress, group=group)

    encoding = time.perf_counter()
    written = 0
    works = [Work() for _ in jobs]  # one per render thread
    if not group.is_main:  # this rank's parts of the others' share: the main rank reads them, then drops them
        if pending:
            works = [outcome.work for outcome in run_others()]
            for stage in pending:
                context.workspace.release(stage.key)
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-others") as pool:
            stored = pool.submit(run_others) if pending else None  # collectives: from the start

            def produce(index: int) -> Batches:
                job, stage = jobs[index], others[index]
                yield from render_batches(
                    job.generator,
                    job.latents,
                    stop=shares[index],
                    runtime=context.runtime,
                    work=works[index],
                    progress=context.progress,
                )
                if stored is not None and stage is not None:
                    outcome = stored.result()[pending.index(stage)]
                    yield from stored_batches(outcome.result, offset=shares[index])

            with contextlib.ExitStack() as streams:
                crops = [
                    streams.enter_context(RenderStream(partial(produce, index), count=len(job.latents)))
                    for index, job in enumerate(jobs)
                ]
                written = write_video(
                    output.path,
                    composite(crops),
                    like=output.like,
                    audio_from=output.audio_from,
                    inputs=output.inputs,
                    settings=context.settings,
                    overwrite=output.overwrite,
                    total=output.total,
                    progress=context.progress,
                    audio_window=output.audio_window,
                    matte=output.matte,
                )
        for stage in pending:  # consumed: stored renders do not stay (`stages.render`)
            context.workspace.drop(stage.key)
    work = Work(
        parts=sum(w.parts for w in works),
        resumed=sum(w.resumed for w in works),
        frames=sum(w.frames for w in works),
        renders=sum((w.renders for w in works), NONE),
        seconds=sum(w.seconds for w in works),
    )
    context.add_report(
        StageReport(
            name="render",
            seconds=work.seconds,
            cached=not work.parts,
            detail=f"{work.frames} crops",
            work=work,
        )
    )
    context.add_report(
        StageReport(
            name="encode",
            seconds=time.perf_counter() - encoding,
            cached=False,
            detail=f"{written} frames" if group.is_main else "written by the main rank",
            location=output.path,
        )
    )
    return context.finish(output=output.path, frames=written, started=started, details=details)


# ------------------------------------------------------------------------------------------ commands


def driver_offsets(
    driver: PreparedClip, *, context: RunContext, config: EditConfig, ref: int | None
) -> tuple[ComputedLatents, int]:
    """The driver's expression offsets [T_drv, num_ws, w_dim] from its neutral frame (`ref`, or found from
    its pivots), and that frame: taken along its runs joined (`edit.driver_deltas`), or, with
    `edit.driver_base = "w"`, between its expression fits on a base in W (`stages.expression`)."""
    w_avg = context.generator_source.generator.mapping.w_avg
    num_frames = driver.alignment.num_frames
    deltas, ref_frame = edit.driver_deltas(
        driver.pivots.ws,
        driver.pivots.frames,
        num_frames=num_frames,
        config=config,
        w_avg=w_avg,
        ref=ref,
        runs=slot_ranges(driver.alignment.runs(), driver.pivots.frames),
    )
    if config.driver_base == "pivots":
        return deltas, ref_frame
    fits = expression_fits(driver, ref=ref_frame, context=context)
    return edit.driver_deltas(
        fits.ws, fits.frames, num_frames=num_frames, config=config, w_avg=w_avg, ref=ref_frame
    )


def expression_fits(driver: PreparedClip, *, ref: int, context: RunContext) -> Pivots:
    """The driver's frames fitted on its expression layers alone from its frame `ref` fitted in W (cached;
    `stages.expression`)."""
    assert driver.crops is not None and driver.align_key is not None and driver.settings is not None
    role = driver.crops.job.name.removesuffix("-crops")
    settings = driver.settings
    base = BaseStage(
        driver.crops,
        ref=ref,
        align=driver.align_key,
        source=context.generator_source,
        settings=settings,
        perceptual=context.perceptual,
        runtime=context.runtime,
    )
    stage = ExpressionStage(
        driver.crops,
        base=Need(StageJob(base, name=f"{role}-base", detail=lambda _: f"frame {ref} in W")),
        base_key=base.key,
        free=edit.layer_mask(settings.edit.layers, num_ws=context.generator_source.generator.num_ws),
        source=context.generator_source,
        settings=settings,
        perceptual=context.perceptual,
        runtime=context.runtime,
        progress=context.progress,
    )
    (fits,) = context.run(
        StageJob(
            stage, name=f"{role}-expression", detail=lambda got: f"mean PSNR {float(got.psnr.mean()):.2f} dB"
        )
    )
    return fits


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
    matte: Path | None = None,
) -> RunReport:
    """Put the driver's expressions on the target (its `face`), in the target's video (or animate a still);
    with `matte`, the blend weights of every output frame beside it (`video.MatteWriter`).

    `window`: a slice of the target, the output's frames (from time 0, with their audio); the driver is
    used from its first frame, as for a whole target, its length fitted by `edit.length_policy`."""
    started = context.begin()
    source = context.generator_source
    target_info = video.probe(target_path, fps=context.fps)
    driver_info = video.probe(driver_path, fps=context.fps)
    timing = driver_info if target_info.is_image else target_info  # a photo: the driver's
    check_output_format(
        output,
        like=timing,
        pixels=target_info,
        context=context,
        window=window,
        inputs=(target_path, driver_path),
        overwrite=overwrite,
        matte=matte,
    )
    config = context.settings.edit
    checks.check_layers(config.layers, option="edit.layers", num_ws=source.generator.num_ws)
    checks.check_driver_ref(driver_ref, info=driver_info)  # so do bad option values
    target, driver = prepare_clips(
        [
            ClipRequest(target_path, landmarks=target_landmarks, face=face, role="target", window=window),
            ClipRequest(driver_path, landmarks=driver_landmarks, role="driver", drives=True),
        ],
        context=context,
        tune_first=True,
    )
    assert target.tuned is not None
    # [T_drv, num_ws, w_dim]
    deltas, ref_frame = driver_offsets(driver, context=context, config=config, ref=driver_ref)
    composite: Composite
    if target.info.is_image:
        # A still photo: the output follows the driver's timeline, one frame of the photo per driver frame.
        latents = edit.transfer_to_still(target.pivots.ws[0:1], deltas, strength=config.strength)
        photo = next(iter(video.VideoReader(target_path, fps=context.fps).frames(upright=True)))
        timeline = (
            video.Frame(image=photo.image, pts=frame.pts, time_base=frame.time_base, index=0)
            for frame in video.VideoReader(driver_path, fps=context.fps).frames(upright=True)
        )

        def composite(crops: RenderStream) -> Iterator[Composited]:
            return still_frames(
                timeline,
                alignment=target.alignment,
                crops=crops,
                settings=context.settings,
                device=context.runtime.device,
                colour=target.info.colour,
            )

        plan = OutputPlan.following(
            output,
            clip=driver_path,
            info=driver.info,
            inputs=(target_path, driver_path),
            total=driver.info.frame_count,
            overwrite=overwrite,
            matte=matte,
        )
    else:
        latents = transfer_latents(target, deltas, config=config)  # [N_tgt, num_ws, w_dim]
        num_out = edit.output_length(
            target.alignment.num_frames, driver.alignment.num_frames, policy=config.length_policy
        )

        def composite(crops: RenderStream) -> Iterator[Composited]:
            return composite_frames(
                (
                    frame
                    for frame in video.VideoReader(target_path, fps=context.fps, window=window).frames(
                        upright=True, native=True
                    )
                    if frame.index < num_out
                ),
                alignment=target.alignment,
                crops=crops,
                slots=slots_for(target.alignment, target.pivots.frames),
                settings=context.settings,
                device=context.runtime.device,
                colour=target.info.colour,
            )

        plan = OutputPlan.following(
            output,
            clip=target_path,
            info=target.info,
            inputs=(target_path, driver_path),
            total=num_out,
            overwrite=overwrite,
            window=window,
            matte=matte,
        )
    return render_and_encode(
        target.tuned.generator,
        latents,
        generator_digest=target.tune_digest,
        composite=composite,
        output=plan,
        context=context,
        started=started,
        details={
            "driver_ref": ref_frame,
            "psnr_inversion": float(target.pivots.psnr.mean()),
            "psnr_tuned": target.tuned.psnr_after,
            "layers": config.layers,
            "strength": config.strength,
            "slice": None if window is None else window.describe(),
        },
    )


def cast_people(
    scene: Path,
    cast: list[CastMember],
    *,
    context: RunContext,
    landmarks: str | None = None,
    window: Window | None = None,
) -> list[int]:
    """The scene's person each cast member names (`--cast`): a `UsageError` for an id the scene does not
    have, a photo that matches nobody, or two members that are one person."""
    people, stage = clip_people(scene, context=context, landmarks=landmarks, window=window, role="target")
    chosen: list[int] = []
    for member in cast:
        person = resolve_person(people, stage, member.face, path=scene, landmarks=landmarks, context=context)
        if person in chosen:
            other = cast[chosen.index(person)]
            raise UsageError(
                f"the cast names person {person} of {scene} twice: as {other.describe()} and as "
                f"{member.describe()}; give each person one [[person]] table"
            )
        chosen.append(person)
    return chosen


def people_ids(
    path: Path,
    *,
    context: RunContext,
    landmarks: str | None = None,
    window: Window | None = None,
    role: str = "target",
) -> list[int]:
    """The ids of every person of the clip (`--people all`); a `UsageError` when there is nobody."""
    people, _ = clip_people(path, context=context, landmarks=landmarks, window=window, role=role)
    if not people.ids:
        raise UsageError(f"found no face in {path}")
    return people.ids


def transfer_latents(target: PreparedClip, deltas: Tensor, *, config: EditConfig) -> Tensor:
    """The target's output latents [N, num_ws, w_dim]: its pivots plus the driver's offsets `deltas`
    [T_drv, num_ws, w_dim] (`driver_offsets`) on its frames (`edit.transfer_to_frames`)."""
    return edit.transfer_to_frames(
        target.pivots.ws,
        target.pivots.frames,
        deltas,
        num_target=target.alignment.num_frames,
        config=config,
    )


def everyone_cast(
    scene: Path,
    driver: Path,
    *,
    context: RunContext,
    landmarks: str | None = None,
    driver_landmarks: str | None = None,
    driver_frame: int | None = None,
    window: Window | None = None,
) -> list[CastMember]:
    """A cast that gives every person of the scene the one `driver` (its largest face, as a plain
    transfer's) (`reenact transfer SCENE DRIVER --people all`)."""
    return [
        CastMember(
            face=FaceChoice(person=person),
            driver=driver,
            driver_face=LARGEST_FACE,
            driver_landmarks=driver_landmarks,
            driver_frame=driver_frame,
        )
        for person in people_ids(scene, context=context, landmarks=landmarks, window=window)
    ]


def transfer_cast(
    scene: Path,
    cast: list[CastMember],
    output: Path,
    *,
    context: RunContext,
    landmarks: str | None = None,
    overwrite: bool = False,
    window: Window | None = None,
    matte: Path | None = None,
) -> RunReport:
    """Every cast member's driver on their own person of the scene (`reenact transfer SCENE --cast`), all
    pasted into each frame (the larger face in front) before one encode. Each person is aligned, inverted
    and tuned on their own frames, with a generator of their own; the others' frames pass through.

    `window`: a slice of the scene, the output's frames; every driver is used from its first frame."""
    started = context.begin()
    source = context.generator_source
    drivers = tuple(member.driver for member in cast)
    info = video.probe(scene, fps=context.fps)
    check_output_format(
        output,
        like=info,
        context=context,
        window=window,
        inputs=(scene, *drivers),
        overwrite=overwrite,
        matte=matte,
    )
    if info.is_image:
        raise UsageError(f"--cast needs a video scene; {scene} is a still image")
    edits = []
    for member, driver_info in zip(cast, checks.check_inputs(list(drivers), fps=context.fps), strict=True):
        config = replace(
            context.settings.edit,
            strength=context.settings.edit.strength if member.strength is None else member.strength,
            layers=member.layers or context.settings.edit.layers,
        )
        checks.check_layers(config.layers, option="layers", num_ws=source.generator.num_ws)
        checks.check_driver_ref(member.driver_frame, info=driver_info)
        edits.append(config)
    people = cast_people(scene, cast, context=context, landmarks=landmarks, window=window)
    renders, summaries, lengths = [], [], []
    for member, person, config in zip(cast, people, edits, strict=True):
        target, driver = prepare_clips(
            [
                person_request(scene, person, landmarks=landmarks, window=window),
                ClipRequest(
                    member.driver,
                    landmarks=member.driver_landmarks,
                    face=member.driver_face,
                    role=f"d{person}",
                    drives=True,
                ),
            ],
            context=context,
            tune_first=True,
        )
        assert target.tuned is not None
        # [T_drv, num_ws, w_dim]
        deltas, ref_frame = driver_offsets(driver, context=context, config=config, ref=member.driver_frame)
        latents = transfer_latents(target, deltas, config=config)  # [N_person, num_ws, w_dim]
        lengths.append(
            edit.output_length(
                target.alignment.num_frames, driver.alignment.num_frames, policy=config.length_policy
            )
        )
        renders.append(PersonRender(target, RenderJob(target.tuned.generator, latents, target.tune_digest)))
        summaries.append(
            {
                "person": person,
                "driver": str(member.driver),
                "driver_ref": ref_frame,
                "frames": len(target.pivots.frames),
                "psnr_inversion": float(target.pivots.psnr.mean()),
                "psnr_tuned": target.tuned.psnr_after,
                "layers": config.layers,
                "strength": config.strength,
            }
        )
    num_out = min(lengths)
    plan = OutputPlan.following(
        output,
        clip=scene,
        info=video.sliced_info(info, window),
        inputs=(scene, *drivers),
        total=num_out,
        overwrite=overwrite,
        window=window,
        matte=matte,
    )
    return paste_people(
        scene,
        renders,
        plan=plan,
        context=context,
        started=started,
        window=window,
        details={"cast": summaries, "slice": None if window is None else window.describe()},
    )


@dataclass
class PersonRender:
    """One person's part of an output with several people: their prepared clip (alignment, the frames of
    their pivots) and the render of their latents."""

    clip: PreparedClip
    job: RenderJob


def paste_people(
    source: Path,
    renders: list[PersonRender],
    *,
    plan: OutputPlan,
    context: RunContext,
    started: float,
    window: Window | None = None,
    details: dict[str, Any] | None = None,
) -> RunReport:
    """Render every person's latents and paste them all into each frame of `source` (or its `window`),
    the larger face in front (`stages.output.cast_frames`), up to `plan.total` frames, one encode."""

    def composite(streams: list[RenderStream]) -> Iterator[Composited]:
        return cast_frames(
            (
                frame
                for frame in video.VideoReader(source, fps=context.fps, window=window).frames(
                    upright=True, native=True
                )
                if frame.index < plan.total
            ),
            faces=[
                PastedFace(
                    render.clip.alignment,
                    slots_for(render.clip.alignment, render.clip.pivots.frames),
                    crops,
                    colour=render.clip.info.colour,
                )
                for render, crops in zip(renders, streams, strict=True)
            ],
            settings=context.settings,
            device=context.runtime.device,
        )

    return render_and_encode_all(
        [render.job for render in renders],
        composite=composite,
        output=plan,
        context=context,
        started=started,
        details=details or {},
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
    everyone: bool = False,
    matte: Path | None = None,
) -> RunReport:
    """Attribute edit over a whole clip (or its `window`, from time 0): every pivot moved along the
    directions on `edit.direction_layers`. `everyone`: every person of the clip (each inverted and tuned on
    their own frames), all pasted into one output; `face` is then unused."""
    started = context.begin()
    num_ws = context.generator_source.generator.num_ws
    check_output_format(
        output,
        like=video.probe(input_path, fps=context.fps),
        context=context,
        window=window,
        inputs=(input_path,),
        overwrite=overwrite,
        matte=matte,
    )
    layers = context.settings.edit.direction_layers
    checks.check_layers(layers, option="edit.direction_layers", num_ws=num_ws)
    mask = edit.layer_mask(layers, num_ws=num_ws)
    if everyone:
        people = people_ids(input_path, context=context, landmarks=landmarks, window=window, role="input")
        renders = []
        for clip in prepare_people(
            input_path, people, context=context, landmarks=landmarks, window=window, tune=True
        ):
            assert clip.tuned is not None
            latents = edit.apply_directions(clip.pivots.ws, directions, layers=mask)
            renders.append(PersonRender(clip, RenderJob(clip.tuned.generator, latents, clip.tune_digest)))
        info = renders[0].clip.info
        plan = OutputPlan.following(
            output,
            clip=input_path,
            info=info,
            inputs=(input_path,),
            total=info.frame_count,
            overwrite=overwrite,
            window=window,
            matte=matte,
        )
        return paste_people(
            input_path,
            renders,
            plan=plan,
            context=context,
            started=started,
            window=window,
            details={
                "people": [
                    person_summary(person, render.clip)
                    for person, render in zip(people, renders, strict=True)
                ]
            },
        )
    (clip,) = prepare_clips(
        [ClipRequest(input_path, landmarks=landmarks, face=face, role="input", window=window)],
        context=context,
        tune_first=True,
    )
    assert clip.tuned is not None
    latents = edit.apply_directions(clip.pivots.ws, directions, layers=mask)

    def composite(crops: RenderStream) -> Iterator[Composited]:
        return composite_frames(
            video.VideoReader(input_path, fps=context.fps, window=window).frames(upright=True, native=True),
            alignment=clip.alignment,
            crops=crops,
            slots=slots_for(clip.alignment, clip.pivots.frames),
            settings=context.settings,
            device=context.runtime.device,
            colour=clip.info.colour,
        )

    return render_and_encode(
        clip.tuned.generator,
        latents,
        generator_digest=clip.tune_digest,
        composite=composite,
        output=OutputPlan.following(
            output,
            clip=input_path,
            info=clip.info,
            inputs=(input_path,),
            total=clip.info.frame_count,
            overwrite=overwrite,
            window=window,
            matte=matte,
        ),
        context=context,
        started=started,
    )


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
    started = context.begin()
    source = context.generator_source
    video.check_output(output, inputs=(first, second), overwrite=overwrite)
    clips = prepare_clips(
        [ClipRequest(first, face=face, role="a"), ClipRequest(second, face=face, role="b")], context=context
    )
    num_frames = context.settings.edit.morph_frames
    w_a, w_b = (clip.pivots.ws[:1] for clip in clips)  # [1, num_ws, w_dim] each
    if crossover is not None:
        latents = edit.crossover(w_a, w_b, layer=crossover).expand(num_frames, -1, -1)
    else:
        latents = edit.morph(w_a[0], w_b[0], num_frames=num_frames, ease=context.settings.edit.morph_ease)
    resolution = source.generator.resolution
    info = video.new_video_info(width=resolution, height=resolution, fps=Fraction(fps))

    def composite(crops: RenderStream) -> Iterator[Composited]:
        return (  # the crops are the frames: on the host, for the encoder
            (video.Frame(image=crop, pts=index, time_base=info.time_base_fraction, index=index), crop, ())
            for index, crop in ((index, host_image(crops.crop(index))) for index in range(num_frames))
        )

    return render_and_encode(
        source.generator,
        latents,
        generator_digest=source.digest,
        composite=composite,
        output=OutputPlan(
            output, like=info, audio_from=None, inputs=(first, second), total=num_frames, overwrite=overwrite
        ),
        context=context,
        started=started,
    )
