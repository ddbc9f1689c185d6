"""Paste a rendered face crop back into its frame: feathered face mask, colour match, optional Poisson.

The mask is built in crop space (from the 68 landmarks mapped into the crop, or a default ellipse),
and warped into the frame with the same frame -> crop matrix as the crop, so face and mask stay
registered. Guarantee: wherever the warped mask is zero the output pixel IS the input pixel
(bit-identical), because the blend is only computed where alpha > 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from reenact.config import CompositeConfig
from reenact.faces.align import transform_points, warp_to_crop, warp_to_frame

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
MIN_STD = 1e-3


def feather(binary: np.ndarray, feather_px: float) -> np.ndarray:
    """Soft alpha [H, W] float32 in 0..1 from a binary mask: a linear ramp inside its edge.

    alpha = min(distance to the nearest outside pixel / feather_px, 1). The Euclidean distance
    changes by at most one per pixel step, so alpha's gradient is at most 1 / feather_px: no hard
    edge, and it is monotone from the edge inwards. The image border counts as outside.
    """
    inside = (np.asarray(binary) > 0).astype(np.uint8)
    inside[0, :] = inside[-1, :] = 0
    inside[:, 0] = inside[:, -1] = 0
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.clip(distance / max(feather_px, 1.0), 0.0, 1.0).astype(np.float32)


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
    rgb = image.astype(np.float32) / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab) if space == "lab" else rgb


def _from_space(values: np.ndarray, space: str) -> np.ndarray:
    rgb = cv2.cvtColor(values.astype(np.float32), cv2.COLOR_Lab2RGB) if space == "lab" else values
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def weighted_stats(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel weighted mean and std of values [H, W, C] under weights [H, W]: float64 moments, one
    pass (variance = E[v²] - E[v]², safe in float64 at image value ranges)."""
    w = weights.reshape(-1).astype(np.float64)  # [n]
    v = values.reshape(len(w), -1).astype(np.float64)  # [n, C]
    total = max(float(w.sum()), 1e-12)
    mean = w @ v / total
    variance = np.maximum(w @ (v * v) / total - mean * mean, 0.0)
    return mean, np.sqrt(variance)


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


def match_color(
    source: np.ndarray,
    reference: np.ndarray,
    weights: np.ndarray,
    *,
    space: str = "lab",
) -> np.ndarray:
    """`source` [H, W, 3] uint8 RGB with its per-channel mean/std (under `weights`) set to the reference's.

    Only the box around the weights (grown by `COLOR_MARGIN`, what the paste-back's interpolation reads
    beyond the mask) is converted; the rest of `source` is returned as it is."""
    window = support_window(weights > 0, margin=COLOR_MARGIN)
    if window is None:
        return source
    src = _to_space(source[window], space)
    ref = _to_space(reference[window], space)
    src_mean, src_std = weighted_stats(src, weights[window])
    ref_mean, ref_std = weighted_stats(ref, weights[window])
    gain = (ref_std / np.maximum(src_std, MIN_STD)).astype(np.float32)
    out = source.copy()
    out[window] = _from_space((src - src_mean.astype(np.float32)) * gain + ref_mean.astype(np.float32), space)
    return out


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
    """The frame [H, W, 3] uint8 with the rendered `crop` [R, R, 3] uint8 pasted back through `matrix`.

    `matrix` is the frame -> crop affine the crop was taken with; `mask_crop` [R, R] float in 0..1 is
    the face mask in crop space. Where the warped mask is zero the frame's pixels are returned
    unchanged, bit for bit.
    """
    resolution = crop.shape[0]
    if crop.shape[:2] != (resolution, resolution) or mask_crop.shape != crop.shape[:2]:
        raise ValueError(f"crop {crop.shape} and mask {mask_crop.shape} must both be [R, R(, 3)]")
    if config.color_match:
        original = warp_to_crop(frame, matrix, resolution, border="replicate")
        crop = match_color(crop, original, mask_crop, space=config.color_space)

    alpha = warp_to_frame(mask_crop.astype(np.float32), matrix, frame.shape, interpolation=cv2.INTER_LINEAR)
    alpha = np.clip(alpha, 0.0, 1.0)  # [H, W]
    inside = alpha > 0.0
    out = frame.copy()
    if not inside.any():
        return out
    face = warp_to_frame(crop, matrix, frame.shape)  # [H, W, 3]
    if config.poisson:
        face = _poisson(face, frame, inside)
    a = alpha[inside][:, None]
    blended = a * face[inside].astype(np.float32) + (1.0 - a) * frame[inside].astype(np.float32)
    out[inside] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
