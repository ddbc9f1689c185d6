"""`reenact people`: every person in a clip, the frames each is in, and a contact sheet of their faces."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.config import DEFAULT_WORKDIR
from reenact.errors import ReenactError, UsageError
from reenact.threads import use_threads
from reenact_cli.common import (
    NO_DEFAULT,
    AsJson,
    Device,
    Duration,
    Landmarks,
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
    import numpy as np

    from reenact.stages.people import ClipPeople
    from reenact.timeline import Window

TILE = 160
"""Side of one person's tile on the contact sheet (pixels)."""
SHEET_COLUMNS = 8
"""Tiles per row of the contact sheet; more people start another row."""
FACE_MARGIN = 0.35
"""Margin around a face's box on its tile, as a fraction of the box's longer side on each side."""
LABEL_SCALE = 1.0
"""cv2.putText font scale of the id on a tile."""
LABEL_THICKNESS = 2
LABEL_OFFSET = (8, 32)
"""Where the id's baseline starts on a tile (x, y pixels)."""
LABEL_COLOUR = (255, 255, 255)
LABEL_OUTLINE = (0, 0, 0)
"""Drawn thicker under the id so it reads on any face (RGB)."""


def check_sheet(path: Path, *, source: Path, overwrite: bool) -> None:
    """The contact sheet's path before any work: a .png in an existing folder, not the input, and new
    unless `overwrite`."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"--sheet writes a PNG; give a .png path, not {path}")
    if not path.parent.is_dir():
        raise ReenactError(f"folder {path.parent} does not exist (for --sheet {path})")
    if path.is_dir():
        raise ReenactError(f"--sheet {path} is a folder")
    if path.exists() and source.exists() and path.samefile(source):
        raise ReenactError(f"{path} is the input; choose another --sheet path")
    if path.exists() and not overwrite:
        raise ReenactError(f"{path} already exists; pass --overwrite to replace it")


def face_tile(
    image: np.ndarray, box: np.ndarray, *, side: int = TILE, margin: float = FACE_MARGIN
) -> np.ndarray:
    """The square around a face's box [4] (its longer side plus `margin` on each side, black beyond
    the frame) of an RGB image [H, W, 3], resized to `side` x `side` [side, side, 3]."""
    import cv2
    import numpy as np

    centre = (box[:2] + box[2:]) / 2  # [2]
    half = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0) * (0.5 + margin)
    x0, y0 = (int(v) for v in np.floor(centre - half))
    x1, y1 = (int(v) for v in np.ceil(centre + half))
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    crop = padded[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def label_tile(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile with `text` written in its top-left corner, outlined."""
    import cv2

    out = tile.copy()
    for colour, thickness in ((LABEL_OUTLINE, 3 * LABEL_THICKNESS), (LABEL_COLOUR, LABEL_THICKNESS)):
        cv2.putText(
            out, text, LABEL_OFFSET, cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, colour, thickness, cv2.LINE_AA
        )
    return out


def contact_sheet(tiles: list[np.ndarray], *, columns: int = SHEET_COLUMNS) -> np.ndarray:
    """Equal tiles [S, S, 3] laid out in rows of at most `columns`, black where a row is short."""
    import numpy as np

    side = tiles[0].shape[0]
    across = min(len(tiles), columns)
    rows = math.ceil(len(tiles) / across)
    sheet = np.zeros((rows * side, across * side, 3), dtype=np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, across)
        sheet[row * side : (row + 1) * side, column * side : (column + 1) * side] = tile
    return sheet


def write_sheet(
    found: ClipPeople, path: Path, *, source: Path, window: Window | None, fps: Fraction | None = None
) -> None:
    """Each person's clearest face, labelled with their id, as a PNG contact sheet; of the frames
    decoded, only those that show one are converted and held, one at a time (`fps`: the source's rate
    when it is an image sequence)."""
    import cv2
    import numpy as np

    from reenact import video
    from reenact.files import atomic_path

    summaries = [found.person_summary(person) for person in found.people]
    wanted = {int(summary["clearest"]["frame"]) for summary in summaries}
    tiles: dict[int, np.ndarray] = {}
    for frame in video.VideoReader(source, fps=fps, window=window).frames(upright=True, only=wanted):
        for summary in summaries:
            if summary["clearest"]["frame"] == frame.index:
                box = np.array(summary["clearest"]["box"], dtype=np.float64)
                tiles[summary["id"]] = label_tile(face_tile(frame.image, box), str(summary["id"]))
    if len(tiles) < len(summaries):
        raise ReenactError(f"{source} ended before the frames of every person's face could be read")
    sheet = contact_sheet([tiles[summary["id"]] for summary in summaries])
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always has PNG
        raise ReenactError("OpenCV could not encode the contact sheet as PNG")
    with atomic_path(path) as temporary:
        temporary.write_bytes(encoded.tobytes())


def ranges_text(ranges: list[list[int]]) -> str:
    """`0-120, 130-264`: runs of frames, each `start-stop` with stop exclusive."""
    return ", ".join(f"{start}-{stop}" for start, stop in ranges)


def people_json(summaries: list[dict[str, Any]]) -> str:
    """`{"people": [...]}` with one person a line."""
    rows = ",\n".join(f"  {json.dumps(summary)}" for summary in summaries)
    return f'{{"people": [\n{rows}\n]}}' if summaries else '{"people": []}'


def print_table(found: ClipPeople, summaries: list[dict[str, Any]], *, source: Path) -> None:
    """The clip's counts, then one line per person: id, frames, first-last frame, runs of frames."""
    typer.echo(f"{source}: {found.text()}")
    typer.echo(f"  {'id':>3}  {'frames':>7}  {'first-last':<13}  ranges (start-stop, stop exclusive)")
    for summary in summaries:
        span = f"{summary['first']}-{summary['last']}"
        typer.echo(
            f"  {summary['id']:>3}  {summary['frames']:>7}  {span:<13}  {ranges_text(summary['ranges'])}"
        )


def people(
    source: Annotated[Path, typer.Argument(help="Input video or photo.")],
    landmarks: Landmarks = None,
    sheet: Annotated[
        Path | None,
        typer.Option(
            "--sheet",
            help=(
                "Write a PNG contact sheet: each person's clearest face (largest box x detector score), "
                f"{TILE} px square, labelled with their id, {SHEET_COLUMNS} to a row."
            ),
            show_default=NO_DEFAULT,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing sheet file.")] = False,
    device: Device = "auto",
    threads: Threads = None,
    workdir: Workdir = DEFAULT_WORKDIR,
    as_json: AsJson = False,
    quiet: Quiet = False,
    preset: Preset = None,
    sets: Sets = None,
    start: Start = None,
    duration: Duration = None,
    fps: SequenceFps = None,
) -> None:
    """List every person in a clip: who is there, and in which frames, through cuts.

    Every face of every frame is detected (the alignment's own face detection, shared with it:
    aligning the clip's largest face afterwards detects nothing again), linked from frame to frame
    within each shot, and the pieces are grouped into people by face descriptors (dlib's face
    recognition; the aligned crop's pixels with a landmarks file, see faces.descriptor). People are
    numbered 0, 1, ... in order of first appearance. The table gives each person's frame count, first
    and last frame and runs of frames (start-stop, stop exclusive); --json prints {"people": [{"id",
    "frames", "ranges": [[start, stop], ...], ...}]}. The result is stored in the workdir, so a second
    run on the clip is instant.
    """
    use_threads(threads)
    rate = sequence_fps(fps)

    from reenact import checks, pipeline
    from reenact.device import resolve_runtime
    from reenact.workspace import Workspace

    window = slice_window(source, start, duration, fps=rate)
    settings = settings_for(preset, sets, faces={"landmarks": landmarks})
    checks.check_runtime_options(device=device)
    checks.check_run([source], generator=None, settings=settings, fps=rate)
    if sheet is not None:
        check_sheet(sheet, source=source, overwrite=overwrite)
    progress = cli_progress(quiet=quiet)
    context = pipeline.RunContext(
        workspace=Workspace(workdir),
        settings=settings,
        runtime=resolve_runtime(device),
        progress=progress,
        fps=rate,
    )
    found, _ = pipeline.clip_people(source, context=context, window=window)
    if sheet is not None:
        write_sheet(found, sheet, source=source, window=window, fps=rate)
    summaries = [found.person_summary(person) for person in found.people]
    if as_json:
        typer.echo(people_json(summaries))
        return
    print_table(found, summaries, source=source)
    if sheet is not None:
        typer.echo(f"  sheet     {sheet}")
