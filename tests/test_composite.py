"""Compositing a face crop back into its frame (reenact/composite.py), on real frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from reenact import composite_torch
from reenact.composite import (
    MIN_STD,
    _from_space,
    _to_space,
    composite_face,
    ellipse_mask,
    face_mask,
    feather,
    landmark_mask,
    match_color_box,
    paste_back,
    weighted_stats,
)
from reenact.composite_torch import _from_space_torch, composite_face_torch, lab_formula, rgb_to_lab
from reenact.config import CompositeConfig
from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, ffhq_quad, transform_points, warp_to_crop, warp_to_frame
from reenact.imaging import uint8_psnr
from tests.conftest import testdata_file
from tests.test_align import dlib_points, read_frames

RESOLUTION = 1024
MIN_ROUND_TRIP_PSNR = 35.0
REFERENCE_MAX_LEVELS = 1
"""Paste-back against the float64 reference: no pixel further apart than this (float32 rounding)."""
REFERENCE_MAX_DIFFERING = 0.005
"""... and at most this fraction of the blended pixels different at all."""
CAST_GAIN = (0.83, 0.91, 1.07)
CAST_OFFSET = (17.0, -3.0, -9.0)
NO_CHANGE = CompositeConfig(color_match=False)


@pytest.fixture(scope="module")
def real_face() -> tuple[np.ndarray, np.ndarray]:
    """(frame [H, W, 3] uint8 RGB, landmarks [68, 2]) from the first frame of a real clip."""
    frame = read_frames(testdata_file("retalk_face2.mp4"), 1)[0]
    points = dlib_points([frame])[0]
    assert np.isfinite(points).all()
    return frame, points


@pytest.fixture(scope="module")
def aligned(real_face):
    """(frame, points, matrix, crop, mask_crop, alpha in the frame) at R = 1024."""
    frame, points = real_face
    matrix = crop_matrix(ffhq_quad(points), RESOLUTION)
    crop = warp_to_crop(frame, matrix, RESOLUTION)
    mask = face_mask(points, matrix=matrix, resolution=RESOLUTION, config=CompositeConfig())
    alpha = warp_to_frame(mask, matrix, frame.shape, interpolation=cv2.INTER_LINEAR)
    return frame, points, matrix, crop, mask, alpha


@pytest.mark.parametrize(
    "config", [NO_CHANGE, CompositeConfig(color_match=True)], ids=["plain", "color_match"]
)
def test_identity_round_trip(aligned, config):
    frame, _, matrix, crop, mask, alpha = aligned
    out = composite_face(frame, crop, matrix=matrix, mask_crop=mask, config=config)
    inside = alpha > 0
    assert inside.sum() > 0.05 * inside.size  # the face is a real part of the frame
    assert uint8_psnr(out[inside], frame[inside]) >= MIN_ROUND_TRIP_PSNR
    assert np.array_equal(out[~inside], frame[~inside])


def test_mask_zero_keeps_pixels_bit_identical(aligned):
    frame, _, matrix, crop, mask, alpha = aligned
    out = composite_face(frame, 255 - crop, matrix=matrix, mask_crop=mask, config=NO_CHANGE)
    assert np.array_equal(out[alpha == 0], frame[alpha == 0])
    full = alpha >= 0.999
    changed = np.abs(out[full].astype(int) - frame[full]).mean()
    assert changed > 50  # the inverted face really was pasted where alpha is 1


def test_empty_mask_returns_the_frame(aligned):
    frame, _, matrix, crop, mask, _ = aligned
    out = composite_face(frame, 255 - crop, matrix=matrix, mask_crop=np.zeros_like(mask), config=NO_CHANGE)
    assert np.array_equal(out, frame)


def test_mask_covers_the_face_not_the_background(aligned):
    _, points, matrix, _, mask, _ = aligned
    inner = transform_points(points[27:68], matrix)  # nose, eyes, mouth in crop coordinates
    rows, cols = np.round(inner[:, 1]).astype(int), np.round(inner[:, 0]).astype(int)
    assert mask[rows, cols].min() > 0.99
    assert mask[:20].max() == 0 and mask[:, :20].max() == 0  # crop borders are background


def test_forehead_extension_reaches_above_the_brows(aligned):
    _, points, matrix, _, _, _ = aligned
    points_crop = transform_points(points, matrix)
    brow_top = int(points_crop[17:27, 1].min())
    low = landmark_mask(points_crop, RESOLUTION, feather_px=10.0, forehead=0.0)
    high = landmark_mask(points_crop, RESOLUTION, feather_px=10.0, forehead=0.4)
    assert low[: brow_top - 5].max() == 0
    assert high[: brow_top - 40].max() == 1.0


@pytest.mark.parametrize("kind", ["landmarks", "ellipse"])
def test_feather_is_monotone_and_gradient_bounded(aligned, kind):
    _, points, matrix, _, _, _ = aligned
    feather_px = 0.04 * RESOLUTION
    if kind == "landmarks":
        mask = landmark_mask(
            transform_points(points, matrix), RESOLUTION, feather_px=feather_px, forehead=0.3
        )
    else:
        mask = ellipse_mask(RESOLUTION, feather_px=feather_px)
    assert mask.min() == 0.0 and mask.max() == 1.0
    steepest = max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max())
    assert steepest <= 1.0 / feather_px + 1e-4
    ramp = ((mask > 0) & (mask < 1)).sum()
    assert ramp > 0.05 * (mask > 0).sum()  # a real soft edge, not a hard one
    # Monotone: along rays from the mask's centroid, alpha never rises again once it falls.
    ys, xs = np.nonzero(mask == 1.0)
    centre = np.array([xs.mean(), ys.mean()])
    radii = np.arange(0, RESOLUTION, 0.5)
    for angle in np.linspace(0, 2 * np.pi, 24, endpoint=False):
        ray = centre + radii[:, None] * [np.cos(angle), np.sin(angle)]
        ray = ray[(ray >= 0).all(axis=1) & (ray <= RESOLUTION - 1).all(axis=1)]
        values = cv2.remap(
            mask, ray[:, 0:1].astype(np.float32), ray[:, 1:2].astype(np.float32), cv2.INTER_LINEAR
        )
        assert np.all(np.diff(values.ravel()) <= 1e-6)


def test_feather_gradient_bound_on_a_square():
    binary = np.zeros((200, 200), np.uint8)
    binary[50:150, 40:160] = 1
    alpha = feather(binary, 20.0)
    assert alpha[100, 100] == 1.0 and alpha[49, 100] == 0.0
    assert np.abs(np.diff(alpha, axis=1)).max() <= 1 / 20 + 1e-6


@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_color_match_moves_statistics_to_the_target(aligned, space):
    _, _, _, crop, mask, _ = aligned
    # The "rendered" face: same content, wrong colour (a cast plus lower contrast).
    tinted = np.clip(crop.astype(np.float32) * [0.7, 0.9, 1.0] + [30, -10, 20], 0, 255).astype(np.uint8)
    matched = match_color_box(tinted, crop, mask, space=space)

    def stats(image: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        return np.concatenate(
            weighted_stats(lab.reshape(-1, 3).astype(np.float64), mask.reshape(-1).astype(np.float64))
        )

    before = np.abs(stats(tinted) - stats(crop)).max()
    after = np.abs(stats(matched) - stats(crop)).max()
    assert before > 5.0
    assert after < 0.2 * before
    face = mask > 0.5
    assert uint8_psnr(matched[face], crop[face]) > uint8_psnr(tinted[face], crop[face]) + 6


def test_poisson_keeps_an_unchanged_face_and_the_background(aligned):
    frame, _, matrix, crop, mask, alpha = aligned
    config = dataclasses.replace(NO_CHANGE, poisson=True)
    out = composite_face(frame, crop, matrix=matrix, mask_crop=mask, config=config)
    inside = alpha > 0
    assert np.array_equal(out[~inside], frame[~inside])
    assert uint8_psnr(out[inside], frame[inside]) >= MIN_ROUND_TRIP_PSNR


def test_poisson_pulls_a_colour_cast_towards_the_frame(aligned):
    frame, _, matrix, crop, mask, alpha = aligned
    cast = np.clip(crop.astype(np.int16) + np.array([40, 0, -30]), 0, 255).astype(np.uint8)
    plain = composite_face(frame, cast, matrix=matrix, mask_crop=mask, config=NO_CHANGE)
    poisson = composite_face(
        frame, cast, matrix=matrix, mask_crop=mask, config=dataclasses.replace(NO_CHANGE, poisson=True)
    )
    full = alpha >= 0.999
    assert uint8_psnr(poisson[full], frame[full]) > uint8_psnr(plain[full], frame[full]) + 3


def test_face_mask_without_landmarks_is_the_ellipse(aligned):
    _, _, matrix, _, _, _ = aligned
    config = CompositeConfig()
    mask = face_mask(None, matrix=matrix, resolution=256, config=config)
    np.testing.assert_array_equal(mask, ellipse_mask(256, feather_px=config.feather * 256))


def test_composite_config_validation():
    with pytest.raises(ReenactError):
        CompositeConfig(feather=0.0)
    with pytest.raises(ReenactError):
        CompositeConfig(forehead=-0.1)


def reference_composite(
    frame: np.ndarray, crop: np.ndarray, *, matrix: np.ndarray, mask_crop: np.ndarray, space: str
) -> tuple[np.ndarray, np.ndarray]:
    """(output, alpha) of paste-back with colour match, straightforwardly: whole crop and whole frame,
    float64 statistics and blend (OpenCV's Lab conversion takes float32 only)."""
    original = warp_to_crop(frame, matrix, RESOLUTION, border="replicate")
    weights = mask_crop.astype(np.float64)[..., None]

    def to_space(image: np.ndarray) -> np.ndarray:
        rgb = image.astype(np.float32) / 255.0
        return (cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab) if space == "lab" else rgb).astype(np.float64)

    def stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = (weights * values).sum(axis=(0, 1)) / weights.sum()
        return mean, np.sqrt((weights * (values - mean) ** 2).sum(axis=(0, 1)) / weights.sum())

    source, target = to_space(crop), to_space(original)
    (src_mean, src_std), (ref_mean, ref_std) = stats(source), stats(target)
    matched = ((source - src_mean) * (ref_std / np.maximum(src_std, MIN_STD)) + ref_mean).astype(np.float32)
    rgb = cv2.cvtColor(matched, cv2.COLOR_Lab2RGB) if space == "lab" else matched
    matched_crop = np.clip(np.rint(rgb.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    alpha = warp_to_frame(mask_crop, matrix, frame.shape, interpolation=cv2.INTER_LINEAR)
    alpha = np.clip(alpha, 0.0, 1.0).astype(np.float64)[..., None]
    face = warp_to_frame(matched_crop, matrix, frame.shape).astype(np.float64)
    blended = np.clip(np.rint(alpha * face + (1.0 - alpha) * frame), 0, 255).astype(np.uint8)
    return np.where(alpha > 0, blended, frame), alpha[..., 0]


@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_paste_back_matches_the_float64_reference(aligned, space):
    frame, _, matrix, crop, mask, _ = aligned
    cast = np.clip(crop.astype(np.float32) * CAST_GAIN + CAST_OFFSET, 0, 255).astype(np.uint8)
    config = CompositeConfig(color_match=True, color_space=space)
    out = composite_face(frame, cast, matrix=matrix, mask_crop=mask, config=config)
    expected, alpha = reference_composite(frame, cast, matrix=matrix, mask_crop=mask, space=space)
    inside = alpha > 0
    assert np.array_equal(out[~inside], frame[~inside])
    difference = np.abs(out.astype(np.int16) - expected)
    assert difference.max() <= REFERENCE_MAX_LEVELS
    assert (difference[inside] > 0).mean() <= REFERENCE_MAX_DIFFERING
    # The colour match matters here: leaving it out misses the reference by far more.
    plain = composite_face(frame, cast, matrix=matrix, mask_crop=mask, config=NO_CHANGE)
    assert np.abs(plain.astype(np.int16) - expected)[alpha >= 0.999].mean() > 5


FEATHER_ROUNDING = 1e-6
"""Alpha is in 0..1: a few float32 rounding steps at 1, far below one level of an 8-bit image."""


def test_feather_on_the_box_equals_the_whole_image_transform(aligned):
    _, points, matrix, _, _, _ = aligned
    feather_px = 0.04 * RESOLUTION
    outline = transform_points(points, matrix)
    binary = np.zeros((RESOLUTION, RESOLUTION), np.uint8)
    cv2.fillConvexPoly(binary, np.round(cv2.convexHull(outline.astype(np.float32))).astype(np.int32), 1)
    binary[:, :3] = 1  # touching the image border, which counts as outside
    inside = binary.copy()
    inside[0, :] = inside[-1, :] = 0
    inside[:, 0] = inside[:, -1] = 0
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    expected = np.clip(distance / feather_px, 0.0, 1.0).astype(np.float32)
    # Equal up to float32 rounding: with one thread (as the CLI sets it) OpenCV's transform of the box
    # and of the whole image differ by a rounding step in some pixels.
    np.testing.assert_allclose(feather(binary, feather_px), expected, rtol=0, atol=FEATHER_ROUNDING)


# ----------------------------------------------------------------------------------------------------
# The torch paste-back (reenact/composite_torch.py), run on the CPU here and on CUDA under `gpu`.

TORCH_MAX_LEVELS = 2
"""Torch paste-back against the OpenCV one: no pixel further apart than this ..."""
TORCH_MAX_DIFFERING = 0.02
"""... and at most this share of the blended pixels different at all (float vs fixed-point blur of
the colour reference when the crop shrinks the frame; elsewhere about 1e-4)."""
LAB_TABLE_UNIT = 256.0 / (1 << 14)
"""OpenCV's float Lab comes from a table in units of 1/16384 of a/b's 256 range."""


def shrunk_case(real_face, resolution: int):
    """(frame, matrix, crop with a colour cast, mask) at `resolution`."""
    frame, points = real_face
    matrix = crop_matrix(ffhq_quad(points), resolution)
    crop = warp_to_crop(frame, matrix, resolution)
    cast = np.clip(crop.astype(np.float32) * CAST_GAIN + CAST_OFFSET, 0, 255).astype(np.uint8)
    mask = face_mask(points, matrix=matrix, resolution=resolution, config=CompositeConfig())
    return frame, matrix, cast, mask


def torch_agreement(out: np.ndarray, expected: np.ndarray, alpha: np.ndarray) -> tuple[int, float]:
    """(max level difference, share of alpha > 0 pixels that differ) between two paste-backs."""
    difference = np.abs(out.astype(np.int16) - expected).max(axis=-1)  # [H, W]
    return int(difference.max()), float((difference[alpha > 0] > 0).mean())


def test_torch_lab_conversion_is_opencvs():
    rng = np.random.default_rng(0)
    rgb = np.concatenate(
        [
            np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1),
            rng.integers(0, 256, (20_000, 3), dtype=np.uint8),
        ]
    )[:, None]  # [N, 1, 3]
    expected = _to_space(rgb, "lab")
    got = rgb_to_lab(torch.from_numpy(rgb).float() / 255.0).numpy()
    assert np.abs(got - expected).max() <= LAB_TABLE_UNIT
    # The plain formula is not what OpenCV computes: the table matters.
    assert np.abs(lab_formula(torch.from_numpy(rgb).double() / 255.0).numpy() - expected).max() > 0.1
    back = _from_space(expected.copy(), "lab")
    back_torch = _from_space_torch(torch.from_numpy(expected), "lab").numpy()
    assert np.abs(back.astype(int) - back_torch).max() <= 1
    assert (back != back_torch).any(axis=-1).mean() <= 1e-3


@pytest.mark.parametrize("resolution", [RESOLUTION, 256], ids=["grow", "shrink"])
@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_torch_paste_back_matches_opencv(real_face, resolution, space):
    frame, matrix, cast, mask = shrunk_case(real_face, resolution)
    config = CompositeConfig(color_match=True, color_space=space)
    expected = composite_face(frame, cast, matrix=matrix, mask_crop=mask, config=config)
    out = composite_face_torch(frame, cast, matrix=matrix, mask_crop=mask, config=config, device="cpu")
    alpha = warp_to_frame(mask, matrix, frame.shape, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out[alpha == 0], frame[alpha == 0])
    worst, share = torch_agreement(out, expected, alpha)
    assert worst <= TORCH_MAX_LEVELS and share <= TORCH_MAX_DIFFERING


@pytest.mark.parametrize("error", ["shifted_1px", "no_color_match", "lab_formula"])
def test_torch_agreement_thresholds_catch_a_broken_paste_back(real_face, error, monkeypatch):
    frame, matrix, cast, mask = shrunk_case(real_face, RESOLUTION)
    config = CompositeConfig(color_match=True)
    expected = composite_face(frame, cast, matrix=matrix, mask_crop=mask, config=config)
    alpha = warp_to_frame(mask, matrix, frame.shape, interpolation=cv2.INTER_LINEAR)
    if error == "shifted_1px":
        matrix = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ matrix
    elif error == "no_color_match":
        config = NO_CHANGE
    else:
        monkeypatch.setattr(composite_torch, "rgb_to_lab", lab_formula)
    out = composite_face_torch(frame, cast, matrix=matrix, mask_crop=mask, config=config, device="cpu")
    worst, share = torch_agreement(out, expected, alpha)
    assert worst > TORCH_MAX_LEVELS or share > TORCH_MAX_DIFFERING


def test_torch_empty_mask_returns_the_frame(aligned):
    frame, _, matrix, crop, mask, _ = aligned
    out = composite_face_torch(
        frame, 255 - crop, matrix=matrix, mask_crop=np.zeros_like(mask), config=NO_CHANGE, device="cpu"
    )
    assert np.array_equal(out, frame)


def test_paste_back_runs_torch_on_cuda_only(aligned, monkeypatch):
    frame, _, matrix, crop, mask, _ = aligned
    calls: list[str] = []

    def fake_torch(*args, device, **kwargs):
        calls.append(str(device))
        return frame

    monkeypatch.setattr(composite_torch, "composite_face_torch", fake_torch)
    config = CompositeConfig()
    on_cpu = paste_back(frame, crop, matrix=matrix, mask_crop=mask, config=config, device="cpu")
    assert calls == []
    assert np.array_equal(on_cpu, composite_face(frame, crop, matrix=matrix, mask_crop=mask, config=config))
    paste_back(frame, crop, matrix=matrix, mask_crop=mask, config=config, device=torch.device("cuda", 0))
    assert calls == ["cuda:0"]
    poisson = CompositeConfig(poisson=True)  # OpenCV only: stays on the CPU
    paste_back(frame, crop, matrix=matrix, mask_crop=mask, config=poisson, device="cuda")
    assert calls == ["cuda:0"]


@pytest.mark.gpu
@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_torch_paste_back_on_cuda_matches_opencv(real_face, space):
    frame, matrix, cast, mask = shrunk_case(real_face, RESOLUTION)
    config = CompositeConfig(color_match=True, color_space=space)
    expected = composite_face(frame, cast, matrix=matrix, mask_crop=mask, config=config)
    crop_on_device = torch.from_numpy(cast).to("cuda")  # as the render stage's output would be
    out = paste_back(frame, crop_on_device, matrix=matrix, mask_crop=mask, config=config, device="cuda")
    alpha = warp_to_frame(mask, matrix, frame.shape, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out[alpha == 0], frame[alpha == 0])
    worst, share = torch_agreement(out, expected, alpha)
    assert worst <= TORCH_MAX_LEVELS and share <= TORCH_MAX_DIFFERING


DEEP_MAX_LEVELS = 2.0
"""A uint16 frame's paste-back against the 8-bit one, in 8-bit levels: the deep frame carries up to one
level more (its low byte), the 8-bit result is rounded by half a level."""


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_deep_frame_paste_back_keeps_its_codes_and_its_depth(aligned, space):
    """A uint16 frame (low byte carrying noise): its codes are kept bit for bit where the mask is 0; inside,
    the paste-back is the 8-bit one within `DEEP_MAX_LEVELS`, carried in 16 bits (not an 8-bit result
    scaled up: its low byte is not empty)."""
    frame, _, matrix, crop, mask, alpha = aligned
    rng = np.random.default_rng(0)
    deep = (frame.astype(np.uint32) * 257 + rng.integers(0, 257, frame.shape)).astype(np.uint16)
    config = CompositeConfig(color_match=True, color_space=space)
    out = composite_face(deep, 255 - crop, matrix=matrix, mask_crop=mask, config=config)
    eight = composite_face(frame, 255 - crop, matrix=matrix, mask_crop=mask, config=config)
    assert out.dtype == np.uint16
    assert np.array_equal(out[alpha == 0], deep[alpha == 0])
    inside = alpha > 0
    assert np.abs(out[inside] / 257 - eight[inside]).max() <= DEEP_MAX_LEVELS
    assert np.mean(out[inside] % 257 != 0) > 0.9
    with pytest.raises(ValueError, match="uint8 frames only"):
        composite_face(deep, crop, matrix=matrix, mask_crop=mask, config=CompositeConfig(poisson=True))
