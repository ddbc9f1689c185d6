"""Alignment stage: one person's face followed through a clip and its FFHQ crop smoothed.

Faces are detected by the people stage (`stages.people`), in parts of frames, with `DetectionParts`: each
part holds every face found in its frames and their colour histograms (`faces.track.detect_faces`).
Detection is the costly part and needs no neighbour, so any process can compute any part. The people
stage links the faces into people across shots; the face choice (`FaceChoice`: a person id, a reference
photo, or the `index`-th largest face or the face at a point in the first frame where one applies) picks
one person (`stages.people.choose_person`), and this stage takes that person's face in every frame,
smooths the FFHQ quads within shots and makes each frame's frame -> crop matrix (`faces.align`). It has
no parts of its own: its merge reads the people.

A slice of the clip (`window`, from `--start/--duration`) is aligned as a clip of its own (frames numbered
from 0; the people and the smoothing see the slice alone, so its edges may differ from the whole clip's).
Its detection parts are the whole clip's parts that cover it, stored under the whole clip's key: a later
run on the whole clip finds them done and computes only the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reenact import video
from reenact.config import Config, config_to_dict
from reenact.device import Runtime
from reenact.distributed import part_size
from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, smooth_quads
from reenact.faces.landmarks import BUILTIN_LANDMARK_BACKENDS, NUM_LANDMARKS, make_backend
from reenact.faces.track import FaceTrack, FrameDetections, detect_faces, track_quads
from reenact.files import load_arrays, save_arrays
from reenact.progress import SILENT, Progress
from reenact.renders import NONE, Renders
from reenact.stages.base import STAGE_VERSION, FrameRange, split_range
from reenact.timeline import Window
from reenact.workspace import StageKey, Workspace, stage_key

if TYPE_CHECKING:
    from reenact.stages.people import ClipPeople

ALIGN_FORMAT = "reenact-align/1"
ALIGN_PART_FRAMES = 500
"""Frames per detection part: what an interrupted alignment loses at most."""
DETECTIONS_FILE = "detections.npz"


@dataclass(frozen=True)
class FaceChoice:
    """Which person a run follows: person `person` (an id of `reenact people`), the person whose face is
    nearest the face in photo `ref`, or the person with the `index`-th largest face (0 = largest) or the
    face at `at` (x, y pixels) in the first frame where that applies, or the clip's main person (`main`:
    the one in most frames). One of them; by default the person with the largest face in the first frame
    with a face."""

    index: int = 0
    at: tuple[float, float] | None = None
    person: int | None = None
    ref: Path | None = None
    main: bool = False

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ReenactError(f"--face-index must be >= 0, got {self.index}")
        if self.person is not None and self.person < 0:
            raise ReenactError(f"--person must be >= 0, got {self.person}")
        given = [
            self.index != 0,
            self.at is not None,
            self.person is not None,
            self.ref is not None,
            self.main,
        ]
        if sum(given) > 1:
            raise ReenactError(
                "--face-index, --face-at, --person and --person-ref each choose the face: give one"
            )


LARGEST_FACE = FaceChoice()
"""The default: follow the largest face."""
MAIN_PERSON = FaceChoice(main=True)
"""Follow the person in most frames (a cast driver's default)."""


@dataclass
class ClipAlignment:
    """One face followed through a clip: landmarks, smoothed FFHQ quads and frame -> crop matrices."""

    track: FaceTrack
    quads_raw: np.ndarray  # [T, 4, 2]
    quads: np.ndarray  # [T, 4, 2], smoothed; NaN where no face
    matrices: np.ndarray  # [T, 3, 3] frame -> crop; NaN where no face
    resolution: int

    @property
    def num_frames(self) -> int:
        return self.track.num_frames

    @property
    def valid(self) -> np.ndarray:
        """Frames that have a crop, [T] bool."""
        return np.isfinite(self.matrices).all(axis=(1, 2))

    def runs(self) -> list[FrameRange]:
        """Maximal runs of consecutive frames with a crop, never across a scene cut."""
        valid = self.valid
        runs: list[FrameRange] = []
        for first, last in self.track.segments:
            start = None
            for index in range(first, last + 1):
                inside = index < last and valid[index]
                if inside and start is None:
                    start = index
                elif not inside and start is not None:
                    runs.append(FrameRange(start, index))
                    start = None
        return runs

    def at_resolution(self, resolution: int) -> ClipAlignment:
        """The same alignment with frame -> crop matrices for crops of `resolution` pixels."""
        if resolution == self.resolution:
            return self
        return replace(self, matrices=crop_matrices(self.quads, resolution), resolution=resolution)

    def save(self, directory: Path) -> None:
        self.track.save(directory / "track.npz")
        save_arrays(
            directory / "align.npz",
            format=np.array(ALIGN_FORMAT),
            quads_raw=self.quads_raw,
            quads=self.quads,
            crop_matrices=self.matrices,
            resolution=np.array(self.resolution),
            segments=np.array(self.track.segments, dtype=np.int64).reshape(-1, 2),
            found=self.track.found,
        )

    @classmethod
    def load(cls, directory: Path) -> ClipAlignment:
        arrays = load_arrays(directory / "align.npz")
        return cls(
            track=FaceTrack.load(directory / "track.npz"),
            quads_raw=arrays["quads_raw"],
            quads=arrays["quads"],
            matrices=arrays["crop_matrices"],
            resolution=int(arrays["resolution"]),
        )


def compute_alignment(track: FaceTrack, *, settings: Config, resolution: int) -> ClipAlignment:
    """Raw quads from the landmarks, temporal smoothing within shots, and each frame's crop matrix."""
    quads_raw = track_quads(track)  # [T, 4, 2]
    quads = smooth_quads(quads_raw, segments=track.segments, config=settings.align)  # [T, 4, 2]
    return ClipAlignment(
        track=track,
        quads_raw=quads_raw,
        quads=quads,
        matrices=crop_matrices(quads, resolution),
        resolution=resolution,
    )


def crop_matrices(quads: np.ndarray, resolution: int) -> np.ndarray:
    """Frame -> crop matrix [T, 3, 3] of each quad [T, 4, 2] (NaN where the quad is)."""
    matrices = np.full((len(quads), 3, 3), np.nan)
    for index in np.flatnonzero(np.isfinite(quads).all(axis=(1, 2))):
        matrices[index] = crop_matrix(quads[index], resolution)
    return matrices


class FrameCursor:
    """Upright frames of a clip (or of its `window`, numbered from 0) from any start, continuing the same
    decode when asked for the next range. An image sequence reads at `fps` (`video.VideoReader`)."""

    def __init__(self, path: Path, *, fps: Fraction | None = None, window: Window | None = None) -> None:
        self.path = path
        self.fps = fps
        self.window = window
        self._frames: Iterator[video.Frame] | None = None
        self._position = 0

    def images(self, frames: FrameRange, *, to_end: bool = False) -> Iterator[np.ndarray]:
        """The images of `frames` (with `to_end`, every frame from `frames.start` to the end of the clip)."""
        if self._frames is None or self._position != frames.start:
            self._frames = iter(
                video.VideoReader(self.path, fps=self.fps, window=self.window).frames(upright=True)
            )
            self._position = 0
        for frame in self._frames:
            self._position += 1
            if frame.index < frames.start:
                continue
            yield frame.image
            if not to_end and self._position >= frames.stop:
                return


class DetectionParts:
    """A clip's face detection in parts (see the module docstring): what the people stage computes and
    keeps under its key, made from `settings_of`."""

    def __init__(
        self,
        workspace: Workspace,
        path: Path,
        *,
        settings: Config,
        landmarks: str | None,
        runtime: Runtime,
        progress: Progress = SILENT,
        shards: int = 1,
        window: Window | None = None,
        fps: Fraction | None = None,
    ) -> None:
        """`fps`: the clip's frame rate when it is an image sequence (`video.probe`)."""
        self.path = path
        self.fps = fps
        self.shards = shards
        """Ranks the detection is split over (a block of parts each); the result does not depend on it."""
        self.window = window
        self.settings = settings
        self.landmarks = landmarks
        self.runtime = runtime
        self.progress = progress
        self.clip_info = video.probe(path, fps=fps)
        """The whole clip, whose frame numbers the detection parts use."""
        self.info = video.sliced_info(self.clip_info, window)
        """What is detected: the clip, or its window."""
        source = landmarks or settings.faces.landmarks
        faces = config_to_dict(settings.faces)
        faces["landmarks"] = (
            source if source in BUILTIN_LANDMARK_BACKENDS else workspace.input_digest(Path(source))
        )
        faces.pop("fan_device")  # where FAN runs does not change what it finds
        faces.pop("descriptor")  # tells people apart (`stages.people`), no part of the detection
        self.settings_of: dict[str, Any] = {"input": workspace.input_digest(path), "faces": faces}
        """What the whole clip's detection depends on."""
        self._cursor = FrameCursor(path, fps=fps)
        self._backend: Any = None

    def ranges(self) -> list[FrameRange]:
        """The whole clip's detection parts (of a window: those that hold any of its frames)."""
        frames = max(self.clip_info.frame_count, 1)
        parts = split_range(
            FrameRange(0, frames), size=part_size(frames, limit=ALIGN_PART_FRAMES, shards=self.shards)
        )
        window = self.window
        if window is None:
            return parts
        return [part for part in parts if part.start < window.stop and window.first < part.stop]

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """Every face in `frames` (the last part reads on to the clip's real end, whatever was announced)."""
        if self._backend is None:
            self._backend = make_backend(
                self.settings.faces,
                landmarks=self.landmarks,
                device=str(self.runtime.device),
                num_frames=self.clip_info.frame_count,
            )
            for line in getattr(self._backend, "warnings", []):
                self.progress.note(f"warning: {line}")
        last = frames.stop >= max(self.clip_info.frame_count, 1)
        with self.progress.task("align", total=len(frames), unit="frame") as task:

            def images() -> Iterator[np.ndarray]:
                for image in self._cursor.images(frames, to_end=last):
                    task.advance()
                    yield image

            detections = detect_faces(
                images(), backend=self._backend, config=self.settings.faces, first_index=frames.start
            )
        outside = getattr(self._backend, "outside", 0)
        if outside:
            self.progress.note(
                f"warning: {outside} landmark faces so far are degenerate or far off their frames: missing"
            )
        save_arrays(part / DETECTIONS_FILE, **detections.arrays())
        return NONE

    def detections(self, parts: list[Path]) -> FrameDetections:
        """Every face of the detected frames (the clip's, or its window's numbered from 0), from the
        detection parts of `ranges()` in order."""
        detections = FrameDetections.concat(
            [FrameDetections(**load_arrays(part / DETECTIONS_FILE)) for part in parts]
        )
        if self.window is None:
            return detections
        base = self.ranges()[0].start
        return detections.cut(self.window.first - base, self.window.stop - base)

    def release(self) -> None:
        """Let go of the landmark backend (a model, or a sidecar's whole table of points) and the decoder:
        detection is over."""
        self._backend = None
        self._cursor = FrameCursor(self.path, fps=self.fps)


def person_track(people: ClipPeople, person: int) -> FaceTrack:
    """Person `person`'s face in every frame of the clip (missing where they have none), its shots the
    people's."""
    chosen = people.person(person)
    detections, num_frames = people.detections, people.num_frames
    points = np.full((num_frames, NUM_LANDMARKS, 2), np.nan)
    boxes = np.full((num_frames, 4), np.nan)
    scores = np.full(num_frames, np.nan)
    found = np.zeros(num_frames, dtype=bool)
    frames, faces = chosen.frames, chosen.faces  # [n], [n]
    points[frames], boxes[frames], scores[frames], found[frames] = (
        detections.points[faces],
        detections.boxes[faces],
        detections.scores[faces],
        True,
    )
    segments = list(zip(people.starts, [*people.starts[1:], num_frames], strict=True))
    return FaceTrack(points=points, boxes=boxes, scores=scores, found=found, segments=segments)


class AlignStage:
    """One person's alignment in a clip or its window (see the module docstring)."""

    name = "align"

    def __init__(
        self,
        people: ClipPeople,
        *,
        people_key: StageKey,
        person: int,
        path: Path,
        info: video.VideoInfo,
        settings: Config,
        resolution: int,
        window: Window | None = None,
    ) -> None:
        self.people = people
        self.person = person
        self.path = path
        self.info = info
        """What is aligned: the clip, or its window."""
        self.window = window
        self.settings = settings
        self.resolution = resolution
        align = config_to_dict(settings.align)
        align.pop("resolution")  # crop matrices are made for any resolution at load (`at_resolution`)
        self.key: StageKey = stage_key(
            "align",
            {"version": STAGE_VERSION, "people": people_key.digest, "person": person, "align": align},
        )

    def ranges(self) -> list[FrameRange]:
        """None: the people hold every face already."""
        return []

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        raise ReenactError("internal error: an alignment has no parts")

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        track = person_track(self.people, self.person)
        alignment = compute_alignment(track, settings=self.settings, resolution=self.resolution)
        alignment.save(directory)
        aligned = int(alignment.valid.sum())
        window = None if self.window is None else [self.window.first, self.window.stop]
        return {
            "frames": alignment.num_frames,
            "aligned": aligned,
            "person": self.person,
            "input": str(self.path),
            "window": window,
        }

    def load(self, directory: Path) -> ClipAlignment:
        return ClipAlignment.load(directory).at_resolution(self.resolution)
