"""Choosing a person, not a position (issue #25 item 3): `--person`, `--person-ref`, and `--face-index` /
`--face-at` picking a person where they first apply; what the choice changes in a real two-person clip;
and one-line errors for a choice nobody fits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact.faces.people import Person, Tracklet, person_at, person_by_size, reference_distances
from reenact.faces.track import FrameDetections
from reenact.stages.align import FaceChoice
from reenact.timeline import parse_slice
from reenact_cli.main import EXIT_USAGE, run
from tests.conftest import testdata_file
from tests.test_pipeline import record_written_frames

EDIT_FRAMES = 6
"""Frames of ghost_2person.mp4 edited per person (a slice from its start)."""
MIN_CHANGE = 2.0
"""Mean absolute change (levels) the edit must make inside the chosen person's face region."""
REGION_MARGIN = 0.6
"""A person's face region: their face boxes in the slice, grown by this share of the box size on each
side (the FFHQ crop reaches past the landmark box: forehead, hair, chin)."""


def _detections(boxes_per_frame: list[list[tuple[float, float, float, float]]]) -> FrameDetections:
    counts = np.array([len(boxes) for boxes in boxes_per_frame], dtype=np.int64)
    boxes = np.array([box for frame in boxes_per_frame for box in frame], dtype=np.float64).reshape(-1, 4)
    return FrameDetections(
        counts=counts,
        boxes=boxes,
        points=np.zeros((len(boxes), 68, 2)),
        scores=np.ones(len(boxes)),
        histograms=np.zeros((len(counts), 0), dtype=np.float32),
    )


def _person(id: int, frames: list[int], faces: list[int], descriptors: np.ndarray) -> Person:
    tracklet = Tracklet(
        frames=np.array(frames, dtype=np.int64), faces=np.array(faces, dtype=np.int64), shot=0
    )
    return Person(id=id, tracklets=[tracklet], descriptors=descriptors)


@pytest.fixture
def swapped() -> tuple[list[Person], FrameDetections]:
    """Frame 0: person 0 small on the left, person 1 large on the right. Frame 1 (after a cut): person 0
    large on the left, person 1 small on the right. Frame 2: person 1 alone, large on the right."""
    small_left, large_right = (0, 0, 10, 10), (50, 0, 90, 40)
    large_left, small_right = (0, 0, 40, 40), (80, 0, 90, 10)
    detections = _detections([[small_left, large_right], [large_left, small_right], [large_right]])
    people = [
        _person(0, [0, 1], [0, 2], np.zeros((2, 3))),
        _person(1, [0, 1, 2], [1, 3, 4], np.ones((2, 3))),
    ]
    return people, detections


def test_face_index_picks_a_person_in_the_first_frame_it_applies(swapped) -> None:
    people, detections = swapped
    assert person_by_size(people, detections, index=0) == 1, "the largest face of frame 0 is person 1's"
    assert person_by_size(people, detections, index=1) == 0
    assert person_by_size(people, detections, index=2) is None, "no frame has three faces"


def test_face_at_picks_the_person_whose_box_holds_the_point_first(swapped) -> None:
    people, detections = swapped
    assert person_at(people, detections, point=(5, 5)) == 0, "frame 0's left face is person 0's"
    assert person_at(people, detections, point=(85, 5)) == 1
    assert person_at(people, detections, point=(30, 30)) == 0, "first held in frame 1, by person 0's box"
    assert person_at(people, detections, point=(45, 100)) == 1, "held by no box: nearest centre in frame 0"


def test_reference_distance_is_the_mean_distance_to_a_persons_faces(swapped) -> None:
    people, _ = swapped
    distances = reference_distances(people, np.full(3, 0.9))
    assert np.allclose(distances, [0.9 * np.sqrt(3), 0.1 * np.sqrt(3)])
    alone = Person(id=2, tracklets=people[0].tracklets, descriptors=np.zeros((0, 3)))
    assert reference_distances([alone], np.zeros(3))[0] == np.inf, "a person never described matches nobody"


def test_only_one_choice_at_a_time() -> None:
    with pytest.raises(Exception, match="give one"):
        FaceChoice(person=1, ref=Path("x.png"))


# --------------------------------------------------------------------------- the two-person clip and photo


@pytest.fixture(scope="module")
def ghost(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """ghost_2person.mp4's people (found once for the module), and a photo of each person's clearest face:
    the frame cropped around their face box."""
    clip = testdata_file("ghost_2person.mp4")
    folder = tmp_path_factory.mktemp("ghost-choice")
    workdir = folder / "work"
    assert run(["people", str(clip), "--workdir", str(workdir), "--json", "--quiet"]) == 0
    stored = json.loads(next(workdir.glob("people/*/people.json")).read_text())["people"]
    from reenact import video

    wanted = {person["clearest"]["frame"] for person in stored}
    images = {frame.index: frame.image for frame in video.VideoReader(clip).frames(upright=True, only=wanted)}
    photos = {}
    for person in stored:
        x0, y0, x1, y1 = person["clearest"]["box"]
        size = max(x1 - x0, y1 - y0)
        image = images[person["clearest"]["frame"]]
        top, left = max(int(y0 - size), 0), max(int(x0 - size), 0)
        crop = image[top : int(y1 + size), left : int(x1 + size)]
        photos[person["id"]] = folder / f"person{person['id']}.png"
        cv2.imwrite(str(photos[person["id"]]), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return {"clip": clip, "workdir": workdir, "people": stored, "photos": photos, "folder": folder}


def _align_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code = run(["align", *args, "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_person_ref_picks_that_person(ghost: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(ghost["people"]) == 2
    for person, photo in ghost["photos"].items():
        common = [str(ghost["clip"]), "--workdir", str(ghost["workdir"])]
        summary = _align_json(capsys, *common, "--person-ref", str(photo))
        assert summary["person"] == person
        assert summary["computed_parts"] == 0, "the people's faces serve the alignment"
        assert _align_json(capsys, *common, "--person", str(person))["person"] == person


def test_person_ref_picks_each_face_of_a_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The two-person photo: a crop around each face as the reference picks that face's person."""
    photo = testdata_file("facerec_two_people.jpg")
    workdir = str(tmp_path / "work")
    assert run(["people", str(photo), "--workdir", workdir, "--json", "--quiet"]) == 0
    people = json.loads(capsys.readouterr().out)["people"]
    assert len(people) == 2
    image = cv2.imread(str(photo))
    for person in people:
        x0, y0, x1, y1 = (int(value) for value in person["clearest"]["box"])
        crop = tmp_path / f"face{person['id']}.png"
        cv2.imwrite(str(crop), image[max(y0 - 40, 0) : y1 + 40, max(x0 - 40, 0) : x1 + 40])
        assert (
            _align_json(capsys, str(photo), "--workdir", workdir, "--person-ref", str(crop))["person"]
            == (person["id"])
        )


def _face_region(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[H, W] bool: the boxes [n, 4], each grown by `REGION_MARGIN` of its size on every side."""
    region = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        grow = REGION_MARGIN * max(x1 - x0, y1 - y0)
        top, left = max(int(y0 - grow), 0), max(int(x0 - grow), 0)
        region[top : int(np.ceil(y1 + grow)), left : int(np.ceil(x1 + grow))] = True
    return region


def test_edit_with_person_ref_changes_pixels_only_inside_that_persons_face(
    ghost: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit following each person in turn (by a photo of them) changes the frames inside that person's
    face region and nowhere else: not in the other person's face, not in the background."""
    import torch

    from reenact import pipeline, video
    from reenact.device import resolve_runtime
    from reenact.directions import Direction
    from reenact.generator_source import load_generator_spec
    from reenact.stages.people import ClipPeople
    from reenact.synthetic import synthetic_settings
    from reenact.workspace import Workspace

    clip = ghost["clip"]
    window = video.slice_window(clip, parse_slice(None, f"{EDIT_FRAMES}f"))
    source = [
        frame.image.astype(np.int16) for frame in video.VideoReader(clip, window=window).frames(upright=True)
    ]
    runtime = resolve_runtime("cpu")
    context = pipeline.make_context(
        workspace=Workspace(ghost["workdir"]),
        source=load_generator_spec("random:tiny", device=runtime.device),
        settings=synthetic_settings(),
        runtime=runtime,
    )
    direction = Direction(
        name="test", vector=torch.ones(1, context.source.generator.w_dim), source_format="memory"
    )
    people = ClipPeople.load(next(ghost["workdir"].glob("people/*/people.npz")).parent)
    regions = {}
    for person in people.people:
        faces = np.array([person.face_at(frame) for frame in range(EDIT_FRAMES)])
        assert (faces >= 0).all(), f"person {person.id} is in every frame of the slice"
        regions[person.id] = _face_region(people.detections.boxes[faces], source[0].shape[:2])
    assert not (regions[0] & regions[1]).any(), "the two face regions must not meet for this test"
    for chosen, photo in ghost["photos"].items():
        written = record_written_frames(monkeypatch)
        pipeline.edit_video(
            clip,
            ghost["folder"] / f"edit{chosen}.mp4",
            directions=[(direction, 2.0)],
            context=context,
            face=FaceChoice(ref=photo),
            window=window,
        )
        monkeypatch.undo()
        change = np.abs(np.stack(written).astype(np.int16) - np.stack(source)).max(axis=3)  # [T, H, W]
        inside = regions[chosen]
        print(
            f"person {chosen}: mean change {change[:, inside].mean():.2f} inside, "
            f"largest outside {change[:, ~inside].max()}"
        )
        assert change[:, inside].mean() > MIN_CHANGE, "the chosen person's face did not change"
        assert change[:, ~inside].max() == 0, "pixels changed outside the chosen person's face"
    written = record_written_frames(monkeypatch)
    pipeline.edit_video(
        clip,
        ghost["folder"] / "edit_everyone.mp4",
        directions=[(direction, 2.0)],
        context=context,
        window=window,
        everyone=True,
    )  # --people all: both faces, each person's own tuned generator (their stages are the ones above)
    monkeypatch.undo()
    change = np.abs(np.stack(written).astype(np.int16) - np.stack(source)).max(axis=3)  # [T, H, W]
    for chosen, inside in regions.items():
        print(f"everyone, person {chosen}: mean change {change[:, inside].mean():.2f} inside")
        assert change[:, inside].mean() > MIN_CHANGE, f"--people all left person {chosen} unchanged"
    assert change[:, ~(regions[0] | regions[1])].max() == 0, "pixels changed outside both faces"


# --------------------------------------------------------------------------------------------- errors


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = run(["align", *args, "--quiet"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return code, lines[0]


def test_unknown_person_lists_the_known_ids(ghost: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _error(capsys, str(ghost["clip"]), "--workdir", str(ghost["workdir"]), "--person", "7")
    assert code == EXIT_USAGE and "no person 7 in" in line and "people are 0, 1" in line, line


def test_ref_without_a_face_is_one_line(
    ghost: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    code, line = _error(
        capsys, str(ghost["clip"]), "--workdir", str(ghost["workdir"]), "--person-ref", str(blank)
    )
    assert code == EXIT_USAGE and "no face found in" in line, line


def test_ref_nobody_matches_says_the_nearest_distance(
    ghost: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = testdata_file("facerec_obama-1080p.jpg")
    code, line = _error(
        capsys, str(ghost["clip"]), "--workdir", str(ghost["workdir"]), "--person-ref", str(stranger)
    )
    assert code == EXIT_USAGE and "nobody in" in line and "the nearest is person" in line, line
    assert "threshold 0.6" in line, line


def test_two_choices_at_once_is_a_usage_error(ghost: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _error(capsys, str(ghost["clip"]), "--person", "0", "--face-index", "1")
    assert code == EXIT_USAGE and "--face-index and --person" in line, line
