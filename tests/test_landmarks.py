"""Landmark backends: dlib on real photos, FAN through a stand-in model, sidecar files round trip."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from reenact.config import FacesConfig
from reenact.errors import ReenactError
from reenact.faces import landmarks as lm
from tests.conftest import testdata_file

EYE_LEFT, EYE_RIGHT, NOSE_TIP, MOUTH = slice(36, 42), slice(42, 48), 30, slice(48, 68)


def _photo(name: str) -> np.ndarray:
    from reenact.video import VideoReader

    with VideoReader(testdata_file(name)) as reader:
        return next(iter(reader.frames(upright=True))).image


@pytest.fixture(scope="module")
def dlib_backend() -> lm.DlibLandmarks:
    return lm.DlibLandmarks(detect_max_side=640)


# ---------------------------------------------------------------------------------------------- dlib


def test_shape_predictor_found_without_importing_face_recognition_models() -> None:
    code = (
        "import sys; from reenact.faces.landmarks import face_models_file, SHAPE_PREDICTOR_FILE;"
        "p = face_models_file(SHAPE_PREDICTOR_FILE); print(p.stat().st_size);"
        "print('face_recognition_models' in sys.modules, 'pkg_resources' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) > 50_000_000  # the 68-point predictor is ~95 MB
    assert out[1:] == ["False", "False"]


def test_dlib_points_are_a_plausible_face_in_pixel_coordinates(dlib_backend: lm.DlibLandmarks) -> None:
    image = _photo("facerec_obama-1080p.jpg")
    faces = dlib_backend.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (68, 2) and face.points.dtype == np.float64
    # MANIFEST: median face size ~306 px in this 1920x1080 photo; the box is in full-frame pixels.
    assert 220 < face.size < 420
    left, right = face.points[EYE_LEFT].mean(0), face.points[EYE_RIGHT].mean(0)
    assert left[0] < face.points[NOSE_TIP, 0] < right[0]  # iBUG order, image left to right
    assert face.points[NOSE_TIP, 1] > max(left[1], right[1])
    assert face.points[MOUTH, 1].mean() > face.points[NOSE_TIP, 1]
    inside = (face.points >= face.box[:2] - 0.15 * face.size) & (
        face.points <= face.box[2:] + 0.15 * face.size
    )
    assert inside.all()


def test_dlib_detection_on_a_downscaled_copy_maps_back_to_full_size() -> None:
    image = _photo("facerec_obama-1080p.jpg")
    full = lm.DlibLandmarks(detect_max_side=0).detect(image)[0]
    small = lm.DlibLandmarks(detect_max_side=480).detect(image)[0]  # detection at 1/4 scale
    assert np.abs(small.box - full.box).max() < 0.15 * full.size  # HOG pyramid steps differ
    # Points come from the full-size image: they differ only through the slightly different box.
    assert np.median(np.linalg.norm(small.points - full.points, axis=1)) < 0.03 * full.size


def test_dlib_cnn_detector_agrees_with_hog(dlib_backend: lm.DlibLandmarks) -> None:
    image = _photo("facerec_two_people.jpg")
    cnn = sorted(lm.DlibLandmarks(detector="cnn", detect_max_side=480).detect(image), key=lambda f: f.box[0])
    hog = sorted(dlib_backend.detect(image), key=lambda f: f.box[0])
    assert len(cnn) == len(hog) == 2
    for a, b in zip(cnn, hog, strict=True):
        assert np.linalg.norm(a.centre - b.centre) < 0.3 * b.size
        assert np.median(np.linalg.norm(a.points - b.points, axis=1)) < 0.1 * b.size


def test_dlib_finds_no_human_face_on_a_dog(dlib_backend: lm.DlibLandmarks) -> None:
    assert dlib_backend.detect(_photo("lp_source_s25_png_as_jpg.jpg")) == []


def test_backend_rejects_non_rgb_uint8(dlib_backend: lm.DlibLandmarks) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        dlib_backend.detect(np.zeros((32, 32, 3), dtype=np.float32))


# ----------------------------------------------------------------------------------------------- FAN


class StandInFan:
    """Same interface as `face_alignment.FaceAlignment.get_landmarks_from_image`."""

    def __init__(self, faces: list[tuple[np.ndarray, np.ndarray]] | None) -> None:
        self.faces = faces
        self.seen: list[np.ndarray] = []

    def get_landmarks_from_image(
        self, image, detected_faces=None, return_bboxes=False, return_landmark_score=False
    ):
        self.seen.append(image)
        if self.faces is None:
            return None, None, None
        points = [p.astype(np.float32) for p, _ in self.faces]
        scores = [np.ones(68, dtype=np.float32) for _ in self.faces]
        boxes = [b for _, b in self.faces]
        return points, scores, boxes


def _face_points(rng: np.random.Generator, centre: tuple[float, float], size: float) -> np.ndarray:
    return np.asarray(centre) + rng.uniform(-size / 2, size / 2, size=(68, 2))


def test_fan_backend_returns_the_models_points_boxes_and_scores() -> None:
    rng = np.random.default_rng(0)
    big = _face_points(rng, (300.0, 200.0), 120.0)
    weak = _face_points(rng, (100.0, 90.0), 40.0)
    model = StandInFan(
        [
            (big, np.array([240.0, 140.0, 360.0, 260.0, 0.98])),
            (weak, np.array([80.0, 70.0, 120.0, 110.0, 0.3])),
        ]
    )
    backend = lm.FanLandmarks(model=model, min_score=0.5)
    image = rng.integers(0, 255, size=(400, 500, 3), dtype=np.uint8)
    faces = backend.detect(image)
    assert model.seen[0] is image
    assert len(faces) == 1  # the 0.3-score face is dropped
    np.testing.assert_allclose(faces[0].points, big.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_array_equal(faces[0].box, [240.0, 140.0, 360.0, 260.0])
    assert faces[0].score == pytest.approx(0.98)
    assert lm.FanLandmarks(model=StandInFan(None)).detect(image) == []


def test_fan_missing_weights_is_an_actionable_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch_hub = pytest.importorskip("torch.hub")
    fa_utils = pytest.importorskip("face_alignment.utils")

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    previous = torch_hub.get_dir()
    torch_hub.set_dir(str(tmp_path / "hub"))
    try:
        monkeypatch.setattr(torch_hub, "download_url_to_file", no_network)
        monkeypatch.setattr(fa_utils, "download_url_to_file", no_network)
        assert lm.missing_fan_weights("sfd") == list(lm.FAN_WEIGHT_FILES.values())
        with pytest.raises(ReenactError) as info:
            lm.FanLandmarks(device="cpu", face_detector="sfd")
    finally:
        torch_hub.set_dir(previous)
    message = str(info.value)
    assert "2DFAN4-11f355bf06.pth.tar" in message and "s3fd-619a316812.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "\n" not in message


def test_fan_loads_official_format_files_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same-format weight files (random values, written here) under the names face-alignment expects."""
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("face_alignment.models")
    sfd_net = pytest.importorskip("face_alignment.detection.sfd.net_s3fd")

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    fan_state = models.FAN(4).state_dict()
    torch.save(fan_state, checkpoints / lm.FAN_WEIGHT_FILES["landmarks"])
    # An all-zero detector scores every anchor 0.5, below its 0.5 cut: no faces, so no costly FAN passes.
    detector_state = {key: torch.zeros_like(value) for key, value in sfd_net.s3fd().state_dict().items()}
    torch.save(detector_state, checkpoints / lm.FAN_WEIGHT_FILES["sfd"])
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
        assert lm.missing_fan_weights("sfd") == []
        backend = lm.FanLandmarks(device="cpu", face_detector="sfd")
    finally:
        torch.hub.set_dir(previous)
    loaded = backend.model.face_alignment_net.state_dict()
    for key in ("conv1.weight", "l3.weight"):
        torch.testing.assert_close(loaded[key], fan_state[key], rtol=0, atol=0)
    image = np.random.default_rng(0).integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    assert backend.detect(image) == []


# ---------------------------------------------------------------------------------------------- file


def _sidecar_points() -> np.ndarray:
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 1000, size=(6, 2, 68, 2))  # [T, F, 68, 2], full float64 precision
    points[1] = np.nan  # no face
    points[3, 1] = np.nan  # one face
    points[5] = np.nan  # trailing empty frame must survive the JSON round trip
    return points


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_sidecar_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    points = _sidecar_points()
    path = lm.write_landmarks(tmp_path / f"marks{suffix}", points)
    back = lm.read_landmarks(path)
    assert back.shape == points.shape
    np.testing.assert_array_equal(back, points)  # NaN == NaN here; exact floats


def test_sidecar_json_layout_is_the_documented_one(tmp_path: Path) -> None:
    path = lm.write_landmarks(tmp_path / "marks.json", _sidecar_points())
    document = json.loads(path.read_text())
    assert document["format"] == "reenact-landmarks/1"
    assert [frame["index"] for frame in document["frames"]] == list(range(6))
    assert [len(frame["faces"]) for frame in document["frames"]] == [2, 0, 2, 1, 2, 0]
    assert np.asarray(document["frames"][0]["faces"]).shape == (2, 68, 2)


def test_file_backend_serves_each_frames_faces(tmp_path: Path) -> None:
    points = _sidecar_points()
    path = lm.write_landmarks(tmp_path / "marks.npz", points)
    backend = lm.make_backend(FacesConfig(), landmarks=str(path))
    assert isinstance(backend, lm.FileLandmarks)
    image = np.zeros((1000, 1000, 3), dtype=np.uint8)  # the points' frame
    assert [len(backend.detect(image, frame_index=i)) for i in range(8)] == [2, 0, 2, 1, 2, 0, 0, 0]
    small = np.zeros((100, 100, 3), dtype=np.uint8)  # points up to 10 frame sizes away: not this frame's
    assert [len(backend.detect(small, frame_index=i)) for i in range(8)] == [0] * 8
    assert backend.outside == 7
    face = backend.detect(image, frame_index=3)[0]
    np.testing.assert_array_equal(face.points, points[3, 0])
    np.testing.assert_array_equal(face.box, [*points[3, 0].min(0), *points[3, 0].max(0)])


def test_sidecar_errors_are_user_errors(tmp_path: Path) -> None:
    points = _sidecar_points()
    points[0, 0, 5] = np.nan  # a face with some points missing
    with pytest.raises(ReenactError, match="68 finite points or be all NaN"):
        lm.write_landmarks(tmp_path / "bad.npz", points)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something-else", "frames": []}))
    with pytest.raises(ReenactError, match="reenact-landmarks/1"):
        lm.read_landmarks(wrong)
    with pytest.raises(ReenactError, match="not found"):
        lm.read_landmarks(tmp_path / "missing.json")
    with pytest.raises(ReenactError, match=r"\.json or \.npz"):
        lm.write_landmarks(tmp_path / "marks.txt", _sidecar_points())
