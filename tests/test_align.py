"""FFHQ quads, temporal smoothing and the crop warp (reenact/faces/align.py).

Real-clip checks use dlib's 68-point predictor from the installed face_recognition_models files,
detecting on a downscaled copy, over a few frames only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact.config import AlignConfig
from reenact.errors import ReenactError
from reenact.faces.align import (
    crop_matrix,
    fastest_frame,
    ffhq_quad,
    quad_delay,
    quad_jitter,
    quad_params,
    quad_size,
    quads_from_params,
    rot90,
    smooth_quads,
    transform_points,
    warp_to_crop,
    warp_to_frame,
)
from reenact.faces.landmarks import NUM_LANDMARKS, DlibLandmarks
from tests.conftest import testdata_file
from tests.smoothtools import CAUSAL_WINDOW, causal_average, fast_synthetic_track

DETECT_WIDTH = 320
TRACK_FRAMES = 100
MIN_JITTER_CUT = 0.5
"""Issue #23: smoothing removes at least half of the quad jitter on every clip."""
MAX_DELAY_FRAMES = 0.25
"""Largest delay of the smoothed centre behind the truth around the fastest motion (a causal 5-frame
mean is 2 frames late)."""
FAST_HALF_WINDOW = 15
"""Frames each side of the fastest motion where delay and error are measured."""
FAST_ERROR_RATIO = 0.7
"""Around the fastest motion the default filter's error to the truth is below this share of the raw
track's: it removes noise without rounding off the turn (the old robust Gaussian, sigma 1.5, is above 1)."""
FILTERS = ("loess", "gaussian", "robust", "savgol", "one_euro")


# ----------------------------------------------------------------------------------------------------
# Helpers shared with tests/test_composite.py


def read_frames(path: Path, num_frames: int) -> list[np.ndarray]:
    """First frames of a clip (or the image) as RGB uint8 arrays."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < num_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def dlib_points(frames: list[np.ndarray]) -> np.ndarray:
    """68 landmarks [T, 68, 2] of the largest face per frame (NaN where dlib finds none)."""
    backend = DlibLandmarks(detect_max_side=DETECT_WIDTH)
    points = np.full((len(frames), NUM_LANDMARKS, 2), np.nan)
    for index, frame in enumerate(frames):
        faces = backend.detect(frame, frame_index=index)
        if faces:
            points[index] = max(faces, key=lambda face: face.size).points
    return points


def hand_points() -> np.ndarray:
    """68 points with both eyes, both mouth corners at known places (the rest irrelevant)."""
    points = np.zeros((68, 2))
    points[36:42] = (40.0, 50.0)
    points[42:48] = (60.0, 50.0)
    points[48] = (44.0, 80.0)
    points[54] = (56.0, 80.0)
    return points


def synthetic_track(seed: int, num_frames: int = 120, noise: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """(truth, noisy) quads: a smooth sway with slow zoom and roll, plus white corner noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames, dtype=np.float64)
    size = 400.0
    centre = np.stack([300 + 20 * np.sin(t / 15.0), 250 + 12 * np.cos(t / 11.0)], axis=1)
    roll = 0.1 * np.sin(t / 20.0)
    half = size / 2 * (1 + 0.05 * np.sin(t / 25.0))
    x = np.stack([np.cos(roll), np.sin(roll)], axis=1) * half[:, None]
    truth = quads_from_params(centre, x, rot90(x))
    noisy = truth + rng.normal(0.0, noise * size, truth.shape)
    return truth, noisy


def corner_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean corner distance between two quad tracks, in quad sides."""
    return float(np.nanmean(np.linalg.norm(a - b, axis=-1).mean(axis=-1) / quad_size(b)))


# ----------------------------------------------------------------------------------------------------
# ffhq_quad


def test_ffhq_quad_known_numbers():
    # eye_avg (50, 50), eye_to_eye (20, 0), eye_to_mouth (0, 30): x = (20, 0) - (-30, 0) -> (1, 0) scaled
    # by max(2 * 20, 1.8 * 30) = 54; y = (0, 54); c = (50, 50) + 0.1 * (0, 30) = (50, 53).
    quad = ffhq_quad(hand_points())
    expected = np.array([[-4.0, -1.0], [-4.0, 107.0], [104.0, 107.0], [104.0, -1.0]])
    np.testing.assert_allclose(quad, expected, atol=1e-12)


def test_ffhq_quad_eye_distance_dominates():
    points = hand_points()
    points[36:42] = (20.0, 50.0)
    points[42:48] = (80.0, 50.0)  # eye_to_eye 60 -> half side 120 > 1.8 * 30
    _, x, y = quad_params(ffhq_quad(points))
    np.testing.assert_allclose(x, [120.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(y, [0.0, 120.0], atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_ffhq_quad_similarity_equivariance(seed):
    rng = np.random.default_rng(seed)
    points = hand_points() + rng.normal(0.0, 2.0, (68, 2))
    angle, scale, shift = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 4.0), rng.uniform(-500, 500, 2)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + shift
    np.testing.assert_allclose(ffhq_quad(moved), ffhq_quad(points) @ rotation.T + shift, atol=1e-9)


def test_ffhq_quad_rejects_wrong_shape():
    with pytest.raises(ValueError):
        ffhq_quad(np.zeros((5, 2)))


def test_quad_params_round_trip():
    rng = np.random.default_rng(0)
    c, x = rng.normal(size=(7, 2)) * 100, rng.normal(size=(7, 2)) * 50
    y = rot90(x)
    for got, want in zip(quad_params(quads_from_params(c, x, y)), (c, x, y), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-9)


# ----------------------------------------------------------------------------------------------------
# Crop geometry


def test_crop_matrix_sends_quad_to_crop_corners():
    resolution = 64
    quad = quads_from_params(np.array([120.3, 80.7]), np.array([30.0, 10.0]), np.array([-10.0, 30.0]))
    matrix = crop_matrix(quad, resolution)
    assert matrix.dtype == np.float64 and matrix.shape == (3, 3)
    edge = resolution - 0.5
    expected = np.array([[-0.5, -0.5], [-0.5, edge], [edge, edge], [edge, -0.5]])
    np.testing.assert_allclose(transform_points(quad, matrix), expected, atol=1e-9)
    centre = (resolution - 1) / 2
    np.testing.assert_allclose(transform_points(quad.mean(axis=0), matrix), [centre, centre], atol=1e-9)


def _ramp(shape: tuple[int, int], coefficients: tuple[float, float, float]) -> np.ndarray:
    """A float32 image [H, W, 3] whose channels are linear in (x, y): exact under cubic interpolation."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    a, b, offset = coefficients
    base = a * xs + b * ys + offset
    return np.stack([base, 2 * base, base + 50], axis=-1).astype(np.float32)


def test_warp_to_crop_samples_at_the_mapped_points():
    resolution = 96
    quad = quads_from_params(np.array([150.25, 120.6]), np.array([40.0, 12.0]), np.array([-12.0, 40.0]))
    matrix = crop_matrix(quad, resolution)
    frame = _ramp((300, 320), (0.3, 0.2, 10.0))
    crop = warp_to_crop(frame, matrix, resolution)
    vs, us = np.mgrid[0:resolution, 0:resolution].astype(np.float64)
    where = transform_points(np.stack([us, vs], axis=-1), np.linalg.inv(matrix))  # [R, R, 2] in the frame
    expected = 0.3 * where[..., 0] + 0.2 * where[..., 1] + 10.0
    # OpenCV quantises sample positions (1/32 px); 0.1 px of position error at this gradient is 0.036,
    # a half-pixel convention slip would be 0.18.
    np.testing.assert_allclose(crop[..., 0], expected, atol=0.036)


def test_warp_to_frame_is_the_inverse_geometry():
    resolution = 128
    quad = quads_from_params(np.array([150.25, 120.6]), np.array([40.0, 12.0]), np.array([-12.0, 40.0]))
    matrix = crop_matrix(quad, resolution)
    crop = _ramp((resolution, resolution), (0.5, -0.25, 100.0))
    frame_shape = (260, 300, 3)
    back = warp_to_frame(crop, matrix, frame_shape)
    ys, xs = np.mgrid[0 : frame_shape[0], 0 : frame_shape[1]].astype(np.float64)
    uv = transform_points(np.stack([xs, ys], axis=-1), matrix)  # frame pixel -> crop coordinates
    expected = 0.5 * uv[..., 0] - 0.25 * uv[..., 1] + 100.0
    inner = (uv >= 2).all(axis=-1) & (uv <= resolution - 3).all(axis=-1)
    assert inner.sum() > 5000
    np.testing.assert_allclose(back[..., 0][inner], expected[inner], atol=0.056)  # 0.1 px
    outside = (uv < -2).any(axis=-1) | (uv > resolution + 1).any(axis=-1)  # beyond the cubic kernel
    assert np.all(back[outside] == 0)


def test_warp_to_crop_antialiases_when_shrinking():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    quad = quads_from_params(np.array([200.0, 200.0]), np.array([150.0, 0.0]), np.array([0.0, 150.0]))
    resolution = 60  # a 5x shrink
    crop = warp_to_crop(frame, crop_matrix(quad, resolution), resolution)
    # Point-sampled white noise keeps its std (~74); a 5x low-pass leaves a fraction of it.
    assert crop.std() < 0.5 * frame.std()


# ----------------------------------------------------------------------------------------------------
# Smoothing: synthetic truth


@pytest.mark.parametrize("filter_name", FILTERS)
def test_smoothing_gets_closer_to_truth(filter_name):
    config = dataclasses.replace(AlignConfig(), filter=filter_name)
    errors_raw, errors_smooth = [], []
    for seed in range(3):
        truth, noisy = synthetic_track(seed)
        smoothed = smooth_quads(noisy, segments=[(0, len(noisy))], config=config)
        errors_raw.append(corner_error(noisy, truth))
        errors_smooth.append(corner_error(smoothed, truth))
    assert np.mean(errors_smooth) < 0.7 * np.mean(errors_raw)


def fast_motion_scores(smooth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per seed of the fast synthetic track: jitter cut, delay (frames) and error-to-truth ratio (smoothed
    over raw) around the fastest motion."""
    cuts, delays, ratios = [], [], []
    for seed in range(3):
        truth, noisy = fast_synthetic_track(seed)
        segments = [(0, len(noisy))]
        smoothed = smooth(noisy, segments)
        cuts.append(1.0 - quad_jitter(smoothed, segments) / quad_jitter(noisy, segments))
        peak = fastest_frame(truth, segments, half_window=FAST_HALF_WINDOW)
        window = np.arange(peak - FAST_HALF_WINDOW, peak + FAST_HALF_WINDOW + 1)
        delays.append(quad_delay(smoothed, truth, window, max_shift=6))
        ratios.append(
            corner_error(smoothed[window], truth[window]) / corner_error(noisy[window], truth[window])
        )
    return np.array(cuts), np.array(delays), np.array(ratios)


def test_default_filter_halves_jitter_without_delay_on_fast_motion():
    cuts, delays, ratios = fast_motion_scores(
        lambda quads, segments: smooth_quads(quads, segments=segments, config=AlignConfig())
    )
    assert np.all(cuts >= MIN_JITTER_CUT)
    assert np.all(np.abs(delays) <= MAX_DELAY_FRAMES)
    assert np.all(ratios <= FAST_ERROR_RATIO)


def test_fast_motion_checks_fail_without_filter_with_a_causal_one_and_the_old_default():
    cuts, _, _ = fast_motion_scores(lambda quads, segments: quads)
    assert np.all(cuts < MIN_JITTER_CUT)
    _, delays, _ = fast_motion_scores(lambda quads, segments: causal_average(quads, window=CAUSAL_WINDOW))
    assert np.all(delays > 4 * MAX_DELAY_FRAMES)
    old = AlignConfig(filter="robust", sigma=1.5)
    _, _, ratios = fast_motion_scores(
        lambda quads, segments: smooth_quads(quads, segments=segments, config=old)
    )
    assert np.all(ratios > FAST_ERROR_RATIO)


def test_quad_delay_and_fastest_frame_known_values():
    t = np.arange(100, dtype=np.float64)
    centre = np.stack([200.0 + 40.0 / (1.0 + np.exp(-(t - 60.0) / 3.0)), np.full(100, 150.0)], axis=1)
    x = np.tile([50.0, 0.0], (100, 1))
    quads = quads_from_params(centre, x, rot90(x))
    assert fastest_frame(quads, [(0, 100)], half_window=10) == 60
    assert fastest_frame(quads, [(0, 40), (40, 100)], half_window=10) == 60
    assert fastest_frame(quads, [(0, 15)], half_window=10) is None
    late = np.concatenate([quads[:2], quads[:-2]])  # two frames late
    window = np.arange(45, 76)
    assert quad_delay(late, quads, window, max_shift=6) == pytest.approx(2.0, abs=0.05)
    assert quad_delay(quads, quads, window, max_shift=6) == pytest.approx(0.0, abs=1e-9)


def test_loess_follows_a_turn_exactly_and_keeps_short_runs_finite():
    t = np.arange(60, dtype=np.float64)
    centre = np.stack([300.0 + 0.05 * (t - 30.0) ** 2, 200.0 + 1.5 * t], axis=1)  # accelerating turn
    x = np.tile([100.0, 0.0], (60, 1))
    turn = quads_from_params(centre, x, rot90(x))
    segments = [(0, 60)]
    loess = smooth_quads(turn, segments=segments, config=AlignConfig(filter="loess"))
    gaussian = smooth_quads(turn, segments=segments, config=AlignConfig(filter="gaussian"))
    np.testing.assert_allclose(loess, turn, atol=1e-6)  # a quadratic fit leaves a quadratic as it is
    assert corner_error(gaussian[10:50], turn[10:50]) > 3e-4  # a Gaussian rounds it off (0.11 px)
    _, noisy = synthetic_track(3)
    for length in range(1, 6):
        short = smooth_quads(noisy[:length], segments=[(0, length)], config=AlignConfig(filter="loess"))
        assert np.isfinite(short).all()


def test_no_filter_changes_nothing():
    _, noisy = synthetic_track(0)
    config = dataclasses.replace(AlignConfig(), filter="none")
    np.testing.assert_array_equal(smooth_quads(noisy, segments=[(0, len(noisy))], config=config), noisy)


def test_robust_filter_ignores_an_outlier_frame():
    truth, _ = synthetic_track(0, noise=0.0)
    spiked = truth.copy()
    spiked[60] += 40.0  # one badly fitted frame, 10% of the quad
    segments = [(0, len(truth))]
    plain = smooth_quads(
        spiked, segments=segments, config=dataclasses.replace(AlignConfig(), filter="gaussian")
    )
    robust = smooth_quads(
        spiked, segments=segments, config=dataclasses.replace(AlignConfig(), filter="robust")
    )
    neighbours = slice(55, 66)
    assert corner_error(robust[neighbours], truth[neighbours]) < 0.1 * corner_error(
        plain[neighbours], truth[neighbours]
    )


@pytest.mark.parametrize("filter_name", FILTERS)
def test_nothing_is_smoothed_across_a_cut(filter_name):
    config = dataclasses.replace(AlignConfig(), filter=filter_name)
    _, first = synthetic_track(1)
    other = first.copy()
    other[60:] += 150.0  # a different shot after the cut at frame 60
    segments = [(0, 60), (60, len(first))]
    a = smooth_quads(first, segments=segments, config=config)
    b = smooth_quads(other, segments=segments, config=config)
    alone = smooth_quads(first[:60], segments=[(0, 60)], config=config)
    np.testing.assert_array_equal(a[:60], b[:60])
    np.testing.assert_array_equal(a[:60], alone)


def test_frames_outside_segments_pass_through():
    _, noisy = synthetic_track(2)
    out = smooth_quads(noisy, segments=[(10, 50)], config=AlignConfig())
    np.testing.assert_array_equal(out[:10], noisy[:10])
    np.testing.assert_array_equal(out[50:], noisy[50:])
    assert not np.array_equal(out[10:50], noisy[10:50])


def test_short_gap_interpolated_long_gap_kept():
    truth, _ = synthetic_track(0, noise=0.0)
    quads = truth.copy()
    quads[20:23] = np.nan  # 3 frames: filled
    quads[50:60] = np.nan  # 10 frames: stays empty
    quads[:2] = np.nan  # at the start: nothing to interpolate from
    config = dataclasses.replace(AlignConfig(), filter="none", max_gap=5)
    out = smooth_quads(quads, segments=[(0, len(quads))], config=config)
    assert np.isnan(out[50:60]).all() and np.isnan(out[:2]).all()
    assert np.isfinite(out[2:50]).all() and np.isfinite(out[60:]).all()
    weights = np.array([1, 2, 3])[:, None, None] / 4.0
    np.testing.assert_allclose(out[20:23], truth[19] + weights * (truth[23] - truth[19]), atol=1e-9)

    smoothed = smooth_quads(quads, segments=[(0, len(quads))], config=AlignConfig())
    assert np.isnan(smoothed[50:60]).all() and np.isfinite(smoothed[60:]).all()
    assert corner_error(smoothed[20:23], truth[20:23]) < 0.01


def test_gaps_are_not_bridged_across_a_cut():
    truth, _ = synthetic_track(0, noise=0.0)
    quads = truth.copy()
    quads[38:42] = np.nan  # a short gap, but a cut at 40 splits it
    config = dataclasses.replace(AlignConfig(), filter="none", max_gap=10)
    out = smooth_quads(quads, segments=[(0, 40), (40, len(quads))], config=config)
    assert np.isnan(out[38:42]).all()


# ----------------------------------------------------------------------------------------------------
# quad_jitter


def test_quad_jitter_known_value_and_segments():
    num_frames, size = 40, 200.0
    t = np.arange(num_frames, dtype=np.float64)
    centre = np.stack([100 + 3.0 * t, 50 + 1.0 * t], axis=1)  # constant velocity: no jitter
    x = np.tile([size / 2, 0.0], (num_frames, 1))
    steady = quads_from_params(centre, x, rot90(x))
    assert quad_jitter(steady, [(0, num_frames)]) == pytest.approx(0.0, abs=1e-12)

    wobble = 0.5 * (-1.0) ** t  # +-0.5 px alternation: second difference 2 px
    shaky = quads_from_params(centre + wobble[:, None] * [1.0, 0.0], x, rot90(x))
    assert quad_jitter(shaky, [(0, num_frames)]) == pytest.approx(2.0 / size, rel=1e-9)

    jumped = steady.copy()
    jumped[20:] += 80.0  # a cut: the jump does not count within segments
    assert quad_jitter(jumped, [(0, 20), (20, num_frames)]) == pytest.approx(0.0, abs=1e-12)
    assert quad_jitter(jumped, [(0, num_frames)]) > 0.1


def test_align_config_validation():
    with pytest.raises(ReenactError):
        AlignConfig(sigma=0.0)
    with pytest.raises(ReenactError):
        AlignConfig(savgol_window=10)
    with pytest.raises(ReenactError):
        AlignConfig(max_gap=-1)
    with pytest.raises(ReenactError):
        AlignConfig(loess_sigma=0.0)


# ----------------------------------------------------------------------------------------------------
# Smoothing on a real clip


@pytest.fixture(scope="module")
def real_track() -> np.ndarray:
    """FFHQ quads [T, 4, 2] of the first frames of a real talking-head clip (dlib landmarks)."""
    frames = read_frames(testdata_file("retalk_face2.mp4"), TRACK_FRAMES)
    points = dlib_points(frames)
    assert np.isfinite(points).all(axis=(1, 2)).mean() > 0.9
    return np.stack([ffhq_quad(p) if np.isfinite(p).all() else np.full((4, 2), np.nan) for p in points])


def test_real_clip_jitter_halves_with_small_deviation(real_track):
    segments = [(0, len(real_track))]
    smoothed = smooth_quads(real_track, segments=segments, config=AlignConfig())
    assert quad_jitter(smoothed, segments) <= 0.5 * quad_jitter(real_track, segments)
    assert corner_error(smoothed, real_track) <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["lp_driving_d0.mp4", "lp_driving_d3.mp4", "lp_driving_d13_vertical.mp4"])
def test_fast_driving_clips_jitter_halves(clip):
    """Issue #23: at least half of the jitter removed on the real clips with the fastest head motion."""
    frames = read_frames(testdata_file(clip), num_frames=10**4)
    points = dlib_points(frames)  # [T, 68, 2]
    quads = np.stack([ffhq_quad(p) if np.isfinite(p).all() else np.full((4, 2), np.nan) for p in points])
    segments = [(0, len(quads))]
    smoothed = smooth_quads(quads, segments=segments, config=AlignConfig())
    assert quad_jitter(smoothed, segments) <= (1.0 - MIN_JITTER_CUT) * quad_jitter(quads, segments)
