"""`reenact invert | tune | transfer | edit | morph`: the GAN pipeline on video files.

I/O only: options are parsed into a `reenact.pipeline.RunContext` and the pipeline does the work.
Every stage's result is cached in `--workdir`, so a second run (another driver, another edit) reuses
what it can, and an interrupted run resumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reenact import pipeline
from reenact.config import config_to_dict
from reenact.device import resolve_runtime
from reenact.errors import ReenactError
from reenact.workspace import DEFAULT_WORKDIR, Workspace
from reenact_cli.common import ConfigOption, SetOption, cli_config

GeneratorOption = typer.Option(
    "--generator",
    "-g",
    help=(
        f"Generator: a weight name (see `reenact weights list`; default {pipeline.DEFAULT_GENERATOR}), a "
        "checkpoint file (.pkl, .pt, .safetensors), or random:tiny[-RES], an explicitly random test "
        "generator that is not a face model."
    ),
)
DeviceOption = typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")
PrecisionOption = typer.Option("--precision", help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.")
CompileOption = typer.Option("--compile", help="torch.compile the generator (pays off on long GPU runs).")
WorkdirOption = typer.Option("--workdir", help="Folder where every stage's result is cached.")
QuietOption = typer.Option("--quiet", "-q", help="No progress bars or stage lines; only the summary.")
JsonOption = typer.Option("--json", help="Print the summary as JSON.")
OverwriteOption = typer.Option("--overwrite", help="Replace an existing output file.")

Generator = Annotated[str, GeneratorOption]
Device = Annotated[str, DeviceOption]
Precision = Annotated[str, PrecisionOption]
Compile = Annotated[bool, CompileOption]
Workdir = Annotated[Path, WorkdirOption]
Quiet = Annotated[bool, QuietOption]
AsJson = Annotated[bool, JsonOption]
Overwrite = Annotated[bool, OverwriteOption]


def random_preset_overrides() -> list[str]:
    """`--set` items that put a random test generator on the synthetic world's settings.

    A random generator is not a face model and the pretrained loss backbones (VGG16 / AlexNet) are not
    needed to fit it: MSE-only inversion and tuning with the small step budgets the synthetic world uses.
    """
    from reenact.synthetic import synthetic_invert_config, synthetic_pti_config

    overrides = []
    for section, values in (("invert", synthetic_invert_config()), ("pti", synthetic_pti_config())):
        for name, value in config_to_dict(values).items():
            overrides.append(f"{section}.{name}={json.dumps(value)}")
    return overrides


def make_context(
    *,
    generator: str,
    device: str,
    precision: str,
    compile: bool,
    workdir: Path,
    config: Path | None,
    sets: list[str],
    quiet: bool,
) -> pipeline.RunContext:
    """Settings, device, workspace and generator of a command, with the loss networks built up front."""
    runtime = resolve_runtime(device, precision=precision, compile=compile)
    overrides = list(sets)
    is_random = generator.startswith(pipeline.RANDOM_PREFIX)
    if is_random and config is None:
        overrides = random_preset_overrides() + overrides
    settings = cli_config(config, overrides)
    workspace = Workspace(workdir)
    source = pipeline.load_generator_spec(generator, device=runtime.device, workspace=workspace)

    def log(line: str) -> None:
        if not quiet:
            typer.echo(line, err=True)

    if is_random:
        typer.echo(
            f"note: {generator} is a random generator (for tests and demos, not a face model); "
            "losses are MSE only",
            err=True,
        )
    log(f"generator {generator} ({source.generator.resolution} px) on {runtime.describe()}")
    return pipeline.make_context(
        workspace=workspace, source=source, settings=settings, runtime=runtime, show_bar=not quiet, log=log
    )


def report_summary(
    report: pipeline.RunReport | list[pipeline.StageReport], *, as_json: bool, title: str
) -> None:
    """The final summary: every stage's time (or `cached`), its result, and the output."""
    stages = report.stages if isinstance(report, pipeline.RunReport) else report
    if as_json:
        data: dict[str, object] = {
            "stages": [
                {
                    "name": stage.name,
                    "seconds": round(stage.seconds, 3),
                    "cached": stage.cached,
                    "detail": stage.detail,
                    "location": str(stage.location) if stage.location else None,
                }
                for stage in stages
            ]
        }
        if isinstance(report, pipeline.RunReport):
            data.update(output=str(report.output), frames=report.frames, seconds=round(report.seconds, 3))
            data.update(report.details)
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(title)
    for stage in stages:
        took = "cached" if stage.cached else f"{stage.seconds:.1f} s"
        where = f"  [{stage.location}]" if stage.location else ""
        typer.echo(f"  {stage.name:<11} {took:>9}  {stage.detail}{where}")
    if isinstance(report, pipeline.RunReport):
        typer.echo(f"  total       {report.seconds:>7.1f} s  {report.frames} frames -> {report.output}")


def _prepare_and_report(
    source: Path, *, context: pipeline.RunContext, landmarks: str | None, tune: bool, as_json: bool
) -> None:
    """`invert` and `tune`: prepare the clip (tuned or not) and print its stages."""
    clip = pipeline.prepare_clip(source, context=context, landmarks=landmarks, tune=tune, role="input")
    what = "tuned over" if tune else "pivots of"
    report_summary(clip.stages, as_json=as_json, title=f"{source}: {what} {len(clip.pivots.frames)} frames")


def invert(
    source: Annotated[Path, typer.Argument(help="Input video or photo.")],
    generator: Generator = pipeline.DEFAULT_GENERATOR,
    landmarks: Annotated[
        str | None, typer.Option("--landmarks", help="dlib, fan, or a sidecar .json/.npz.")
    ] = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    quiet: Quiet = False,
    as_json: AsJson = False,
    config: Path | None = ConfigOption,
    sets: list[str] = SetOption,
) -> None:
    """Align every frame and invert it into W+ (warm-started, batched); pivots are stored in the workdir."""
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, config=config, sets=sets, quiet=quiet,
    )  # fmt: skip
    _prepare_and_report(source, context=context, landmarks=landmarks, tune=False, as_json=as_json)


def tune(
    source: Annotated[Path, typer.Argument(help="Input video or photo.")],
    generator: Generator = pipeline.DEFAULT_GENERATOR,
    landmarks: Annotated[
        str | None, typer.Option("--landmarks", help="dlib, fan, or a sidecar .json/.npz.")
    ] = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    quiet: Quiet = False,
    as_json: AsJson = False,
    config: Path | None = ConfigOption,
    sets: list[str] = SetOption,
) -> None:
    """Invert the clip (cached) and run ONE pivotal-tuning pass of the generator over all its frames.

    The tuned generator is stored (safetensors) in the workdir; an interrupted run resumes from its
    last checkpoint.
    """
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, config=config, sets=sets, quiet=quiet,
    )  # fmt: skip
    _prepare_and_report(source, context=context, landmarks=landmarks, tune=True, as_json=as_json)


def transfer(
    target: Annotated[Path, typer.Argument(help="Target video (or photo): whose face and video are kept.")],
    driver: Annotated[Path, typer.Argument(help="Driver video: whose expressions are put on the target.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output video file (.mp4, .mov, .mkv).")],
    strength: Annotated[
        float | None, typer.Option("--strength", "-a", help="α: scale of the driver's expression offsets.")
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="W+ layers the expression is moved on: expression, expression+pose, all, or 3-7 / 2,4,6-8.",
        ),
    ] = None,
    driver_ref: Annotated[
        int | None,
        typer.Option("--driver-ref", help="Driver frame taken as neutral (default: found automatically)."),
    ] = None,
    length: Annotated[
        str | None,
        typer.Option(
            "--length", help="When the driver is shorter/longer than the target: loop, pingpong or cut."
        ),
    ] = None,
    target_landmarks: Annotated[
        str | None, typer.Option("--target-landmarks", help="dlib, fan, or a sidecar file for the target.")
    ] = None,
    driver_landmarks: Annotated[
        str | None, typer.Option("--driver-landmarks", help="dlib, fan, or a sidecar file for the driver.")
    ] = None,
    generator: Generator = pipeline.DEFAULT_GENERATOR,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    config: Path | None = ConfigOption,
    sets: list[str] = SetOption,
) -> None:
    """Put DRIVER's expressions on TARGET's face, in TARGET's own video, with its sound and timestamps.

    w_out[t] = w_target[t] + α·(w_driver[t] − w_driver[ref]) on the chosen layers, rendered with the
    generator tuned on the target and pasted back. A second driver on the same target reuses the
    target's alignment, pivots and tuned generator from the workdir.
    """
    overrides = list(sets)
    for name, value in (("strength", strength), ("layers", layers), ("length_policy", length)):
        if value is not None:
            overrides.append(f"edit.{name}={json.dumps(value)}")
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, config=config, sets=overrides, quiet=quiet,
    )  # fmt: skip
    report = pipeline.transfer(
        target,
        driver,
        output,
        context=context,
        target_landmarks=target_landmarks,
        driver_landmarks=driver_landmarks,
        driver_ref=driver_ref,
        overwrite=overwrite,
    )
    report_summary(report, as_json=as_json, title=f"transfer {driver} -> {target}")


def edit(
    source: Annotated[Path, typer.Argument(help="Input video or photo.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output video file.")],
    direction: Annotated[
        list[str],
        typer.Option(
            "--direction",
            "-d",
            help="NAME=STRENGTH, repeatable. NAME: a weight name (reenact weights list), a direction file "
            "(.npy InterFaceGAN, .pt e4e/GANSpace), or FILE:K for GANSpace component K.",
        ),
    ],
    layers: Annotated[
        str | None, typer.Option("--layers", help="Only move these W+ layers (e.g. 4-7).")
    ] = None,
    landmarks: Annotated[
        str | None, typer.Option("--landmarks", help="dlib, fan, or a sidecar .json/.npz.")
    ] = None,
    generator: Generator = pipeline.DEFAULT_GENERATOR,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    config: Path | None = ConfigOption,
    sets: list[str] = SetOption,
) -> None:
    """Move every frame's latent along attribute directions (smile, age, pose ...) and re-render the clip."""
    from reenact.directions import parse_direction_arg, resolve_direction

    if not direction:
        raise ReenactError("give at least one --direction NAME=STRENGTH")
    parsed = [parse_direction_arg(item) for item in direction]
    directions = [(resolve_direction(name), value) for name, value in parsed]
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, config=config, sets=sets, quiet=quiet,
    )  # fmt: skip
    report = pipeline.edit_video(
        source,
        output,
        directions=directions,
        context=context,
        landmarks=landmarks,
        layers=layers,
        overwrite=overwrite,
    )
    report_summary(report, as_json=as_json, title=f"edit {source}")


def morph(
    first: Annotated[Path, typer.Argument(help="First face (photo or video: its first frame).")],
    second: Annotated[Path, typer.Argument(help="Second face (photo or video: its first frame).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output video file.")],
    frames: Annotated[int, typer.Option("--frames", min=2, help="Frames of the morph.")] = 50,
    fps: Annotated[int, typer.Option("--fps", min=1, help="Frame rate of the morph video.")] = 25,
    crossover: Annotated[
        int | None,
        typer.Option(
            "--crossover", help="Style crossover instead: layers below K from FIRST, the rest from SECOND."
        ),
    ] = None,
    generator: Generator = pipeline.DEFAULT_GENERATOR,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    workdir: Workdir = DEFAULT_WORKDIR,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    config: Path | None = ConfigOption,
    sets: list[str] = SetOption,
) -> None:
    """Image2StyleGAN morph between two faces (aligned crops, as a video), or a style crossover."""
    context = make_context(
        generator=generator, device=device, precision=precision, compile=compile,
        workdir=workdir, config=config, sets=sets, quiet=quiet,
    )  # fmt: skip
    report = pipeline.morph_video(
        first,
        second,
        output,
        context=context,
        num_frames=frames,
        fps=fps,
        crossover=crossover,
        overwrite=overwrite,
    )
    report_summary(report, as_json=as_json, title=f"morph {first} -> {second}")
