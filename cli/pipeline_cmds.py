"""`reenact invert | tune | transfer | edit | morph`: the GAN pipeline on video files.

I/O only: the run options (`RunOptions`, shared by every command and `batch`) become a
`reenact.pipeline.RunContext`, the pipeline does the work and returns the summary, which is printed here.
Every stage's result is cached in `--workdir`, so a second run (another driver, another edit) reuses
what it can, and an interrupted run resumes. Launched by `torchrun`, every rank runs the command and
shares its stages out (`reenact.distributed`); the main rank prints progress and the summary, with each
rank's work.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.checks import FaceRequest, usage_value
from reenact.errors import UsageError
from reenact.threads import is_small_work, use_threads
from reenact_cli.common import (
    OWN_PRESETS,
    RANDOM_GENERATOR_PRESET,
    AlphaOption,
    CodecOption,
    Duration,
    FaceAt,
    FaceIndex,
    Landmarks,
    MatteOption,
    Output,
    Overwrite,
    People,
    Person,
    PersonRef,
    RunOptions,
    SequenceFps,
    Start,
    TimecodeOption,
    config_default,
    everyone_from,
    face_choice,
    sequence_fps,
    settings_for,
    slice_window,
    with_run_options,
    with_video_options,
)
from reenact_cli.progress import cli_progress

if TYPE_CHECKING:
    from reenact import distributed, pipeline
    from reenact.cast import CastMember
    from reenact.timeline import Window


def generator_preset(generator: str, preset: str | None) -> str | None:
    """The preset a run uses: the one asked for, else the generator's own (`random:*`, `face-world`),
    else None (the default)."""
    from reenact.gan.random import is_random_spec

    if preset is not None:
        return preset
    if is_random_spec(generator):
        return RANDOM_GENERATOR_PRESET
    return OWN_PRESETS.get(generator)


GIGABYTE = 1e9

Input = Annotated[Path, typer.Argument(help="Input video or photo.")]


def make_context(
    run: RunOptions,
    *,
    group: distributed.Group | None = None,
    inputs: Sequence[Path] = (),
    face: FaceRequest | None = None,
    layers: dict[str, str | None] | None = None,
    driver_ref: int | None = None,
    fps: Fraction | None = None,
    **sections: dict[str, Any],
) -> pipeline.RunContext:
    """Settings, device, workspace and generator of a command run with `run`, with the loss networks
    built up front.

    First everything is checked (`reenact.checks.check_run`): the option values, the `inputs` (the first
    is the clip whose `face` is followed, the second the driver `driver_ref` counts in), `layers` (option
    name -> W+ layer spec) and every weight file, so a mistake ends the command before anything loads.
    `fps`: the frame rate of the inputs that are image sequences (`--fps`), which the context carries.
    `group`: the ranks that share this command's stages; by default the processes `torchrun` started (one
    without it). Under `torchrun` each process runs on its own GPU. A small generator gets one thread
    unless `--threads` is given (`reenact.threads`)."""
    from reenact import checks, distributed, pipeline
    from reenact.device import resolve_runtime
    from reenact.gan.random import is_random_spec
    from reenact.generator_source import load_generator_spec
    from reenact.workspace import Workspace

    checks.check_runtime_options(device=run.device, precision=run.precision)
    is_random = is_random_spec(run.generator)
    preset = generator_preset(run.generator, run.preset)
    settings = settings_for(preset, run.sets, quality=run.quality, **sections)
    checks.check_run(
        inputs,
        generator=run.generator,
        settings=settings,
        face=face,
        layers=layers,
        driver_ref=driver_ref,
        fps=fps,
    )
    runtime = resolve_runtime(run.device, precision=run.precision, compile=run.compile)
    runtime = dataclasses.replace(runtime, device=distributed.rank_device(runtime.device))
    group = distributed.join(runtime.device) if group is None else group
    progress = cli_progress(quiet=run.quiet or not group.is_main)
    workspace = Workspace(run.workdir)
    source = load_generator_spec(run.generator, device=runtime.device, workspace=workspace)
    use_threads(run.threads, small_work=is_small_work(source.generator.resolution))
    for option, spec in (layers or {}).items():
        checks.check_layers(spec, option=option, num_ws=source.generator.num_ws)
    if is_random and group.is_main:
        typer.echo(
            f"note: {run.generator} is a random generator (for tests and demos, not a face model); "
            f"preset {preset}",
            err=True,
        )
    ranks = f", {group.size} ranks" if group.distributed else ""
    progress.note(
        f"generator {run.generator} ({source.generator.resolution} px) on {runtime.describe()}{ranks}"
    )
    return pipeline.make_context(
        workspace=workspace,
        source=source,
        settings=settings,
        runtime=runtime,
        progress=progress,
        group=group,
        fps=fps,
    )


def renders_text(renders: dict[str, int]) -> str:
    """`N fwd+bwd + M forward renders`, or nothing when the stage rendered nothing."""
    if not any(renders.values()):
        return ""
    return f"  ({renders['backward']:,} fwd+bwd + {renders['forward']:,} forward renders)"


def print_summary(summary: dict[str, Any], *, as_json: bool, title: str) -> None:
    """Print a run's summary (`reenact.report.summarise`): as JSON, or as lines: every stage's time (or
    `cached`), its generator renders and its result, the output, the renders per frame, each rank's work
    in a group, peak memory and the workspace's size. Nothing on the ranks other than the main one (their
    summary is empty)."""
    from reenact.report import stage_line

    if not summary:
        return
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(title)
    for stage in summary["stages"]:
        where = f"  [{stage['location']}]" if stage["location"] else ""
        typer.echo(f"  {stage_line(stage)}{renders_text(stage['renders'])}{where}")
    if summary["output"] is not None:
        typer.echo(
            f"  total       {summary['seconds']:>7.1f} s  {summary['frames']} frames -> {summary['output']}"
        )
    cost = summary["renders"]
    if cost["frames"]:
        per_frame = cost["per_frame"]
        typer.echo(
            f"  renders     {cost['backward']:,} fwd+bwd + {cost['forward']:,} forward: "
            f"{per_frame['backward']:.1f} + {per_frame['forward']:.1f} per frame ({cost['frames']} frames)"
        )
    for member in summary.get("people", []):
        tuned = "" if member["psnr_tuned"] is None else f", {member['psnr_tuned']:.2f} dB tuned"
        typer.echo(
            f"  person {member['person']:<5} {member['frames']} frames: "
            f"PSNR {member['psnr_inversion']:.2f} dB inverted{tuned}"
        )
    for member in summary.get("cast", []):
        typer.echo(
            f"  person {member['person']:<5} {member['frames']} frames, driver {member['driver']} "
            f"(frame {member['driver_ref']} neutral), strength {member['strength']:g}, layers "
            f"{member['layers']}: PSNR {member['psnr_inversion']:.2f} dB inverted, "
            f"{member['psnr_tuned']:.2f} dB tuned"
        )
    if len(summary["ranks"]) > 1:
        for rank, work in enumerate(summary["ranks"]):
            renders = work["renders"]
            typer.echo(
                f"  rank {rank:<6} {work['seconds']:>7.1f} s  {work['frames']} frames, "
                f"{renders['backward']:,} fwd+bwd + {renders['forward']:,} forward renders"
            )
    device = summary["peak_device_memory_bytes"]
    on_device = "" if device is None else f", {device / GIGABYTE:.2f} GB on the device"
    typer.echo(
        f"  memory      peak {summary['peak_memory_bytes'] / GIGABYTE:.2f} GB{on_device}; "
        f"workspace {summary['workspace_bytes'] / GIGABYTE:.2f} GB"
    )


def prepare_command(*, tune: bool) -> Callable[..., None]:
    """`reenact invert` (`tune=False`) or `reenact tune`: one command, which tunes or not."""

    def command(
        source: Input,
        landmarks: Landmarks = None,
        face_index: FaceIndex = None,
        face_at: FaceAt = None,
        person: Person = None,
        person_ref: PersonRef = None,
        people: People = None,
        start: Start = None,
        duration: Duration = None,
        fps: SequenceFps = None,
        *,
        run: RunOptions,
    ) -> None:
        from reenact import pipeline

        rate = sequence_fps(fps)
        face = FaceRequest(face_index, face_at, person, person_ref)
        everyone = everyone_from(people, face=face)
        window = slice_window(source, start, duration, fps=rate)
        context = make_context(run, inputs=[source], face=face, fps=rate)
        clips, report = pipeline.prepare(
            source,
            context=context,
            landmarks=landmarks,
            face=face_choice(face_index, face_at, person, person_ref),
            tune=tune,
            window=window,
            everyone=everyone,
        )
        what = "tuned over" if tune else "pivots of"
        sliced = f" (slice: {window.describe()})" if window is not None else ""
        who = f" of {len(clips)} people" if everyone else ""
        print_summary(
            report.summary,
            as_json=run.as_json,
            title=f"{source}{sliced}: {what} {sum(len(clip.pivots.frames) for clip in clips)} frames{who}",
        )

    command.__doc__ = (
        "Invert the clip (cached) and run ONE pivotal-tuning pass of the generator over all its frames.\n\n"
        "The tuned generator is stored (safetensors) in the workdir; an interrupted run resumes from its\n"
        "last checkpoint."
        if tune
        else "Align every frame and invert it into W+ (warm-started, batched); pivots are stored in the\n"
        "workdir."
    )
    return with_run_options(command)


invert = prepare_command(tune=False)
tune = prepare_command(tune=True)


@with_run_options
def transfer(
    target: Annotated[
        Path,
        typer.Argument(
            help=(
                "Target video (or photo, or image sequence: shot/%06d.png or a folder, with --fps): whose "
                "face and video are kept."
            )
        ),
    ],
    driver: Annotated[
        Path | None,
        typer.Argument(
            help="Driver video (or image sequence, with --fps): whose expressions are put on the target. "
            "Not with --cast.",
            show_default=False,
        ),
    ] = None,
    output: Output = ...,  # type: ignore[assignment]
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
    person: Person = None,
    person_ref: PersonRef = None,
    cast: Annotated[
        Path | None,
        typer.Option(
            "--cast",
            help=(
                "A cast file (TOML, one [[person]] table per person: id or ref, driver, and optionally "
                "driver_id, driver_ref, driver_landmarks, strength, layers, driver_frame): each person of "
                "TARGET gets their own driver, all in one output. Instead of DRIVER."
            ),
            metavar="CAST.toml",
            show_default="none: one DRIVER",
        ),
    ] = None,
    people: People = None,
    overwrite: Overwrite = False,
    start: Start = None,
    duration: Duration = None,
    codec: CodecOption = None,
    timecode: TimecodeOption = None,
    matte: MatteOption = None,
    alpha: AlphaOption = False,
    fps: SequenceFps = None,
    *,
    run: RunOptions,
) -> None:
    """Put DRIVER's expressions on TARGET's face, in TARGET's own video, with its sound and timestamps.

    w_out[t] = w_target[t] + α·(w_driver[t] − w_driver[ref]) on the chosen layers, rendered with the
    generator tuned on the target and pasted back. --person/--person-ref/--face-index/--face-at choose
    the target's person (the driver's largest face drives); --cast gives several people of TARGET a driver
    each, in one output. A second driver on the same target reuses the target's alignment, pivots and
    tuned generator from the workdir. --start/--duration take a slice of TARGET (the output is
    that slice); DRIVER is used from its start, fitted to the slice by --length.
    """
    from typing import get_args

    from reenact import checks, pipeline
    from reenact.edit import LengthPolicy

    checks.check_choice(length, option="--length", choices=get_args(LengthPolicy))
    rate = sequence_fps(fps)
    run = with_video_options(run, codec=codec, timecode=timecode, alpha=alpha)
    if cast is not None:
        single = {
            "DRIVER": driver,
            "--driver-ref": driver_ref,
            "--driver-landmarks": driver_landmarks,
            "--face-index": face_index,
            "--face-at": face_at,
            "--person": person,
            "--person-ref": person_ref,
            "--people": people,
        }
        given = [name for name, value in single.items() if value is not None]
        if given:
            raise UsageError(
                f"--cast names every person and driver; {', '.join(given)} cannot go with it (give "
                "driver_id, driver_ref, driver_landmarks or driver_frame in the cast file)"
            )
        _transfer_cast(
            target,
            cast,
            output,
            run=run,
            strength=strength,
            layers=layers,
            length=length,
            landmarks=target_landmarks,
            overwrite=overwrite,
            start=start,
            duration=duration,
            matte=matte,
            fps=rate,
        )
        return
    if driver is None:
        raise UsageError("give a DRIVER video, or --cast CAST.toml")
    face = FaceRequest(face_index, face_at, person, person_ref)
    if everyone_from(people, face=face):
        _transfer_everyone(
            target,
            driver,
            output,
            run=run,
            strength=strength,
            layers=layers,
            length=length,
            landmarks=target_landmarks,
            driver_landmarks=driver_landmarks,
            driver_ref=driver_ref,
            overwrite=overwrite,
            start=start,
            duration=duration,
            matte=matte,
            fps=rate,
        )
        return
    window = slice_window(target, start, duration, fps=rate)
    context = make_context(
        run,
        edit={"strength": strength, "layers": layers, "length_policy": length},
        inputs=[target, driver],
        face=face,
        layers={"--layers": layers},
        driver_ref=driver_ref,
        fps=rate,
    )
    report = pipeline.transfer(
        target,
        driver,
        output,
        context=context,
        target_landmarks=target_landmarks,
        driver_landmarks=driver_landmarks,
        face=face_choice(face_index, face_at, person, person_ref),
        driver_ref=driver_ref,
        overwrite=overwrite,
        window=window,
        matte=matte,
    )
    print_summary(report.summary, as_json=run.as_json, title=f"transfer: {target} + {driver} → {output}")


def _transfer_cast(
    scene: Path,
    cast_file: Path,
    output: Path,
    *,
    run: RunOptions,
    strength: float | None,
    layers: str | None,
    length: str | None,
    landmarks: str | None,
    overwrite: bool,
    start: str | None,
    duration: str | None,
    matte: Path | None = None,
    fps: Fraction | None = None,
) -> None:
    """`reenact transfer SCENE --cast CAST.toml`: the cast read and checked, then `cast_transfer`."""
    from reenact.cast import read_cast

    cast = read_cast(cast_file)
    report = cast_transfer(
        scene,
        cast,
        output,
        run=run,
        strength=strength,
        layers=layers,
        length=length,
        landmarks=landmarks,
        overwrite=overwrite,
        window=slice_window(scene, start, duration, fps=fps),
        matte=matte,
        fps=fps,
    )
    print_summary(
        report.summary, as_json=run.as_json, title=f"transfer: {scene} with cast {cast_file} → {output}"
    )


def cast_transfer(
    scene: Path,
    cast: list[CastMember],
    output: Path,
    *,
    run: RunOptions,
    strength: float | None,
    layers: str | None,
    length: str | None,
    landmarks: str | None,
    overwrite: bool,
    window: Window | None = None,
    group: distributed.Group | None = None,
    layers_option: str = "--layers",
    matte: Path | None = None,
    fps: Fraction | None = None,
) -> pipeline.RunReport:
    """A read cast's transfer on `scene` (`transfer --cast` and a batch's cast job): its photos checked,
    the run's context made (`group`: as `make_context`; `layers_option` names `layers` in messages; `fps`:
    the rate of the scene and drivers that are image sequences), then `pipeline.transfer_cast`. Returns
    its report."""
    from reenact import checks, pipeline

    checks.check_inputs([member.face.ref for member in cast if member.face.ref is not None])
    context = make_context(
        run,
        group=group,
        edit={"strength": strength, "layers": layers, "length_policy": length},
        inputs=[scene, *(member.driver for member in cast)],
        layers={layers_option: layers},
        fps=fps,
    )
    return pipeline.transfer_cast(
        scene,
        cast,
        output,
        context=context,
        landmarks=landmarks,
        overwrite=overwrite,
        window=window,
        matte=matte,
    )


def _transfer_everyone(
    target: Path,
    driver: Path,
    output: Path,
    *,
    run: RunOptions,
    strength: float | None,
    layers: str | None,
    length: str | None,
    landmarks: str | None,
    driver_landmarks: str | None,
    driver_ref: int | None,
    overwrite: bool,
    start: str | None,
    duration: str | None,
    matte: Path | None = None,
    fps: Fraction | None = None,
) -> None:
    """`reenact transfer TARGET DRIVER --people all`: a cast of every person of TARGET with DRIVER, then
    `pipeline.transfer_cast`."""
    from reenact import pipeline

    window = slice_window(target, start, duration, fps=fps)
    context = make_context(
        run,
        edit={"strength": strength, "layers": layers, "length_policy": length},
        inputs=[target, driver],
        layers={"--layers": layers},
        driver_ref=driver_ref,
        fps=fps,
    )
    cast = pipeline.everyone_cast(
        target,
        driver,
        context=context,
        landmarks=landmarks,
        driver_landmarks=driver_landmarks,
        driver_frame=driver_ref,
        window=window,
    )
    report = pipeline.transfer_cast(
        target,
        cast,
        output,
        context=context,
        landmarks=landmarks,
        overwrite=overwrite,
        window=window,
        matte=matte,
    )
    print_summary(
        report.summary, as_json=run.as_json, title=f"transfer: {target} + {driver}, every person → {output}"
    )


@with_run_options
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
    person: Person = None,
    person_ref: PersonRef = None,
    people: People = None,
    overwrite: Overwrite = False,
    start: Start = None,
    duration: Duration = None,
    codec: CodecOption = None,
    timecode: TimecodeOption = None,
    matte: MatteOption = None,
    alpha: AlphaOption = False,
    fps: SequenceFps = None,
    *,
    run: RunOptions,
) -> None:
    """Move every frame's latent along attribute directions (smile, age, pose ...) and re-render the clip."""
    from reenact import pipeline
    from reenact.directions import parse_direction_arg, resolve_direction

    rate = sequence_fps(fps)
    if not direction:
        raise UsageError("give at least one --direction NAME=STRENGTH")
    run = with_video_options(run, codec=codec, timecode=timecode, alpha=alpha)
    parsed = [usage_value(lambda item=item: parse_direction_arg(item)) for item in direction]
    face = FaceRequest(face_index, face_at, person, person_ref)
    everyone = everyone_from(people, face=face)
    window = slice_window(source, start, duration, fps=rate)
    context = make_context(
        run,
        edit={"direction_layers": layers},
        inputs=[source],
        face=face,
        layers={"--layers": layers},
        fps=rate,
    )
    directions = [(resolve_direction(name), value) for name, value in parsed]
    report = pipeline.edit_video(
        source,
        output,
        directions=directions,
        context=context,
        landmarks=landmarks,
        face=face_choice(face_index, face_at, person, person_ref),
        overwrite=overwrite,
        window=window,
        everyone=everyone,
        matte=matte,
    )
    print_summary(report.summary, as_json=run.as_json, title=f"edit: {source} → {output}")


@with_run_options
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
    person: Person = None,
    person_ref: PersonRef = None,
    overwrite: Overwrite = False,
    *,
    run: RunOptions,
) -> None:
    """Image2StyleGAN morph between two faces (aligned crops, as a video), or a style crossover."""
    from reenact import pipeline

    context = make_context(
        run,
        edit={"morph_frames": frames},
        inputs=[first, second],
        face=FaceRequest(face_index, face_at, person, person_ref),
    )
    report = pipeline.morph_video(
        first,
        second,
        output,
        context=context,
        fps=fps,
        face=face_choice(face_index, face_at, person, person_ref),
        crossover=crossover,
        overwrite=overwrite,
    )
    print_summary(report.summary, as_json=run.as_json, title=f"morph: {first} + {second} → {output}")
