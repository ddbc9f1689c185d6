"""The synthetic multi-person scene (issue #25 item 7): the people found are the truth's, ids kept across
cuts where the two swap sides and sizes and where one leaves and comes back, and every choice of person
follows that person, not a position."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reenact.synthetic_scene import SCENE_SHOTS, SLOT_X, SceneConfig, SyntheticScene, make_scene, write_scene
from reenact_cli.main import run

SEEDS = (0, 1)
MAX_POINT_ERROR_PX = 1e-6
"""The sidecar carries the truth's landmarks: a found face is the truth's face exactly."""
MAX_QUAD_ERROR_PX = 1e-6
"""Unsmoothed quads come from those landmarks: the truth's quads exactly."""


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{seed}" for seed in SEEDS])
def scene(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    truth = make_scene(SceneConfig(seed=request.param))
    folder = tmp_path_factory.mktemp(f"scene{request.param}")
    clip, landmarks = write_scene(truth, folder)
    common = [str(clip), "--landmarks", str(landmarks), "--workdir", str(folder / "work"), "--quiet"]
    return {"truth": truth, "common": common, "workdir": folder / "work"}


def test_scene_has_the_swaps_and_the_absence_it_promises() -> None:
    """Person 0 is large on the left, then small on the right after the first cut; person 1 is missing
    in one shot: a rule by size or position would switch people, one by presence would lose one."""
    truth = make_scene(SceneConfig())
    starts = truth.shot_starts
    sizes = np.linalg.norm(truth.quads[:, :, 0] - truth.quads[:, :, 1], axis=2)  # [P, T]
    assert sizes[0, starts[0]] > sizes[1, starts[0]] and sizes[0, starts[1]] < sizes[1, starts[1]]
    left = (
        truth.quads[:, :, :, 0].mean(axis=2) < SLOT_X[0] * truth.config.frame_width + truth.config.face_size
    )
    assert left[0, starts[0]] and not left[0, starts[1]]
    assert not truth.present[1, starts[2]] and truth.present[1, starts[3]]
    assert len(SCENE_SHOTS) == len(starts) == 4


def _people(scene: dict, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert run(["people", *scene["common"], "--json"]) == 0
    return json.loads(capsys.readouterr().out)["people"]


def test_people_found_are_the_truths_people(scene: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """One found person per true person, with exactly their frames, and in every frame their face."""
    from reenact.stages.people import ClipPeople

    truth: SyntheticScene = scene["truth"]
    found = _people(scene, capsys)
    assert [person["id"] for person in found] == list(range(truth.config.num_people)), found
    stored = ClipPeople.load(next(scene["workdir"].glob("people/*/people.npz")).parent)
    matched = set()
    for person in stored.people:
        frames = person.frames
        owner = [
            index
            for index in range(truth.config.num_people)
            if np.array_equal(truth.frames_of(index), frames)
        ]
        assert len(owner) == 1, f"found person {person.id} in frames {frames.tolist()} is no true person"
        points = stored.detections.points[person.faces]  # [n, 68, 2]
        error = np.abs(points - truth.landmarks[owner[0], frames]).max()
        assert error <= MAX_POINT_ERROR_PX, f"person {person.id}'s faces are not one true person's: {error}"
        matched.add(owner[0])
    assert matched == set(range(truth.config.num_people))


def _followed(scene: dict, capsys: pytest.CaptureFixture[str], *choice: str) -> tuple[int, np.ndarray]:
    """The person an alignment follows and its unsmoothed quads [T, 4, 2]."""
    assert run(["align", *scene["common"], *choice, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    return summary["person"], np.load(summary["align"])["quads_raw"]


def _true_person(truth: SyntheticScene, quads: np.ndarray) -> int:
    """The true person whose face every aligned frame is (and who is absent where nothing is aligned)."""
    found = np.isfinite(quads).all(axis=(1, 2))  # [T]
    for person in range(truth.config.num_people):
        if np.array_equal(found, truth.present[person]):
            error = np.abs(quads[found] - truth.quads[person, found]).max()
            if error <= MAX_QUAD_ERROR_PX:
                return person
    raise AssertionError("the alignment is no one person's face through the scene")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ((), 0),  # the largest face in frame 0: person 0, then smaller and on the right after the cut
        (("--face-index", "1"), 1),  # the second largest in frame 0, gone in one shot, back after it
        (("--face-at", "140,48"), 1),  # the right slot in frame 0
        (("--person", "1"), 1),
    ],
    ids=["default", "face-index", "face-at", "person"],
)
def test_a_choice_follows_one_person_through_swaps_and_absence(
    scene: dict, capsys: pytest.CaptureFixture[str], choice: tuple[str, ...], expected: int
) -> None:
    truth: SyntheticScene = scene["truth"]
    person, quads = _followed(scene, capsys, *choice)
    assert _true_person(truth, quads) == expected, choice
    assert person == expected, "the scene's people are numbered as the truth's"


def test_followed_person_keeps_their_pixels_where_they_are_absent(
    scene: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """Person 1 is absent from one shot: the alignment has no crop there (those frames pass through)."""
    truth: SyntheticScene = scene["truth"]
    _, quads = _followed(scene, capsys, "--person", "1")
    absent = ~truth.present[1]
    assert absent.any() and not np.isfinite(quads[absent]).any()


def test_config_checks() -> None:
    with pytest.raises(Exception, match="shot_frames"):
        SceneConfig(shot_frames=1)


def test_written_scene_round_trips(tmp_path: Path) -> None:
    from reenact import video
    from reenact.faces.landmarks import read_landmarks

    truth = make_scene(SceneConfig(shot_frames=2))
    clip, landmarks = write_scene(truth, tmp_path)
    assert video.probe(clip).frame_count == truth.config.num_frames
    points = read_landmarks(landmarks)  # [T, P, 68, 2]
    assert np.array_equal(np.isfinite(points).all(axis=(2, 3)).T, truth.present)


def test_the_main_person_is_the_one_in_most_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cast driver's default person is its main one (`MAIN_PERSON`): here person 0, in every shot but
    small in the first, while the largest face of the first frame is person 1's."""
    from reenact.stages.align import LARGEST_FACE, MAIN_PERSON
    from reenact.stages.people import ClipPeople, choose_person

    shots = ((1, 0), (0, None), (0, None), (1, 0))
    truth = make_scene(SceneConfig(shots=shots))
    clip, landmarks = write_scene(truth, tmp_path)
    scene = {
        "common": [str(clip), "--landmarks", str(landmarks), "--workdir", str(tmp_path / "work"), "--quiet"]
    }
    found = {person["id"]: person["frames"] for person in _people(scene, capsys)}
    people = ClipPeople.load(next((tmp_path / "work").glob("people/*/people.npz")).parent)
    frames = {person.id: person.frames for person in people.people}

    def true_person(found_id: int) -> int:
        return next(p for p in range(2) if np.array_equal(np.flatnonzero(truth.present[p]), frames[found_id]))

    main = choose_person(people, MAIN_PERSON, path=clip, reference=None, threshold=0.0)
    largest = choose_person(people, LARGEST_FACE, path=clip, reference=None, threshold=0.0)
    assert true_person(main) == 0 and found[main] == truth.present[0].sum() > truth.present[1].sum()
    assert true_person(largest) == 1, "the rules differ on this scene, so the test tells them apart"
