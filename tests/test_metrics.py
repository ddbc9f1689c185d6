"""reenact.metrics and `reenact evaluate`: STIT's TL-ID/TG-ID, jitter, PSNR/LPIPS, the report and plot."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact.config import Config, MetricsConfig, VideoConfig
from reenact.device import resolve_runtime
from reenact.errors import ReenactError
from reenact.metrics import (
    IDENTITY_COLOUR,
    PSNR_COLOUR,
    EvaluationReport,
    IdentityEmbedder,
    evaluate_videos,
    identity_similarity_stats,
    landmark_jitter,
    load_lpips,
    psnr,
    render_plot,
    tg_id,
    tl_id,
    write_plot,
)
from reenact.video import VideoReader, VideoWriter, new_video_info
from reenact_cli.main import EXIT_USAGE, run
from tests.conftest import testdata_file
from tests.progresstools import RecordingProgress

SIDE = 256
"""Test clips are downscaled to SIDE x SIDE (both sources are square)."""
NUM_FRAMES = 16
HALF = NUM_FRAMES // 2
FPS = 25
CRF = 12
EMBED_DIM = 128
SHUFFLE_SEED = 3


# ---------------------------------------------------------------------------------------------- pure


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _expected_stats(embeddings: np.ndarray, rows: list[int] | None = None) -> tuple[float, float]:
    """TL and TG by explicit loops over frame pairs (independent of the vectorised code)."""
    present = [i for i in range(len(embeddings)) if np.isfinite(embeddings[i]).all()]
    local = [_cos(embeddings[i], embeddings[i + 1]) for i in present if i + 1 in present]
    chosen = present if rows is None else rows
    pairs = [_cos(embeddings[i], embeddings[j]) for i, j in itertools.combinations(chosen, 2)]
    return float(np.mean(local)), float(np.mean(pairs))


def _random_embeddings(num_frames: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=EMBED_DIM)
    return identity + 0.3 * rng.normal(size=(num_frames, EMBED_DIM))  # [N, 128]


def test_tl_tg_match_pair_loops_and_skip_missing_frames() -> None:
    embeddings = _random_embeddings(9, seed=0)
    embeddings[4] = np.nan  # a frame without a face: pairs (3, 4) and (4, 5) drop out of TL
    tl, tg = identity_similarity_stats(embeddings)
    expected_tl, expected_tg = _expected_stats(embeddings)
    assert tl == pytest.approx(expected_tl, abs=1e-12)
    assert tg == pytest.approx(expected_tg, abs=1e-12)
    # cosine: rescaling a descriptor changes nothing
    scaled = embeddings * np.linspace(0.5, 3.0, len(embeddings))[:, None]
    assert identity_similarity_stats(scaled) == pytest.approx((tl, tg), abs=1e-12)


def test_tg_subsamples_evenly_spaced_frames_with_a_face() -> None:
    embeddings = _random_embeddings(11, seed=1)
    embeddings[1] = np.nan  # present rows: 0, 2, 3, ..., 10 (10 rows); 4 evenly spaced of them
    _, tg = identity_similarity_stats(embeddings, tg_max_frames=4)
    present = [0, *range(2, 11)]
    rows = [present[i] for i in (0, 3, 6, 9)]  # linspace(0, 9, 4)
    assert tg == pytest.approx(_expected_stats(embeddings, rows)[1], abs=1e-12)
    assert tg != pytest.approx(identity_similarity_stats(embeddings)[1], abs=1e-6)


def test_ratios_are_one_on_self_and_see_order_and_identity() -> None:
    person_a, person_b = _random_embeddings(8, seed=2), _random_embeddings(8, seed=3)
    assert tl_id(person_a, person_a) == 1.0 and tg_id(person_a, person_a) == 1.0
    spliced = np.concatenate([person_a[:4], person_b[:4]])
    interleaved = spliced[[0, 4, 1, 5, 2, 6, 3, 7]]
    # same frames, other order: TG (all pairs) unchanged, TL (adjacent pairs) drops
    assert tg_id(interleaved, spliced) == pytest.approx(1.0, abs=1e-12)
    assert tl_id(interleaved, spliced) < 0.5
    assert tg_id(spliced, person_a) < 0.8


def test_undefined_without_pairs() -> None:
    one_face = np.full((3, EMBED_DIM), np.nan)
    one_face[1] = 1.0
    tl, tg = identity_similarity_stats(one_face)
    assert np.isnan(tl) and np.isnan(tg)
    assert np.isnan(tl_id(one_face, _random_embeddings(3, seed=4)))


def test_psnr_known_values_and_cap() -> None:
    image = np.full((8, 6, 3), 100, dtype=np.uint8)
    off_by_one = image + 1  # MSE 1
    assert psnr(image, off_by_one) == pytest.approx(10 * np.log10(255.0**2), abs=1e-9)
    assert psnr(image, image) == 100.0
    assert psnr(image, image, max_db=60.0) == 60.0


def test_landmark_jitter_grows_with_noise_and_respects_shots() -> None:
    rng = np.random.default_rng(0)
    template = rng.uniform(100, 200, size=(68, 2))
    steady = np.repeat(template[None], 12, axis=0)  # [12, 68, 2]
    assert landmark_jitter(steady) == 0.0
    small = landmark_jitter(steady + rng.normal(scale=0.5, size=steady.shape))
    large = landmark_jitter(steady + rng.normal(scale=3.0, size=steady.shape))
    assert 0 < small < large
    jump = steady.copy()
    jump[6:] += 40.0  # a cut: the face is elsewhere from frame 6 on
    assert landmark_jitter(jump) > 0.01
    assert landmark_jitter(jump, [(0, 6), (6, 12)]) == 0.0


def _fake_report(num_frames: int) -> EvaluationReport:
    frames = []
    for index in range(num_frames):
        frames.append(
            {
                "index": index,
                "psnr": 30.0 + 5.0 * np.sin(index / 3.0),
                "lpips": None,
                "id_to_reference": None if index == 4 else 0.9 + 0.05 * np.cos(index / 2.0),
                "id_to_previous": None,
                "face_found": index != 4,
                "reference_face_found": True,
            }
        )
    return EvaluationReport(summary={"tl_id": 0.98, "tg_id": float("nan")}, frames=frames)


def _colour_pixels(image: np.ndarray, bgr: tuple[int, int, int]) -> int:
    return int((np.abs(image.astype(int) - np.array(bgr)).sum(axis=2) < 30).sum())


def test_plot_is_a_png_with_both_series(tmp_path: Path) -> None:
    report = _fake_report(20)
    path = write_plot(report, tmp_path / "plot.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape == render_plot(report).shape
    # both polylines are drawn (far more pixels than their legend swatches and tick labels)
    assert _colour_pixels(image, PSNR_COLOUR) > 1000
    assert _colour_pixels(image, IDENTITY_COLOUR) > 1000
    assert (image < 128).any(axis=2).mean() > 0.01  # axes, labels
    parsed = json.loads(report.to_json())
    assert parsed["summary"]["tg_id"] is None  # NaN -> null


# ------------------------------------------------------------------------------------ real clips


def _read_clip(name: str, count: int) -> list[np.ndarray]:
    frames = []
    for frame in VideoReader(testdata_file(name)).frames(upright=True):
        frames.append(cv2.resize(frame.image, (SIDE, SIDE), interpolation=cv2.INTER_AREA))
        if len(frames) == count:
            break
    return frames


def _write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    like = new_video_info(width=width, height=height, fps=Fraction(FPS))
    with VideoWriter(path, like=like, config=VideoConfig(crf=CRF)) as writer:
        for image in frames:
            writer.write(image)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short downscaled clips: one person, a splice of two people, shuffles, noise, wrong length/size."""
    folder = tmp_path_factory.mktemp("metrics")
    face2 = _read_clip("retalk_face2.mp4", NUM_FRAMES)
    other = _read_clip("lp_driving_d3.mp4", HALF)
    spliced = face2[:HALF] + other
    order = np.random.default_rng(SHUFFLE_SEED).permutation(NUM_FRAMES)
    noise_rng = np.random.default_rng(0)
    noisy = [
        np.clip(image + noise_rng.normal(scale=12.0, size=image.shape), 0, 255).astype(np.uint8)
        for image in face2
    ]
    small = [cv2.resize(image, (SIDE // 2, SIDE // 2)) for image in face2]
    return {
        "face2": _write_clip(folder / "face2.mp4", face2),
        "spliced": _write_clip(folder / "spliced.mp4", spliced),
        "spliced_shuffled": _write_clip(folder / "spliced_shuffled.mp4", [spliced[i] for i in order]),
        "face2_shuffled": _write_clip(folder / "face2_shuffled.mp4", [face2[i] for i in order]),
        "noisy": _write_clip(folder / "noisy.mp4", noisy),
        "short": _write_clip(folder / "short.mp4", face2[: NUM_FRAMES - 4]),
        "small": _write_clip(folder / "small.mp4", small),
    }


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return IdentityEmbedder()


def _evaluate(clips: dict[str, Path], output: str, reference: str, embedder: IdentityEmbedder, **kw):
    return evaluate_videos(clips[output], clips[reference], embedder=embedder, use_lpips=False, **kw)


def test_embedder_finds_the_face_and_separates_people(clips: dict[str, Path], embedder) -> None:
    face2, other = _read_clip("retalk_face2.mp4", 2), _read_clip("lp_driving_d3.mp4", 1)
    same = [embedder.embed(image) for image in face2]
    different = embedder.embed(other[0])
    assert all(e is not None and e.shape == (EMBED_DIM,) for e in [*same, different])
    assert embedder.embed(np.zeros((SIDE, SIDE, 3), np.uint8)) is None
    from reenact.metrics import cosine_similarity

    assert cosine_similarity(same[0], same[1]) > 0.97
    assert cosine_similarity(same[0], different) < 0.9


def test_clip_against_itself_scores_one(clips: dict[str, Path], embedder) -> None:
    progress = RecordingProgress()
    report = _evaluate(clips, "face2", "face2", embedder, progress=progress)
    assert [(name, total) for name, total, *_ in progress.tasks] == [("evaluate", NUM_FRAMES)]
    assert progress.done("evaluate") == NUM_FRAMES
    summary = report.summary
    assert summary["tl_id"] == pytest.approx(1.0, abs=1e-12)
    assert summary["tg_id"] == pytest.approx(1.0, abs=1e-12)
    assert summary["frames"] == NUM_FRAMES and summary["frames_without_face"] == 0
    assert summary["psnr_mean"] == MetricsConfig().psnr_max_db  # identical frames: the documented cap
    assert all(frame["id_to_reference"] == pytest.approx(1.0, abs=1e-9) for frame in report.frames)
    assert summary["jitter_output"] == summary["jitter_reference"]
    assert summary["lpips_mean"] is None and "switched off" in summary["lpips_note"]


def test_shuffled_two_person_clip_loses_tl_but_keeps_tg(clips: dict[str, Path], embedder) -> None:
    summary = _evaluate(clips, "spliced_shuffled", "spliced", embedder).summary
    assert summary["tl_id"] < 0.95  # measured ~0.90: adjacent frames now often show different people
    assert summary["tg_id"] == pytest.approx(1.0, abs=0.01)  # the same frames: all pairs unchanged
    assert summary["jitter_output"] > 5 * summary["jitter_reference"]  # the face jumps about


def test_shuffled_one_person_clip_loses_a_little_tl(clips: dict[str, Path], embedder) -> None:
    summary = _evaluate(clips, "face2_shuffled", "face2", embedder).summary
    assert summary["tl_id"] < 0.999  # measured ~0.996: pose/expression change between distant frames
    assert summary["tg_id"] == pytest.approx(1.0, abs=0.002)


def test_second_half_another_person_lowers_tg(clips: dict[str, Path], embedder) -> None:
    report = _evaluate(clips, "spliced", "face2", embedder)
    assert report.summary["tg_id"] < 0.95  # measured ~0.90
    to_reference = np.array([frame["id_to_reference"] for frame in report.frames])
    assert to_reference[:HALF].min() > 0.97  # the same person, re-encoded
    assert to_reference[HALF:].max() < 0.9  # another person


def test_noise_lowers_psnr_and_lpips_sees_it(clips: dict[str, Path], embedder) -> None:
    from reenact.losses import LPIPS
    from reenact.weights import lpips_heads_path

    lpips = LPIPS(net="alex", random_backbone=True, heads_path=lpips_heads_path("alex"))  # random: tests only
    noisy = _evaluate(clips, "noisy", "face2", embedder, lpips=lpips)
    clean = _evaluate(clips, "face2", "face2", embedder, lpips=lpips)
    noisy_psnr = np.array([frame["psnr"] for frame in noisy.frames])
    assert noisy_psnr.shape == (NUM_FRAMES,)
    assert np.all(noisy_psnr < 35.0)  # noise sigma 12 (~26.5 dB) plus coding loss
    assert np.all(noisy_psnr > 15.0)
    noisy_lpips = np.array([frame["lpips"] for frame in noisy.frames])
    clean_lpips = np.array([frame["lpips"] for frame in clean.frames])
    assert noisy_lpips.shape == clean_lpips.shape == (NUM_FRAMES,)
    assert np.all(clean_lpips == 0.0)
    assert np.all(noisy_lpips > 1e-3)
    assert noisy.summary["lpips_mean"] == pytest.approx(noisy_lpips.mean())
    assert noisy.summary["lpips_note"] is None


# ------------------------------------------------------------------------------------------- CLI


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run in a fresh folder: the people of a reference are cached in ./reenact-work."""
    monkeypatch.chdir(tmp_path)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty weight cache: LPIPS's backbone file is missing."""
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "cache"))


@pytest.mark.usefixtures("no_weights")
def test_cli_json_report_and_plot(clips: dict[str, Path], tmp_path: Path, capsys) -> None:
    plot, report = tmp_path / "plot.png", tmp_path / "report.json"
    code, out, err = _run(
        capsys, clips["spliced"], "--reference", clips["face2"], "--json", "--plot", plot, "--report", report
    )
    assert code == 0, err
    printed = json.loads(out)
    assert printed == json.loads(report.read_text())
    summary = printed["summary"]
    assert summary["tg_id"] < 0.95 and summary["tl_id"] < 1.0
    assert summary["lpips_mean"] is None and "alexnet" in summary["lpips_note"]  # no random stand-in
    assert len(printed["frames"]) == NUM_FRAMES
    assert set(printed["frames"][0]) >= {"psnr", "lpips", "id_to_reference", "id_to_previous", "face_found"}
    assert printed["frames"][0]["id_to_previous"] is None
    assert all(frame["lpips"] is None for frame in printed["frames"])
    (person,) = printed["people"]  # the reference's one person, in every frame
    assert person["frames"] == NUM_FRAMES and person["face_psnr_mean"] is not None
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[2] == 3
    assert _colour_pixels(image, PSNR_COLOUR) > 500 and _colour_pixels(image, IDENTITY_COLOUR) > 500


@pytest.mark.usefixtures("no_weights")
def test_cli_human_summary(clips: dict[str, Path], capsys) -> None:
    code, out, err = _run(capsys, clips["face2"], "--reference", clips["face2"], "--no-lpips")
    assert code == 0, err
    assert "TL-ID     1.0000" in out and "TG-ID     1.0000" in out
    assert "PSNR      100.00 dB" in out and "LPIPS     n/a" in out
    assert f"  person 0  {NUM_FRAMES} frames  TL-ID 1.0000  TG-ID 1.0000  identity 1.0000  jitter " in out
    code, out, err = _run(capsys, clips["face2"], "--reference", clips["face2"], "--no-lpips", "--no-people")
    assert code == 0, err
    assert "TL-ID     1.0000" in out and "person" not in out


def test_mismatched_frame_counts_fail_before_progress_starts(clips: dict[str, Path], embedder) -> None:
    progress = RecordingProgress()
    with pytest.raises(ReenactError, match="frames"):
        _evaluate(clips, "short", "face2", embedder, progress=progress)
    assert progress.tasks == []


@pytest.mark.parametrize(
    ("output", "message"), [("short", "frame"), ("small", "frame sizes differ")], ids=["count", "size"]
)
def test_cli_mismatched_clips_are_one_line_errors(clips: dict[str, Path], output: str, message: str, capsys):
    code, out, err = _run(capsys, clips[output], "--reference", clips["face2"], "--no-lpips")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err and out == ""


def test_cli_refuses_to_overwrite_and_non_png_plot(clips: dict[str, Path], tmp_path: Path, capsys) -> None:
    existing = tmp_path / "report.json"
    existing.write_text("{}")
    code, _, err = _run(capsys, clips["face2"], "--reference", clips["face2"], "--report", existing)
    assert code == 1 and "--overwrite" in err and existing.read_text() == "{}"
    code, _, err = _run(capsys, clips["face2"], "--reference", clips["face2"], "--plot", tmp_path / "p.jpg")
    assert code == EXIT_USAGE and ".png" in err


def test_pti_and_evaluate_build_lpips_from_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the AlexNet weights, PTI's loss refuses and evaluate notes why, with the same message."""
    from reenact.pipeline import loss_networks  # torch-heavy: only this test needs it

    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    settings = Config().with_values(invert={"perceptual_weight": 0.0}, pti={"lpips_net": "alex"})
    with pytest.raises(ReenactError, match="alexnet") as refused:
        loss_networks(settings, runtime=resolve_runtime("cpu"))
    model, note = load_lpips("alex")
    assert model is None and note == f"LPIPS not computed: {refused.value}"
