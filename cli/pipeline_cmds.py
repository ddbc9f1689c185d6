"""`reenact invert | tune | transfer | edit | morph`: the GAN pipeline on video files.

I/O only: options become a `reenact.pipeline.RunContext` and the pipeline does the work. Every stage's
result is cached in `--workdir`, so a second run (another driver, another edit) reuses what it can, and
an interrupted run resumes. Launched by `torchrun`, every rank runs the command and shares its stages
out (`reenact.distributed`); the main rank prints progress and the summary, with each rank's work.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.checks import FaceRequest, usage_value
from reenact.config import DEFAULT_GENERATOR, DEFAULT_QUALITY, DEFAULT_WORKDIR
from reenact.errors import UsageError
from reenact.renders import Renders
from reenact.threads import is_small_work, use_threads
from reenact_cli.common import (
    AsJson,
    Compile,
    Device,
    Duration,
    FaceAt,
    FaceIndex,
    Generator,
    Landmarks,
    Output,
    Overwrite,
    Precision,
    Preset,
    Quality,
    Quiet,
    Sets,
    Start,
    Threads,
    Workdir,
    config_default,
    face_choice,
    settings_for,
    slice_window,
)
from reenact_cli.progress import cli_progress

if TYPE_CHECKING:
    from reenact import distributed, pipeline
    from reenact.timeline import Window

RANDOM_GENERATOR_PRESET = "synthetic"
"""The preset a random:* generator runs with unless told otherwise (MSE-only losses, small budgets)."""
GIGABYTE = 1e9
RENDER_KINDS = tuple(field.name for field in dataclasses.fields(Renders))
"""The kinds of generator render counted."""

Input = Annotated[Path, typer.Argument(help="Input video or photo.")]


def make_context(
    *,
    generator: str,
    device: str,
    precision: str,
    compile: bool,
    workdir: Path,
    preset: str | None,
    sets: list[str] | None,
    quiet: bool,
    quality: str = DEFAULT_QUALITY,
    group: distributed.Group | None = None,
    inputs: Sequence[Path] = (),
    face: FaceRequest | None = None,
    layers: dict[str, str | None] | None = None,
    driver_ref: int | None = None,
    threads: int | None = None,
    **sections: dict[str, Any],
) -> pipeline.RunContext:
    """Settings, device, workspace and generator of a command, with the loss networks built up front.

    First everything is checked (`reenact.checks.check_run`): the option values, the `inputs` (the first
    is the clip whose `face` is followed, the second the driver `driver_ref` counts in), `layers` (option
    name -> W+ layer spec) and every weight file, so a mistake ends the command before anything loads.
    `group`: the ranks that share this command's stages; by default the processes `torchrun` started (one
    without it). Under `torchrun` each process runs on its own GPU. `threads` (`--threads`): a small
    generator gets one thread unless it is given (`reenact.threads`)."""
    from reenact import checks, distributed, pipeline
    from reenact.device import resolve_runtime
    from reenact.gan.random import is_random_spec
    from reenact.generator_source import load_generator_spec
    from reenact.workspace import Workspace

    checks.check_runtime_options(device=device, precision=precision)
    is_random = is_random_spec(generator)
    if is_random and preset is None:
        preset = RANDOM_GENERATOR_PRESET
    settings = settings_for(preset, sets, quality=quality, **sections)
    checks.check_run(
        inputs, generator=generator, settings=settings, face=face, layers=layers, driver_ref=driver_ref
    )
    runtime = resolve_runtime(device, precision=precision, compile=compile)
    runtime = dataclasses.replace(runtime, device=distributed.rank_device(runtime.device))
    group = distributed.join(runtime.device) if group is None else group
    progress = cli_progress(quiet=quiet or not group.is_main)
    workspace = Workspace(workdir)
    source = load_generator_spec(generator, device=runtime.device, workspace=workspace)
    use_threads(threads, small_work=is_small_work(source.generator.resolution))
    for option, spec in (layers or {}).items():
        checks.check_layers(spec, option=option, num_ws=source.generator.num_ws)
    if is_random and group.is_main:
        typer.echo(
            f"note: {generator} is a random generator (for tests and demos, not a face model); "
            f"preset {preset}",
            err=True,
        )
    ranks = f", {group.size} ranks" if group.distributed else ""
    progress.note(f"generator {generator} ({source.generator.resolution} px) on {runtime.describe()}{ranks}")
    return pipeline.make_context(
        workspace=workspace, source=source, settings=settings, runtime=runtime, progress=progress, group=group
    )


def rank_work(stages: list[pipeline.StageReport]) -> dict[str, object]:
    """What this process computed, by stage and in all: the summary's entry for its rank."""
    by_stage = {stage.name: dataclasses.asdict(stage.work) for stage in stages if stage.work.parts}
    return {
        "stages": by_stage,
        "frames": sum(work["frames"] for work in by_stage.values()),
        "renders": {kind: sum(work["renders"][kind] for work in by_stage.values()) for kind in RENDER_KINDS},
        "seconds": round(sum(work["seconds"] for work in by_stage.values()), 3),
    }


def stage_renders(ranks: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Each stage's generator renders, by kind, summed over the ranks' work."""
    totals: dict[str, dict[str, int]] = {}
    for rank in ranks:
        for name, work in rank["stages"].items():
            entry = totals.setdefault(name, dict.fromkeys(RENDER_KINDS, 0))
            for kind in RENDER_KINDS:
                entry[kind] += work["renders"][kind]
    return totals


def render_cost(by_stage: dict[str, dict[str, int]], *, frames: int) -> dict[str, Any]:
    """The run's generator renders by kind, in all and per frame (output frames, or the clip's)."""
    totals = {kind: sum(stage[kind] for stage in by_stage.values()) for kind in RENDER_KINDS}
    per_frame = {kind: round(count / frames, 2) if frames else None for kind, count in totals.items()}
    return {**totals, "frames": frames, "per_frame": per_frame}


def renders_text(renders: dict[str, int]) -> str:
    """`N fwd+bwd + M forward renders`, or nothing when the stage rendered nothing."""
    if not any(renders.values()):
        return ""
    return f"  ({renders['backward']:,} fwd+bwd + {renders['forward']:,} forward renders)"


def report_summary(
    report: pipeline.RunReport | list[pipeline.StageReport],
    *,
    context: pipeline.RunContext,
    as_json: bool,
    title: str,
    frames: int | None = None,
) -> None:
    """The final summary: every stage's time (or `cached`), its generator renders, its result, the output,
    the renders per frame, peak memory and the workspace's size, and in a group each rank's work
    (gathered from every rank; the main one prints). `frames`: what the renders are counted per (by
    default the output's frames)."""
    from reenact import pipeline

    stages = report.stages if isinstance(report, pipeline.RunReport) else report
    if frames is None:
        frames = report.frames if isinstance(report, pipeline.RunReport) else 0
    usage = pipeline.resource_usage(workspace=context.workspace, runtime=context.runtime)
    ranks = context.group.gather({**rank_work(stages), "peak_memory_bytes": usage["peak_memory_bytes"]})
    if not context.group.is_main:
        return
    by_stage = stage_renders(ranks)
    nothing = dict.fromkeys(RENDER_KINDS, 0)
    cost = render_cost(by_stage, frames=frames)
    if as_json:
        data: dict[str, object] = {
            "stages": [
                {
                    "name": stage.name,
                    "seconds": round(stage.seconds, 3),
                    "cached": stage.cached,
                    "resumed": stage.resumed,
                    "renders": by_stage.get(stage.name, nothing),
                    "detail": stage.detail,
                    "location": str(stage.location) if stage.location else None,
                }
                for stage in stages
            ]
        }
        if isinstance(report, pipeline.RunReport):
            data.update(output=str(report.output), frames=report.frames, seconds=round(report.seconds, 3))
            data.update(report.details)
        data["renders"] = cost
        data.update(usage)
        data["ranks"] = ranks
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(title)
    for stage in stages:
        where = f"  [{stage.location}]" if stage.location else ""
        renders = renders_text(by_stage.get(stage.name, nothing))
        typer.echo(f"  {pipeline.stage_line(stage)}{renders}{where}")
    if isinstance(report, pipeline.RunReport):
        typer.echo(f"  total       {report.seconds:>7.1f} s  {report.frames} frames -> {report.output}")
    if frames:
        per_frame = cost["per_frame"]
        typer.echo(
            f"  renders     {cost['backward']:,} fwd+bwd + {cost['forward']:,} forward: "
            f"{per_frame['backward']:.1f} + {per_frame['forward']:.1f} per frame ({frames} frames)"
        )
    if context.group.distributed:
        for rank, work in enumerate(ranks):
            renders = work["renders"]
            typer.echo(
                f"  rank {rank:<6} {work['seconds']:>7.1f} s  {work['frames']} frames, "
                f"{renders['backward']:,} fwd+bwd + {renders['forward']:,} forward renders"
            )
    device = usage["peak_device_memory_bytes"]
    on_device = "" if device is None else f", {device / GIGABYTE:.2f} GB on the device"
    typer.echo(
        f"  memory      peak {usage['peak_memory_bytes'] / GIGABYTE:.2f} GB{on_device}; "
        f"workspace {usage['workspace_bytes'] / GIGABYTE:.2f} GB"
    )


def _prepare_and_report(
    source: Path,
    *,
    context: pipeline.RunContext,
    landmarks: str | None,
    face_index: int | None,
    face_at: str | None,
    tune: bool,
    as_json: bool,
    window: Window | None = None,
) -> None:
    """`invert` and `tune`: prepare the clip (or its `window`; tuned or not) and print its stages."""
    from reenact import pipeline

    clip = pipeline.prepare_clip(
        source,
        context=context,
        landmarks=landmarks,
        face=face_choice(face_index, face_at),
        tune=tune,
        role="input",
        window=window,
    )
    what = "tuned over" if tune else "pivots of"
    sliced = f" (slice: {window.describe()})" if window is not None else ""
    report_summary(
        clip.stages,
        context=context,
        as_json=as_json,
        title=f"{source}{sliced}: {what} {len(clip.pivots.frames)} frames",
        frames=len(clip.pivots.frames),
    )


def invert(
    source: Input,
    landmarks: Landmarks = None,
    face_index: FaceIndex = None,
    face_at: FaceAt = None,
    generator: Generator = DEFAULT_GENERATOR,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    quiet: Quiet = False,
    as_json: AsJson = False,
    preset: Preset = None,
    quality: Quality = DEFAULT_QUALITY,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
) -> None:
    """Align every frame and invert it into W+ (warm-started, batched); pivots are stored in the workdir."""
    use_threads(threads)
    window = slice_window(source, start, duration)
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, preset=preset, quality=quality, sets=sets, threads=threads,
        quiet=quiet, inputs=[source], face=FaceRequest(face_index, face_at),
    )  # fmt: skip
    _prepare_and_report(
        source, context=context, landmarks=landmarks, face_index=face_index, face_at=face_at,
        tune=False, as_json=as_json,
        window=window,
    )  # fmt: skip


def tune(
    source: Input,
    landmarks: Landmarks = None,
    face_index: FaceIndex = None,
    face_at: FaceAt = None,
    generator: Generator = DEFAULT_GENERATOR,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    quiet: Quiet = False,
    as_json: AsJson = False,
    preset: Preset = None,
    quality: Quality = DEFAULT_QUALITY,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
) -> None:
    """Invert the clip (cached) and run ONE pivotal-tuning pass of the generator over all its frames.

    The tuned generator is stored (safetensors) in the workdir; an interrupted run resumes from its
    last checkpoint.
    """
    use_threads(threads)
    window = slice_window(source, start, duration)
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, preset=preset, quality=quality, sets=sets, threads=threads,
        quiet=quiet, inputs=[source], face=FaceRequest(face_index, face_at),
    )  # fmt: skip
    _prepare_and_report(
        source, context=context, landmarks=landmarks, face_index=face_index, face_at=face_at,
        tune=True, as_json=as_json,
        window=window,
    )  # fmt: skip


def transfer(
    target: Annotated[Path, typer.Argument(help="Target video (or photo): whose face and video are kept.")],
    driver: Annotated[Path, typer.Argument(help="Driver video: whose expressions are put on the target.")],
    output: Output,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            "-a",
            help="α: scale of the driver's expression offsets.",
            show_default=config_default("edit", "strength"),
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="W+ layers the expression is moved on: expression, expression+pose, all, or 3-7 / 2,4,6-8.",
            show_default=config_default("edit", "layers"),
        ),
    ] = None,
    driver_ref: Annotated[
        int | None,
        typer.Option("--driver-ref", help="Driver frame taken as neutral (default: found automatically)."),
    ] = None,
    length: Annotated[
        str | None,
        typer.Option(
            "--length",
            help="When the driver is shorter/longer than the target: hold, loop, pingpong or cut.",
            show_default=config_default("edit", "length_policy"),
        ),
    ] = None,
    target_landmarks: Annotated[
        str | None,
        typer.Option(
            "--target-landmarks",
            help="dlib, fan, or a sidecar file for the target.",
            show_default=config_default("faces", "landmarks"),
        ),
    ] = None,
    driver_landmarks: Annotated[
        str | None,
        typer.Option(
            "--driver-landmarks",
            help="dlib, fan, or a sidecar file for the driver.",
            show_default=config_default("faces", "landmarks"),
        ),
    ] = None,
    face_index: FaceIndex = None,
    face_at: FaceAt = None,
    generator: Generator = DEFAULT_GENERATOR,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    preset: Preset = None,
    quality: Quality = DEFAULT_QUALITY,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
) -> None:
    """Put DRIVER's expressions on TARGET's face, in TARGET's own video, with its sound and timestamps.

    w_out[t] = w_target[t] + α·(w_driver[t] − w_driver[ref]) on the chosen layers, rendered with the
    generator tuned on the target and pasted back. --face-index/--face-at choose the target's face (the
    driver's largest face drives). A second driver on the same target reuses the target's alignment,
    pivots and tuned generator from the workdir. --start/--duration take a slice of TARGET (the output is
    that slice); DRIVER is used from its start, fitted to the slice by --length.
    """
    use_threads(threads)
    from typing import get_args

    from reenact import checks, pipeline
    from reenact.edit import LengthPolicy

    checks.check_choice(length, option="--length", choices=get_args(LengthPolicy))
    window = slice_window(target, start, duration)
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, preset=preset, quality=quality, sets=sets, threads=threads,
        quiet=quiet,
        edit={"strength": strength, "layers": layers, "length_policy": length},
        inputs=[target, driver], face=FaceRequest(face_index, face_at), layers={"--layers": layers},
        driver_ref=driver_ref,
    )  # fmt: skip
    report = pipeline.transfer(
        target,
        driver,
        output,
        context=context,
        target_landmarks=target_landmarks,
        driver_landmarks=driver_landmarks,
        face=face_choice(face_index, face_at),
        driver_ref=driver_ref,
        overwrite=overwrite,
        window=window,
    )
    report_summary(
        report, context=context, as_json=as_json, title=f"transfer: {target} + {driver} → {output}"
    )


def edit(
    source: Input,
    output: Output,
    direction: Annotated[
        list[str] | None,
        typer.Option(
            "--direction",
            "-d",
            help="NAME=STRENGTH, repeatable. NAME: a weight name (reenact weights list), a direction file "
            "(.npy InterFaceGAN, .pt e4e/GANSpace), or FILE:K for GANSpace component K.",
            show_default="none: give at least one",
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="Only move these W+ layers (e.g. 4-7).",
            show_default=config_default("edit", "direction_layers"),
        ),
    ] = None,
    landmarks: Landmarks = None,
    face_index: FaceIndex = None,
    face_at: FaceAt = None,
    generator: Generator = DEFAULT_GENERATOR,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    preset: Preset = None,
    quality: Quality = DEFAULT_QUALITY,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
) -> None:
    """Move every frame's latent along attribute directions (smile, age, pose ...) and re-render the clip."""
    use_threads(threads)
    from reenact import pipeline
    from reenact.directions import parse_direction_arg, resolve_direction

    if not direction:
        raise UsageError("give at least one --direction NAME=STRENGTH")
    parsed = [usage_value(lambda item=item: parse_direction_arg(item)) for item in direction]
    window = slice_window(source, start, duration)
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, preset=preset, quality=quality, sets=sets, threads=threads,
        quiet=quiet, edit={"direction_layers": layers},
        inputs=[source], face=FaceRequest(face_index, face_at), layers={"--layers": layers},
    )  # fmt: skip
    directions = [(resolve_direction(name), value) for name, value in parsed]
    report = pipeline.edit_video(
        source,
        output,
        directions=directions,
        context=context,
        landmarks=landmarks,
        face=face_choice(face_index, face_at),
        overwrite=overwrite,
        window=window,
    )
    report_summary(report, context=context, as_json=as_json, title=f"edit: {source} → {output}")


def morph(
    first: Annotated[Path, typer.Argument(help="First face (photo or video: its first frame).")],
    second: Annotated[Path, typer.Argument(help="Second face (photo or video: its first frame).")],
    output: Output,
    frames: Annotated[
        int | None, typer.Option("--frames", min=2, help="Frames of the morph (default: edit.morph_frames).")
    ] = None,
    fps: Annotated[int, typer.Option("--fps", min=1, help="Frame rate of the morph video.")] = 25,
    crossover: Annotated[
        int | None,
        typer.Option(
            "--crossover",
            help="Style crossover instead: layers below K from FIRST, the rest from SECOND.",
            show_default="none: a morph",
        ),
    ] = None,
    face_index: FaceIndex = None,
    face_at: FaceAt = None,
    generator: Generator = DEFAULT_GENERATOR,
    device: Device = "auto",
    threads: Threads = None,
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    preset: Preset = None,
    quality: Quality = DEFAULT_QUALITY,
    sets: Sets = None,
) -> None:
    """Image2StyleGAN morph between two faces (aligned crops, as a video), or a style crossover."""
    use_threads(threads)
    from reenact import pipeline

    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, preset=preset, quality=quality, sets=sets, threads=threads,
        quiet=quiet, edit={"morph_frames": frames},
        inputs=[first, second], face=FaceRequest(face_index, face_at),
    )  # fmt: skip
    report = pipeline.morph_video(
        first,
        second,
        output,
        context=context,
        fps=fps,
        face=face_choice(face_index, face_at),
        crossover=crossover,
        overwrite=overwrite,
    )
    report_summary(report, context=context, as_json=as_json, title=f"morph: {first} + {second} → {output}")
