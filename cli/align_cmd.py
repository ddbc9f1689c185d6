"""`reenact align`: detect, track and align one face through a clip, and show what the tracker did."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reenact.checks import FaceRequest
from reenact.config import BUILTIN_LANDMARK_BACKENDS, DEFAULT_WORKDIR, Config
from reenact.progress import Progress
from reenact.threads import use_threads
from reenact_cli.common import (
    NO_DEFAULT,
    AsJson,
    Device,
    Duration,
    FaceAt,
    FaceIndex,
    Landmarks,
    Person,
    PersonRef,
    Preset,
    Quiet,
    SequenceFps,
    Sets,
    Start,
    Threads,
    Workdir,
    face_choice,
    sequence_fps,
    settings_for,
    slice_window,
)
from reenact_cli.progress import cli_progress

if TYPE_CHECKING:
    import numpy as np

    from reenact import video
    from reenact.faces.track import FaceTrack

# Preview drawing (RGB).
POINT_COLOUR = (0, 255, 0)
RAW_QUAD_COLOUR = (255, 80, 80)
QUAD_COLOUR = (255, 220, 0)
TEXT_COLOUR = (255, 255, 255)
LINE_PX_PER_1000 = 2.0
"""Line width in pixels per 1000 pixels of the frame's longest side."""


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return value if math.isfinite(value) else None


def _line_width(shape: tuple[int, ...]) -> int:
    return max(1, round(max(shape[:2]) * LINE_PX_PER_1000 / 1000))


def draw_preview(
    image: np.ndarray, *, points: np.ndarray, raw_quad: np.ndarray, quad: np.ndarray, label: str
) -> np.ndarray:
    """Frame with the 68 points, the raw quad (thin) and the smoothed quad (thick) drawn on it."""
    import cv2
    import numpy as np

    out = image.copy()
    width = _line_width(out.shape)
    if np.isfinite(raw_quad).all():
        cv2.polylines(out, [np.round(raw_quad).astype(np.int32)], True, RAW_QUAD_COLOUR, width, cv2.LINE_AA)
    if np.isfinite(quad).all():
        cv2.polylines(out, [np.round(quad).astype(np.int32)], True, QUAD_COLOUR, 2 * width, cv2.LINE_AA)
    if np.isfinite(points).all():
        for x, y in np.round(points).astype(np.int32):
            cv2.circle(out, (int(x), int(y)), width + 1, POINT_COLOUR, -1, cv2.LINE_AA)
    scale = width * 0.5
    cv2.putText(
        out, label, (8 * width, 24 * width), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, width, cv2.LINE_AA
    )
    return out


def write_preview(
    reader: video.VideoReader,
    output: Path,
    *,
    track: FaceTrack,
    raw_quads: np.ndarray,
    quads: np.ndarray,
    settings: Config,
    overwrite: bool,
    progress: Progress,
) -> None:
    """Second pass over the input: draw the track on every frame, keep timestamps and audio."""
    import numpy as np

    from reenact import video

    shot_of = np.zeros(track.num_frames, dtype=np.int64)
    for number, (start, stop) in enumerate(track.segments):
        shot_of[start:stop] = number
    audio = reader.path if reader.info.has_audio else None
    with (
        video.VideoWriter(
            output,
            like=reader.info,
            config=settings.video,
            audio_from=audio,
            overwrite=overwrite,
            upright_frames=True,
        ) as writer,
        progress.task("preview", total=track.num_frames, unit="frame") as task,
    ):
        for frame in reader.frames(upright=True):
            index = min(frame.index, track.num_frames - 1)
            state = "face" if track.found[index] else "NO FACE"
            label = f"frame {frame.index} shot {shot_of[index] + 1}/{len(track.segments)} {state}"
            image = draw_preview(
                frame.image,
                points=track.points[index],
                raw_quad=raw_quads[index],
                quad=quads[index],
                label=label,
            )
            writer.write(image, pts=frame.pts)
            task.advance()


def align(
    source: Annotated[Path, typer.Argument(help="Input video or photo.")],
    landmarks: Landmarks = None,
    face_index: FaceIndex = None,
    face_at: FaceAt = None,
    person: Person = None,
    person_ref: PersonRef = None,
    resolution: Annotated[
        int | None,
        typer.Option("--resolution", help="Aligned crop size in pixels (default align.resolution)."),
    ] = None,
    preview: Annotated[
        Path | None,
        typer.Option("--preview", help="Write a video with the track drawn on it.", show_default=NO_DEFAULT),
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
    workdir: Workdir = DEFAULT_WORKDIR,
    as_json: AsJson = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing preview file.")] = False,
    quiet: Quiet = False,
    preset: Preset = None,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
    fps: SequenceFps = None,
) -> None:
    """Find and follow one person's face through a clip: landmarks, FFHQ quads, temporal smoothing, crops.

    Every face is detected and linked into people across cuts (`reenact people` lists them); the person
    is chosen by --person, --person-ref, --face-index or --face-at (default: the largest face in the first
    frame with one) and followed by identity, not position. The result is the alignment stage of
    `reenact transfer`/`edit`/`invert`/`tune`, stored in the workdir (track.npz, align.npz), so a later
    run on the clip with the same person and settings reuses it;
    --preview draws it on the video. With --start/--duration the slice is aligned as a clip of its own
    (frames from 0); its face detection is stored so that aligning the whole clip later reuses it.
    """
    use_threads(threads)
    rate = sequence_fps(fps)

    from reenact import checks, pipeline, video
    from reenact.device import resolve_runtime
    from reenact.faces.align import quad_jitter
    from reenact.workspace import Workspace

    window = slice_window(source, start, duration, fps=rate)
    settings = settings_for(preset, sets, faces={"landmarks": landmarks}, align={"resolution": resolution})
    checks.check_runtime_options(device=device)
    checks.check_run(
        [source],
        generator=None,
        settings=settings,
        face=FaceRequest(face_index, face_at, person, person_ref),
        fps=rate,
    )
    progress = cli_progress(quiet=quiet)
    if preview is not None:
        video.check_output(preview, inputs=(source,), overwrite=overwrite)
    workspace = Workspace(workdir)
    context = pipeline.RunContext(
        workspace=workspace, settings=settings, runtime=resolve_runtime(device), progress=progress, fps=rate
    )
    alignment, stage = pipeline.align_clip(
        source,
        context=context,
        resolution=settings.align.resolution,
        face=face_choice(face_index, face_at, person, person_ref),
        window=window,
    )
    detection, report = context.reports  # the people's (their parts detect the faces), the alignment's
    track, raw_quads, quads = alignment.track, alignment.quads_raw, alignment.quads
    entry = workspace.path(stage.key)
    track_path, align_path = entry / "track.npz", entry / "align.npz"
    if preview is not None:
        write_preview(
            video.VideoReader(source, fps=rate, window=window),
            preview,
            track=track,
            raw_quads=raw_quads,
            quads=quads,
            settings=settings,
            overwrite=overwrite,
            progress=progress,
        )

    counts = pipeline.FaceCounts.of(alignment)
    source_name = settings.faces.landmarks
    landmarks_name = source_name if source_name in BUILTIN_LANDMARK_BACKENDS else "file"
    summary = {
        "input": str(source),
        "frames": track.num_frames,
        "faces_found": counts.detected,
        "frames_without_face": counts.frames - counts.detected,
        "aligned_frames": counts.aligned,
        "segments": [list(segment) for segment in track.segments],
        "jitter_raw": _finite_or_none(quad_jitter(raw_quads, track.segments)),
        "jitter_smoothed": _finite_or_none(quad_jitter(quads, track.segments)),
        "landmarks": landmarks_name,
        "resolution": settings.align.resolution,
        "track": str(track_path),
        "align": str(align_path),
        "preview": str(preview) if preview is not None else None,
        "slice": window.describe() if window is not None else None,
        "person": stage.person,
        "cached": report.cached,
        "resumed_parts": detection.resumed,
        "computed_parts": detection.work.parts,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{source}: {counts.text()}")
    typer.echo(f"  person    {stage.person} of {len(stage.people.people)} (reenact people lists them)")
    typer.echo(f"  shots     {len(track.segments)} (cuts at {track.cuts or 'none'})")
    if summary["jitter_raw"] is None:
        typer.echo("  jitter    n/a (needs 3 consecutive frames with a face)")
    else:
        typer.echo(
            f"  jitter    {summary['jitter_raw']:.5f} raw -> {summary['jitter_smoothed']:.5f} smoothed"
        )
    typer.echo(f"  saved     {track_path}, {align_path}")
    if preview is not None:
        typer.echo(f"  preview   {preview}")
