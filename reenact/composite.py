"""Paste a rendered face crop back into its frame: feathered face mask, colour match, optional Poisson.

The mask is built in crop space (from the 68 landmarks mapped into the crop, or a default ellipse),
and warped into the frame with the same frame -> crop matrix as the crop, so face and mask stay
registered. Guarantee: wherever the warped mask is zero the output pixel IS the input pixel
(bit-identical), because the blend is only computed where alpha > 0.

Depth: frames are uint8, or uint16 (sources above 8 bits, `VideoReader.frames(native=True)`); a uint16
frame's face is colour matched, warped and blended in float and rounded once, to the frame's own 16 bits.

Cost: every step works on the mask's bounding box only (crop box for the colour match, its image in
the frame for the blend), in float32; colour statistics are taken over the mask's non-zero pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from reenact.config import CompositeConfig
from reenact.faces.align import transform_points, warp_to_crop, warp_to_frame

if TYPE_CHECKING:
    from typing import TypeAlias

    import torch

    Array: TypeAlias = np.ndarray | torch.Tensor

JAW = slice(0, 17)
BROWS = slice(17, 27)
CHIN = 8
NUM_LANDMARKS = 68
ELLIPSE_CENTRE = (0.5, 0.55)
"""Default mask: ellipse centre as a fraction of the crop (x, y); the FFHQ crop's face sits here."""
ELLIPSE_AXES = (0.3, 0.4)
"""Default mask: ellipse semi-axes as a fraction of the crop (x, y)."""
SUBPIXEL_BITS = 4
"""Fixed-point bits for drawing polygons at sub-pixel precision with OpenCV."""
POISSON_MARGIN = 8
"""Pixels of frame kept around the mask's bounding box for Poisson blending."""
COLOR_MARGIN = 4
"""Crop pixels beyond the mask that paste-back still reads: a blended frame pixel samples the crop
within 1 px of the mask (bilinear alpha) and the cubic warp reaches 2 px further; one spare."""
ALPHA_REACH = 1
"""Crop pixels beyond the mask's support at which the bilinear alpha warp is still non-zero."""
FRAME_MARGIN = 1 + POISSON_MARGIN
"""Frame pixels kept around the mask's warped box: one for rounding, and Poisson blending's margin."""
MIN_STD = 1e-3
UINT8_MAX = 255


def feather(binary: np.ndarray, feather_px: float) -> np.ndarray:
    """Soft alpha [H, W] float32 in 0..1 from a binary mask: a linear ramp inside its edge.

    alpha = min(distance to the nearest outside pixel / feather_px, 1). The Euclidean distance
    changes by at most one per pixel step, so alpha's gradient is at most 1 / feather_px: no hard
    edge, and it is monotone from the edge inwards. The image border counts as outside.
    """
    inside = (np.asarray(binary) > 0).astype(np.uint8)
    inside[0, :] = inside[-1, :] = 0
    inside[:, 0] = inside[:, -1] = 0
    alpha = np.zeros(inside.shape, np.float32)
    # The distance to the nearest outside pixel is found within the box around the inside grown by
    # one pixel (that ring is all outside), so the transform runs on the box only, with equal results.
    box = support_window(inside, margin=1)
    if box is None:
        return alpha
    distance = cv2.distanceTransform(inside[box], cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    alpha[box] = np.clip(distance / max(feather_px, 1.0), 0.0, 1.0)
    return alpha


def _fill_polygon(points: np.ndarray, resolution: int) -> np.ndarray:
    """Binary [R, R] uint8 mask of the convex hull of points [N, 2] (pixel-centre coordinates)."""
    hull = cv2.convexHull(np.round(points * (1 << SUBPIXEL_BITS)).astype(np.int32))
    binary = np.zeros((resolution, resolution), np.uint8)
    cv2.fillConvexPoly(binary, hull, 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return binary


def landmark_mask(
    points_crop: np.ndarray, resolution: int, *, feather_px: float, forehead: float
) -> np.ndarray:
    """Face mask [R, R] float32 from 68 landmarks in crop coordinates.

    Convex hull of the jaw line and the brows, with the brows copied upwards (away from the chin)
    by `forehead` times the brow-to-chin distance to cover the forehead; then feathered inwards.
    """
    points = np.asarray(points_crop, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks of shape ({NUM_LANDMARKS}, 2), got {points.shape}")
    brows = points[BROWS]
    up = brows.mean(axis=0) - points[CHIN]
    raised = brows + forehead * up  # [10, 2]
    outline = np.concatenate([points[JAW], brows, raised])
    return feather(_fill_polygon(outline, resolution), feather_px)


def ellipse_mask(resolution: int, *, feather_px: float) -> np.ndarray:
    """Default face mask [R, R] float32 when no landmarks are known: an ellipse over the FFHQ face."""
    binary = np.zeros((resolution, resolution), np.uint8)
    scale = resolution * (1 << SUBPIXEL_BITS)
    centre = (round(ELLIPSE_CENTRE[0] * scale), round(ELLIPSE_CENTRE[1] * scale))
    axes = (round(ELLIPSE_AXES[0] * scale), round(ELLIPSE_AXES[1] * scale))
    cv2.ellipse(binary, centre, axes, 0.0, 0.0, 360.0, 1, thickness=-1, shift=SUBPIXEL_BITS)
    return feather(binary, feather_px)


def face_mask(
    points: np.ndarray | None,
    *,
    matrix: np.ndarray,
    resolution: int,
    config: CompositeConfig,
) -> np.ndarray:
    """Crop-space face mask [R, R] float32 from frame landmarks [68, 2] (or None: default ellipse)."""
    feather_px = config.feather * resolution
    if points is None or not np.all(np.isfinite(points)):
        return ellipse_mask(resolution, feather_px=feather_px)
    points_crop = transform_points(points, matrix)
    return landmark_mask(points_crop, resolution, feather_px=feather_px, forehead=config.forehead)


def _to_space(image: np.ndarray, space: str) -> np.ndarray:
    """uint8 or uint16 RGB [..., 3] (or float32 values, clipped to 0..1) as float32 in `space` (RGB in
    0..1, or CIE Lab)."""
    if image.dtype == np.float32:
        rgb = np.clip(image, 0.0, 1.0)
    else:
        rgb = np.divide(image, np.float32(np.iinfo(image.dtype).max), dtype=np.float32)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab) if space == "lab" else rgb


def _from_space(values: np.ndarray, space: str) -> np.ndarray:
    """float32 values [..., 3] in `space` back to uint8 RGB, rounded to nearest and clipped (RGB values
    are clipped in place)."""
    rgb = cv2.cvtColor(values, cv2.COLOR_Lab2RGB) if space == "lab" else values
    np.maximum(rgb, 0.0, out=rgb)  # convertScaleAbs rounds |x|; Lab -> RGB is never negative anyway
    return cv2.convertScaleAbs(rgb, alpha=UINT8_MAX)  # saturating round of x * 255


def _rgb_values(values: np.ndarray, space: str) -> np.ndarray:
    """float32 values [..., 3] in `space` as RGB float32 in 0..1 (clipped), unrounded."""
    rgb = cv2.cvtColor(values, cv2.COLOR_Lab2RGB) if space == "lab" else values
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def weighted_stats(values: Array, weights: Array) -> tuple[Array, Array]:
    """Per-channel weighted mean and std [C] of float64 values [n, C] under float64 weights [n], NumPy or
    torch alike (both paste-backs use it): float64 because float32 sums drift by hundredths of a level
    over a face, two passes (no cancellation)."""
    total = weights.sum().clip(min=1e-12)
    mean = weights @ values / total
    centred = values - mean
    return mean, (weights @ (centred * centred) / total) ** 0.5


def color_gain(source: Array, reference: Array, weights: Array) -> tuple[Array, Array]:
    """Per-channel gain and offset [C] that give float64 `source` values [n, C] the weighted mean and std
    of `reference` [n, C] under `weights` [n] (NumPy or torch): the colour match of both paste-backs."""
    source_mean, source_std = weighted_stats(source, weights)
    reference_mean, reference_std = weighted_stats(reference, weights)
    gain = reference_std / source_std.clip(min=MIN_STD)
    return gain, reference_mean - source_mean * gain


def support_window(weights: np.ndarray, *, margin: int) -> tuple[slice, slice] | None:
    """Rows and columns of the box around `weights` > 0, grown by `margin` pixels (None when empty)."""
    rows, cols = np.flatnonzero(weights.any(axis=1)), np.flatnonzero(weights.any(axis=0))
    if rows.size == 0:
        return None
    height, width = weights.shape
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, height)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, width)),
    )


def match_color_box(
    source: np.ndarray, reference: np.ndarray, weights: np.ndarray, *, space: str
) -> np.ndarray:
    """`source` [h, w, 3] uint8 RGB with its per-channel mean/std under `weights` [h, w] set to those of
    `reference` [h, w, 3], in `space`: the source converted whole, the reference and the statistics only
    where the weights are > 0. Callers cut the arrays to the mask's box (`support_window` grown by
    `COLOR_MARGIN`, what the paste-back's interpolation reads beyond the mask)."""
    return _from_space(_matched_values(source, reference, weights, space=space), space)


def match_color_values(
    source: np.ndarray, reference: np.ndarray, weights: np.ndarray, *, space: str
) -> np.ndarray:
    """`match_color_box` as unrounded RGB float32 [h, w, 3] in 0..1, for a `reference` of any depth (uint8
    or uint16): what a deep frame's paste-back blends."""
    return _rgb_values(_matched_values(source, reference, weights, space=space), space)


def _matched_values(
    source: np.ndarray, reference: np.ndarray, weights: np.ndarray, *, space: str
) -> np.ndarray:
    """`source` [h, w, 3] in `space` (float32) given the mean/std of `reference` under `weights`."""
    support = np.flatnonzero(weights)  # [n] flat pixel indices
    channels = source.shape[-1]
    src = _to_space(source, space)  # [h, w, 3]
    ref = _to_space(reference.reshape(-1, 1, channels)[support], space)  # [n, 1, 3]
    gain, offset = color_gain(
        src.reshape(-1, channels)[support].astype(np.float64),
        ref.reshape(-1, channels).astype(np.float64),
        weights.reshape(-1)[support].astype(np.float64),
    )
    affine = np.concatenate([np.diag(gain), offset[:, None]], axis=1)  # [3, 4]
    return cv2.transform(src, affine)  # v * gain + offset, per channel


def _poisson(face: np.ndarray, frame: np.ndarray, region: np.ndarray) -> np.ndarray:
    """cv2.seamlessClone of `face` into `frame` ([H, W, 3] uint8) over `region`, on its bounding box only."""
    x, y, w, h = cv2.boundingRect(region.astype(np.uint8))
    height, width = frame.shape[:2]
    x0, y0 = max(x - POISSON_MARGIN, 0), max(y - POISSON_MARGIN, 0)
    x1, y1 = min(x + w + POISSON_MARGIN, width), min(y + h + POISSON_MARGIN, height)
    pads = (POISSON_MARGIN, POISSON_MARGIN, POISSON_MARGIN, POISSON_MARGIN)  # top, bottom, left, right

    def window(image: np.ndarray) -> np.ndarray:
        return cv2.copyMakeBorder(image[y0:y1, x0:x1], *pads, cv2.BORDER_REFLECT_101)

    mask = cv2.copyMakeBorder(
        region[y0:y1, x0:x1].astype(np.uint8) * 255, *pads, cv2.BORDER_CONSTANT, value=0
    )
    # OpenCV puts the mask's bounding box at (centre - size // 2) in the destination: keep it in place.
    bx, by, bw, bh = cv2.boundingRect(mask)
    centre = (bx + bw // 2, by + bh // 2)
    blended = cv2.seamlessClone(window(face), window(frame), mask, centre, cv2.NORMAL_CLONE)
    out = frame.copy()
    top, _, left, _ = pads
    out[y0:y1, x0:x1] = blended[top : top + y1 - y0, left : left + x1 - x0]
    return out


def composite_face(
    frame: np.ndarray,
    crop: np.ndarray,
    *,
    matrix: np.ndarray,
    mask_crop: np.ndarray,
    config: CompositeConfig,
) -> np.ndarray:
    """The frame [H, W, 3] uint8 (or uint16, or float32 values) with the rendered `crop` [R, R, 3] uint8
    pasted back through `matrix`.

    `matrix` is the frame -> crop affine the crop was taken with; `mask_crop` [R, R] float in 0..1 is
    the face mask in crop space. Where the warped mask is zero the frame's pixels are returned
    unchanged, bit for bit. A uint16 or float frame's face stays in float until the blend is rounded
    (`_blend_deep`).
    """
    deep = frame.dtype != np.uint8
    if deep and config.poisson:
        raise ValueError("Poisson blending works on uint8 frames only")
    resolution = crop.shape[0]
    if crop.shape[:2] != (resolution, resolution) or mask_crop.shape != crop.shape[:2]:
        raise ValueError(f"crop {crop.shape} and mask {mask_crop.shape} must both be [R, R(, 3)]")
    out = frame.copy()
    placed = paste_region(mask_crop, matrix=matrix, frame_shape=frame.shape)
    if placed is None:
        return out
    window, box = placed
    if deep:
        return _blend_deep(
            out, crop, window=window, box=box, matrix=matrix, mask_crop=mask_crop, config=config
        )
    if config.color_match:
        original = warp_to_crop(frame, matrix, resolution, border="replicate", box=window)
        crop = crop.copy()
        crop[window] = match_color_box(crop[window], original, mask_crop[window], space=config.color_space)

    alpha = blend_weights(mask_crop, matrix=matrix, frame_shape=frame.shape, box=box)  # [h, w]
    inside = alpha > 0.0
    if not inside.any():
        return out
    face = warp_to_frame(crop, matrix, frame.shape, box=box)  # [h, w, 3]
    region = frame[box]
    if config.poisson:
        face = _poisson(face, region, inside)
    a = alpha[:, :, None]
    blended = a * face.astype(np.float32) + (1.0 - a) * region.astype(np.float32)
    np.copyto(out[box], np.clip(np.rint(blended), 0, 255).astype(np.uint8), where=inside[:, :, None])
    return out


def blend_weights(
    mask_crop: np.ndarray, *, matrix: np.ndarray, frame_shape: tuple[int, ...], box: tuple[slice, slice]
) -> np.ndarray:
    """The paste-back's blend weights [h, w] float32 in 0..1 over the frame `box`: the crop-space mask
    warped into the frame (bilinear), what `composite_face` blends the face with."""
    alpha = warp_to_frame(
        mask_crop.astype(np.float32), matrix, frame_shape, interpolation=cv2.INTER_LINEAR, box=box
    )
    return np.clip(alpha, 0.0, 1.0)


def paste_weights(
    mask_crop: np.ndarray, *, matrix: np.ndarray, frame_shape: tuple[int, ...]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The frame box a paste-back of `mask_crop` through `matrix` touches and its blend weights [h, w]
    there (`blend_weights`), or None when it touches no pixel: what a matte records."""
    placed = paste_region(mask_crop, matrix=matrix, frame_shape=frame_shape)
    if placed is None:
        return None
    _, box = placed
    return box, blend_weights(mask_crop, matrix=matrix, frame_shape=frame_shape, box=box)


def paste_region(
    mask_crop: np.ndarray, *, matrix: np.ndarray, frame_shape: tuple[int, ...]
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """The crop window a paste-back of `mask_crop` reads (its support, with the colour match's margin) and
    the frame box it writes, or None when it touches no pixel."""
    window = support_window(mask_crop > 0, margin=COLOR_MARGIN)
    box = None if window is None else frame_box(window, matrix, frame_shape, margin=FRAME_MARGIN)
    return None if window is None or box is None else (window, box)


def _blend_deep(
    frame: np.ndarray,
    crop: np.ndarray,
    *,
    window: tuple[slice, slice],
    box: tuple[slice, slice],
    matrix: np.ndarray,
    mask_crop: np.ndarray,
    config: CompositeConfig,
) -> np.ndarray:
    """`composite_face`'s blend into `frame`, its uint16 (or float32) copy [H, W, 3], in place (`window`
    and `box`: its `paste_region`): the crop colour matched, warped and blended in float32, rounded once
    to the frame's 16 bits (float values: left unrounded, only kept from going negative); the frame's own
    samples wherever the warped mask is 0. Returns `frame`."""
    resolution = crop.shape[0]
    floats = frame.dtype == np.float32
    top = np.float32(1.0 if floats else np.iinfo(frame.dtype).max)
    values = np.divide(crop, np.float32(UINT8_MAX), dtype=np.float32)  # [R, R, 3] in 0..1
    if config.color_match:
        original = warp_to_crop(frame, matrix, resolution, border="replicate", box=window)
        values[window] = match_color_values(
            crop[window], original, mask_crop[window], space=config.color_space
        )
    alpha = blend_weights(mask_crop, matrix=matrix, frame_shape=frame.shape, box=box)  # [h, w]
    inside = alpha > 0.0
    if not inside.any():
        return frame
    face = warp_to_frame(values * top, matrix, frame.shape, box=box)  # [h, w, 3] float32, in frame codes
    a = alpha[:, :, None]
    blended = a * face + (1.0 - a) * frame[box].astype(np.float32)
    result = np.maximum(blended, 0.0) if floats else np.clip(np.rint(blended), 0, top)
    np.copyto(frame[box], result.astype(frame.dtype), where=inside[:, :, None])
    return frame


def paste_back(
    frame: np.ndarray,
    crop: Array,
    *,
    matrix: np.ndarray,
    mask_crop: np.ndarray,
    config: CompositeConfig,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """`composite_face` where the run runs: on a CUDA `device` the torch version
    (`reenact.composite_torch`), which takes the `crop` [R, R, 3] uint8 where it is (a tensor the render
    left on the device stays there), elsewhere the OpenCV one, which is the faster on a CPU and takes it
    on the host. Poisson blending exists only in OpenCV, so it keeps a CUDA run's paste-back on the CPU;
    so do uint16 frames (the torch version blends uint8 only)."""
    if str(device).split(":")[0] == "cuda" and not config.poisson and frame.dtype == np.uint8:
        from reenact.composite_torch import composite_face_torch  # torch only where it is used

        return composite_face_torch(
            frame, crop, matrix=matrix, mask_crop=mask_crop, config=config, device=device
        )
    return composite_face(frame, host_image(crop), matrix=matrix, mask_crop=mask_crop, config=config)


def host_image(image: Array) -> np.ndarray:
    """`image` as a host array: itself, or a tensor's values (a view of a CPU tensor, a copy of a device
    one)."""
    return image if isinstance(image, np.ndarray) else image.cpu().numpy()


def frame_box(
    window: tuple[slice, slice], matrix: np.ndarray, frame_shape: tuple[int, ...], *, margin: int
) -> tuple[slice, slice] | None:
    """Rows and columns of the frame whose pixels sample the crop `window` (rows, columns) under the
    frame -> crop `matrix`, bilinear reach included, grown by `margin` (None when outside the frame)."""
    rows, cols = window
    x0, x1 = cols.start - ALPHA_REACH, cols.stop - 1 + ALPHA_REACH
    y0, y1 = rows.start - ALPHA_REACH, rows.stop - 1 + ALPHA_REACH
    corners = transform_points(
        np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64), np.linalg.inv(matrix)
    )
    height, width = frame_shape[:2]
    left = max(int(np.floor(corners[:, 0].min())) - margin, 0)
    right = min(int(np.ceil(corners[:, 0].max())) + 1 + margin, width)
    top = max(int(np.floor(corners[:, 1].min())) - margin, 0)
    bottom = min(int(np.ceil(corners[:, 1].max())) + 1 + margin, height)
    if left >= right or top >= bottom:
        return None
    return slice(top, bottom), slice(left, right)
