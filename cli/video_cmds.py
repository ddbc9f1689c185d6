"""`reenact probe` and `reenact reencode`: look at a file, and the honest check of our I/O path."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from reenact.config import VideoConfig
from reenact.threads import use_threads
from reenact_cli.common import (
    CodecOption,
    Duration,
    Preset,
    Quiet,
    SequenceFps,
    Sets,
    Start,
    Threads,
    TimecodeOption,
    sequence_fps,
    settings_for,
    slice_window,
    video_settings,
)
from reenact_cli.progress import cli_progress


def probe(
    path: Path = typer.Argument(
        ...,
        help="Video or image file, or image sequence (shot/%06d.png or a folder; with --fps) to describe.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    fps: SequenceFps = None,
) -> None:
    """Describe a video or image: size, rotation, frame rate (average and nominal), VFR, frames, audio."""
    from reenact import video

    info = video.probe(path, fps=sequence_fps(fps))
    if as_json:
        typer.echo(json.dumps(info.to_dict(), indent=2))
        return
    orientation = f" (displayed {info.display_width}x{info.display_height})" if info.rotation else ""
    typer.echo(f"{info.path}: {info.container}, {info.video_codec} {info.pix_fmt}")
    typer.echo(f"  size      {info.width}x{info.height}{orientation}, rotation {info.rotation}")
    if info.first_frame_number is not None:
        last = info.first_frame_number + info.frame_count - 1
        typer.echo(f"  sequence  frames {info.first_frame_number}-{last}")
    if not info.is_image:
        colour = "full" if info.full_range else "limited"
        timecode = f", timecode {info.timecode}" if info.timecode else ""
        typer.echo(f"  samples   {info.bit_depth}-bit {info.chroma}, {colour} range{timecode}")
    if not info.is_image:
        rate = f"{info.fps_avg:.3f} fps average, {info.fps_nominal:.3f} nominal"
        typer.echo(f"  timing    {info.frame_count} frames, {info.duration_s:.3f} s, {rate}, VFR: {info.vfr}")
        if info.frames_missing:
            typer.echo(
                f"  damaged   {info.frames_missing} of {info.frames_announced} announced frames do not decode"
            )
    audio = (
        f"{info.audio_codec} {info.audio_sample_rate} Hz {info.audio_channels} ch"
        if info.has_audio
        else "none"
    )
    typer.echo(f"  audio     {audio}")


def reencode(
    source: Path = typer.Argument(
        ..., help="Input video (or image), or image sequence: shot/%06d.png or a folder of numbered frames."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help=(
            "Output file (.mp4, .mov, .m4v, .mkv or .mxf), or image sequence shot/%06d.png (.tif, .dpx, "
            ".exr)."
        ),
    ),
    crf: int | None = typer.Option(
        None, "--crf", help=f"x264/x265 quality, 0..51 (lower is better; default {VideoConfig.crf})."
    ),
    codec: CodecOption = None,
    timecode: TimecodeOption = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    quiet: Quiet = False,
    threads: Threads = None,
    preset: Preset = None,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
    fps: SequenceFps = None,
) -> None:
    """Decode every frame and encode it again, keeping timestamps, rotation, bit depth, colour tags,
    timecode and the audio bit-exact (and the subtitle and data streams OUTPUT's container holds).

    The honest check of reenact's I/O path, and a handy normaliser for odd inputs. The codec is the
    source's own unless --codec says otherwise; a lossless output (ffv1) of a source in the same pixel
    format carries its exact codes.
    """
    use_threads(threads)
    rate = sequence_fps(fps)
    from reenact import video

    settings = settings_for(preset, sets, video={"crf": crf, **video_settings(codec, timecode)})
    window = slice_window(source, start, duration, fps=rate)
    reader = video.VideoReader(source, fps=rate, window=window)
    progress = cli_progress(quiet=quiet)
    with progress.task("reencode", total=reader.info.frame_count, unit="frame") as task:
        report = video.reencode(
            reader, output, config=settings.video, overwrite=overwrite, progress=task.advance
        )
    if report.frames_lost:
        typer.echo(
            video.lost_frames_warning(source, lost=report.frames_lost, announced=report.frames_expected),
            err=True,
        )
    dropped = video.dropped_streams_note(source, output)
    if dropped is not None:
        typer.echo(dropped, err=True)
    if report.audio_dropped:
        typer.echo(f"note: an image sequence holds no audio; the audio of {source} is not written", err=True)
    if report.padded:
        typer.echo(
            "note: odd frame size padded by one pixel to even (4:2:0 and 4:2:2 chroma need even sizes)",
            err=True,
        )
    sliced = f" (the slice {window.describe()} of {source})" if window is not None else ""
    typer.echo(f"wrote {output}: {report.frames_written} frames{sliced}")
