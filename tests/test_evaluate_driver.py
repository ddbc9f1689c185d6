"""`reenact evaluate --driver` (issue #27 item 5): identity kept against the driver and expression
followed, from dlib's descriptors and landmarks, on real faces; and the landmark measures' maths."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact.faces.landmarks import FaceDetection, detection_from_points
from reenact.metrics import correlation, eye_opening, mouth_opening, rendered_mouth_openings
from reenact.sampling import FACE_CHECK_SIDE
from reenact.synthetic import landmark_template, measured_settings
from reenact.video import VideoReader, VideoWriter, new_video_info
from reenact_cli.main import run
from tests.conftest import testdata_file

SIDE = 256
"""Side of the square clips the real-face tests write."""
FRAMES = 24
"""Frames per clip the real-face tests write (dlib reads each a few times)."""
DRIVER_STRIDE = 6
"""Every sixth frame of the expressive driver clip, so a short clip holds several expressions."""
MIN_KEPT = 0.9
"""Share of frames an output that is the reference itself must have nearer the reference."""
MAX_KEPT = 0.1
"""Share an output that is the driver's face must stay under."""
FOLLOWED = 0.99
"""Mouth correlation of an output that is the driver's own frames (the same landmarks: 1)."""
NOT_FOLLOWED = 0.9
"""Mouth correlation an output that ignores the driver (the reference itself) stays under."""


def _template(gap: float, *, lid: float = 0.3) -> np.ndarray:
    """A 68-point face [68, 2] whose inner lips are `gap` apart and whose eyes are open `lid` (aspect)."""
    points = landmark_template(256).astype(np.float64).copy()
    mouth = points[60:68].mean(axis=0)
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        x = (points[upper, 0] + points[lower, 0]) / 2
        points[upper] = (x, mouth[1] - gap / 2)
        points[lower] = (x, mouth[1] + gap / 2)
    for start in (36, 42):
        centre = points[start : start + 6].mean(axis=0)
        width = 20.0
        half = lid * width / 2  # EAR = (2 * 2 half) / (2 width) = lid
        points[start : start + 6] = centre + np.array(
            [(-width / 2, 0), (-3, -half), (3, -half), (width / 2, 0), (3, half), (-3, half)]
        )
    return points


def test_mouth_and_eye_opening_measure_what_they_say() -> None:
    faces = np.stack([_template(gap, lid=lid) for gap, lid in ((0.0, 0.2), (10.0, 0.3), (20.0, 0.4))])
    eyes = np.linalg.norm(faces[:, 36:42].mean(1) - faces[:, 42:48].mean(1), axis=1)
    np.testing.assert_allclose(mouth_opening(faces), np.array([0.0, 10.0, 20.0]) / eyes, atol=1e-9)
    np.testing.assert_allclose(eye_opening(faces), [0.2, 0.3, 0.4], atol=1e-9)
    scaled = faces * 2.5 + 7.0  # a larger face elsewhere in the frame: the same openings
    np.testing.assert_allclose(mouth_opening(scaled), mouth_opening(faces), atol=1e-9)
    np.testing.assert_allclose(eye_opening(scaled), eye_opening(faces), atol=1e-9)


class _ScriptedFaces:
    """A landmark backend that answers each image by its first pixel's value: the faces listed for it."""

    def __init__(self, faces: dict[int, list[FaceDetection]]) -> None:
        self.faces = faces
        self.sides: list[int] = []

    def detect(self, image: np.ndarray, *, frame_index: int = 0) -> list[FaceDetection]:
        self.sides.append(image.shape[0])
        return self.faces.get(int(image[0, 0, 0]), [])


def test_rendered_mouth_openings_read_the_largest_face_of_each_render_upscaled() -> None:
    small = detection_from_points(_template(5.0))  # the template face, mouth 5 px open
    large = detection_from_points(_template(30.0) * 2.0)  # twice as large, mouth open 30 px at its scale
    backend = _ScriptedFaces({1: [small], 2: [small, large]})
    images = np.zeros((3, 16, 16, 3), np.uint8)  # 16 px renders: upscaled before they are read
    images[0, 0, 0, 0], images[1, 0, 0, 0] = 1, 2  # one face; two faces; none
    openings = rendered_mouth_openings(images, backend)
    expected = mouth_opening(np.stack([small.points, large.points]))
    np.testing.assert_allclose(openings[:2], expected, atol=1e-9)
    assert expected[1] > 2 * expected[0]  # the larger face is the wider-open one: it was chosen
    assert np.isnan(openings[2])
    assert backend.sides == [FACE_CHECK_SIDE] * 3


def test_correlation_skips_missing_frames_and_flat_series() -> None:
    a = np.array([0.0, 1.0, np.nan, 3.0, 2.0])
    assert correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(correlation(a, np.ones(5)))  # nothing moves: no figure
    assert np.isnan(correlation(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0])))  # two frames


def _square_clip(source: Path, path: Path, *, stride: int) -> Path:
    """FRAMES frames (every `stride`-th) of `source`, its centre square at SIDE px, written as H.264."""
    info = new_video_info(width=SIDE, height=SIDE, fps=25)
    with VideoWriter(path, like=info, config=measured_settings().video) as writer:
        for index, frame in enumerate(VideoReader(source).frames(upright=True)):
            if index % stride:
                continue
            height, width = frame.image.shape[:2]
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            square = frame.image[top : top + side, left : left + side]
            writer.write(cv2.resize(square, (SIDE, SIDE), interpolation=cv2.INTER_AREA), pts=index // stride)
            if index // stride + 1 == FRAMES:
                break
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A target (a woman, mild motion) and an expressive driver (another person), square, FRAMES each."""
    root = tmp_path_factory.mktemp("evaluate-driver")
    target = _square_clip(testdata_file("lp_source_s18.mp4"), root / "target.mp4", stride=1)
    driver = _square_clip(testdata_file("lp_driving_d3.mp4"), root / "driver.mp4", stride=DRIVER_STRIDE)
    return target, driver


def _driver_figures(output: Path, reference: Path, driver: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = run(
        ["evaluate", str(output), "-r", str(reference), "--driver", str(driver), "--no-lpips", "--no-people",
         "--quiet", "--json"]
    )  # fmt: skip
    assert code == 0
    return json.loads(capsys.readouterr().out)["summary"]["driver"]


def test_an_output_that_is_the_reference_keeps_its_identity_and_ignores_the_driver(
    clips: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, driver = clips
    figures = _driver_figures(target, target, driver, capsys)
    assert figures["frames"] == FRAMES and figures["identity_frames"] >= FRAMES - 2, figures
    assert figures["mouth_frames"] == figures["eyes_frames"] >= FRAMES - 2, "the frames it correlates over"
    assert figures["nearer_reference_share"] >= MIN_KEPT, figures
    assert figures["mouth_correlation"] == pytest.approx(figures["mouth_correlation_reference"])
    assert figures["mouth_correlation"] < NOT_FOLLOWED, figures


def test_an_output_that_is_the_driver_loses_the_identity_and_follows_the_driver(
    clips: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, driver = clips
    figures = _driver_figures(driver, target, driver, capsys)
    assert figures["nearer_reference_share"] <= MAX_KEPT, figures
    assert figures["mouth_correlation"] >= FOLLOWED, figures
    assert figures["eyes_correlation"] >= FOLLOWED, figures
    assert figures["mouth_correlation_reference"] < NOT_FOLLOWED, figures  # doing nothing fails the bound


def test_the_summary_has_a_driver_line(clips: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    target, driver = clips
    assert run(["evaluate", str(target), "-r", str(target), "--driver", str(driver), "--no-lpips",
                "--no-people", "--quiet"]) == 0  # fmt: skip
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    driver = next(" ".join(words) for words in lines if words[:1] == ["driver"])
    follows = next(" ".join(words) for words in lines if words[:1] == ["follows"])
    assert "nearer the reference than the driver in 100% of" in driver, driver
    assert "mouth r=" in follows and "eyes r=" in follows, follows


def test_a_missing_driver_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    code = run(["evaluate", str(clip), "-r", str(clip), "--driver", str(tmp_path / "none.mp4"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "none.mp4" in err[0], err
