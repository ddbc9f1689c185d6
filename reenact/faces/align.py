"""FFHQ alignment over time: the quad per frame, temporal smoothing, crop warp and its exact inverse.

The quad is the FFHQ dataset's oriented crop square (NVlabs/ffhq-dataset `download_ffhq.py`,
`recreate_aligned_images`; the same construction is STIT's `utils/alignment.py::compute_transform`):
its centre `c` and half-axes `x` (towards the subject's left eye as seen in the image) and `y` (down).
Corners are ordered [top-left, bottom-left, bottom-right, top-right] = [c-x-y, c-x+y, c+x+y, c+x-y].

Coordinates are in pixel-centre convention (pixel i has its centre at i, as dlib and OpenCV use), so
the crop's centre pixel maps exactly onto `c`, matching FFHQ's PIL transform of `quad + 0.5`.

Per-frame quads jitter with the landmark noise; `smooth_quads` filters the quad parameters (c, x, y)
over time, within shots only, after filling short detection gaps. STIT smooths with a Gaussian; the
default (`loess`, a robust local quadratic fit) is chosen by `benchmarks/bench_smoothing.py` and
`benchmarks/compare_filters.py` (see `AlignConfig.filter`): like the Gaussian it is zero-phase (no delay),
and unlike it it follows the curvature of a fast turn instead of rounding it off. `quad_jitter`,
`fastest_frame` and `quad_delay` are the measures those benchmarks and the tests use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from scipy.ndimage import correlate1d, gaussian_filter1d, median_filter
from scipy.signal import savgol_filter

from reenact.config import AlignConfig

NUM_LANDMARKS = 68
EYE_LEFT = slice(36, 42)
EYE_RIGHT = slice(42, 48)
MOUTH_LEFT = 48
MOUTH_RIGHT = 54
EYE_TO_EYE_SCALE = 2.0
"""FFHQ: half-side of the quad is max(2.0 * |eye_to_eye|, 1.8 * |eye_to_mouth|)."""
EYE_TO_MOUTH_SCALE = 1.8
CENTRE_SHIFT = 0.1
"""FFHQ: the quad centre sits 10% of the way from the eye midpoint to the mouth midpoint."""

CENTRE_CHANNELS = slice(0, 2)
AXES_CHANNELS = slice(2, 6)
NUM_PARAMS = 6
"""Smoothed quantities per frame: c (2), x (2), y (2)."""

TUKEY_C = 4.685
"""Tukey biweight cut-off in robust standard deviations (95% efficiency for Gaussian noise)."""
MAD_TO_STD = 1.4826
"""Median absolute deviation -> standard deviation for Gaussian noise."""
ROBUST_MEDIAN_SIGMAS = 2.0
"""Robust filter: half-width of the initial running median, in Gaussian sigmas."""
ROBUST_MIN_WEIGHT = 0.05
"""Robust filter: below this local share of accepted frames the plain Gaussian mean is used."""
ROBUST_MIN_SCALE = 0.002
"""Robust filter: floor of the residual scale, in quad sides (dlib noise is ~0.002-0.004), so a
noiseless track does not turn every tiny residual into an outlier."""

BORDER_MODES = {
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
}
LOESS_RADIUS_SIGMAS = 3.0
"""Local polynomial filter: the Gaussian window is cut at this many sigmas each side."""
LOESS_MIN_DET = 1e-6
"""Local polynomial filter: below this determinant of the diagonally scaled normal matrix (1 for
independent columns, 0 for singular) a frame's fit uses the pseudo-inverse instead of a direct solve."""
LOESS_RCOND = 1e-8
"""Local polynomial filter: singular values below this share of the largest are dropped (a fit with too few
frames, e.g. two frames for a quadratic, falls back to the minimum-norm, lower-order answer)."""

FASTEST_SIGMA = 4.0
"""`fastest_frame`: the centre is smoothed by a Gaussian this wide (frames) before its speed is read, so
neither one noisy frame nor a blink (the eye points, and with them the quad, bob for 3-6 frames) counts as
the fastest head motion."""

ANTIALIAS_MARGIN_SIGMAS = 3.0
"""Extra frame margin (in prefilter sigmas) read around the quad when blurring before a shrink."""


def rot90(v: np.ndarray) -> np.ndarray:
    """Rotate 2-vectors (last axis) by +90 degrees in image coordinates: (a, b) -> (-b, a)."""
    return np.stack([-v[..., 1], v[..., 0]], axis=-1)


def ffhq_quad(points68: np.ndarray) -> np.ndarray:
    """FFHQ crop quad [4, 2] from 68 landmarks [68, 2] (iBUG order, image coordinates)."""
    points = np.asarray(points68, dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks of shape ({NUM_LANDMARKS}, 2), got {points.shape}")
    eye_left = points[EYE_LEFT].mean(axis=0)
    eye_right = points[EYE_RIGHT].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - rot90(eye_to_mouth)
    x = x / np.hypot(*x)
    x = x * max(np.hypot(*eye_to_eye) * EYE_TO_EYE_SCALE, np.hypot(*eye_to_mouth) * EYE_TO_MOUTH_SCALE)
    y = rot90(x)
    c = eye_avg + eye_to_mouth * CENTRE_SHIFT
    return quads_from_params(c, x, y)


def quad_params(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre c and half-axes x, y of quads [..., 4, 2] (exact for parallelograms), each [..., 2]."""
    q = np.asarray(quads, dtype=np.float64)
    c = q.mean(axis=-2)
    x = (q[..., 2, :] + q[..., 3, :] - q[..., 0, :] - q[..., 1, :]) * 0.25
    y = (q[..., 1, :] + q[..., 2, :] - q[..., 0, :] - q[..., 3, :]) * 0.25
    return c, x, y


def quads_from_params(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Quads [..., 4, 2] from centre and half-axes [..., 2]; corners TL, BL, BR, TR."""
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y], axis=-2)


def quad_size(quads: np.ndarray) -> np.ndarray:
    """Side length of quads [..., 4, 2] (mean of the two axes' full lengths), shape [...]."""
    _, x, y = quad_params(quads)
    return np.linalg.norm(x, axis=-1) + np.linalg.norm(y, axis=-1)


# ----------------------------------------------------------------------------------------------------
# Temporal smoothing


def _check_segments(segments: Sequence[tuple[int, int]], num_frames: int) -> list[tuple[int, int]]:
    """Validate half-open [start, stop) frame ranges: inside the clip, sorted, not overlapping."""
    checked: list[tuple[int, int]] = []
    previous_stop = 0
    for start, stop in sorted((int(a), int(b)) for a, b in segments):
        if not 0 <= start < stop <= num_frames:
            raise ValueError(f"segment ({start}, {stop}) is not inside 0..{num_frames}")
        if start < previous_stop:
            raise ValueError(f"segments overlap at frame {start}")
        checked.append((start, stop))
        previous_stop = stop
    return checked


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, stop) ranges of consecutive True values in a 1-D bool array."""
    padded = np.concatenate([[False], valid, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def fill_short_gaps(params: np.ndarray, *, max_gap: int) -> np.ndarray:
    """Linearly interpolate interior NaN runs of at most `max_gap` frames in params [T, P].

    Gaps touching either end, and longer gaps, stay NaN: there is nothing trustworthy to
    interpolate from, and a long gap usually means the face really is gone.
    """
    filled = params.copy()
    valid = ~np.isnan(params).any(axis=1)
    for start, stop in _runs(~valid):
        if start == 0 or stop == len(params) or stop - start > max_gap:
            continue
        before, after = params[start - 1], params[stop]
        weights = (np.arange(start, stop) - (start - 1)) / (stop - start + 1)  # [G]
        filled[start:stop] = before + weights[:, None] * (after - before)
    return filled


def _one_euro_pass(
    signal: np.ndarray, *, min_cutoff: float, beta: float, derivative_cutoff: float
) -> np.ndarray:
    """One causal One-Euro pass (Casiez et al. 2012) over [T, P], time in frames.

    All channels share one smoothing factor per frame, driven by the speed of the whole vector, so
    a linear relation between channels (y = rot90(x)) survives filtering.
    """

    def alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau)

    out = np.empty_like(signal)
    out[0] = signal[0]
    speed = np.zeros(signal.shape[1])
    alpha_d = alpha(derivative_cutoff)
    for t in range(1, len(signal)):
        speed = speed + alpha_d * ((signal[t] - out[t - 1]) - speed)
        cutoff = min_cutoff + beta * float(np.linalg.norm(speed))
        out[t] = out[t - 1] + alpha(cutoff) * (signal[t] - out[t - 1])
    return out


def _tukey_weights(run: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Tukey biweight per frame [T] from the residual of run [T, P] against fitted [T, P] (MAD scale)."""
    residual = np.linalg.norm(run - fitted, axis=1)  # [T]
    scale = max(MAD_TO_STD * float(np.median(residual)), ROBUST_MIN_SCALE)
    u = residual / (TUKEY_C * scale)
    return np.where(u < 1.0, (1.0 - u**2) ** 2, 0.0)


def _robust_gaussian(run: np.ndarray, *, sigma: float, iterations: int) -> np.ndarray:
    """Gaussian smoothing that down-weights outlier frames (iteratively reweighted, Tukey biweight).

    One weight per frame, shared by all channels: a mis-fitted landmark frame is wrong as a whole.
    The residual scale is the median absolute residual (MAD), so the weights adapt to each clip.
    """

    # A running median starts the reweighting: unlike a mean, it is not dragged towards an outlier,
    # so the outlier's neighbours are not rejected along with it.
    window = 2 * math.ceil(ROBUST_MEDIAN_SIGMAS * sigma) + 1
    median = median_filter(run, size=(window, 1), mode="nearest")
    if iterations == 0:
        return gaussian_filter1d(run, sigma=sigma, axis=0, mode="reflect")

    def weighted_gaussian(weights: np.ndarray) -> np.ndarray:
        numerator = gaussian_filter1d(run * weights[:, None], sigma=sigma, axis=0, mode="reflect")
        denominator = gaussian_filter1d(weights, sigma=sigma, axis=0, mode="reflect")[:, None]
        # Where nearly every nearby frame was rejected, the running median is the better guess.
        return np.where(denominator > ROBUST_MIN_WEIGHT, numerator / np.maximum(denominator, 1e-12), median)

    smoothed = median
    for _ in range(iterations):
        smoothed = weighted_gaussian(_tukey_weights(run, smoothed))
    return smoothed


def _local_polynomial(run: np.ndarray, weights: np.ndarray, *, sigma: float, order: int) -> np.ndarray:
    """Weighted local polynomial fit (LOESS) of run [T, P], evaluated at each frame: [T, P].

    Frame t's value is the constant term of the degree-`order` polynomial in (s - t) that best fits the
    frames s of the run, each weighted by a Gaussian of width `sigma` frames times its own weight. A
    symmetric window makes it zero-phase; unlike a plain Gaussian it follows a turn's curvature (order
    >= 2) instead of rounding it off; the window is cut at the run's ends, so the ends are one-sided
    fits rather than reflections.
    """
    radius = math.ceil(LOESS_RADIUS_SIGMAS * sigma)
    u = np.arange(-radius, radius + 1) / sigma  # [K], offsets in sigmas keep the system well scaled
    kernel = np.exp(-0.5 * u**2)  # [K]
    powers = range(2 * order + 1)
    # moments[t, m] = sum_s g(s - t) w(s) u^m; targets[t, k, p] = sum_s g(s - t) w(s) u^k y(s, p)
    moments = np.stack(
        [correlate1d(weights, kernel * u**m, mode="constant", cval=0.0) for m in powers], axis=1
    )  # [T, 2 * order + 1]
    targets = np.stack(
        [
            correlate1d(run * weights[:, None], kernel * u**k, axis=0, mode="constant", cval=0.0)
            for k in range(order + 1)
        ],
        axis=1,
    )  # [T, order + 1, P]
    index = np.arange(order + 1)
    normal = moments[:, index[:, None] + index[None, :]]  # [T, order + 1, order + 1]
    # A direct solve where the system is well conditioned (relative to its diagonal), the pseudo-inverse
    # elsewhere (run ends, short runs, neighbourhoods of rejected frames): pinv on every frame is ~10x slower.
    diagonal = np.sqrt(np.einsum("tii->ti", normal))  # [T, order + 1]
    scaled = normal / np.maximum(diagonal[:, :, None] * diagonal[:, None, :], np.finfo(float).tiny)
    healthy = np.linalg.det(scaled) > LOESS_MIN_DET
    coefficients = np.empty_like(targets)  # [T, order + 1, P]
    coefficients[healthy] = np.linalg.solve(normal[healthy], targets[healthy])
    coefficients[~healthy] = (
        np.linalg.pinv(normal[~healthy], rcond=LOESS_RCOND, hermitian=True) @ targets[~healthy]
    )
    return coefficients[:, 0, :]


def _robust_loess(run: np.ndarray, *, sigma: float, order: int, iterations: int) -> np.ndarray:
    """Local polynomial fit that down-weights outlier frames (iteratively reweighted, Tukey biweight).

    Like `_robust_gaussian`, one weight per frame for all channels, starting from a running median.
    """
    weights = np.ones(len(run))
    if iterations > 0:
        window = 2 * math.ceil(ROBUST_MEDIAN_SIGMAS * sigma) + 1
        weights = _tukey_weights(run, median_filter(run, size=(window, 1), mode="nearest"))
    fitted = _local_polynomial(run, weights, sigma=sigma, order=order)
    for _ in range(iterations - 1):
        fitted = _local_polynomial(run, _tukey_weights(run, fitted), sigma=sigma, order=order)
    return fitted


def _filter_run(run: np.ndarray, *, config: AlignConfig) -> np.ndarray:
    """Zero-phase temporal filter of one gap-free run of params [T, P] (already in quad-size units)."""
    length = len(run)
    if config.filter == "none" or length < 2:
        return run
    if config.filter == "gaussian":
        return gaussian_filter1d(run, sigma=config.sigma, axis=0, mode="reflect")
    if config.filter == "savgol":
        window = min(config.savgol_window, length if length % 2 else length - 1)
        if window <= config.savgol_order:
            return run
        return savgol_filter(run, window, config.savgol_order, axis=0, mode="interp")
    if config.filter == "loess":
        return _robust_loess(
            run, sigma=config.loess_sigma, order=config.loess_order, iterations=config.robust_iterations
        )
    if config.filter == "robust":
        return _robust_gaussian(run, sigma=config.sigma, iterations=config.robust_iterations)
    if config.filter == "one_euro":
        out = np.empty_like(run)
        for channels in (CENTRE_CHANNELS, AXES_CHANNELS):
            kwargs = {
                "min_cutoff": config.one_euro_min_cutoff,
                "beta": config.one_euro_beta,
                "derivative_cutoff": config.one_euro_derivative_cutoff,
            }
            forward = _one_euro_pass(run[:, channels], **kwargs)
            out[:, channels] = _one_euro_pass(forward[::-1], **kwargs)[::-1]
        return out
    raise ValueError(f"unknown filter {config.filter!r}")


def smooth_quads(
    quads: np.ndarray,
    *,
    segments: Sequence[tuple[int, int]],
    config: AlignConfig,
) -> np.ndarray:
    """Temporally smoothed quads [T, 4, 2]; NaN rows mark frames without a face.

    `segments` are half-open [start, stop) frame ranges (shots); nothing is smoothed or
    interpolated across a segment boundary, and frames outside every segment pass through as they
    are. Within a segment, interior gaps of at most `config.max_gap` frames are interpolated and
    longer gaps stay NaN; each gap-free run is then filtered on its own.
    """
    quads = np.asarray(quads, dtype=np.float64)
    if quads.ndim != 3 or quads.shape[1:] != (4, 2):
        raise ValueError(f"expected quads of shape [T, 4, 2], got {quads.shape}")
    c, x, y = quad_params(quads)
    params = np.concatenate([c, x, y], axis=1)  # [T, 6]
    out = quads.copy()
    for seg_start, seg_stop in _check_segments(segments, len(quads)):
        missing = np.isnan(params[seg_start:seg_stop]).any(axis=1)
        filled = fill_short_gaps(params[seg_start:seg_stop], max_gap=config.max_gap)
        valid = ~np.isnan(filled).any(axis=1)
        for run_start, run_stop in _runs(valid):
            run = filled[run_start:run_stop]  # [N, 6]
            # Normalise by the run's typical quad size so that filter settings (One-Euro's speed
            # threshold, the robust filter's noise floor) mean the same for small and large faces.
            scale = float(np.median(np.linalg.norm(run[:, 2:4], axis=1) * 2.0))
            origin = run[:1, :].copy()
            origin[:, AXES_CHANNELS] = 0.0
            smoothed = _filter_run((run - origin) / scale, config=config) * scale + origin
            rewrite = np.ones(len(run), bool) if config.filter != "none" else missing[run_start:run_stop]
            frames = np.arange(seg_start + run_start, seg_start + run_stop)[rewrite]
            out[frames] = quads_from_params(
                smoothed[rewrite, 0:2], smoothed[rewrite, 2:4], smoothed[rewrite, 4:6]
            )
    return out


def quad_jitter(quads: np.ndarray, segments: Sequence[tuple[int, int]]) -> float:
    """RMS second temporal difference of the quad corners, in quad sides, within segments only.

    Only frames whose two neighbours are in the same segment and all three have a quad count;
    NaN when there is no such frame.
    """
    quads = np.asarray(quads, dtype=np.float64)
    squared: list[np.ndarray] = []
    for start, stop in _check_segments(segments, len(quads)):
        q = quads[start:stop]  # [N, 4, 2]
        if len(q) < 3:
            continue
        accel = q[2:] - 2.0 * q[1:-1] + q[:-2]  # [N-2, 4, 2]
        size = quad_size(q[1:-1])  # [N-2]
        rel = np.linalg.norm(accel, axis=-1) / size[:, None]  # [N-2, 4]
        rel = rel[~np.isnan(rel).any(axis=1)]
        squared.append((rel**2).ravel())
    values = np.concatenate(squared) if squared else np.empty(0)
    return float(np.sqrt(values.mean())) if values.size else float("nan")


def fastest_frame(quads: np.ndarray, segments: Sequence[tuple[int, int]], *, half_window: int) -> int | None:
    """Frame where the quad centre moves fastest (in quad sides per frame), at least `half_window` frames
    inside a gap-free run of a segment; None when no run is long enough.

    The speed is read from a smoothed centre (`FASTEST_SIGMA`), so a noisy frame or a blink is not chosen.
    """
    quads = np.asarray(quads, dtype=np.float64)
    centre = quads.mean(axis=1)  # [T, 2]
    size = quad_size(quads)  # [T]
    best_speed, best_frame = -1.0, None
    for seg_start, seg_stop in _check_segments(segments, len(quads)):
        for run_start, run_stop in _runs(np.isfinite(centre[seg_start:seg_stop]).all(axis=1)):
            start, stop = seg_start + run_start, seg_start + run_stop
            if stop - start <= 2 * half_window:
                continue
            smooth_centre = gaussian_filter1d(centre[start:stop], sigma=FASTEST_SIGMA, axis=0, mode="nearest")
            speed = np.linalg.norm(np.gradient(smooth_centre, axis=0), axis=1) / size[start:stop]  # [N]
            inner = np.arange(half_window, stop - start - half_window)
            frame = int(inner[np.argmax(speed[inner])])
            if speed[frame] > best_speed:
                best_speed, best_frame = float(speed[frame]), start + frame
    return best_frame


def quad_delay(quads: np.ndarray, reference: np.ndarray, frames: np.ndarray, *, max_shift: int) -> float:
    """Delay in frames of the quad centres behind `reference`'s over `frames` (positive = late).

    The shift s (|s| <= max_shift) that minimises the mean squared distance between centre(t) and
    reference centre(t - s), refined between whole frames by a parabola through the three best shifts.
    A zero-phase filter scores ~0; a causal filter scores its group delay.
    """
    centre = np.asarray(quads, dtype=np.float64).mean(axis=1)  # [T, 2]
    target = np.asarray(reference, dtype=np.float64).mean(axis=1)  # [T, 2]
    frames = np.asarray(frames)
    shifts = np.arange(-max_shift, max_shift + 1)
    errors = np.empty(len(shifts))
    for i, shift in enumerate(shifts):
        kept = frames[(frames - shift >= 0) & (frames - shift < len(target))]
        errors[i] = np.nanmean(np.sum((centre[kept] - target[kept - shift]) ** 2, axis=1))
    best = int(np.argmin(errors))
    if best in (0, len(shifts) - 1):
        return float(shifts[best])
    before, at, after = errors[best - 1 : best + 2]
    curvature = before - 2.0 * at + after
    return float(shifts[best] + (0.5 * (before - after) / curvature if curvature > 0 else 0.0))


# ----------------------------------------------------------------------------------------------------
# Crop warp and its inverse


def crop_matrix(quad: np.ndarray, resolution: int) -> np.ndarray:
    """Frame -> crop affine [3, 3] (float64) sending the quad onto the R x R crop, pixel centres exact.

    Crop pixel (u, v) samples the frame at c + (2(u + 0.5)/R - 1) x + (2(v + 0.5)/R - 1) y: the
    quad's corners are the crop's outer pixel corners, as in FFHQ's PIL QUAD transform.
    """
    c, x, y = quad_params(np.asarray(quad, dtype=np.float64))
    if not np.all(np.isfinite(c)) or np.linalg.norm(x) == 0.0 or np.linalg.norm(y) == 0.0:
        raise ValueError("crop_matrix needs a finite, non-degenerate quad")
    crop_to_frame = np.eye(3)
    crop_to_frame[:2, 0] = 2.0 * x / resolution
    crop_to_frame[:2, 1] = 2.0 * y / resolution
    crop_to_frame[:2, 2] = c - (1.0 - 1.0 / resolution) * (x + y)
    return np.linalg.inv(crop_to_frame)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply an affine [3, 3] to points [..., 2]."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


def _frame_scale(matrix: np.ndarray) -> float:
    """Frame pixels per crop pixel (>1 means the warp shrinks)."""
    crop_to_frame = np.linalg.inv(matrix)
    return float(np.sqrt(abs(np.linalg.det(crop_to_frame[:2, :2]))))


def warp_to_crop(
    frame: np.ndarray,
    matrix: np.ndarray,
    resolution: int,
    *,
    border: str = "reflect",
    interpolation: int = cv2.INTER_CUBIC,
    box: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Aligned crop [R, R, C] of `frame` [H, W, C] under the frame -> crop `matrix`.

    When the quad is larger than the crop the frame is first low-passed (Gaussian, sigma from the
    shrink factor) around the quad only, so that the crop is anti-aliased like FFHQ's shrink step.
    Pixels outside the frame follow `border` (FFHQ pads by reflection). With `box` (rows, columns of
    the crop) only that part of the crop is computed and returned.
    """
    if border not in BORDER_MODES:
        raise ValueError(f"border must be one of {', '.join(BORDER_MODES)}, got {border!r}")
    shrink = _frame_scale(matrix)
    source = frame
    if shrink > 1.0:
        source = _antialias_around_quad(frame, matrix, resolution, shrink=shrink)
    crop_to_frame = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    rows, cols = box if box is not None else (slice(0, resolution), slice(0, resolution))
    shift = np.array([[1.0, 0.0, cols.start], [0.0, 1.0, rows.start], [0.0, 0.0, 1.0]])
    return cv2.warpAffine(
        source,
        (crop_to_frame @ shift)[:2],
        (cols.stop - cols.start, rows.stop - rows.start),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=BORDER_MODES[border],
    )


def _antialias_around_quad(
    frame: np.ndarray, matrix: np.ndarray, resolution: int, *, shrink: float
) -> np.ndarray:
    """Copy of `frame` low-passed (Gaussian) where the crop will sample it, for a shrink by `shrink`."""
    sigma = (shrink - 1.0) / 2.0  # the usual anti-aliasing width for a downscale (skimage's rescale)
    margin = math.ceil(ANTIALIAS_MARGIN_SIGMAS * sigma) + 2
    crop_corners = np.array([[0, 0], [0, resolution], [resolution, resolution], [resolution, 0]], float) - 0.5
    corners = transform_points(crop_corners, np.linalg.inv(matrix))  # [4, 2] in the frame
    height, width = frame.shape[:2]
    x0 = max(math.floor(corners[:, 0].min()) - margin, 0)
    y0 = max(math.floor(corners[:, 1].min()) - margin, 0)
    x1 = min(math.ceil(corners[:, 0].max()) + margin + 1, width)
    y1 = min(math.ceil(corners[:, 1].max()) + margin + 1, height)
    out = frame.copy()
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = cv2.GaussianBlur(
            frame[y0:y1, x0:x1], (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101
        )
    return out


def warp_to_frame(
    crop: np.ndarray,
    matrix: np.ndarray,
    frame_shape: tuple[int, ...],
    *,
    interpolation: int = cv2.INTER_CUBIC,
    box: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Crop [R, R, ...] warped back into frame geometry [H, W, ...]; zero outside the crop.

    The exact inverse of `warp_to_crop`'s geometry: OpenCV is given the frame -> crop matrix with
    WARP_INVERSE_MAP, so no matrix is inverted numerically. With `box` (rows, columns of the frame)
    only that part of the frame is computed and returned.
    """
    height, width = frame_shape[:2]
    rows, cols = box if box is not None else (slice(0, height), slice(0, width))
    shift = np.array([[1.0, 0.0, cols.start], [0.0, 1.0, rows.start], [0.0, 0.0, 1.0]])
    return cv2.warpAffine(
        crop,
        (np.asarray(matrix, dtype=np.float64) @ shift)[:2],
        (cols.stop - cols.start, rows.stop - rows.start),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
