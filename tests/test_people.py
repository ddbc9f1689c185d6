"""Every person through cuts (issue #25): tracklet linking, descriptor frames, grouping into people."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from reenact.errors import ReenactError
from reenact.faces.landmarks import NUM_LANDMARKS, FaceDetection
from reenact.faces.people import (
    DLIB_SAME_PERSON_DISTANCE,
    DlibDescriber,
    Person,
    PixelDescriber,
    Tracklet,
    descriptor_frames,
    find_people,
    group_people,
    link_tracks,
)
from reenact.faces.track import FrameDetections
from reenact.synthetic import landmark_template
from tests.conftest import testdata_file

FACE = 80.0
"""Side of the hand-made faces' boxes (pixels)."""
DESCRIPTOR_DIM = 8
NOISE = 0.02
"""Spread of the hand-made descriptors around their person's vector (the two are ~1.4 apart)."""
THRESHOLD = 0.5
REAL_FRAMES = 30
"""Frames of the two-person clip to run on (keeps the real-clip test a few seconds)."""

_UNIT_TEMPLATE = landmark_template(64)
_UNIT_TEMPLATE = (_UNIT_TEMPLATE - _UNIT_TEMPLATE.min(axis=0)) / np.ptp(
    _UNIT_TEMPLATE, axis=0
)  # [68, 2] in 0..1

Face = tuple[str, float, float, float]
"""A hand-made face: (person, centre x, centre y, box side)."""


def make_detections(frames: list[list[Face]]) -> tuple[FrameDetections, np.ndarray]:
    """Detections of hand-made faces (68-point template scaled into each box) and each face's person [K]."""
    boxes, points, people = [], [], []
    for faces in frames:
        for person, x, y, side in faces:
            box = np.array([x - side / 2, y - side / 2, x + side / 2, y + side / 2])
            boxes.append(box)
            points.append(box[:2] + _UNIT_TEMPLATE * side)
            people.append(person)
    detections = FrameDetections(
        counts=np.array([len(faces) for faces in frames], dtype=np.int64),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        points=np.array(points, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 2),
        scores=np.ones(len(boxes)),
        histograms=np.zeros((len(frames), 0), dtype=np.float32),
    )
    return detections, np.array(people)


def people_of(tracklets: list[Tracklet], truth: np.ndarray) -> list[set[str]]:
    """The true persons each tracklet's faces belong to."""
    return [set(truth[t.faces]) for t in tracklets]


def hand_descriptors(tracklets: list[Tracklet], truth: np.ndarray, *, seed: int = 0) -> list[np.ndarray]:
    """Three descriptors [3, D] per tracklet: its person's vector plus small noise."""
    rng = np.random.default_rng(seed)
    vectors = {"A": np.eye(DESCRIPTOR_DIM)[0], "B": np.eye(DESCRIPTOR_DIM)[1], "C": np.eye(DESCRIPTOR_DIM)[2]}
    return [vectors[truth[t.faces[0]]] + NOISE * rng.standard_normal((3, DESCRIPTOR_DIM)) for t in tracklets]


def truth_frames(frames: list[list[Face]], person: str) -> list[int]:
    return [index for index, faces in enumerate(frames) if any(face[0] == person for face in faces)]


# ------------------------------------------------------------------------------------------ linking


def crossing(num_frames: int = 11, speed: float = 30.0, offset: float = 20.0) -> list[list[Face]]:
    """A walks right, B walks left a little lower; they cross mid-shot, where B's next place is nearer A's
    last one than A's next place is."""
    return [
        [("A", 100 + speed * t, 200.0, FACE), ("B", 415 - speed * t, 200.0 + offset, FACE)]
        for t in range(num_frames)
    ]


def greedy_nearest_centre(detections: FrameDetections) -> list[list[int]]:
    """Baseline: each frame, repeatedly link the closest (last centre, new centre) pair. Faces per track."""
    first = np.concatenate([[0], np.cumsum(detections.counts)])
    centres = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2
    tracks = [[int(k)] for k in range(first[0], first[1])]
    for frame in range(1, detections.num_frames):
        faces = list(range(first[frame], first[frame + 1]))
        pairs = sorted(
            (float(np.linalg.norm(centres[t[-1]] - centres[k])), i, k)
            for i, t in enumerate(tracks)
            for k in faces
        )
        used_tracks: set[int] = set()
        for _, i, k in pairs:
            if i not in used_tracks and k in faces:
                tracks[i].append(k)
                used_tracks.add(i)
                faces.remove(k)
    return tracks


def test_crossing_faces_are_kept_apart() -> None:
    frames = crossing()
    detections, truth = make_detections(frames)
    tracklets = link_tracks(detections, [0], max_gap=2, min_iou=0.1, max_motion=0.5)
    assert len(tracklets) == 2
    assert people_of(tracklets, truth) == [{"A"}, {"B"}]
    assert all(len(t) == len(frames) for t in tracklets)
    # The data is a real test: following the nearest centre swaps the two where they cross.
    greedy = greedy_nearest_centre(detections)
    assert any(len(set(truth[track])) > 1 for track in greedy)


def test_assignment_beats_greedy_when_two_faces_contend_for_one() -> None:
    # Two faces side by side step right by 0.6 face sizes: B's old place is nearer A's new face than A's
    # old place is, so taking the nearest pair first gives A's face to B and leaves A only B's new face,
    # beyond the gates. The assignment links both right.
    step = 0.6 * FACE
    frames = [
        [("A", 200.0, 200.0, FACE), ("B", 200.0 + FACE, 200.0, FACE)],
        [("A", 200.0 + step, 200.0, FACE), ("B", 200.0 + FACE + step, 200.0, FACE)],
    ]
    detections, truth = make_detections(frames)
    tracklets = link_tracks(detections, [0], max_gap=0, min_iou=0.1, max_motion=1.0)
    assert people_of(tracklets, truth) == [{"A"}, {"B"}]
    assert [len(t) for t in tracklets] == [2, 2]
    greedy = greedy_nearest_centre(detections)
    assert any(len(set(truth[track])) > 1 for track in greedy)


@pytest.mark.parametrize(("gap", "max_gap", "pieces"), [(3, 3, 1), (4, 3, 2), (0, 0, 1), (1, 0, 2)])
def test_gaps_up_to_max_gap_are_bridged(gap: int, max_gap: int, pieces: int) -> None:
    present = [("A", 300.0, 200.0, FACE)]
    frames = [present] * 5 + [[]] * gap + [present] * 5
    detections, _ = make_detections(frames)
    tracklets = link_tracks(detections, [0], max_gap=max_gap)
    assert len(tracklets) == pieces
    assert sum(len(t) for t in tracklets) == 10


def test_tracklets_never_cross_a_shot_start() -> None:
    frames = [[("A", 300.0, 200.0, FACE)]] * 10  # the same place on both sides of the cut
    detections, _ = make_detections(frames)
    tracklets = link_tracks(detections, [0, 6], max_gap=3)
    assert [(t.start, t.stop, t.shot) for t in tracklets] == [(0, 6, 0), (6, 10, 1)]
    with pytest.raises(ReenactError):
        link_tracks(detections, [0, 12])
    with pytest.raises(ReenactError):
        link_tracks(detections, [2, 6])


def test_descriptor_frames_are_few_spread_and_the_best_of_their_run() -> None:
    sides = np.full(50, FACE)
    sides[[7, 33]] = 1.2 * FACE  # the largest faces of their runs
    frames = [[("A", 300.0, 200.0, float(side))] for side in sides]
    detections, _ = make_detections(frames)
    detections.scores[41] = 2.0  # the most confident face of its run
    (tracklet,) = link_tracks(detections, [0])
    picks = descriptor_frames(tracklet, detections, count=5)
    assert len(picks) == 5
    np.testing.assert_array_equal(np.floor_divide(picks, 10), np.arange(5))  # one per tenth of the track
    assert {7, 33, 41} <= set(picks.tolist())
    short = Tracklet(frames=tracklet.frames[:3], faces=tracklet.faces[:3], shot=0)
    np.testing.assert_array_equal(descriptor_frames(short, detections, count=5), [0, 1, 2])


# -------------------------------------------------------------------------------------------- people


def swap_across_cuts() -> tuple[list[list[Face]], list[int]]:
    """Shot 1: A (larger) left, B right. Shot 2: B alone. Shot 3: they have swapped sides."""
    shot1 = [[("A", 150.0 + 2 * t, 200.0, 1.2 * FACE), ("B", 450.0 - 2 * t, 200.0, FACE)] for t in range(10)]
    shot2 = [[("B", 300.0, 220.0, 1.5 * FACE)] for _ in range(5)]
    shot3 = [[("B", 150.0, 200.0, FACE), ("A", 450.0 + 2 * t, 210.0, FACE)] for t in range(10)]
    return shot1 + shot2 + shot3, [0, 10, 15]


def assert_people_match(people: list[Person], frames: list[list[Face]], truth: np.ndarray) -> None:
    assert len(people) == 2
    for person, name in zip(people, ("A", "B"), strict=True):
        assert set(truth[person.faces]) == {name}
        np.testing.assert_array_equal(person.frames, truth_frames(frames, name))


def test_people_keep_their_ids_across_cuts_and_absences() -> None:
    frames, starts = swap_across_cuts()
    detections, truth = make_detections(frames)
    tracklets = link_tracks(detections, starts)
    assert len(tracklets) == 5  # A, B | B | B, A
    people = group_people(tracklets, hand_descriptors(tracklets, truth), detections, threshold=THRESHOLD)
    assert_people_match(people, frames, truth)  # A first: the larger face in frame 0
    a, b = people
    assert a.ranges() == [(0, 10), (15, 25)]
    assert b.ranges() == [(0, 25)]
    assert a.face_at(12) == -1
    assert truth[a.face_at(20)] == "A" and truth[b.face_at(12)] == "B"
    # Without descriptors (nothing to group by) every tracklet stays its own person.
    empty = [np.zeros((0, DESCRIPTOR_DIM)) for _ in tracklets]
    assert len(group_people(tracklets, empty, detections, threshold=THRESHOLD)) == 5


def test_faces_in_one_frame_are_never_one_person() -> None:
    frames = [[("A", 150.0, 200.0, FACE)]] * 4 + [[("A", 150.0, 200.0, FACE), ("B", 450.0, 200.0, FACE)]] * 4
    frames += [[("B", 450.0, 200.0, FACE)]] * 4  # A leaves; B overlaps A in frames 4-7 only
    frames += [[("C", 300.0, 200.0, FACE)]] * 4  # C: after both, in the same shot
    detections, truth = make_detections(frames)
    tracklets = link_tracks(detections, [0])
    assert people_of(tracklets, truth) == [{"A"}, {"B"}, {"C"}]
    same = [np.ones((2, DESCRIPTOR_DIM)) for _ in tracklets]  # identical descriptors for all three
    people = group_people(tracklets, same, detections, threshold=THRESHOLD)
    assert len(people) == 2  # C joins A or B (it overlaps neither), A and B never join
    groups = sorted(sorted(set(truth[p.faces])) for p in people)
    assert ["A", "B"] not in groups
    assert all(len(set(p.frames.tolist())) == len(p.frames) for p in people)


class HandDescriber:
    """Describes a hand-made face by its person's vector (looked up by box), counting the calls."""

    threshold = THRESHOLD

    def __init__(self, detections: FrameDetections, truth: np.ndarray) -> None:
        self.lookup = {tuple(box): name for box, name in zip(detections.boxes.tolist(), truth, strict=True)}
        self.calls = 0

    def describe(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        self.calls += 1
        index = "ABC".index(self.lookup[tuple(detection.box.tolist())])
        return np.eye(DESCRIPTOR_DIM)[index]


def test_find_people_describes_only_a_few_frames() -> None:
    frames, starts = swap_across_cuts()
    detections, truth = make_detections(frames)
    asked: list[int] = []

    def images(wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        assert np.all(np.diff(wanted) > 0)
        asked.extend(wanted.tolist())
        for frame in wanted:
            yield int(frame), np.zeros((8, 8, 3), np.uint8)

    describer = HandDescriber(detections, truth)
    people = find_people(detections, starts, images, describer=describer, count=2)
    assert_people_match(people, frames, truth)
    assert describer.calls == 5 * 2  # 5 tracklets x 2 frames
    assert len(asked) <= describer.calls < len(truth)


# -------------------------------------------------------------------------------------- pixel describer


@pytest.mark.usefixtures("single_thread")
def test_pixel_describer_tells_synthetic_faces_apart() -> None:
    from reenact.synthetic import SyntheticConfig, make_world

    describer = PixelDescriber()
    jiggles = [(1.03, (1.0, 0.0)), (0.97, (0.0, -1.0)), (1.0, (1.5, 1.0)), (1.05, (0.0, 0.0))]
    for seed in range(4):
        world = make_world(SyntheticConfig(num_frames=2, seed=seed))
        described = []
        for clip in (world.target, world.driver):
            image, points = clip.frames[0], clip.landmarks[0]
            centre = points.mean(axis=0)
            descriptor = describer.describe(image, FaceDetection(box=np.zeros(4), points=points, score=1.0))
            for scale, shift in jiggles:
                moved = (points - centre) * scale + centre + np.array(shift)
                other = describer.describe(image, FaceDetection(box=np.zeros(4), points=moved, score=1.0))
                assert np.linalg.norm(other - descriptor) < describer.threshold, (seed, scale, shift)
            described.append(descriptor)
        distance = float(np.linalg.norm(described[0] - described[1]))
        print(f"seed {seed}: target vs driver face {distance:.2f} (threshold {describer.threshold})")
        assert distance > describer.threshold
        assert np.linalg.norm(described[0]) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ real faces


@pytest.fixture(scope="module")
def dlib_describer() -> DlibDescriber:
    return DlibDescriber()


def test_two_real_people_are_farther_apart_than_the_threshold(dlib_describer: DlibDescriber) -> None:
    image = cv2.cvtColor(cv2.imread(str(testdata_file("facerec_two_people.jpg"))), cv2.COLOR_BGR2RGB)
    faces = dlib_describer.embedder.landmarks.detect(image)
    assert len(faces) == 2
    first, second = (dlib_describer.describe(image, face) for face in faces)
    distance = float(np.linalg.norm(first - second))
    print(f"two_people.jpg: dlib descriptor distance {distance:.3f}")
    assert distance > DLIB_SAME_PERSON_DISTANCE == dlib_describer.threshold


class TimedDescriber:
    """Wraps a describer, adding up the time its `describe` takes."""

    def __init__(self, describer: DlibDescriber) -> None:
        self.describer = describer
        self.threshold = describer.threshold
        self.seconds = 0.0
        self.calls = 0

    def describe(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        start = time.perf_counter()
        descriptor = self.describer.describe(image, detection)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return descriptor


def test_two_person_clip_has_two_people(dlib_describer: DlibDescriber) -> None:
    from reenact.config import FacesConfig
    from reenact.faces.track import detect_faces, shot_starts
    from reenact.video import VideoReader

    with VideoReader(testdata_file("ghost_2person.mp4")) as reader:
        clip = [
            frame.image for frame, _ in zip(reader.frames(upright=True), range(REAL_FRAMES), strict=False)
        ]
    config = FacesConfig()
    start = time.perf_counter()
    detections = detect_faces(clip, backend=dlib_describer.embedder.landmarks, config=config)
    detect_s = time.perf_counter() - start

    def images(wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        for frame in wanted:
            yield int(frame), clip[frame]

    timed = TimedDescriber(dlib_describer)
    start = time.perf_counter()
    people = find_people(
        detections,
        shot_starts(detections.histograms, threshold=config.cut_threshold),
        images,
        describer=timed,
    )
    people_s = time.perf_counter() - start
    print(
        f"\nghost_2person.mp4, {len(clip)} frames, {len(detections.boxes)} faces: detection {detect_s:.2f} s "
        f"({detect_s / len(clip) * 1000:.0f} ms/frame); {timed.calls} descriptors {timed.seconds:.2f} s "
        f"({timed.seconds / max(timed.calls, 1) * 1000:.0f} ms each, "
        f"{timed.seconds / detect_s:.1%} of detection); "
        f"find_people in all {people_s:.2f} s; people {[len(p.frames) for p in people]}"
    )
    assert len(people) == 2
    for person in people:
        assert len(person.frames) >= 0.9 * len(clip)
    sides = [
        np.sign(np.median(np.mean(detections.boxes[p.faces][:, [0, 2]], axis=1)) - clip[0].shape[1] / 2)
        for p in people
    ]
    assert sorted(sides) == [-1, 1]  # one on each half of the split screen
