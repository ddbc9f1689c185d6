"""`reenact evaluate`: TL-ID / TG-ID, landmark jitter, PSNR and LPIPS of an output clip against its source."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.errors import ReenactError, UsageError
from reenact.threads import use_threads
from reenact_cli.common import (
    NO_DEFAULT,
    Duration,
    Preset,
    Quiet,
    Sets,
    Start,
    Threads,
    settings_for,
    slice_window,
)
from reenact_cli.progress import cli_progress

if TYPE_CHECKING:
    from reenact.metrics import EvaluationReport


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
    quiet: Quiet = False,
    threads: Threads = None,
    preset: Preset = None,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
) -> None:
    """Score OUTPUT against its source clip: STIT's TL-ID/TG-ID (dlib face descriptors), landmark jitter,
    per-frame PSNR and LPIPS. Frames are paired by index; counts and sizes must match.
    --start/--duration score a slice of the reference: against OUTPUT whole when it is that slice (made
    with the same --start/--duration), else against the same slice of OUTPUT.
    """
    use_threads(threads)
    from reenact.files import write_text_atomic
    from reenact.metrics import evaluate_videos, write_plot

    window = slice_window(reference, start, duration)
    settings = settings_for(preset, sets)
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG; give a .png path, not {plot}")
    for target in (plot, report_path):
        _check_new_file(target, inputs=(output, reference), overwrite=overwrite)
    report = evaluate_videos(  # its "evaluate" task opens only once both inputs passed their checks
        output,
        reference,
        config=settings.metrics,
        faces=settings.faces,
        use_lpips=lpips,
        progress=cli_progress(quiet=quiet),
        window=window,
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
