"""Every person in a clip: faces linked into tracklets within shots, tracklets grouped into people.

Issue #25. `reenact.faces.track.follow_faces` follows one face by position; here every face is kept:

1. `link_tracks`: within each shot, the faces of each frame are matched to the open tracklets by an
   optimal assignment (`scipy.optimize.linear_sum_assignment`) over a cost of box overlap and landmark
   motion, both against the tracklet's constant-velocity prediction, motion in face sizes. A pair
   beyond the gates (too little overlap, too much motion or size change) is never linked. A tracklet
   may bridge up to `max_gap` frames without a face; it never crosses a shot start.
2. `descriptor_frames`: a few well-spread frames of each tracklet where its face is large and
   confidently detected: only those are described (a descriptor costs about as much as a detection).
3. `group_people`: agglomerative clustering of tracklets by average descriptor distance, never joining
   two tracklets that have a face in the same frame (one person is in one place at a time). People are
   numbered in order of first appearance (ties: larger face first), so ids are deterministic.

`find_people` runs the three on a clip's `FrameDetections`, asking the caller for just the frames to
describe. A `Describer` turns a face into a vector: `DlibDescriber` (dlib's 128-d face recognition
network, for real faces) or `PixelDescriber` (the aligned crop's pixels, for the synthetic world's
faces, which no face recogniser knows).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, ffhq_quad, warp_to_crop
from reenact.faces.landmarks import FaceDetection
from reenact.faces.track import FrameDetections

if TYPE_CHECKING:
    from reenact.metrics import IdentityEmbedder

MAX_GAP = 5
"""Frames without a matching face a tracklet may bridge inside a shot."""
MIN_IOU = 0.1
"""Least overlap (IoU) of a face's box with the tracklet's predicted box for the two to be linked."""
MAX_MOTION = 0.5
"""Largest mean landmark distance from the tracklet's prediction, in face sizes per elapsed frame."""
MAX_SCALE_CHANGE = 1.5
"""Largest change of box size between a tracklet's last face and a face linked to it (ratio, > 1)."""
MOTION_WEIGHT = 1.0
"""Weight of the landmark motion (face sizes) against the missing overlap (1 - IoU) in the link cost."""
GATED_COST = 1e6
"""Link cost of a pair beyond the gates: far above any gated-in cost, so the assignment first links as
many pairs as the gates allow and such a pair, when forced, is dropped afterwards."""
DESCRIPTOR_COUNT = 5
"""Frames described per tracklet."""
MIN_SCORE_WEIGHT = 1e-3
"""Detector scores are floored at this when weighting faces (dlib HOG margins may be 0 or below)."""
DLIB_SAME_PERSON_DISTANCE = 0.6
"""dlib's usual threshold: 128-d face descriptors closer than this (Euclidean) are the same person."""
PIXEL_SIDE = 16
"""Side of the aligned crop a `PixelDescriber` compares (pixels)."""
PIXEL_SAME_PERSON_DISTANCE = 0.5
"""`PixelDescriber`: unit crop vectors closer than this (Euclidean, 0..2) are taken as one face. Measured on
the synthetic world (seeds 0-3): one face shifted by 1-1.5 px or scaled by 3-5% <= 0.36, target vs driver
face >= 0.58 (tests/test_people.py)."""

ImageSource = Callable[[np.ndarray], Iterator[tuple[int, np.ndarray]]]
"""Given sorted frame indices [F] int64, yields `(frame_index, RGB uint8 image [H, W, 3])` for them."""


# ---------------------------------------------------------------------------------------- tracklets


@dataclass(frozen=True)
class Tracklet:
    """One face followed through consecutive frames of one shot (gaps of at most `max_gap` allowed)."""

    frames: np.ndarray  # [n] int64, increasing frame indices
    faces: np.ndarray  # [n] int64, each frame's face: its index in the flat `FrameDetections` arrays
    shot: int
    """Index of the tracklet's shot in the `starts` it was linked with."""

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def stop(self) -> int:
        """One past the last frame."""
        return int(self.frames[-1]) + 1

    def __len__(self) -> int:
        return len(self.frames)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box [4] with each of boxes [N, 4] (x0, y0, x1, y1), each [N]."""
    low = np.maximum(box[:2], boxes[:, :2])  # [N, 2]
    high = np.minimum(box[2:], boxes[:, 2:])  # [N, 2]
    inter = np.prod(np.clip(high - low, 0.0, None), axis=1)  # [N]
    union = box_areas(box[None])[0] + box_areas(boxes) - inter
    return inter / np.where(union > 0, union, 1.0)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas [N] of boxes [N, 4], 0 for empty boxes."""
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None), axis=1)


def box_sizes(boxes: np.ndarray) -> np.ndarray:
    """Face sizes [N] of boxes [N, 4]: geometric mean of width and height (as `FaceDetection.size`)."""
    return np.sqrt(box_areas(boxes))


def link_costs(
    predicted_box: np.ndarray,
    predicted_points: np.ndarray,
    boxes: np.ndarray,
    points: np.ndarray,
    *,
    elapsed: int,
    min_iou: float,
    max_motion: float,
    max_scale_change: float,
) -> np.ndarray:
    """Cost [N] of linking a tracklet (its predicted box [4] and points [68, 2]) to each face (boxes
    [N, 4], points [N, 68, 2]) `elapsed` frames after its last face; `GATED_COST` beyond the gates.

    Cost = (1 - IoU) + MOTION_WEIGHT x mean landmark distance in face sizes. Gates: IoU >= `min_iou`,
    motion <= `max_motion` per elapsed frame, size ratio within `max_scale_change`.
    """
    iou = box_iou(predicted_box, boxes)  # [N]
    reference = max(float(box_sizes(predicted_box[None])[0]), 1.0)
    sizes = np.maximum(box_sizes(boxes), 1.0)  # [N]
    scale = np.sqrt(reference * sizes)  # [N] the pair's face size
    motion = np.linalg.norm(points - predicted_points[None], axis=2).mean(axis=1) / scale  # [N]
    ratio = sizes / reference  # [N]
    allowed = (
        (iou >= min_iou)
        & (motion <= max_motion * elapsed)
        & (ratio <= max_scale_change)
        & (ratio >= 1.0 / max_scale_change)
    )
    cost = (1.0 - iou) + MOTION_WEIGHT * motion
    return np.where(allowed, cost, GATED_COST)


@dataclass
class _OpenTrack:
    """A tracklet being linked: its frames and faces so far."""

    frames: list[int] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)

    def prediction(self, detections: FrameDetections, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Box [4] and points [68, 2] expected at `frame`: the last face moved on at the velocity of the
        box centre between the last two faces (no motion with one face)."""
        last = self.faces[-1]
        box, points = detections.boxes[last], detections.points[last]
        if len(self.faces) < 2:
            return box, points
        before = self.faces[-2]
        centre = (box[:2] + box[2:]) / 2
        centre_before = (detections.boxes[before, :2] + detections.boxes[before, 2:]) / 2
        velocity = (centre - centre_before) / (self.frames[-1] - self.frames[-2])  # [2] px per frame
        shift = velocity * (frame - self.frames[-1])
        return box + np.tile(shift, 2), points + shift


def check_starts(starts: list[int], num_frames: int) -> list[int]:
    """Shot starts, validated: increasing, from 0, inside the clip."""
    if not starts or starts[0] != 0:
        raise ReenactError(f"shot starts must begin with frame 0, got {starts[:3]}")
    if any(b <= a for a, b in itertools.pairwise(starts)) or starts[-1] >= max(num_frames, 1):
        raise ReenactError(f"shot starts must increase and lie inside the {num_frames} frames")
    return list(starts)


def link_tracks(
    detections: FrameDetections,
    starts: list[int],
    *,
    max_gap: int = MAX_GAP,
    min_iou: float = MIN_IOU,
    max_motion: float = MAX_MOTION,
    max_scale_change: float = MAX_SCALE_CHANGE,
) -> list[Tracklet]:
    """Link the faces of consecutive frames into tracklets within each shot (see the module docstring).

    Every face belongs to exactly one tracklet. Tracklets are ordered by first frame, then face index.
    """
    if max_gap < 0:
        raise ReenactError(f"max_gap must be >= 0, got {max_gap}")
    if not 0.0 <= min_iou <= 1.0:
        raise ReenactError(f"min_iou must be in [0, 1], got {min_iou}")
    if max_motion <= 0:
        raise ReenactError(f"max_motion must be > 0, got {max_motion}")
    if max_scale_change <= 1:
        raise ReenactError(f"max_scale_change must be > 1, got {max_scale_change}")
    num_frames = detections.num_frames
    if num_frames == 0:
        return []
    starts = check_starts(starts, num_frames)
    first = np.concatenate([[0], np.cumsum(detections.counts)])  # [T + 1] each frame's first face
    done: list[tuple[int, _OpenTrack]] = []
    for shot, (start, stop) in enumerate(zip(starts, [*starts[1:], num_frames], strict=True)):
        open_tracks: list[_OpenTrack] = []
        for frame in range(start, stop):
            faces = np.arange(first[frame], first[frame + 1])  # [F]
            alive = [t for t in open_tracks if frame - t.frames[-1] - 1 <= max_gap]
            done.extend((shot, t) for t in open_tracks if frame - t.frames[-1] - 1 > max_gap)
            open_tracks = alive
            linked = np.zeros(len(faces), dtype=bool)  # [F]
            if len(faces) and open_tracks:
                cost = np.stack(
                    [
                        link_costs(
                            *track.prediction(detections, frame),
                            detections.boxes[faces],
                            detections.points[faces],
                            elapsed=frame - track.frames[-1],
                            min_iou=min_iou,
                            max_motion=max_motion,
                            max_scale_change=max_scale_change,
                        )
                        for track in open_tracks
                    ]
                )  # [A, F]
                rows, cols = linear_sum_assignment(cost)
                for row, col in zip(rows, cols, strict=True):
                    if cost[row, col] < GATED_COST:
                        open_tracks[row].frames.append(frame)
                        open_tracks[row].faces.append(int(faces[col]))
                        linked[col] = True
            for face in faces[~linked]:
                open_tracks.append(_OpenTrack(frames=[frame], faces=[int(face)]))
        done.extend((shot, t) for t in open_tracks)
    tracklets = [
        Tracklet(
            frames=np.array(t.frames, dtype=np.int64), faces=np.array(t.faces, dtype=np.int64), shot=shot
        )
        for shot, t in done
    ]
    return sorted(tracklets, key=lambda t: (t.start, int(t.faces[0])))


# ------------------------------------------------------------------------------- descriptor frames


def face_weights(faces: np.ndarray, detections: FrameDetections) -> np.ndarray:
    """How well each face [n] (indices in the flat `FrameDetections` arrays) can be described or shown:
    box size x detector score (floored; a missing score counts as 1)."""
    boxes = detections.boxes[faces]  # [n, 4]
    scores = np.nan_to_num(detections.scores[faces], nan=1.0)  # [n]
    return box_sizes(boxes) * np.maximum(scores, MIN_SCORE_WEIGHT)


def descriptor_frames(
    tracklet: Tracklet, detections: FrameDetections, *, count: int = DESCRIPTOR_COUNT
) -> np.ndarray:
    """At most `count` frame indices [m] int64 (increasing) of the tracklet to describe: it is split into
    `count` equal runs and the best face of each run (largest box x score) is taken, so they spread."""
    if count < 1:
        raise ReenactError(f"descriptor count must be >= 1, got {count}")
    weights = face_weights(tracklet.faces, detections)  # [n]
    runs = np.array_split(np.arange(len(tracklet)), min(count, len(tracklet)))
    picks = [int(run[np.argmax(weights[run])]) for run in runs]  # first maximum: deterministic
    return tracklet.frames[picks]


# -------------------------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Person:
    """One person: tracklets that never share a frame, ordered by first frame."""

    id: int
    tracklets: list[Tracklet]
    descriptors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """The descriptors [m, D] of the faces that were described (what a reference photo is compared to)."""

    @property
    def frames(self) -> np.ndarray:
        """Frames the person has a face in [n] int64, increasing."""
        frames = np.concatenate([t.frames for t in self.tracklets])
        return frames[np.argsort(frames, kind="stable")]

    @property
    def faces(self) -> np.ndarray:
        """The person's face in each of `frames` [n] int64 (index in the flat `FrameDetections` arrays)."""
        frames = np.concatenate([t.frames for t in self.tracklets])
        faces = np.concatenate([t.faces for t in self.tracklets])
        return faces[np.argsort(frames, kind="stable")]

    def ranges(self) -> list[tuple[int, int]]:
        """Runs of consecutive frames with the person's face, half-open `[start, stop)`."""
        frames = self.frames
        breaks = np.flatnonzero(np.diff(frames) > 1) + 1  # positions where a new run begins
        run_starts = np.concatenate([[0], breaks])
        run_ends = np.concatenate([breaks, [len(frames)]])
        return [(int(frames[a]), int(frames[b - 1]) + 1) for a, b in zip(run_starts, run_ends, strict=True)]

    def face_at(self, frame: int) -> int:
        """The person's face in `frame` (index in the flat `FrameDetections` arrays), or -1 if absent."""
        frames = self.frames
        position = int(np.searchsorted(frames, frame))
        if position < len(frames) and frames[position] == frame:
            return int(self.faces[position])
        return -1


def clearest_face(person: Person, detections: FrameDetections) -> int:
    """The person's clearest face (index in the flat `FrameDetections` arrays): the largest box x score,
    the first of equals; what a contact sheet shows of them."""
    faces = person.faces
    return int(faces[np.argmax(face_weights(faces, detections))])


def overlaps_in_time(tracklets: list[Tracklet]) -> np.ndarray:
    """[C, C] bool: tracklets i and j both have a face in some frame (so are two people); diagonal False."""
    count = len(tracklets)
    overlap = np.zeros((count, count), dtype=bool)
    for i in range(count):
        for j in range(i + 1, count):
            a, b = tracklets[i], tracklets[j]
            if a.start < b.stop and b.start < a.stop and np.intersect1d(a.frames, b.frames).size:
                overlap[i, j] = overlap[j, i] = True
    return overlap


def mean_distances(descriptors: list[np.ndarray]) -> np.ndarray:
    """[C, C] mean Euclidean distance between all descriptors of tracklet i and all of tracklet j;
    NaN where either has none."""
    count = len(descriptors)
    distances = np.full((count, count), np.nan)
    for i in range(count):
        for j in range(i, count):
            a, b = descriptors[i], descriptors[j]
            if len(a) and len(b):
                pairs = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)  # [m_i, m_j]
                distances[i, j] = distances[j, i] = float(pairs.mean())
    return distances


def cluster(
    distances: np.ndarray, sizes: np.ndarray, cannot_link: np.ndarray, *, threshold: float
) -> np.ndarray:
    """Agglomerative clustering with average linkage: labels [C] (a cluster's label is its smallest
    member). Repeatedly joins the two closest clusters, while closer than `threshold` and allowed by
    `cannot_link` [C, C] bool; `sizes` [C] weigh each member's distances (its descriptor count)."""
    count = len(distances)
    distances = np.where(np.isnan(distances), np.inf, distances).astype(np.float64)  # [C, C]
    blocked = cannot_link.copy() | np.eye(count, dtype=bool)  # [C, C]
    weights = sizes.astype(np.float64).copy()  # [C]
    active = np.ones(count, dtype=bool)
    labels = np.arange(count)
    while True:
        candidate = np.where(blocked | ~active[:, None] | ~active[None, :], np.inf, distances)
        flat = int(np.argmin(candidate))
        i, j = divmod(flat, count)
        if not candidate[i, j] < threshold:
            return labels
        i, j = min(i, j), max(i, j)
        # Average linkage (Lance-Williams): the joined cluster's mean distance to every other cluster.
        total = weights[i] + weights[j]
        joined = (weights[i] * distances[i] + weights[j] * distances[j]) / total  # [C]
        distances[i, :], distances[:, i] = joined, joined
        blocked[i, :] |= blocked[j, :]
        blocked[:, i] = blocked[i, :]
        weights[i] = total
        active[j] = False
        labels[labels == j] = i


def group_people(
    tracklets: list[Tracklet],
    descriptors: list[np.ndarray],
    detections: FrameDetections,
    *,
    threshold: float,
) -> list[Person]:
    """Join tracklets into people by descriptor distance (see `cluster`), tracklets that overlap in time
    never together; `descriptors[i]` [m_i, D] describe tracklet i (m_i = 0: it stays alone). People are
    numbered 0, 1, ... by first frame, ties by the larger face there (`detections` gives the boxes)."""
    if len(descriptors) != len(tracklets):
        raise ValueError(f"{len(tracklets)} tracklets but {len(descriptors)} descriptor sets")
    if threshold <= 0:
        raise ReenactError(f"same-person distance threshold must be > 0, got {threshold}")
    if not tracklets:
        return []
    labels = cluster(
        mean_distances(descriptors),
        np.array([max(len(d), 1) for d in descriptors]),
        overlaps_in_time(tracklets),
        threshold=threshold,
    )
    members = [np.flatnonzero(labels == root) for root in np.unique(labels)]
    members = [
        sorted(group, key=lambda i: (tracklets[i].start, int(tracklets[i].faces[0]))) for group in members
    ]

    def order(group: list[int]) -> tuple[int, float, int]:
        first = tracklets[group[0]]
        size = float(box_sizes(detections.boxes[first.faces[:1]])[0])
        return first.start, -size, int(first.faces[0])

    dim = next((d.shape[1] for d in descriptors if d.ndim == 2 and len(d)), 0)
    return [
        Person(
            id=index,
            tracklets=[tracklets[i] for i in group],
            descriptors=np.concatenate([descriptors[i].reshape(len(descriptors[i]), dim) for i in group]),
        )
        for index, group in enumerate(sorted(members, key=order))
    ]


# ------------------------------------------------------------------------------------------- choosing


def face_owners(people: list[Person], detections: FrameDetections) -> np.ndarray:
    """The person each face belongs to [K] int64 (index in the flat `FrameDetections` arrays; -1: none)."""
    owners = np.full(len(detections.boxes), -1, dtype=np.int64)
    for person in people:
        owners[person.faces] = person.id
    return owners


def main_person(people: list[Person]) -> int | None:
    """The id of the person in most frames (the first of them on a tie); None when there is nobody."""
    if not people:
        return None
    return max(people, key=lambda person: (len(person.frames), -person.id)).id


def person_by_size(people: list[Person], detections: FrameDetections, *, index: int) -> int | None:
    """The person whose face is the `index`-th largest (0 = largest) in the first frame that has that many
    faces of people; None if no frame has."""
    owners = face_owners(people, detections)
    first = np.concatenate([[0], np.cumsum(detections.counts)])  # [T + 1] each frame's first face
    for frame in np.flatnonzero(detections.counts > index):
        faces = np.arange(first[frame], first[frame + 1])
        faces = faces[owners[faces] >= 0]
        if len(faces) > index:
            by_size = faces[np.argsort(-box_sizes(detections.boxes[faces]), kind="stable")]
            return int(owners[by_size[index]])
    return None


def person_at(people: list[Person], detections: FrameDetections, *, point: tuple[float, float]) -> int | None:
    """The person whose face is at `point` (x, y pixels) in the first frame where a face's box holds it
    (the smallest such box); if no box ever holds it, the face whose centre is nearest it in the first
    frame with a face. None when no person has a face."""
    owners = face_owners(people, detections)
    faces = np.flatnonzero(owners >= 0)
    if len(faces) == 0:
        return None
    boxes = detections.boxes[faces]  # [n, 4]
    x, y = point
    inside = (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])  # [n]
    frame_of = np.repeat(np.arange(detections.num_frames), detections.counts)[faces]  # [n]
    if inside.any():
        frame = frame_of[inside].min()
        candidates = np.flatnonzero(inside & (frame_of == frame))
        return int(owners[faces[candidates[np.argmin(box_areas(boxes[candidates]))]]])
    candidates = np.flatnonzero(frame_of == frame_of.min())
    centres = (boxes[candidates, :2] + boxes[candidates, 2:]) / 2  # [c, 2]
    nearest = candidates[np.argmin(np.linalg.norm(centres - np.array(point), axis=1))]
    return int(owners[faces[nearest]])


def reference_distances(people: list[Person], descriptor: np.ndarray) -> np.ndarray:
    """Mean distance [P] from a reference face's descriptor [D] to each person's descriptors (inf for a
    person with none), as `group_people` measures tracklets."""
    return np.array(
        [
            float(np.linalg.norm(person.descriptors - descriptor[None], axis=1).mean())
            if len(person.descriptors)
            else np.inf
            for person in people
        ]
    )


# ------------------------------------------------------------------------------------------ describers


class Describer(Protocol):
    """Turns one face in an RGB uint8 frame into a vector whose Euclidean distance measures identity."""

    threshold: float
    """Default same-person distance: descriptors closer than this are taken as one person."""

    def describe(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray: ...


class DlibDescriber:
    """dlib's 128-d face descriptor (`reenact.metrics.IdentityEmbedder.embed_face`) for real faces."""

    def __init__(
        self, embedder: IdentityEmbedder | None = None, *, threshold: float = DLIB_SAME_PERSON_DISTANCE
    ) -> None:
        if embedder is None:
            from reenact.metrics import IdentityEmbedder  # local: loads dlib's models

            embedder = IdentityEmbedder()
        self.embedder = embedder
        self.threshold = threshold

    def describe(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        return self.embedder.embed_face(image, detection)  # [128]


def pixel_descriptor(image: np.ndarray, points: np.ndarray, *, side: int = PIXEL_SIDE) -> np.ndarray:
    """The face's FFHQ-aligned crop (from its 68 points [68, 2]) at `side` x `side` RGB, flattened, mean
    removed and scaled to unit length [side * side * 3]; zeros for a flat crop."""
    matrix = crop_matrix(ffhq_quad(points), side)
    crop = warp_to_crop(
        np.ascontiguousarray(image), matrix, side, border="replicate", interpolation=cv2.INTER_LINEAR
    )
    vector = crop.astype(np.float64).reshape(-1)  # [side * side * 3]
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class PixelDescriber:
    """Appearance of the aligned crop (`pixel_descriptor`): for the synthetic world's faces, which a tiny
    random StyleGAN renders and no face recogniser knows. It tells faces apart, not identities: a synthetic
    face that drifts far in W over a clip (motion, expression) drifts in these pixels too."""

    def __init__(self, *, side: int = PIXEL_SIDE, threshold: float = PIXEL_SAME_PERSON_DISTANCE) -> None:
        if side < 2:
            raise ReenactError(f"pixel descriptor side must be >= 2, got {side}")
        self.side = side
        self.threshold = threshold

    def describe(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        return pixel_descriptor(image, detection.points, side=self.side)


# -------------------------------------------------------------------------------------------- driver


def detection_at(detections: FrameDetections, face: int) -> FaceDetection:
    """Face `face` of the flat `FrameDetections` arrays as a `FaceDetection`."""
    return FaceDetection(
        box=detections.boxes[face], points=detections.points[face], score=float(detections.scores[face])
    )


def describe_tracklets(
    tracklets: list[Tracklet],
    detections: FrameDetections,
    images: ImageSource,
    *,
    describer: Describer,
    count: int = DESCRIPTOR_COUNT,
) -> list[np.ndarray]:
    """Descriptors [m_i, D] of each tracklet on its `descriptor_frames`, asking `images` only for those
    frames. A frame `images` does not yield leaves its faces undescribed (m_i may be smaller, even 0)."""
    wanted: dict[int, list[tuple[int, int]]] = {}  # frame -> [(tracklet, face)]
    for index, tracklet in enumerate(tracklets):
        picks = descriptor_frames(tracklet, detections, count=count)
        for frame, face in zip(picks, tracklet.faces[np.searchsorted(tracklet.frames, picks)], strict=True):
            wanted.setdefault(int(frame), []).append((index, int(face)))
    found: list[list[np.ndarray]] = [[] for _ in tracklets]
    for frame, image in images(np.array(sorted(wanted), dtype=np.int64)):
        for index, face in wanted.pop(int(frame), []):
            found[index].append(
                np.asarray(describer.describe(image, detection_at(detections, face)), np.float64)
            )
    dim = next((len(d[0]) for d in found if d), 0)
    return [np.stack(d) if d else np.zeros((0, dim)) for d in found]


def find_people(
    detections: FrameDetections,
    starts: list[int],
    images: ImageSource,
    *,
    describer: Describer,
    threshold: float | None = None,
    count: int = DESCRIPTOR_COUNT,
    max_gap: int = MAX_GAP,
    min_iou: float = MIN_IOU,
    max_motion: float = MAX_MOTION,
    max_scale_change: float = MAX_SCALE_CHANGE,
) -> list[Person]:
    """Every person in the clip: link tracklets within the shots that begin at `starts`, describe a few
    frames of each (decoded by `images`), group by descriptor distance (`threshold`, default the
    describer's)."""
    tracklets = link_tracks(
        detections,
        starts,
        max_gap=max_gap,
        min_iou=min_iou,
        max_motion=max_motion,
        max_scale_change=max_scale_change,
    )
    descriptors = describe_tracklets(tracklets, detections, images, describer=describer, count=count)
    limit = describer.threshold if threshold is None else threshold
    return group_people(tracklets, descriptors, detections, threshold=limit)
