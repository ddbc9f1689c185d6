"""`reenact align` end to end: real clips and photos, sidecar landmarks, no-face errors, preview video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reenact.faces import landmarks as lm
from reenact.faces.align import ffhq_quad
from reenact.faces.track import FaceTrack
from reenact_cli.main import run
from tests.conftest import testdata_file

FAST = ["--set", "faces.detect_max_side=480"]


def _align(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["align", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _summary(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = _align(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out, parse_constant=_not_json)


def _not_json(name: str) -> None:
    raise AssertionError(f"--json printed {name}, which is not JSON")


@pytest.mark.parametrize(
    "name", ["imageio_cockatoo.mp4", "jsonize_iphone_rotated.mov", "lp_source_s25_png_as_jpg.jpg"]
)
def test_no_face_is_one_line_error(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = testdata_file(name)
    code, out, err = _align(capsys, str(path), "--workdir", str(tmp_path))
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"error: no face found in {path}")
    assert "Traceback" not in err and out == ""
    assert not list(tmp_path.rglob("align.npz"))


def test_photo_is_a_one_frame_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = testdata_file("facerec_obama-1080p.jpg")
    summary = _summary(capsys, str(path), "--workdir", str(tmp_path), "--resolution", "256")
    assert summary["frames"] == 1 and summary["faces_found"] == 1 and summary["resolution"] == 256
    assert summary["jitter_raw"] is None  # undefined for one frame: JSON null, not NaN
    with np.load(summary["align"]) as data:
        quad, matrix = data["quads"][0], data["crop_matrices"][0]
    points = FaceTrack.load(summary["track"]).points[0]
    np.testing.assert_allclose(quad, ffhq_quad(points))  # one frame: smoothing leaves it alone
    # The crop transform sends the quad's corners to the crop's outer corners.
    corners = quad @ matrix[:2, :2].T + matrix[:2, 2]
    np.testing.assert_allclose(
        corners, [[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]], atol=1e-6
    )


def test_results_live_in_the_workspace_and_are_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`align` computes the transfer's own alignment stage: a second run (any crop size) is cached."""
    path = str(testdata_file("facerec_obama-1080p.jpg"))
    first = _align(capsys, path, "--workdir", str(tmp_path))
    assert first[0] == 0 and "cached" not in first[2]
    code, _, err = _align(capsys, path, "--workdir", str(tmp_path), "--resolution", "256")
    assert code == 0
    assert "inp-align" in err and "cached" in err, err
    assert len([p for p in (tmp_path / "align").iterdir() if p.is_dir()]) == 1, "one entry, any crop size"


def test_face_at_picks_the_pointed_face(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(testdata_file("facerec_two_people.jpg"))
    default = _summary(capsys, path, "--workdir", str(tmp_path / "a"))
    pointed = _summary(capsys, path, "--workdir", str(tmp_path / "b"), "--face-at", "320,140")
    smaller = _summary(capsys, path, "--workdir", str(tmp_path / "c"), "--face-index", "1")
    boxes = {}
    for key, summary in (("default", default), ("pointed", pointed), ("smaller", smaller)):
        with np.load(summary["track"]) as data:
            boxes[key] = data["boxes"][0]
    assert (
        boxes["pointed"][0] <= 320 <= boxes["pointed"][2]
        and boxes["pointed"][1] <= 140 <= boxes["pointed"][3]
    )
    assert not boxes["default"][0] <= 320 <= boxes["default"][2]  # the larger face is the other one
    np.testing.assert_array_equal(boxes["smaller"], boxes["pointed"])


def test_sidecar_landmarks_drive_the_alignment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A landmarks file replaces detection: the stored raw quads are exactly those of the given points."""
    path = testdata_file("lp_driving_d0.mp4")  # 78 frames, 512x512
    rng = np.random.default_rng(3)
    num_frames = 78
    base = np.array([256.0, 256.0]) + rng.uniform(-90, 90, size=(68, 2))
    drift = np.linspace(0, 20, num_frames)[:, None, None]
    points = np.full((num_frames, 1, 68, 2), np.nan)
    points[:, 0] = base + drift + rng.normal(0, 0.5, size=(num_frames, 68, 2))
    points[10, 0] = np.nan  # a frame without a face, interpolated by the smoother
    sidecar = lm.write_landmarks(tmp_path / "marks.json", points)
    summary = _summary(capsys, str(path), "--workdir", str(tmp_path), "--landmarks", str(sidecar))
    assert summary["landmarks"] == "file"
    assert summary["faces_found"] == num_frames - 1 and summary["aligned_frames"] == num_frames
    with np.load(summary["align"]) as data:
        raw = data["quads_raw"]
    expected = np.stack(
        [ffhq_quad(p) if np.isfinite(p).all() else np.full((4, 2), np.nan) for p in points[:, 0]]
    )
    np.testing.assert_array_equal(raw, expected)
    assert summary["jitter_smoothed"] < 0.5 * summary["jitter_raw"]


def test_video_with_preview_keeps_frames_and_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reenact.video import probe

    path = testdata_file("retalk_face2.mp4")
    preview = tmp_path / "preview.mp4"
    summary = _summary(capsys, str(path), "--workdir", str(tmp_path), "--preview", str(preview), *FAST)
    source, written = probe(path), probe(preview)
    assert summary["frames"] == source.frame_count == written.frame_count
    assert written.has_audio and written.audio_codec == source.audio_codec
    assert (written.width, written.height) == (source.width, source.height)
    assert summary["faces_found"] >= 0.98 * summary["frames"]
    assert summary["segments"] == [[0, summary["frames"]]]
    assert summary["jitter_smoothed"] < summary["jitter_raw"]
    with np.load(summary["track"]) as data:
        assert data["found"].shape == (summary["frames"],)


def test_multi_shot_clip_completes_with_cuts_and_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = testdata_file("facerec_short_hamilton_clip.mp4")
    summary = _summary(capsys, str(path), "--workdir", str(tmp_path), *FAST)
    assert len(summary["segments"]) >= 4  # several shots
    assert 0 < summary["faces_found"] < summary["frames"]
    with np.load(summary["align"]) as data:
        found, matrices, segments = data["found"], data["crop_matrices"], data["segments"]
    assert found.shape == (summary["frames"],) and segments.tolist() == summary["segments"]
    aligned = np.isfinite(matrices).all(axis=(1, 2))
    assert aligned[found].all()  # every found frame has a transform
    assert (~aligned).sum() > 0  # long faceless stretches stay flagged, not invented
    assert summary["aligned_frames"] == int(aligned.sum())


def test_human_summary_and_bad_face_at(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(testdata_file("facerec_obama-1080p.jpg"))
    code, out, _ = _align(capsys, path, "--workdir", str(tmp_path))
    assert code == 0 and "1/1 frames with a face (1 detected)" in out and "jitter" in out
    code, _, err = _align(capsys, path, "--workdir", str(tmp_path), "--face-at", "12;5", "--overwrite")
    assert code == 2 and "--face-at expects X,Y" in err  # a usage mistake
