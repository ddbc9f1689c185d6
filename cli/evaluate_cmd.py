"""`reenact evaluate`: TL-ID / TG-ID, landmark jitter, PSNR and LPIPS of an output clip against its source,
for the clip's largest face and for each person of the source (`reenact people`)."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.config import BUILTIN_LANDMARK_BACKENDS, DEFAULT_WORKDIR
from reenact.errors import ReenactError, UsageError
from reenact.threads import use_threads
from reenact_cli.common import (
    NO_DEFAULT,
    Device,
    Duration,
    Preset,
    Quiet,
    SequenceFps,
    Sets,
    Start,
    Threads,
    Workdir,
    sequence_fps,
    settings_for,
    slice_window,
)
from reenact_cli.progress import cli_progress

if TYPE_CHECKING:
    from reenact.config import Config
    from reenact.faces.landmarks import LandmarkBackend
    from reenact.metrics import EvaluationReport
    from reenact.pipeline import RunContext
    from reenact.stages.people import ClipPeople
    from reenact.timeline import Window


def _check_new_file(path: Path | None, *, inputs: tuple[Path, ...], overwrite: bool) -> None:
    if path is None:
        return
    if any(path.exists() and other.exists() and path.samefile(other) for other in inputs):
        raise ReenactError(f"{path} is an input; choose another output path")
    if path.exists() and not overwrite:
        raise ReenactError(f"{path} already exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ReenactError(f"folder {path.parent} does not exist")


def _figure(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def print_summary(report: EvaluationReport, *, output: Path, reference: Path) -> None:
    """The human summary: one line per figure."""
    s = report.summary
    typer.echo(f"{output} vs {reference}: {s['frames']} frames")
    typer.echo(
        f"  TL-ID     {_figure(s['tl_id'], '.4f')}  (adjacent-frame identity: output "
        f"{_figure(s['tl_output'], '.4f')} / reference {_figure(s['tl_reference'], '.4f')})"
    )
    typer.echo(
        f"  TG-ID     {_figure(s['tg_id'], '.4f')}  (all-pairs identity: output "
        f"{_figure(s['tg_output'], '.4f')} / reference {_figure(s['tg_reference'], '.4f')})"
    )
    mean_identity = _figure(s["id_to_reference_mean"], ".4f")
    typer.echo(f"  identity  {mean_identity} mean similarity to the reference's same frame")
    typer.echo(
        f"  jitter    {_figure(s['jitter_output'], '.5f')} output, {_figure(s['jitter_reference'], '.5f')} "
        "reference (RMS 2nd difference of the FFHQ quad, in quad sides)"
    )
    typer.echo(
        f"  PSNR      {_figure(s['psnr_mean'], '.2f', ' dB')} mean, {_figure(s['psnr_min'], '.2f', ' dB')} "
        f"worst frame (identical frames count as {s['psnr_max_db']:g} dB)"
    )
    if s["lpips_note"] is None:
        typer.echo(f"  LPIPS     {_figure(s['lpips_mean'], '.4f')} mean ({s['lpips_net']})")
    else:
        typer.echo(f"  LPIPS     n/a: {s['lpips_note']}")
    typer.echo(
        f"  no face   {s['frames_without_face']} output frames, {s['reference_frames_without_face']} "
        "reference frames (skipped by the identity figures)"
    )
    if s.get("driver") is not None:
        for line in driver_lines(s["driver"]):
            typer.echo(line)
    if report.people is not None:
        print_people(report.people)


def driver_lines(driver: dict[str, Any]) -> list[str]:
    """Identity kept and expression followed against the driver (`metrics.driver_figures`)."""
    share = driver["nearer_reference_share"]
    kept = "n/a" if share is None else f"{100 * share:.0f}%"
    return [
        f"  driver    identity nearer the reference than the driver in {kept} of "
        f"{driver['identity_frames']} frames (descriptor distance "
        f"{_figure(driver['distance_to_reference_mean'], '.3f')} to the reference, "
        f"{_figure(driver['distance_to_driver_mean'], '.3f')} to the driver)",
        f"  follows   the driver's mouth r={_figure(driver['mouth_correlation'], '.2f')} (the reference's "
        f"own {_figure(driver['mouth_correlation_reference'], '.2f')}), eyes "
        f"r={_figure(driver['eyes_correlation'], '.2f')} "
        f"({_figure(driver['eyes_correlation_reference'], '.2f')}), over the {driver['mouth_frames']} of "
        f"{driver['frames']} paired frames where dlib finds the output's and the driver's face",
    ]


def person_line(person: dict[str, Any]) -> str:
    """`  person 0  120 frames  TL-ID 0.9800  TG-ID 0.9700  identity 0.9500  jitter 0.00120  face PSNR
    38.20 dB`, and how many of their frames have no matching face in the output."""
    line = (
        f"  person {person['id']}  {person['frames']} frames  TL-ID {_figure(person['tl_id'], '.4f')}  "
        f"TG-ID {_figure(person['tg_id'], '.4f')}  "
        f"identity {_figure(person['id_to_reference_mean'], '.4f')}  "
        f"jitter {_figure(person['jitter_output'], '.5f')}  "
        f"face PSNR {_figure(person['face_psnr_mean'], '.2f', ' dB')}"
    )
    if person["frames_without_face"]:
        line += f"  ({person['frames_without_face']} without a face in the output)"
    return line


def print_people(people: list[dict[str, Any]]) -> None:
    """One line per person of the reference (`person_line`)."""
    if not people:
        typer.echo("  people    none: no face found in the reference")
        return
    typer.echo(
        f"  people    {len(people)} in the reference (their faces alone; jitter of the output's landmarks, "
        "face PSNR over their face box)"
    )
    for person in people:
        typer.echo(person_line(person))


def output_landmark_source(output_landmarks: str | None, *, reference_source: str) -> str:
    """Where the output's faces come from: `--output-landmarks`, else the reference's detector (dlib or
    fan; a landmarks file belongs to one clip, so dlib then). A `UsageError` for anything else."""
    source = output_landmarks or (
        reference_source if reference_source in BUILTIN_LANDMARK_BACKENDS else "dlib"
    )
    if source not in BUILTIN_LANDMARK_BACKENDS and not source.lower().endswith((".json", ".npz")):
        raise UsageError(
            f"--output-landmarks must be dlib, fan or a .json/.npz landmarks file; got {source!r}"
        )
    if source not in BUILTIN_LANDMARK_BACKENDS and not Path(source).is_file():
        raise UsageError(f"--output-landmarks {source}: no such file")
    return source


def reference_people(reference: Path, *, context: RunContext, window: Window | None) -> ClipPeople:
    """The reference's people (`reenact people`'s stage, cached in the workdir); none when it has no face."""
    import numpy as np

    from reenact import pipeline
    from reenact.faces.landmarks import NUM_LANDMARKS
    from reenact.faces.track import FrameDetections
    from reenact.stages.people import ClipPeople, NoFaceError

    try:
        found, _ = pipeline.clip_people(reference, context=context, window=window)
    except NoFaceError as exc:
        context.progress.note(f"note: {exc}")
        empty = FrameDetections(
            counts=np.zeros(0, np.int64),
            boxes=np.zeros((0, 4)),
            points=np.zeros((0, NUM_LANDMARKS, 2)),
            scores=np.zeros(0),
            histograms=np.zeros((0, 0), np.float32),
        )
        return ClipPeople(people=[], detections=empty, starts=[0])
    return found


def output_backend(
    source: str, *, output: Path, settings: Config, device: str, fps: Fraction | None = None
) -> LandmarkBackend | None:
    """The output's landmark backend for `source` (`fps`: the output's rate when it is an image sequence);
    None for dlib (the whole-clip figures' own)."""
    if source == "dlib":
        return None
    from reenact import video
    from reenact.faces.landmarks import make_backend

    return make_backend(
        settings.faces, landmarks=source, device=device, num_frames=video.probe(output, fps=fps).frame_count
    )


def evaluate(
    output: Annotated[Path, typer.Argument(help="The clip to score (e.g. what `reenact transfer` wrote).")],
    reference: Annotated[
        Path, typer.Option("--reference", "-r", help="The source clip the output was made from.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full report (summary and per-frame records) as JSON.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Write a PNG plot of per-frame PSNR and identity.", show_default=NO_DEFAULT
        ),
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help="Write the full report as JSON to this file.", show_default=NO_DEFAULT),
    ] = None,
    lpips: Annotated[
        bool, typer.Option("--lpips/--no-lpips", help="Compute LPIPS (needs the backbone weights).")
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing --plot and --report files.")
    ] = False,
    people: Annotated[
        bool,
        typer.Option(
            "--people/--no-people",
            help=(
                "Also score each person of the reference (found as `reenact people` finds them, cached "
                "in the workdir)."
            ),
        ),
    ] = True,
    landmarks: Annotated[
        str | None,
        typer.Option(
            "--landmarks",
            help=(
                "Where the reference's people are found: dlib (default), fan, or a sidecar .json/.npz file "
                "(every face of every frame)."
            ),
            show_default=NO_DEFAULT,
        ),
    ] = None,
    output_landmarks: Annotated[
        str | None,
        typer.Option(
            "--output-landmarks",
            help=(
                "Where the output's faces are found to score each person: dlib, fan, or a sidecar "
                ".json/.npz file. Default: --landmarks when it is dlib or fan, else dlib."
            ),
            show_default=NO_DEFAULT,
        ),
    ] = None,
    driver: Annotated[
        Path | None,
        typer.Option(
            "--driver",
            help=(
                "The driver the output was made with: adds identity kept (output faces nearer the "
                "reference's than the driver's) and expression followed (mouth and eye opening correlated "
                "with the driver's, beside the reference's own correlation). Output frame t is paired with "
                "driver frame t."
            ),
            show_default=NO_DEFAULT,
        ),
    ] = None,
    device: Device = "auto",
    workdir: Workdir = DEFAULT_WORKDIR,
    quiet: Quiet = False,
    threads: Threads = None,
    preset: Preset = None,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
    fps: SequenceFps = None,
) -> None:
    """Score OUTPUT against its source clip: STIT's TL-ID/TG-ID (dlib face descriptors), landmark jitter,
    per-frame PSNR and LPIPS. Frames are paired by index; counts and sizes must match.
    --start/--duration score a slice of the reference: against OUTPUT whole when it is that slice (made
    with the same --start/--duration), else against the same slice of OUTPUT.

    The whole-clip figures are of the largest face in each frame. Then each person of the reference
    (found as `reenact people` finds them, through cuts; cached in the workdir, so a reference that
    `reenact transfer` aligned is not detected again) is scored alone: the output's face at their place
    in each of their frames is theirs (the output keeps the reference's positions), and their frame
    count, TL-ID, TG-ID, identity similarity, landmark jitter and face PSNR (over their face box) are
    reported; --json and --report give them as "people".

    With --driver: identity kept against the driver, and how the output's mouth and eyes follow the
    driver's (the summary's "driver").
    """
    use_threads(threads)
    rate = sequence_fps(fps)
    from reenact import checks, pipeline, video
    from reenact.device import resolve_runtime
    from reenact.files import write_text_atomic
    from reenact.metrics import evaluate_videos, write_plot
    from reenact.workspace import Workspace

    window = slice_window(reference, start, duration, fps=rate)
    settings = settings_for(preset, sets, faces={"landmarks": landmarks})
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG; give a .png path, not {plot}")
    checks.check_runtime_options(device=device)
    if driver is not None:
        video.check_input(driver)
    out_source = output_landmark_source(output_landmarks, reference_source=settings.faces.landmarks)
    for target in (plot, report_path):
        _check_new_file(target, inputs=(output, reference), overwrite=overwrite)
    progress = cli_progress(quiet=quiet)
    runtime = resolve_runtime(device)
    find_people = None
    if people:
        context = pipeline.RunContext(
            workspace=Workspace(workdir), settings=settings, runtime=runtime, progress=progress, fps=rate
        )
        find_people = functools.partial(reference_people, reference, context=context, window=window)
    report = evaluate_videos(  # its "evaluate" task opens only once both inputs passed their checks
        output,
        reference,
        config=settings.metrics,
        faces=settings.faces,
        use_lpips=lpips,
        progress=progress,
        window=window,
        people=find_people,
        output_faces=(
            output_backend(out_source, output=output, settings=settings, device=str(runtime.device), fps=rate)
            if people
            else None
        ),
        driver=driver,
        fps=rate,
    )
    if report_path is not None:
        try:
            write_text_atomic(report_path, report.to_json() + "\n")
        except OSError as exc:
            raise ReenactError(f"cannot write {report_path}: {exc.strerror}") from None
    if plot is not None:
        write_plot(report, plot)
    if as_json:
        typer.echo(report.to_json())
        return
    print_summary(report, output=output, reference=reference)
    for label, path in (("report", report_path), ("plot", plot)):
        if path is not None:
            typer.echo(f"  {label:<9} {path}")
