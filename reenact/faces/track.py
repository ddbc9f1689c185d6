"""Follow one face through a clip, and split the clip into shots at scene cuts.

The tracked face is chosen in the first frame of each shot where the rule finds one: the largest face
(default), the `face_index`-th by size, or the face at a point `face_at=(x, y)`. In later frames of the
shot only a detection that continues the track is taken: its box centre moved at most `max_jump` face
sizes since the last frame the face was found, and its size changed by at most `max_scale_change`.
When no detection passes that gate the frame is flagged missing; the track never jumps to another face.

Scene cuts are found from colour histograms of consecutive shrunk frames (Bhattacharyya distance in
HSV). A cut ends a segment: nothing downstream smooths across it, and the tracked face is chosen anew.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from reenact.config import FacesConfig
from reenact.errors import ReenactError
from reenact.faces.align import ffhq_quad
from reenact.faces.landmarks import NUM_LANDMARKS, FaceDetection, LandmarkBackend

TRACK_FORMAT = "reenact-track/2"
"""The points beside the file (`points_path`), read as a memory map; format 1 held them inside."""
TRACK_FORMATS = ("reenact-track/1", TRACK_FORMAT)
HIST_BINS = (16, 4, 4)
"""HSV histogram bins: hue carries most of what changes at a cut; saturation/value coarse."""
HSV_RANGES = (0, 180, 0, 256, 0, 256)  # OpenCV 8-bit HSV: hue 0..179


@dataclass
class FaceTrack:
    """One face over `T` frames; NaN points/boxes where the face was not found."""

    points: np.ndarray  # [T, 68, 2] float64, pixels of the upright frame
    boxes: np.ndarray  # [T, 4] float64, (x0, y0, x1, y1)
    scores: np.ndarray  # [T] float64, detector score (NaN when missing)
    found: np.ndarray  # [T] bool
    segments: list[tuple[int, int]] = field(default_factory=list)
    """Shots as half-open frame ranges `[start, stop)` covering all frames, split at scene cuts."""

    def __post_init__(self) -> None:
        num_frames = len(self.found)
        assert self.points.shape == (num_frames, NUM_LANDMARKS, 2), self.points.shape
        assert self.boxes.shape == (num_frames, 4), self.boxes.shape
        assert self.scores.shape == (num_frames,), self.scores.shape

    @property
    def num_frames(self) -> int:
        return len(self.found)

    @property
    def cuts(self) -> list[int]:
        """First frame of every shot but the first."""
        return [start for start, _ in self.segments[1:]]

    def save(self, path: Path | str) -> Path:
        """Write the track as an `.npz` (arrays only, no pickles), its points as an `.npy` beside it
        (`points_path`): a run reads them as a memory map, a frame at a time, never the whole clip's."""
        path = Path(path)
        np.save(points_path(path), self.points)
        np.savez(
            path,
            format=np.array(TRACK_FORMAT),
            boxes=self.boxes,
            scores=self.scores,
            found=self.found,
            segments=np.array(self.segments, dtype=np.int64).reshape(-1, 2),
        )
        return path

    @classmethod
    def load(cls, path: Path | str) -> FaceTrack:
        path = Path(path)
        if not path.is_file():
            raise ReenactError(f"track file not found: {path}")
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) not in TRACK_FORMATS:
                raise ReenactError(f"{path} is not a reenact track file ({TRACK_FORMAT})")
            inside = str(data["format"]) != TRACK_FORMAT
            return cls(
                points=data["points"] if inside else np.load(points_path(path), mmap_mode="r"),
                boxes=data["boxes"],
                scores=data["scores"],
                found=data["found"].astype(bool),
                segments=[(int(a), int(b)) for a, b in data["segments"]],
            )


def points_path(track: Path) -> Path:
    """Where the track file `track` keeps its points [T, 68, 2] float64."""
    return track.with_name(f"{track.stem}-points.npy")


# ------------------------------------------------------------------------------------- face choice


def choose_initial(
    detections: list[FaceDetection],
    *,
    face_index: int = 0,
    face_at: tuple[float, float] | None = None,
) -> FaceDetection | None:
    """The face to start a track on: the one at `face_at` if given, else the `face_index`-th largest.

    `face_at` picks the smallest box containing the point, else the box whose centre is nearest.
    """
    if not detections:
        return None
    if face_at is not None:
        point = np.asarray(face_at, dtype=np.float64)
        inside = [
            d for d in detections if d.box[0] <= point[0] <= d.box[2] and d.box[1] <= point[1] <= d.box[3]
        ]
        if inside:
            return min(inside, key=lambda d: d.size)
        return min(detections, key=lambda d: float(np.linalg.norm(d.centre - point)))
    by_size = sorted(detections, key=lambda d: d.size, reverse=True)
    return by_size[face_index] if face_index < len(by_size) else None


def continue_track(
    previous: FaceDetection,
    detections: list[FaceDetection],
    *,
    max_jump: float,
    max_scale_change: float,
) -> FaceDetection | None:
    """The detection that continues `previous`, or None when none passes the jump and size gates.

    Among those that pass, the one with the smallest centre move (in face sizes) plus log size change.
    """
    best, best_cost = None, np.inf
    reference = max(previous.size, 1.0)
    for detection in detections:
        ratio = max(detection.size, 1.0) / reference
        if not 1.0 / max_scale_change <= ratio <= max_scale_change:
            continue
        jump = float(np.linalg.norm(detection.centre - previous.centre)) / reference
        if jump > max_jump:
            continue
        cost = jump + abs(np.log(ratio))
        if cost < best_cost:
            best, best_cost = detection, cost
    return best


class FaceTracker:
    """Per-frame state of the track: the last found face in the current shot."""

    def __init__(
        self,
        *,
        max_jump: float,
        max_scale_change: float,
        face_index: int = 0,
        face_at: tuple[float, float] | None = None,
    ) -> None:
        if face_index < 0:
            raise ReenactError(f"face index must be >= 0, got {face_index}")
        self.max_jump = max_jump
        self.max_scale_change = max_scale_change
        self.face_index = face_index
        self.face_at = face_at
        self.last: FaceDetection | None = None

    def step(self, detections: list[FaceDetection], *, new_shot: bool) -> FaceDetection | None:
        """The tracked face in this frame (None = missing); `new_shot` drops the previous shot's face."""
        if new_shot:
            self.last = None
        if self.last is None:
            chosen = choose_initial(detections, face_index=self.face_index, face_at=self.face_at)
        else:
            chosen = continue_track(
                self.last, detections, max_jump=self.max_jump, max_scale_change=self.max_scale_change
            )
        if chosen is not None:
            self.last = chosen
        return chosen


# -------------------------------------------------------------------------------------- scene cuts


def colour_histogram(image: np.ndarray, *, side: int) -> np.ndarray:
    """Normalised HSV histogram of an RGB uint8 frame shrunk to longest side `side`."""
    scale = side / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    hsv = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), list(HSV_RANGES))
    return hist / max(float(hist.sum()), 1.0)


def histogram_distance(previous: np.ndarray, current: np.ndarray) -> float:
    """Bhattacharyya distance of two `colour_histogram`s (any shape, float32), 0 (same) .. 1."""
    return float(cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA))


class SceneCutDetector:
    """Says for each frame whether a cut separates it from the previous one."""

    def __init__(self, *, threshold: float, side: int) -> None:
        self.threshold = threshold
        self.side = side
        self._previous: np.ndarray | None = None
        self.last_distance = 0.0

    def is_cut(self, image: np.ndarray) -> bool:
        hist = colour_histogram(image, side=self.side)
        previous, self._previous = self._previous, hist
        if previous is None:
            self.last_distance = 0.0
            return False
        self.last_distance = histogram_distance(previous, hist)
        return self.last_distance > self.threshold


def track_quads(track: FaceTrack) -> np.ndarray:
    """Raw (unsmoothed) FFHQ quads `[T, 4, 2]` of a track; NaN rows where the face is missing."""
    quads = np.full((track.num_frames, 4, 2), np.nan)
    for index in np.flatnonzero(track.found):
        quads[index] = ffhq_quad(track.points[index])
    return quads


# ----------------------------------------------------------------------------------------- driver


@dataclass
class FrameDetections:
    """Every face found in a run of consecutive frames, and each frame's colour histogram (for cuts).

    What detection gives before any choice of face: frames can be detected in any order, in parts, by
    any process; `follow_faces` then makes the track from all of them in order.
    """

    counts: np.ndarray  # [T] int64, faces found per frame
    boxes: np.ndarray  # [K, 4] float64, all frames' faces one after another
    points: np.ndarray  # [K, 68, 2] float64
    scores: np.ndarray  # [K] float64
    histograms: np.ndarray  # [T, bins] float32; empty [T, 0] when scene cuts are off

    @property
    def num_frames(self) -> int:
        return len(self.counts)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "counts": self.counts,
            "boxes": self.boxes,
            "points": self.points,
            "scores": self.scores,
            "histograms": self.histograms,
        }

    def cut(self, start: int, stop: int) -> FrameDetections:
        """The detections of frames `[start, stop)` of these alone (a slice of a clip)."""
        ends = np.concatenate([[0], np.cumsum(self.counts)])
        faces = slice(int(ends[start]), int(ends[stop]))
        return FrameDetections(
            counts=self.counts[start:stop],
            boxes=self.boxes[faces],
            points=self.points[faces],
            scores=self.scores[faces],
            histograms=self.histograms[start:stop],
        )

    @classmethod
    def concat(cls, parts: list[FrameDetections]) -> FrameDetections:
        """Detections of consecutive runs of frames, joined in order."""
        return cls(**{name: np.concatenate([part.arrays()[name] for part in parts]) for name in FIELDS})


FIELDS = ("counts", "boxes", "points", "scores", "histograms")


def detect_faces(
    frames: Iterable[np.ndarray], *, backend: LandmarkBackend, config: FacesConfig, first_index: int = 0
) -> FrameDetections:
    """All faces and the colour histogram of each RGB uint8 frame `[H, W, 3]`; frame numbers from
    `first_index` (sidecar landmark files are indexed by frame)."""
    counts: list[int] = []
    detections: list[FaceDetection] = []
    histograms: list[np.ndarray] = []
    for offset, image in enumerate(frames):
        found = backend.detect(image, frame_index=first_index + offset)
        counts.append(len(found))
        detections.extend(found)
        if config.scene_cuts:
            histograms.append(colour_histogram(image, side=config.cut_side).reshape(-1))
    bins = int(np.prod(HIST_BINS)) if config.scene_cuts else 0
    return FrameDetections(
        counts=np.asarray(counts, dtype=np.int64),
        boxes=np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4),
        points=np.array([d.points for d in detections], dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2),
        scores=np.array([d.score for d in detections], dtype=np.float64),
        histograms=np.array(histograms, dtype=np.float32).reshape(len(counts), bins),
    )


def shot_starts(histograms: np.ndarray, *, threshold: float) -> list[int]:
    """First frame of every shot: 0 and each frame whose histogram is farther than `threshold` from the
    previous frame's (Bhattacharyya distance)."""
    starts = [0]
    for index in range(1, len(histograms)):
        if histogram_distance(histograms[index - 1], histograms[index]) > threshold:
            starts.append(index)
    return starts


def clip_shot_starts(detections: FrameDetections, *, config: FacesConfig) -> list[int]:
    """First frame of every shot of the detected frames: where their histograms show a cut (`shot_starts`),
    or only 0 with scene cuts off."""
    if not config.scene_cuts:
        return [0]
    return shot_starts(detections.histograms, threshold=config.cut_threshold)


def follow_faces(
    detections: FrameDetections,
    *,
    config: FacesConfig,
    face_index: int = 0,
    face_at: tuple[float, float] | None = None,
) -> FaceTrack:
    """Split the frames into shots and follow one face through them (see the module docstring)."""
    num_frames = detections.num_frames
    if num_frames == 0:
        raise ReenactError("the input has no frames")
    tracker = FaceTracker(
        max_jump=config.max_jump,
        max_scale_change=config.max_scale_change,
        face_index=face_index,
        face_at=face_at,
    )
    starts = clip_shot_starts(detections, config=config)
    new_shot = np.zeros(num_frames, dtype=bool)
    new_shot[starts[1:]] = True
    points = np.full((num_frames, NUM_LANDMARKS, 2), np.nan)
    boxes = np.full((num_frames, 4), np.nan)
    scores = np.full(num_frames, np.nan)
    found = np.zeros(num_frames, dtype=bool)
    first = np.concatenate([[0], np.cumsum(detections.counts)])  # [T + 1] each frame's first face
    for index in range(num_frames):
        faces = [
            FaceDetection(
                box=detections.boxes[k], points=detections.points[k], score=float(detections.scores[k])
            )
            for k in range(first[index], first[index + 1])
        ]
        chosen = tracker.step(faces, new_shot=bool(new_shot[index]))
        if chosen is not None:
            points[index], boxes[index], scores[index], found[index] = (
                chosen.points,
                chosen.box,
                chosen.score,
                True,
            )
    segments = list(zip(starts, [*starts[1:], num_frames], strict=True))
    return FaceTrack(points=points, boxes=boxes, scores=scores, found=found, segments=segments)


def track_faces(
    frames: Iterable[np.ndarray],
    *,
    backend: LandmarkBackend,
    config: FacesConfig,
    face_index: int = 0,
    face_at: tuple[float, float] | None = None,
) -> FaceTrack:
    """Detect, follow one face and split into shots over RGB uint8 frames `[H, W, 3]`, in one call."""
    detections = detect_faces(frames, backend=backend, config=config)
    return follow_faces(detections, config=config, face_index=face_index, face_at=face_at)
