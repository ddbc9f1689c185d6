"""`reenact people` end to end (issue #25): the two-person clip and photo, the contact sheet, the cache, the
detection it shares with `reenact align`, the describer for landmark files, and one-line errors."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact.config import Config, FacesConfig
from reenact.errors import ReenactError
from reenact.stages.people import descriptor_name
from reenact.workspace import MANIFEST
from reenact_cli.main import EXIT_ERROR, EXIT_USAGE, run
from reenact_cli.people_cmd import TILE
from tests.conftest import testdata_file

CLIP_FRAMES = 264
"""Frames of ghost_2person.mp4."""
SLICE_FRAMES = 30
MOST = 0.9
"""Share of the frames each of the clip's two people must be found in (both are always on screen)."""
SHIFTED_FRAMES = 12
SHIFT_PX = 3
"""The moving two-person clip made from the photo: frames, and pixels its view moves per frame."""


def _people(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["people", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    code, out, err = _people(capsys, *args, "--json")
    assert code == 0, err
    found = json.loads(out)
    assert list(found) == ["people"]
    return found["people"]


def _one_error(err: str, out: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and out == ""
    return lines[0]


def _check_ranges(person: dict, *, frames: int) -> None:
    """Runs are sorted, disjoint, half-open, inside the clip and add up to the person's frame count."""
    ranges = person["ranges"]
    assert all(0 <= start < stop <= frames for start, stop in ranges)
    assert all(stop < start for (_, stop), (start, _) in itertools.pairwise(ranges))
    assert sum(stop - start for start, stop in ranges) == person["frames"]
    assert person["first"] == ranges[0][0] and person["last"] == ranges[-1][1] - 1


@pytest.fixture(scope="module")
def ghost(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`reenact people --json --sheet` on the whole two-person clip, once for the module: its people, the
    sheet, the workdir and the run's seconds."""
    clip = testdata_file("ghost_2person.mp4")
    folder = tmp_path_factory.mktemp("ghost")
    sheet = folder / "sheet.png"
    started = time.perf_counter()
    code = run(["people", str(clip), "--workdir", str(folder / "work"), "--json", "--sheet", str(sheet)])
    seconds = time.perf_counter() - started
    assert code == 0
    return {"clip": clip, "workdir": folder / "work", "sheet": sheet, "seconds": seconds}


def test_two_person_clip_has_two_people_in_most_frames(
    ghost: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    people = _json(capsys, str(ghost["clip"]), "--workdir", str(ghost["workdir"]))
    print(f"\nghost_2person.mp4: {[(p['id'], p['frames'], p['ranges']) for p in people]}")
    assert [person["id"] for person in people] == [0, 1]
    for person in people:
        assert person["frames"] >= MOST * CLIP_FRAMES
        _check_ranges(person, frames=CLIP_FRAMES)
    centres = [np.mean(np.array(p["clearest"]["box"])[[0, 2]]) for p in people]
    assert min(centres) < 640 < max(centres), "one person on each half of the split screen"


def test_sheet_has_one_tile_per_person(ghost: dict) -> None:
    sheet = cv2.imread(str(ghost["sheet"]))
    assert sheet is not None and sheet.shape == (TILE, 2 * TILE, 3)
    left, right = sheet[:, :TILE].astype(np.float64), sheet[:, TILE:].astype(np.float64)
    assert left.std() > 20 and right.std() > 20, "each tile shows a face, not a blank"
    assert np.abs(left - right).mean() > 20, "two different faces"


def test_second_run_is_served_from_the_cache(ghost: dict, capsys: pytest.CaptureFixture[str]) -> None:
    entries = {path: path.stat().st_mtime_ns for path in ghost["workdir"].glob("people/*/people.json")}
    code, out, err = _people(capsys, str(ghost["clip"]), "--workdir", str(ghost["workdir"]))
    assert code == 0, err
    (line,) = [line for line in err.splitlines() if line.startswith("people ")]
    assert "cached" in line, err
    after = {path: path.stat().st_mtime_ns for path in ghost["workdir"].glob("people/*/people.json")}
    assert after == entries, "nothing written: no new entry, the stored one untouched"
    (stored,) = [path for path in entries if json.loads(path.read_text())["frames"] == CLIP_FRAMES]
    lines = out.splitlines()
    assert lines[0] == f"{ghost['clip']}: 2 people in {CLIP_FRAMES} frames (1 shot)"
    rows = [line.split() for line in lines[2:]]
    found = json.loads(stored.read_text())["people"]
    assert [(int(row[0]), int(row[1])) for row in rows] == [(p["id"], p["frames"]) for p in found]
    assert [row[2] for row in rows] == [f"{p['first']}-{p['last']}" for p in found]


DETECTING = re.compile(r"^\s*align \d", re.MULTILINE)
"""The progress line of face detection."""


def test_slice_and_alignment_reuse_the_detection(ghost: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """Faces are detected once: a slice of a clip whose people are found, and the clip's alignment (which
    chooses from its people), detect nothing."""
    workdir = str(ghost["workdir"])
    code, out, err = _people(
        capsys, str(ghost["clip"]), "--workdir", workdir, "--duration", f"{SLICE_FRAMES}f", "--json"
    )
    assert code == 0, err
    assert not DETECTING.search(err), f"the slice detected faces again: {err}"
    people = json.loads(out)["people"]
    assert len(people) == 2
    for person in people:
        assert person["frames"] >= MOST * SLICE_FRAMES
        _check_ranges(person, frames=SLICE_FRAMES)
    code = run(["align", str(ghost["clip"]), "--workdir", workdir, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert not DETECTING.search(err) and json.loads(out)["computed_parts"] == 0, err


def test_photo_of_two_people(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    people = _json(capsys, str(testdata_file("facerec_two_people.jpg")), "--workdir", str(tmp_path))
    assert [(p["id"], p["frames"], p["ranges"]) for p in people] == [(0, 1, [[0, 1]]), (1, 1, [[0, 1]])]


def test_landmark_file_tells_people_apart_by_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a sidecar landmarks file (the synthetic world's way) the aligned crops' pixels describe the
    faces: a moving view of the two-person photo, its two faces given by a file, is two people."""
    from reenact.faces.landmarks import DlibLandmarks, write_landmarks
    from reenact.video import VideoWriter, new_video_info

    image = cv2.cvtColor(cv2.imread(str(testdata_file("facerec_two_people.jpg"))), cv2.COLOR_BGR2RGB)
    faces = DlibLandmarks().detect(image)
    assert len(faces) == 2
    width = image.shape[1] - SHIFTED_FRAMES * SHIFT_PX
    width -= width % 2
    height = image.shape[0] - image.shape[0] % 2
    clip = tmp_path / "two.mp4"
    points = np.zeros((SHIFTED_FRAMES, 2, 68, 2))
    info = new_video_info(width=width, height=height, fps=25)
    with VideoWriter(clip, like=info, config=Config().video) as writer:
        for index in range(SHIFTED_FRAMES):
            x = index * SHIFT_PX
            writer.write(np.ascontiguousarray(image[:height, x : x + width]), pts=index)
            points[index] = [face.points - [x, 0] for face in faces]
    sidecar = write_landmarks(tmp_path / "two.npz", points)
    workdir = tmp_path / "work"
    people = _json(capsys, str(clip), "--workdir", str(workdir), "--landmarks", str(sidecar))
    assert [(p["frames"], p["ranges"]) for p in people] == [(SHIFTED_FRAMES, [[0, SHIFTED_FRAMES]])] * 2
    (manifest,) = workdir.glob(f"people/*/{MANIFEST}")
    assert json.loads(manifest.read_text())["summary"]["descriptor"] == "pixels"


@pytest.mark.parametrize(
    ("setting", "landmarks", "expected"),
    [
        ("auto", "dlib", "dlib"),
        ("auto", "fan", "dlib"),
        ("auto", "world.npz", "pixels"),
        ("dlib", "world.json", "dlib"),
        ("pixels", "dlib", "pixels"),
    ],
)
def test_descriptor_rule(setting: str, landmarks: str, expected: str) -> None:
    faces = FacesConfig(descriptor=setting)  # type: ignore[arg-type]
    assert descriptor_name(faces, landmarks=landmarks) == expected
    assert descriptor_name(FacesConfig(landmarks=landmarks, descriptor=setting), landmarks=None) == expected  # type: ignore[arg-type]


def test_bad_descriptor_setting_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReenactError, match=r"faces\.descriptor must be one of"):
        FacesConfig(descriptor="faces")  # type: ignore[arg-type]
    path = str(testdata_file("facerec_two_people.jpg"))
    code, out, err = _people(capsys, path, "--workdir", str(tmp_path), "--set", "faces.descriptor=faces")
    assert code == EXIT_USAGE
    assert "faces.descriptor must be one of" in _one_error(err, out)


def test_missing_input_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.mp4"
    code, out, err = _people(capsys, str(missing), "--workdir", str(tmp_path / "work"))
    assert code == EXIT_ERROR
    assert _one_error(err, out) == f"error: input not found: {missing}"


def test_no_face_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    noise = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(noise), rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8))
    code, out, err = _people(capsys, str(noise), "--workdir", str(tmp_path / "work"))
    assert code == EXIT_ERROR
    assert _one_error(err, out).startswith(f"error: no face found in {noise} (1 frames")
    assert not list(tmp_path.rglob("people.json"))


@pytest.mark.parametrize(
    ("sheet", "code", "message"),
    [
        ("missing/sheet.png", EXIT_ERROR, "error: folder {tmp}/missing does not exist (for --sheet"),
        ("sheet.jpg", EXIT_USAGE, "error: --sheet writes a PNG; give a .png path"),
        ("existing.png", EXIT_ERROR, "error: {tmp}/existing.png already exists; pass --overwrite"),
    ],
)
def test_bad_sheet_path_is_one_line_error_before_any_work(
    sheet: str, code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "existing.png").write_bytes(b"")
    path = str(testdata_file("facerec_two_people.jpg"))
    result, out, err = _people(
        capsys, path, "--workdir", str(tmp_path / "work"), "--sheet", str(tmp_path / sheet)
    )
    assert result == code
    assert _one_error(err, out).startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "work" / "people").exists(), "nothing computed"


def test_reader_converts_only_the_frames_asked_for() -> None:
    """What the people stage and the sheet decode with: the asked frames of a window, exactly as a full
    decode gives them, and nothing past the last of them."""
    from reenact import video
    from reenact.timeline import parse_slice

    path = testdata_file("lp_driving_d0.mp4")
    window = video.slice_window(path, parse_slice("10f", "20f"))
    wanted = {0, 5, 19}
    every = {
        frame.index: frame.image for frame in video.VideoReader(path, window=window).frames(upright=True)
    }
    reader = video.VideoReader(path, window=window)
    some = [(frame.index, frame.image) for frame in reader.frames(upright=True, only=wanted)]
    assert [index for index, _ in some] == sorted(wanted)
    for index, image in some:
        np.testing.assert_array_equal(image, every[index])
    assert reader.frames_decoded == max(wanted) + 1
