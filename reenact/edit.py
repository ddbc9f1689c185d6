"""Latent arithmetic on W+ sequences: expression transfer, morphing, style crossover, direction edits.

Pure functions (no I/O). W+ latents are `[T, num_ws, w_dim]`: one w per frame and generator layer.
A clip's latents are a `reenact.latents.LatentSource`, a tensor or a table read a batch at a time: what
runs over a whole clip (the neutral frame, the offsets, the transfer) reads and computes it a batch at a
time, so a long clip costs time, not memory. Every function keeps the input's device and dtype.

Expression transfer (the core of `reenact transfer`)::

    mask   = layer_mask("expression", num_ws=G.num_ws)
    ref    = neutral_frame(driver_ws, mask=mask, w_avg=G.mapping.w_avg)
    deltas = expression_deltas(driver_ws, ref=ref, mask=mask, sigma=1.0)   # [T, L, D]
    out    = transfer(target_ws, deltas[length_indices(...)], strength=1.0)

The driver's *own* slow motion on the masked layers (head pose and lighting drift that the generator
also encodes there) leaks into the deltas: Δ[t] = expression[t] + (motion[t] - motion[ref]) on the mask.
The layer mask keeps the coarse (pose) and fine (colour) layers out; what leaks through the middle layers
is measured in tests/test_edit.py on the synthetic world.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from reenact.config import EditConfig
from reenact.directions import Direction
from reenact.errors import ReenactError
from reenact.latents import LATENT_BATCH, ComputedLatents, LatentSource, latent_batches

LengthPolicy = Literal["loop", "pingpong", "cut", "hold"]

REFERENCE_NUM_WS = 18
"""W+ layers of the FFHQ 1024 px StyleGAN2 generator, in whose indices the presets are written."""
MIN_NUM_WS_BY_RESOLUTION = 10
"""Generators with at least this many W+ layers (64 px and up: they have the 16 and 32 px blocks of the
middle band, and a finer one) keep the reference layer indices; smaller (toy) generators get the bands
scaled proportionally (see `LAYER_PRESETS`)."""
COARSE_END = 4
"""First middle layer: W+ layers 0-3 drive the 4x4 and 8x8 synthesis blocks."""
MIDDLE_END = 8
"""First fine layer: W+ layers 4-7 drive the 16x16 and 32x32 blocks, 8 and up 64x64 and finer."""

LAYER_PRESETS: dict[str, tuple[tuple[int, int], ...]] = {
    "coarse": ((0, COARSE_END),),
    "pose": ((0, COARSE_END),),
    "middle": ((COARSE_END, MIDDLE_END),),
    "expression": ((COARSE_END, MIDDLE_END),),
    "expression+pose": ((0, MIDDLE_END),),
    "fine": ((MIDDLE_END, REFERENCE_NUM_WS),),
    "color": ((MIDDLE_END, REFERENCE_NUM_WS),),
    "all": ((0, REFERENCE_NUM_WS),),
}
"""Named W+ layer sets, as half-open bands [start, end) of the 18-layer FFHQ 1024 px generator.

The bands follow the style-mixing study of StyleGAN (Karras et al., CVPR 2019, sec. 3.1), which holds
for StyleGAN2's W+ too: *coarse* layers 0-3 (4x4-8x8) carry pose, face shape, hair style and glasses;
*middle* layers 4-7 (16x16-32x32) carry smaller facial features: eyes open/closed, mouth, expression;
*fine* layers 8+ (64x64 and up) carry colour scheme, lighting and micro-structure. Hence "expression"
= middle (an expression moved onto another face without its pose or colours), "pose" = coarse,
"expression+pose" = coarse + middle (full puppeteering), "color" = fine, "all" = every layer.

A band ending at 18 means "to the last layer" for any `num_ws`. Generators with `num_ws` >= 10
(64 px and up) keep the indices, because W+ index k drives the same resolution in every StyleGAN2
(layer 4 is the 16x16 block's first conv at 64 px as at 1024 px): at 64 px, middle = 4-7 and fine =
8-9. The face world (64 px) bears this out: its mouth moves on layers 4-7, and a transfer on the
scaled layers 2-3 (its 8 px block) carried none of it (docs/face-world.md). Smaller generators (8
layers at 32 px) lack a band above the middle, so their bands are scaled by num_ws / 18 and rounded:
at 8 layers, coarse = 0-1, middle = 2-3, fine = 4 to the end.
"""

KERNEL_RADIUS_SIGMAS = 3.0
"""The temporal Gaussian is cut at this many standard deviations."""
SMOOTHSTEP_LINEAR = 3.0
SMOOTHSTEP_CUBIC = 2.0
"""Ease-in-out weights t' = 3 t^2 - 2 t^3: zero speed at both ends, t' = 1/2 at t = 1/2."""


# ---------------------------------------------------------------------------------------------------
# Layer masks


def _band_boundary(boundary: int, *, num_ws: int) -> int:
    """A reference (18-layer) band boundary in the layer indices of a generator with `num_ws` layers."""
    if boundary >= REFERENCE_NUM_WS:
        return num_ws
    if num_ws >= MIN_NUM_WS_BY_RESOLUTION:
        return min(boundary, num_ws)
    return min(math.floor(boundary * num_ws / REFERENCE_NUM_WS + 0.5), num_ws)


def layer_mask(spec: str, *, num_ws: int) -> torch.Tensor:
    """W+ layers named by `spec`, as a [num_ws] bool mask.

    `spec` is a preset name (`LAYER_PRESETS`: "expression", "expression+pose", "all", ...) or a
    comma-separated list of layer indices and inclusive ranges ("3-7", "2,4,6-8"); the items of a
    list may also be preset names ("pose,9"). Raises `ReenactError` for unknown names, malformed items,
    indices outside 0..num_ws-1, and specs that select no layer.
    """
    if num_ws < 1:
        raise ReenactError(f"num_ws must be >= 1, got {num_ws}")
    mask = torch.zeros(num_ws, dtype=torch.bool)
    text = spec.strip().lower()
    items = [text] if text in LAYER_PRESETS else [item.strip() for item in text.split(",")]
    for item in items:
        if item in LAYER_PRESETS:
            for start, end in LAYER_PRESETS[item]:
                mask[_band_boundary(start, num_ws=num_ws) : _band_boundary(end, num_ws=num_ws)] = True
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
        if match is None:
            raise ReenactError(
                f"bad layer spec {spec!r}: {item!r} is neither a preset ({', '.join(LAYER_PRESETS)}) "
                "nor a layer index or range like 3-7"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if first > last or last >= num_ws:
            raise ReenactError(
                f"bad layer spec {spec!r}: {item!r} must lie within 0-{num_ws - 1} (this generator has "
                f"{num_ws} W+ layers) and run low to high"
            )
        mask[first : last + 1] = True
    if not bool(mask.any()):
        raise ReenactError(f"layer spec {spec!r} selects no layer of a {num_ws}-layer generator")
    return mask


def _check_mask(mask: torch.Tensor, *, num_ws: int) -> torch.Tensor:
    if mask.dtype != torch.bool or tuple(mask.shape) != (num_ws,):
        raise ReenactError(
            f"layer mask must be a [{num_ws}] bool tensor, got {mask.dtype} {tuple(mask.shape)}"
        )
    return mask


def _check_ws(ws: LatentSource, *, what: str) -> None:
    if len(ws.shape) != 3:
        raise ReenactError(f"{what} must be W+ latents [T, num_ws, w_dim], got shape {tuple(ws.shape)}")


# ---------------------------------------------------------------------------------------------------
# Temporal operations


def neutral_frame(ws: LatentSource, *, mask: torch.Tensor, w_avg: torch.Tensor) -> int:
    """Index of the driver's most neutral frame. ws: [T, num_ws, w_dim]; mask: [num_ws]; w_avg: [w_dim].

    Expressions are deviations from the mean face (w_avg) on the expression layers, and an expression
    clip moves back and forth along one main axis there (mouth open/closed, smile on/off). So: take the
    clip's main axis of change on the masked layers (first principal component over time of
    w[t, mask] - w_avg), whose two extreme frames are the least and the most expressive, and return the
    extreme whose coordinate lies nearer w_avg's. Using the axis, rather than the plain distance to
    w_avg, ignores the driver's motion across it: on the synthetic world the plain distance picked
    frames at expression weight 0.1-0.15 (motion that happens to approach w_avg), this rule frames
    below 0.04 (24 of 24 seeds x lengths). Give the reference frame explicitly when it is known.
    """
    _check_ws(ws, what="ws")
    first = ws[0:1]  # [1, num_ws, w_dim]: the rows' device and dtype
    mask = _check_mask(mask.to(first.device), num_ws=ws.shape[1])
    centre = w_avg.to(first)[None, None]

    def offsets(batch: torch.Tensor) -> torch.Tensor:
        return (batch[:, mask] - centre).flatten(1).double()  # [b, M * D]

    axis = main_axis(ws, offsets)  # [M * D]
    coordinates = torch.cat(
        [offsets(batch) @ axis for batch in latent_batches(ws, size=LATENT_BATCH)]
    )  # [T], w_avg at 0
    low, high = int(coordinates.argmin()), int(coordinates.argmax())
    return low if abs(float(coordinates[low])) <= abs(float(coordinates[high])) else high


def main_axis(ws: LatentSource, offsets: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """First principal axis [M * D] of `offsets(ws)` over time, in memory that does not grow with T: the
    SVD of the centred data while it is no bigger than its covariance, else the top eigenvector of the
    covariance accumulated batch by batch (about the first frame, so the sums stay small)."""
    first = offsets(ws[:1])  # [1, M * D]
    if len(ws) <= first.shape[1]:
        data = torch.cat([offsets(batch) for batch in latent_batches(ws, size=LATENT_BATCH)])  # [T, M * D]
        return torch.linalg.svd(data - data.mean(dim=0, keepdim=True), full_matrices=False).Vh[0]
    total = torch.zeros(first.shape[1], dtype=torch.float64, device=first.device)
    scatter = torch.zeros(first.shape[1], first.shape[1], dtype=torch.float64, device=first.device)
    for batch in latent_batches(ws, size=LATENT_BATCH):
        shifted = offsets(batch) - first  # [b, M * D]
        total += shifted.sum(dim=0)
        scatter += shifted.T @ shifted
    mean = total / len(ws)
    covariance = scatter / len(ws) - torch.outer(mean, mean)
    return torch.linalg.eigh(covariance).eigenvectors[:, -1]


def _reflect_indices(indices: np.ndarray, *, length: int) -> np.ndarray:
    """Edge-reflect (symmetric: ... c b a | a b c ... ) any integer index into 0..length-1."""
    period = 2 * length
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - 1 - folded)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps [2r + 1] (float64), r = ceil(KERNEL_RADIUS_SIGMAS * sigma)."""
    radius = max(1, math.ceil(KERNEL_RADIUS_SIGMAS * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def smooth_latents(ws: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """Gaussian filter along time (dim 0) with edge reflection; `sigma` in frames, 0 = unchanged copy.

    Works on any [T, ...] tensor. The taps sum to 1, so a constant sequence is unchanged and the
    symmetric edge reflection keeps the first and last frames from being pulled towards zero.
    """
    return smooth_rows(ws, 0, ws.shape[0], sigma=sigma)


def smooth_rows(ws: LatentSource, start: int, stop: int, *, sigma: float) -> torch.Tensor:
    """Rows [start, stop) of `smooth_latents(ws)`, the same numbers, read with only the kernel's radius of
    neighbours on each side: a long sequence is smoothed a window at a time."""
    if not math.isfinite(sigma) or sigma < 0:
        raise ReenactError(f"smoothing sigma must be a finite number >= 0, got {sigma}")
    num_frames = len(ws)
    if sigma == 0 or num_frames < 2:
        return ws[start:stop].clone()
    taps = gaussian_kernel(sigma)
    radius = (taps.numel() - 1) // 2
    source = _reflect_indices(np.arange(start - radius, stop + radius), length=num_frames)
    padded = ws[source]  # [n + 2r, ...]
    out = torch.zeros_like(padded[: stop - start])
    for k, tap in enumerate(taps.tolist()):
        out += tap * padded[k : k + stop - start]
    return out


@dataclass(frozen=True)
class DeltaBasis:
    """What the expression offsets need besides the driver's rows (`delta_basis`)."""

    ref: int
    """The reference row (its offset is 0)."""
    origin: torch.Tensor  # [num_ws, w_dim] the smoothed driver at `ref`
    mask: torch.Tensor  # [num_ws] bool
    sigma: float
    threshold: torch.Tensor | None  # [num_ws, 1] per-layer soft threshold; None: no shrink


def delta_basis(
    driver_ws: LatentSource, *, ref: int, mask: torch.Tensor, sigma: float = 0.0, min_component: float = 0.0
) -> DeltaBasis:
    """The reference and per-layer thresholds of `expression_deltas`, from one sweep over the driver
    a batch at a time (only when `min_component` > 0: the thresholds need every row's offset)."""
    _check_ws(driver_ws, what="driver_ws")
    num_frames, num_ws = driver_ws.shape[0], driver_ws.shape[1]
    if not 0 <= ref < num_frames:
        raise ReenactError(f"reference frame {ref} is outside the driver's 0..{num_frames - 1}")
    if not 0 <= min_component < 1:
        raise ReenactError(f"min_component must be in [0, 1), got {min_component}")
    origin = smooth_rows(driver_ws, ref, ref + 1, sigma=sigma)[0]  # [L, D]
    mask = _check_mask(mask.to(origin.device), num_ws=num_ws)
    basis = DeltaBasis(ref=ref, origin=origin, mask=mask, sigma=sigma, threshold=None)
    if min_component == 0:
        return basis
    longest = torch.zeros(num_ws, 1, dtype=origin.dtype, device=origin.device)  # [L, 1]
    for start in range(0, num_frames, LATENT_BATCH):
        rows = np.arange(start, min(start + LATENT_BATCH, num_frames))
        lengths = delta_rows(driver_ws, rows, basis=basis).norm(dim=2, keepdim=True)  # [n, L, 1]
        longest = torch.maximum(longest, lengths.amax(dim=0))
    return replace(basis, threshold=min_component * longest)


def delta_rows(driver_ws: LatentSource, rows: np.ndarray, *, basis: DeltaBasis) -> torch.Tensor:
    """The expression offsets [n, num_ws, w_dim] of the driver rows `rows` [n] (any order, repeats
    allowed): each run of consecutive rows is smoothed as one window."""
    unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    smooth = torch.cat(
        [
            smooth_rows(driver_ws, int(run[0]), int(run[-1]) + 1, sigma=basis.sigma)
            for run in np.split(unique, breaks)
        ]
    )  # [u, L, D]
    deltas = (smooth - basis.origin[None]) * basis.mask[None, :, None]  # [u, L, D]
    if basis.threshold is not None:
        lengths = deltas.norm(dim=2, keepdim=True)  # [u, L, 1]
        tiny = torch.finfo(deltas.dtype).tiny
        deltas = deltas * torch.clamp(1 - basis.threshold[None] / lengths.clamp_min(tiny), min=0)
    return deltas[torch.from_numpy(inverse.reshape(-1)).to(deltas.device)]


def expression_deltas(
    driver_ws: LatentSource,
    *,
    ref: int,
    mask: torch.Tensor,
    sigma: float = 0.0,
    min_component: float = 0.0,
) -> torch.Tensor:
    """Δ[t] = w_drv[t] - w_drv[ref] on the masked layers, zero elsewhere: [T, num_ws, w_dim].

    With `sigma` > 0 the driver is smoothed along time first (`smooth_latents`, `sigma` frames) and
    Δ[t] = w_smooth[t] - w_smooth[ref]: the reference frame's own inversion noise is filtered too
    (smoothing Δ afterwards would add that noise, unfiltered, to every frame), and Δ[ref] stays 0.
    Then the deltas are shrunk per layer: with M_l the
    largest |Δ[t, l]| over the clip, every Δ[t, l] loses `min_component * M_l` of its length (soft
    threshold), so layer-deltas shorter than that become exactly zero (inversion jitter while the
    driver's face rests) and larger ones change continuously (a hard cut would make expressions pop
    in and out). `min_component` 0 keeps Δ unchanged; it must be in [0, 1).
    """
    basis = delta_basis(driver_ws, ref=ref, mask=mask, sigma=sigma, min_component=min_component)
    return delta_rows(driver_ws, np.arange(len(driver_ws)), basis=basis)


def length_indices(num_out: int, num_driver: int, *, policy: LengthPolicy) -> np.ndarray:
    """Which driver frame feeds each of `num_out` output frames: [num_out] int64.

    loop: 0 1 2 0 1 2 ...; pingpong: 0 1 2 1 0 1 2 ... (no jump at the turn); hold and cut: 0 1 2 2 2
    (the last driver frame held after the driver ends). For `cut` the caller first shortens the output
    to `output_length(...)` frames, so nothing is held; the indices are those of `hold`.
    """
    if num_out < 0 or num_driver < 1:
        raise ReenactError(f"need num_out >= 0 and num_driver >= 1, got {num_out} and {num_driver}")
    t = np.arange(num_out, dtype=np.int64)
    if policy == "loop":
        return t % num_driver
    if policy == "pingpong":
        if num_driver == 1:
            return np.zeros(num_out, dtype=np.int64)
        period = 2 * num_driver - 2
        phase = t % period
        return np.where(phase < num_driver, phase, period - phase)
    if policy in ("hold", "cut"):
        return np.minimum(t, num_driver - 1)
    raise ReenactError(f"length policy must be one of loop, pingpong, cut, hold; got {policy!r}")


def output_length(num_target: int, num_driver: int, *, policy: LengthPolicy) -> int:
    """Frames of the output: the shorter clip's length for `cut`, else the target's."""
    return min(num_target, num_driver) if policy == "cut" else num_target


# ---------------------------------------------------------------------------------------------------
# Latent arithmetic


def transfer(target_ws: torch.Tensor, deltas: torch.Tensor, *, strength: float) -> torch.Tensor:
    """w_tgt[t] + strength * Δ[t]: [T, num_ws, w_dim].

    target_ws [T, L, D], or [1, L, D] for a still photo (broadcast to Δ's T frames); deltas [T, L, D]
    (index them with `length_indices` first when the clips' lengths differ).
    """
    _check_ws(target_ws, what="target_ws")
    _check_ws(deltas, what="deltas")
    if target_ws.shape[1:] != deltas.shape[1:]:
        raise ReenactError(
            f"target latents {tuple(target_ws.shape)} and deltas {tuple(deltas.shape)} "
            "differ in layers or w_dim"
        )
    if target_ws.shape[0] not in (1, deltas.shape[0]):
        raise ReenactError(
            f"target has {target_ws.shape[0]} frames and the deltas {deltas.shape[0]}: "
            "index the deltas with length_indices first"
        )
    return target_ws + strength * deltas.to(target_ws)


def join_chains(ws: LatentSource, segments: list[range]) -> LatentSource:
    """`ws` [N, num_ws, w_dim] with its inversion chains joined: each segment that continues a run (its
    first row right after the last row of the segment before) is shifted by a constant so that the
    step into it becomes the mean of the steps beside it. Where a segment starts, its chain may sit
    elsewhere in W+ for the same picture; that step is the inversion's (or a cut's), never the face's,
    and the offsets must not read it as expression. Rows are computed a batch at a time."""
    _check_ws(ws, what="ws")
    starts = np.array([segment.start for segment in segments], dtype=np.int64)  # [S]
    shifts = torch.zeros(len(segments), *ws.shape[1:], dtype=ws[0:1].dtype)  # [S, L, D]
    for index, segment in enumerate(segments):
        if index == 0 or segments[index - 1].stop != segment.start:
            continue
        previous, first = segments[index - 1], segment.start
        low, high = max(previous.start, first - 2), min(segment.stop, first + 2)
        rows = ws[low:high].to(shifts)  # [<= 4, L, D] around the seam
        steps = rows[1:] - rows[:-1]  # the step into the segment is steps[first - 1 - low]
        into = first - 1 - low
        beside = [steps[i] for i in (into - 1, into + 1) if 0 <= i < len(steps)]
        expected = torch.stack(beside).mean(dim=0) if beside else torch.zeros_like(steps[into])
        shifts[index] = shifts[index - 1] + steps[into] - expected

    def rows(indices: np.ndarray) -> torch.Tensor:
        which = np.searchsorted(starts, indices, side="right") - 1  # [n] segment of each row
        return ws[indices] - shifts[torch.from_numpy(which)].to(ws[0:1])

    return ComputedLatents(len(ws), row_shape=tuple(ws.shape[1:]), rows=rows)


def expression_path(ws: LatentSource, *, runs: list[range] | None = None) -> LatentSource:
    """The driver's pivots `ws` [N, num_ws, w_dim] as one path whose steps are the face's: its runs (rows
    of consecutive frames in one shot, `runs`; by default one) joined (`join_chains`). Inside a run every
    inversion segment is registered to the run's key chain (`stages.keys.register_to_keys`), so a chain
    starts afresh only at a run: a step there is the inversion's or the camera's (a cut), and the
    expression goes on across it."""
    return join_chains(ws, runs if runs is not None else [range(0, len(ws))])


def driver_deltas(
    ws: LatentSource,
    frames: np.ndarray,
    *,
    num_frames: int,
    config: EditConfig,
    w_avg: torch.Tensor,
    ref: int | None,
    runs: list[range] | None = None,
) -> tuple[ComputedLatents, int]:
    """Expression offsets of every driver frame [num_frames, num_ws, w_dim] and the reference frame used.

    `ws` [N, num_ws, w_dim] are the pivots of the driver frames `frames` [N] (those with a face) out of
    `num_frames`, taken along `expression_path`. Then `ref` (else `config.reference`) is a driver frame
    index, or None/`auto` for `neutral_frame`. Frames without a face take the offset of the nearest frame
    with one. The offsets are computed a batch at a time when asked for, never held.
    """
    mask = layer_mask(config.layers, num_ws=ws.shape[1])
    joined = expression_path(ws, runs=runs)
    if ref is None and config.reference != "auto":
        ref = int(config.reference)
    if ref is None:
        ref_slot = neutral_frame(joined, mask=mask, w_avg=w_avg)
    else:
        if not 0 <= ref < num_frames:
            raise ReenactError(f"driver reference frame {ref} is outside the driver's {num_frames} frames")
        if ref not in set(frames.tolist()):
            raise ReenactError(f"driver reference frame {ref} has no face; pick another with --driver-ref")
        ref_slot = int(np.flatnonzero(frames == ref)[0])
    basis = delta_basis(
        joined, ref=ref_slot, mask=mask, sigma=config.sigma, min_component=config.min_component
    )
    nearest = nearest_slots(np.arange(num_frames), frames)  # [num_frames]
    deltas = ComputedLatents(
        num_frames, row_shape=tuple(ws.shape[1:]), rows=lambda t: delta_rows(joined, nearest[t], basis=basis)
    )
    return deltas, int(frames[ref_slot])


def nearest_slots(points: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """For each of `points` [P], the index into the sorted `frames` [N] of the nearest one (the earlier
    on a tie), in O(P log N) time and O(P) memory."""
    if len(frames) == 0:
        raise ValueError("no frames to choose from")
    right = np.searchsorted(frames, points).clip(1, max(len(frames) - 1, 1))  # [P]
    left = right - 1
    if len(frames) == 1:
        return np.zeros(len(points), dtype=np.int64)
    nearer_left = np.abs(points - frames[left]) <= np.abs(frames[right] - points)
    return np.where(nearer_left, left, right).astype(np.int64)


def transfer_to_frames(
    target_ws: LatentSource,
    target_frames: np.ndarray,
    deltas: LatentSource,
    *,
    num_target: int,
    config: EditConfig,
) -> ComputedLatents:
    """The target's pivots `target_ws` [N, num_ws, w_dim] (of frames `target_frames` out of `num_target`)
    plus α·Δ of the driver frame each target frame is paired with (`config.length_policy`), computed a
    batch at a time when asked for."""
    which = length_indices(num_target, len(deltas), policy=config.length_policy)[target_frames]  # [N]

    def rows(slots: np.ndarray) -> torch.Tensor:
        return transfer(target_ws[slots], deltas[which[slots]], strength=config.strength)

    return ComputedLatents(len(target_ws), row_shape=tuple(target_ws.shape[1:]), rows=rows)


def transfer_to_still(target_w: torch.Tensor, deltas: LatentSource, *, strength: float) -> ComputedLatents:
    """A still photo's one pivot `target_w` [1, num_ws, w_dim] plus α·Δ of each driver frame, computed a
    batch at a time: [T_drv, num_ws, w_dim]."""
    return ComputedLatents(
        len(deltas),
        row_shape=tuple(target_w.shape[1:]),
        rows=lambda t: transfer(target_w, deltas[t], strength=strength),
    )


def _as_single(w: torch.Tensor, *, what: str) -> torch.Tensor:
    if w.ndim == 3 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 2:
        raise ReenactError(
            f"{what} must be one W+ latent [num_ws, w_dim] or [1, num_ws, w_dim], got {tuple(w.shape)}"
        )
    return w


def morph(w_a: torch.Tensor, w_b: torch.Tensor, *, num_frames: int, ease: bool = True) -> torch.Tensor:
    """Image2StyleGAN morph: (1 - t) w_a + t w_b for t from 0 to 1 over `num_frames`: [F, L, D].

    Interpolating the embedded W+ latents (Abdal et al., ICCV 2019, sec. 5.1) gives a smooth morph
    between the two faces. `ease` replaces the uniform t by the smoothstep 3t^2 - 2t^3 (the morph
    starts and ends at rest). The first and last frames are w_a and w_b exactly; at t = 1/2 the
    frame is their mean with or without easing. w_a, w_b: [L, D] or [1, L, D].
    """
    w_a, w_b = _as_single(w_a, what="w_a"), _as_single(w_b, what="w_b")
    if w_a.shape != w_b.shape:
        raise ReenactError(f"cannot morph latents of shapes {tuple(w_a.shape)} and {tuple(w_b.shape)}")
    if num_frames < 2:
        raise ReenactError(f"a morph needs num_frames >= 2, got {num_frames}")
    t = torch.linspace(0, 1, num_frames, dtype=torch.float64)
    if ease:
        t = t * t * (SMOOTHSTEP_LINEAR - SMOOTHSTEP_CUBIC * t)
    t = t.to(device=w_a.device, dtype=w_a.dtype)[:, None, None]  # [F, 1, 1]
    return (1 - t) * w_a[None] + t * w_b[None].to(w_a)


def crossover(w_a: torch.Tensor, w_b: torch.Tensor, *, layer: int) -> torch.Tensor:
    """Style mixing: layers < `layer` from w_a, layers >= `layer` from w_b (same shape [..., L, D]).

    With `layer` = 4 the result has a's pose and face shape with b's features and colours; with 8,
    a's pose and expression with b's colours (see `LAYER_PRESETS`).
    """
    if w_a.shape != w_b.shape or w_a.ndim < 2:
        raise ReenactError(
            f"crossover needs two W+ latents of one shape, got {tuple(w_a.shape)}, {tuple(w_b.shape)}"
        )
    num_ws = w_a.shape[-2]
    if not 0 <= layer <= num_ws:
        raise ReenactError(f"crossover layer must be in 0..{num_ws}, got {layer}")
    return torch.cat([w_a[..., :layer, :], w_b[..., layer:, :].to(w_a)], dim=-2)


def apply_direction(
    ws: torch.Tensor, direction: Direction, *, strength: float, layers: torch.Tensor | None = None
) -> torch.Tensor:
    """ws + strength * direction on the chosen layers (all when `layers` is None): same shape as ws.

    ws: [..., num_ws, w_dim]; `layers`: [num_ws] bool. A per-layer direction ([num_ws, w_dim]) must
    have the generator's number of layers; a single one ([1, w_dim]) moves every chosen layer alike.
    """
    if ws.ndim < 2:
        raise ReenactError(f"ws must be [..., num_ws, w_dim], got {tuple(ws.shape)}")
    num_ws, w_dim = ws.shape[-2:]
    vector = direction.vector.to(ws)  # [1 or num_ws, w_dim]
    if vector.shape[-1] != w_dim:
        raise ReenactError(
            f"direction {direction.name!r} has w_dim {vector.shape[-1]} but the latents have {w_dim}: "
            "it was made for another generator"
        )
    if vector.shape[0] not in (1, num_ws):
        raise ReenactError(
            f"direction {direction.name!r} has {vector.shape[0]} layers but the generator has {num_ws}"
        )
    if layers is not None:
        vector = vector * _check_mask(layers.to(ws.device), num_ws=num_ws)[:, None]
    return ws + strength * vector


def apply_directions(
    ws: LatentSource, directions: list[tuple[Direction, float]], *, layers: torch.Tensor | None = None
) -> ComputedLatents:
    """`apply_direction` of each (direction, strength) in turn on every row of `ws`, computed a batch at a
    time when asked for: [T, num_ws, w_dim]."""

    def rows(slots: np.ndarray) -> torch.Tensor:
        out = ws[slots]
        for direction, strength in directions:
            out = apply_direction(out, direction, strength=strength, layers=layers)
        return out

    return ComputedLatents(len(ws), row_shape=tuple(ws.shape[1:]), rows=rows)
