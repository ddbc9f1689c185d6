"""`reenact evaluate` per person (issue #25): each person of the reference is scored alone, their faces in
the output found at their places, so damage to one person's face shows in their figures only."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from reenact.config import MetricsConfig
from reenact.faces.landmarks import NUM_LANDMARKS, detection_from_points, write_landmarks
from reenact.metrics import DESCRIPTOR_DIM, PersonTrack, match_faces, person_figures
from reenact.synthetic import landmark_template, measured_settings
from reenact.synthetic_scene import SceneConfig, SyntheticScene, make_scene, write_scene
from reenact.video import VideoWriter, new_video_info
from reenact_cli.main import run

SHOT_FRAMES = 4
"""Frames per shot: jitter needs three frames of one shot."""
DAMAGED = 1
"""The person whose face the "output" damages."""
NOISE_SIGMA = 40.0
"""Pixel noise added inside the damaged person's crop square."""
POINT_NOISE_PX = 1.0
"""Noise on the damaged person's landmarks in the output's sidecar."""
FACE_SIZE = 48.0
"""The scene's left face (the figures below were measured on it): with larger faces the damaged person's
larger noisy square takes more of the encoder's bits, and the clean face's coding PSNR falls to ~45 dB."""


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The scene, an output where only person 1's face is noisy (pixels and landmarks), and what
    `reenact evaluate` reports of it (the --report file and the printed summary)."""
    root = tmp_path_factory.mktemp("evaluate-people")
    scene = make_scene(SceneConfig(shot_frames=SHOT_FRAMES, face_size=FACE_SIZE))
    clip, sidecar = write_scene(scene, root / "scene")
    rng = np.random.default_rng(0)
    frames = scene.frames.copy()
    for frame in scene.frames_of(DAMAGED):
        corners = scene.quads[DAMAGED, frame]  # [4, 2] the face's crop square
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        region = frames[frame, y0:y1, x0:x1].astype(np.float64)
        noisy = region + rng.normal(scale=NOISE_SIGMA, size=region.shape)
        frames[frame, y0:y1, x0:x1] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    config = scene.config
    info = new_video_info(width=config.frame_width, height=config.frame_height, fps=Fraction(config.fps))
    output = root / "output.mp4"
    with VideoWriter(output, like=info, config=measured_settings().video) as writer:
        for index, image in enumerate(frames):
            writer.write(image, pts=index)
    points = scene.landmarks.transpose(1, 0, 2, 3).copy()  # [T, P, 68, 2]
    points[:, DAMAGED] += rng.normal(scale=POINT_NOISE_PX, size=points[:, DAMAGED].shape)
    output_sidecar = write_landmarks(root / "output_landmarks.npz", points)
    report = root / "report.json"
    args = [str(output), "--reference", str(clip), "--landmarks", str(sidecar)]
    args += ["--output-landmarks", str(output_sidecar), "--workdir", str(root / "work")]
    args += ["--no-lpips", "--quiet", "--report", str(report)]
    return {"scene": scene, "args": args, "report": report}


def _evaluate(scored: dict, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    if not scored["report"].exists():
        code = run(["evaluate", *scored["args"]])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        scored["printed"] = captured.out
    return json.loads(scored["report"].read_text()), scored["printed"]


def test_people_and_their_frames_are_the_truths(scored: dict, capsys: pytest.CaptureFixture[str]) -> None:
    report, printed = _evaluate(scored, capsys)
    scene: SyntheticScene = scored["scene"]
    people = report["people"]
    assert [person["id"] for person in people] == list(range(scene.config.num_people))
    assert [person["frames"] for person in people] == scene.present.sum(axis=1).tolist()  # [16, 12]
    assert all(person["frames_without_face"] == 0 for person in people)  # every face matched by position
    for index, frame in enumerate(report["frames"]):  # per frame: who is there
        assert [record["id"] for record in frame["people"]] == np.flatnonzero(
            scene.present[:, index]
        ).tolist()
    for person in people:
        frames = person["frames"]
        assert f"  person {person['id']}  {frames} frames  TL-ID " in printed
    # the whole-clip figures are as before: dlib's largest face, which it never finds on synthetic faces
    assert report["summary"]["frames_without_face"] == scene.config.num_frames
    assert report["summary"]["psnr_mean"] < 40.0


def test_only_the_damaged_person_scores_worse(scored: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """Person 0's figures stay near perfect and person 1's drop: a score of the whole frame, or of the
    largest face (person 0 in two shots, person 1 in the others), given to each person would fail."""
    report, _ = _evaluate(scored, capsys)
    clean, damaged = report["people"][0], report["people"][DAMAGED]
    # measured: face PSNR 57.2 dB (coding only) and 16.3 dB (sigma 40 noise); whole frames 31.8 dB
    assert clean["face_psnr_mean"] > 45.0 and clean["face_psnr_min"] > 35.0
    assert damaged["face_psnr_mean"] < 22.0
    # landmarks: person 0's are the reference's exactly, person 1's moved by 1 px noise
    assert clean["jitter_output"] == pytest.approx(clean["jitter_reference"], rel=1e-9)
    assert damaged["jitter_output"] > 50 * damaged["jitter_reference"]  # measured 0.096 vs 0.00017
    # identity (dlib descriptors on the aligned face chip): measured 0.9990 and 0.9365
    assert 1.0 - damaged["id_to_reference_mean"] > 10 * (1.0 - clean["id_to_reference_mean"])
    assert clean["tl_id"] == pytest.approx(1.0, abs=0.005) and clean["tg_id"] == pytest.approx(1.0, abs=0.005)
    assert damaged["tl_id"] < 0.99 and damaged["tg_id"] < 0.99  # measured 0.969, 0.965


# ---------------------------------------------------------------------------------------------- pure


def _face(centre: tuple[float, float], side: float) -> np.ndarray:
    """68 points [68, 2] of the synthetic template's face, its crop square `side` around `centre`."""
    template = landmark_template(64)  # [68, 2] in a 64-pixel crop
    return (template - 32.0) * side / 64.0 + np.asarray(centre)


def test_faces_are_matched_by_position_not_order_or_size() -> None:
    left, right = _face((50, 50), 40), _face((150, 50), 30)
    reference = [detection_from_points(left), detection_from_points(right)]
    ref_boxes = np.stack([face.box for face in reference])
    ref_points = np.stack([face.points for face in reference])
    # the output lists the right face first, a little moved, and a stranger far away
    output = [detection_from_points(right + 2.0), detection_from_points(_face((100, 150), 40))]
    output.append(detection_from_points(left - 1.5))
    assert match_faces(ref_boxes, ref_points, output).tolist() == [2, 0]
    assert match_faces(ref_boxes, ref_points, output[1:2]).tolist() == [-1, -1]  # beyond the gates
    assert match_faces(ref_boxes, ref_points, []).tolist() == [-1, -1]


def test_person_jitter_keeps_within_shots_and_tracklets() -> None:
    """A person still in each of two runs but in another place in the second: no jitter when the runs are
    apart (a cut, or a new tracklet), much when the jitter would run across the jump."""
    frames = 8
    points = np.stack([_face((50, 50), 40)] * 4 + [_face((150, 50), 40)] * 4)  # [8, 68, 2]

    def track(starts: list[int]) -> PersonTrack:
        return PersonTrack(
            id=0,
            faces=np.arange(frames),
            starts=starts,
            out_embeddings=np.ones((frames, DESCRIPTOR_DIM)),
            ref_embeddings=np.ones((frames, DESCRIPTOR_DIM)),
            out_points=points,
            ref_points=points,
            to_reference=np.ones(frames),
            face_psnr=np.full(frames, 40.0),
        )

    config = MetricsConfig()
    assert person_figures(track([0]), num_frames=frames, cuts=[4], config=config)["jitter_output"] == 0.0
    assert person_figures(track([0, 4]), num_frames=frames, cuts=[], config=config)["jitter_output"] == 0.0
    across = person_figures(track([0]), num_frames=frames, cuts=[], config=config)
    assert across["jitter_output"] > 0.5 and across["frames"] == frames and across["tl_id"] == 1.0
    assert points.shape == (frames, NUM_LANDMARKS, 2)
