"""One-face tracking and scene cuts: exact behaviour on synthetic detections, then real clips."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from reenact.config import FacesConfig
from reenact.faces import landmarks as lm
from reenact.faces.track import (
    FaceTrack,
    FaceTracker,
    SceneCutDetector,
    choose_initial,
    continue_track,
    track_faces,
)
from tests.conftest import testdata_file

GATES = {"max_jump": 0.5, "max_scale_change": 1.5}
REAL_DETECT_SIDE = 480
"""Detection size for the real-clip tests: keeps CPU use modest, faces there are >= 90 px at this size."""


def face(cx: float, cy: float, size: float, score: float = 1.0) -> lm.FaceDetection:
    """A square face of side `size` centred at (cx, cy), with points spread over its box."""
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 17), np.linspace(-0.5, 0.5, 4)), -1).reshape(-1, 2)
    points = np.array([cx, cy]) + grid[:68] * size  # [68, 2]
    box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])
    return lm.FaceDetection(box=box, points=points, score=score)


# ------------------------------------------------------------------------------------- face choice


def test_initial_choice_largest_index_and_point() -> None:
    small, big, mid = face(100, 100, 40), face(400, 120, 90), face(700, 100, 60)
    faces = [small, big, mid]
    assert choose_initial(faces) is big
    assert choose_initial(faces, face_index=1) is mid
    assert choose_initial(faces, face_index=2) is small
    assert choose_initial(faces, face_index=3) is None
    assert choose_initial(faces, face_at=(105, 95)) is small  # inside its box
    assert choose_initial(faces, face_at=(650, 300)) is mid  # nearest centre
    assert choose_initial([]) is None


def test_continuation_gates_reject_another_person_and_size_jumps() -> None:
    previous = face(300, 200, 100)
    near, other = face(320, 210, 104), face(900, 200, 110)
    assert continue_track(previous, [other, near], **GATES) is near
    assert continue_track(previous, [other], **GATES) is None  # 6 face sizes away: never switch
    assert continue_track(previous, [face(310, 200, 200)], **GATES) is None  # doubled size
    assert continue_track(previous, [face(310, 200, 140)], **GATES) is not None  # 1.4x is allowed
    # Of two candidates within the gate, the more consistent one wins.
    closer, farther = face(305, 200, 100), face(340, 200, 100)
    assert continue_track(previous, [farther, closer], **GATES) is closer


def test_tracker_flags_missing_frames_instead_of_jumping() -> None:
    tracker = FaceTracker(**GATES)
    left, right = face(200, 200, 100), face(900, 200, 120)
    assert tracker.step([left, right], new_shot=False) is right  # largest first
    moved = face(920, 205, 118)
    assert tracker.step([left, moved], new_shot=False) is moved
    assert tracker.step([left], new_shot=False) is None  # followed face gone: flagged, no switch
    back = face(925, 210, 119)
    assert tracker.step([left, back], new_shot=False) is back
    assert tracker.step([left], new_shot=True) is left  # a cut: the face is chosen anew


# -------------------------------------------------------------------------------------- scene cuts


def test_scene_cut_detector_separates_cuts_from_motion() -> None:
    rng = np.random.default_rng(0)
    warm = np.zeros((90, 160, 3), dtype=np.uint8)
    warm[..., 0], warm[..., 1] = 200, 120  # orange
    cool = np.zeros_like(warm)
    cool[..., 1], cool[..., 2] = 90, 210  # blue
    detector = SceneCutDetector(threshold=0.35, side=64)
    noisy = [np.clip(warm + rng.normal(0, 6, warm.shape), 0, 255).astype(np.uint8) for _ in range(3)]
    shifted = np.roll(noisy[2], 20, axis=1)  # camera pan: same colours, different place
    verdicts = [detector.is_cut(image) for image in [*noisy, shifted, cool, cool]]
    assert verdicts == [False, False, False, False, True, False]


def test_track_faces_splits_shots_and_reacquires(tmp_path: Path) -> None:
    """Sidecar landmarks + synthetic frames: a cut at frame 4, a missing frame, a second face."""
    red = np.zeros((120, 200, 3), dtype=np.uint8)
    red[..., 0] = 220
    green = np.zeros_like(red)
    green[..., 1] = 220
    frames = [red] * 4 + [green] * 4
    a, b = face(60, 60, 30), face(150, 60, 40)
    per_frame = [[a], [a, b], [], [a], [a, b], [b], [a], [a, b]]
    points = np.full((8, 2, 68, 2), np.nan)
    for index, faces in enumerate(per_frame):
        for slot, detection in enumerate(faces):
            points[index, slot] = detection.points
    backend = lm.FileLandmarks(lm.write_landmarks(tmp_path / "marks.npz", points))
    track = track_faces(iter(frames), backend=backend, config=FacesConfig())
    assert track.segments == [(0, 4), (4, 8)]
    assert track.cuts == [4]
    assert track.found.tolist() == [True, True, False, True, True, True, False, True]
    # Shot 1 starts on `a` (the only face) and keeps it; shot 2 starts on `b` (the larger) and keeps it.
    centres_x = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
    np.testing.assert_allclose(centres_x[[0, 1, 3]], 60)
    np.testing.assert_allclose(centres_x[[4, 5, 7]], 150)
    assert np.isnan(track.points[[2, 6]]).all()

    saved = FaceTrack.load(track.save(tmp_path / "track.npz"))
    assert isinstance(saved.points, np.memmap), "a run reads the points a frame at a time"
    assert saved.segments == track.segments
    for name in ("points", "boxes", "scores", "found"):
        np.testing.assert_array_equal(getattr(saved, name), getattr(track, name))
    legacy = tmp_path / "legacy.npz"  # format 1 kept the points inside: workdirs made before still load
    arrays = {name: getattr(track, name) for name in ("points", "boxes", "scores", "found")}
    np.savez(legacy, format=np.array("reenact-track/1"), segments=np.array(track.segments), **arrays)
    np.testing.assert_array_equal(FaceTrack.load(legacy).points, track.points)


# ----------------------------------------------------------------------------------------- real clips


def _frames(name: str) -> Iterator[np.ndarray]:
    from reenact.video import VideoReader

    with VideoReader(testdata_file(name)) as reader:
        for frame in reader.frames(upright=True):
            yield frame.image


class Recording:
    """Wraps a backend and keeps every frame's detections (boxes only), to check the tracker's choices."""

    def __init__(self, backend: lm.LandmarkBackend) -> None:
        self.backend = backend
        self.name = backend.name
        self.boxes: list[np.ndarray] = []

    def detect(self, image: np.ndarray, *, frame_index: int = 0) -> list[lm.FaceDetection]:
        found = self.backend.detect(image, frame_index=frame_index)
        self.boxes.append(np.array([d.box for d in found]).reshape(-1, 4))
        return found


@pytest.fixture(scope="module")
def dlib_small() -> lm.DlibLandmarks:
    return lm.DlibLandmarks(detect_max_side=REAL_DETECT_SIDE)


@pytest.mark.parametrize("name", ["retalk_face2.mp4", "lp_source_s18.mp4", "lp_driving_d3.mp4"])
def test_single_person_clips_have_a_face_in_nearly_every_frame(
    name: str, dlib_small: lm.DlibLandmarks
) -> None:
    config = FacesConfig(detect_max_side=REAL_DETECT_SIDE)
    start = time.perf_counter()
    track = track_faces(_frames(name), backend=dlib_small, config=config)
    elapsed = time.perf_counter() - start
    print(f"{name}: {track.num_frames} frames in {elapsed:.1f} s, face in {track.found.mean():.1%}")
    assert track.num_frames > 100
    assert track.found.mean() >= 0.98
    assert track.segments == [(0, track.num_frames)]  # one shot: no false cuts


def test_two_person_clip_follows_one_face_without_switching() -> None:
    # The smaller (left) person needs the default 640 px detection size to be seen at all.
    config = FacesConfig()
    recording = Recording(lm.DlibLandmarks(detect_max_side=config.detect_max_side))
    track = track_faces(_frames("ghost_2person.mp4"), backend=recording, config=config)
    width = 1280
    centres = (track.boxes[:, :2] + track.boxes[:, 2:]) / 2  # [T, 2]
    sizes = np.sqrt(np.prod(track.boxes[:, 2:] - track.boxes[:, :2], axis=1))
    assert track.found.all()
    side = np.sign(centres[:, 0] - width / 2)
    assert np.all(side == side[0])  # never on the other person's half
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) / sizes[1:]
    assert steps.max() < config.max_jump
    # The test means something only if the other person was there to switch to.
    other_side = [np.any(np.sign((b[:, 0] + b[:, 2]) / 2 - width / 2) == -side[0]) for b in recording.boxes]
    assert np.mean(other_side) > 0.5


def test_multi_shot_clip_finds_the_cuts_and_flags_faceless_frames(dlib_small: lm.DlibLandmarks) -> None:
    track = track_faces(
        _frames("facerec_short_hamilton_clip.mp4"),
        backend=dlib_small,
        config=FacesConfig(detect_max_side=REAL_DETECT_SIDE),
    )
    # Hard cuts seen by eye in this clip: frames 19|20, 81|82 and 210|211.
    for cut in (20, 82, 211):
        assert any(abs(found - cut) <= 1 for found in track.cuts), (cut, track.cuts)
    assert len(track.segments) <= 6  # no spray of false cuts
    assert 0.1 < track.found.mean() < 0.9  # faceless audience/profile frames pass through flagged
    assert np.isnan(track.points[~track.found]).all()
    assert np.isfinite(track.points[track.found]).all()


def test_photo_with_two_people_picks_the_larger_face() -> None:
    recording = Recording(lm.DlibLandmarks(detect_max_side=640))
    track = track_faces(_frames("facerec_two_people.jpg"), backend=recording, config=FacesConfig())
    boxes = recording.boxes[0]
    assert len(boxes) == 2
    sizes = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    assert track.num_frames == 1 and track.found[0]
    np.testing.assert_array_equal(track.boxes[0], boxes[np.argmax(sizes)])
    assert sizes.max() > 1.1 * sizes.min()  # the choice is not a coin toss
