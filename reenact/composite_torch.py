"""Paste-back on the run's device (torch): the steps of `reenact.composite.composite_face`, same results.

For a CUDA run: the frame is uploaded once, the crop is used where it is (or uploaded), and the
reference warp, colour match, inverse warp and feathered blend run on the device over the mask's
bounding box; only the blended box comes back to the host. On a CPU the OpenCV path is faster (its
Lab conversion is a table look-up), so `reenact.composite.paste_back` only sends CUDA runs here.

Agreement with the OpenCV path, step by step:
- warps sample where OpenCV samples (the same matrix, pixel-centre coordinates), bicubic with the
  same kernel (a = -0.75) for images, bilinear for the mask; uint8 results rounded and clipped;
- RGB -> Lab is OpenCV's own float32 algorithm: trilinear interpolation, in integers, of a 33^3 table
  of the CIE formula (its results differ from the formula by up to ~0.2 L); Lab -> RGB is the formula;
- the reference's anti-aliasing blur (`warp_to_crop` when the crop shrinks the frame) is the same
  Gaussian, in float32 rather than OpenCV's fixed point.
Guarantee as on the CPU: wherever the warped mask is zero the output pixel IS the input pixel.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from reenact.composite import (
    COLOR_MARGIN,
    FRAME_MARGIN,
    UINT8_MAX,
    color_gain,
    frame_box,
    support_window,
)
from reenact.config import CompositeConfig

Box = tuple[slice, slice]

CUBIC_REACH = 2
"""Source pixels a bicubic sample reads beyond its coordinate's floor."""
GAUSSIAN_RADIUS_SIGMAS = 3.0
"""OpenCV's Gaussian kernel for uint8 images reaches this many sigmas (ksize = round(6 sigma + 1) | 1)."""

SRGB_THRESHOLD = 0.04045
SRGB_LINEAR_SLOPE = 12.92
SRGB_OFFSET = 0.055
SRGB_GAMMA = 2.4
LINEAR_THRESHOLD = 0.0031308
"""sRGB transfer curve: linear below these thresholds, a 2.4 power above."""
D65_WHITE = (0.950456, 1.0, 1.088754)
RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
XYZ_TO_RGB = (
    (3.240479, -1.53715, -0.498535),
    (-0.969256, 1.875991, 0.041556),
    (0.055648, -0.204043, 1.057311),
)
"""OpenCV's sRGB (D65) <-> XYZ matrices."""
LAB_EPSILON = 0.008856
LAB_KAPPA = 903.3
LAB_SLOPE = 7.787
LAB_OFFSET = 16.0 / 116.0
L_SCALE, L_OFFSET = 116.0, 16.0
A_SCALE, B_SCALE = 500.0, 200.0
"""CIE Lab constants as OpenCV writes them."""
L_RANGE = 100.0
AB_RANGE, AB_OFFSET = 256.0, 128.0
"""OpenCV's Lab table stores L / 100 and (a + 128) / 256, (b + 128) / 256 in units of 1 / LAB_BASE."""
LAB_BASE = 1 << 14
"""OpenCV's fixed-point unit for its float RGB -> Lab: RGB in 0..1 is rounded to 1 / LAB_BASE."""
LAB_TABLE_CELLS = 32
"""OpenCV's RGB -> Lab table has 33 nodes (32 cells) per channel."""
LAB_CELL_SHIFT = 9
"""log2(LAB_BASE / LAB_TABLE_CELLS): input units per table cell."""
LAB_FRACTION_SHIFT = 5
LAB_FRACTION_STEPS = 16
"""Within a cell OpenCV interpolates at 16 steps: (input >> 5) & 15 (truncated)."""
LAB_WEIGHT_SHIFT = 12
"""The 8 corner weights multiply to 16^3 = 2^12: the sum is rounded back by this shift."""


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(
        rgb <= SRGB_THRESHOLD,
        rgb / SRGB_LINEAR_SLOPE,
        ((rgb + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_GAMMA,
    )


def _linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    return torch.where(
        linear <= LINEAR_THRESHOLD,
        linear * SRGB_LINEAR_SLOPE,
        (1.0 + SRGB_OFFSET) * linear.clamp(min=0.0) ** (1.0 / SRGB_GAMMA) - SRGB_OFFSET,
    )


def lab_formula(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab [..., 3] of sRGB values [..., 3] in 0..1, by the formula (OpenCV's constants)."""
    white = torch.tensor(D65_WHITE, dtype=rgb.dtype, device=rgb.device)
    to_xyz = torch.tensor(RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device) / white[:, None]
    xyz = _srgb_to_linear(rgb) @ to_xyz.T  # [..., 3], white-normalised
    f = torch.where(xyz > LAB_EPSILON, xyz ** (1.0 / 3.0), LAB_SLOPE * xyz + LAB_OFFSET)
    y = xyz[..., 1]
    lightness = torch.where(y > LAB_EPSILON, L_SCALE * f[..., 1] - L_OFFSET, LAB_KAPPA * y)
    return torch.stack(
        [lightness, A_SCALE * (f[..., 0] - f[..., 1]), B_SCALE * (f[..., 1] - f[..., 2])], dim=-1
    )


_LAB_TABLES: dict[torch.device, torch.Tensor] = {}


def _lab_table(device: torch.device) -> torch.Tensor:
    """OpenCV's RGB -> Lab table [33^3, 3] int32 (index r * 33^2 + g * 33 + b), in 1 / LAB_BASE units."""
    if device not in _LAB_TABLES:
        nodes = torch.arange(LAB_TABLE_CELLS + 1, dtype=torch.float64) / LAB_TABLE_CELLS
        rgb = torch.stack(torch.meshgrid(nodes, nodes, nodes, indexing="ij"), dim=-1).reshape(-1, 3)
        lab = lab_formula(rgb)  # [33^3, 3]
        scaled = torch.stack(
            [lab[:, 0] / L_RANGE, (lab[:, 1] + AB_OFFSET) / AB_RANGE, (lab[:, 2] + AB_OFFSET) / AB_RANGE],
            dim=-1,
        )
        _LAB_TABLES[device] = torch.round(scaled * LAB_BASE).to(torch.int32).to(device)
    return _LAB_TABLES[device]


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """float32 Lab [..., 3] of RGB [..., 3] in 0..1, exactly as OpenCV's float32 `COLOR_RGB2Lab`.

    OpenCV interpolates a table rather than evaluating the formula; doing the same, in the same
    integers, gives its values (the formula alone differs by up to ~0.2 L, a level in RGB)."""
    table = _lab_table(rgb.device)
    units = torch.round(rgb.clamp(0.0, 1.0) * LAB_BASE).to(torch.int32)  # [..., 3]
    cell = units >> LAB_CELL_SHIFT  # [..., 3] in 0..32
    fraction = (units >> LAB_FRACTION_SHIFT) & (LAB_FRACTION_STEPS - 1)  # [..., 3] in 0..15
    nodes = LAB_TABLE_CELLS + 1
    strides = (nodes * nodes, nodes, 1)
    total = torch.zeros(rgb.shape, dtype=torch.int32, device=rgb.device)
    for corner in range(8):
        index = torch.zeros(rgb.shape[:-1], dtype=torch.int64, device=rgb.device)
        weight = torch.ones(rgb.shape[:-1], dtype=torch.int32, device=rgb.device)
        for channel, stride in enumerate(strides):
            upper = (corner >> (2 - channel)) & 1
            node = (cell[..., channel] + upper).clamp(max=LAB_TABLE_CELLS)  # at 1.0 its weight is 0
            index += node.to(torch.int64) * stride
            part = fraction[..., channel] if upper else LAB_FRACTION_STEPS - fraction[..., channel]
            weight *= part
        total += table[index] * weight[..., None]
    rounding = 1 << (LAB_WEIGHT_SHIFT - 1)
    scaled = ((total + rounding) >> LAB_WEIGHT_SHIFT).to(torch.float32)  # [..., 3]
    return torch.stack(
        [
            scaled[..., 0] * (L_RANGE / LAB_BASE),
            scaled[..., 1] * (AB_RANGE / LAB_BASE) - AB_OFFSET,
            scaled[..., 2] * (AB_RANGE / LAB_BASE) - AB_OFFSET,
        ],
        dim=-1,
    )


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """float32 RGB [..., 3] in 0..1 of Lab [..., 3], as OpenCV's float32 `COLOR_Lab2RGB` (the formula,
    linear RGB clipped to 0..1 before the sRGB curve)."""
    lightness, a, b = lab.unbind(dim=-1)
    dark = lightness <= LAB_EPSILON * LAB_KAPPA
    fy_bright = (lightness + L_OFFSET) / L_SCALE
    y = torch.where(dark, lightness / LAB_KAPPA, fy_bright**3)
    fy = torch.where(dark, LAB_SLOPE * y + LAB_OFFSET, fy_bright)
    fxz = torch.stack([a / A_SCALE + fy, fy - b / B_SCALE], dim=-1)  # [..., 2]
    fxz = torch.where(fxz <= LAB_SLOPE * LAB_EPSILON + LAB_OFFSET, (fxz - LAB_OFFSET) / LAB_SLOPE, fxz**3)
    xyz = torch.stack([fxz[..., 0], y, fxz[..., 1]], dim=-1)  # [..., 3], white-normalised
    white = torch.tensor(D65_WHITE, dtype=lab.dtype, device=lab.device)
    to_rgb = torch.tensor(XYZ_TO_RGB, dtype=lab.dtype, device=lab.device) * white[None, :]
    return _linear_to_srgb((xyz @ to_rgb.T).clamp(0.0, 1.0))


def _to_space_torch(image: torch.Tensor, space: str) -> torch.Tensor:
    """`reenact.composite._to_space` in torch: uint8 RGB [..., 3] as float32 in `space`."""
    rgb = image.to(torch.float32) / UINT8_MAX
    return rgb_to_lab(rgb) if space == "lab" else rgb


def _from_space_torch(values: torch.Tensor, space: str) -> torch.Tensor:
    """`reenact.composite._from_space` in torch: float32 values [..., 3] in `space` back to uint8 RGB."""
    rgb = lab_to_rgb(values) if space == "lab" else values
    return _to_uint8(rgb * UINT8_MAX)


def _to_uint8(values: torch.Tensor) -> torch.Tensor:
    return torch.round(values).clamp(0, UINT8_MAX).to(torch.uint8)


def match_color_box_torch(
    source: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor, *, space: str
) -> torch.Tensor:
    """`reenact.composite.match_color_box` on the device: `source` [h, w, 3] uint8 with its per-channel
    mean/std under `weights` [h, w] set to those of `reference` [h, w, 3] uint8 (the same `color_gain`)."""
    support = weights.reshape(-1) > 0  # [h * w]
    src = _to_space_torch(source, space)  # [h, w, 3]
    ref = _to_space_torch(reference.reshape(-1, 3)[support], space)  # [n, 3]
    gain, offset = color_gain(
        src.reshape(-1, 3)[support].double(), ref.double(), weights.reshape(-1)[support].double()
    )
    return _from_space_torch(src * gain.to(torch.float32) + offset.to(torch.float32), space)


def _sample(
    image: torch.Tensor,
    matrix: np.ndarray,
    out_box: Box,
    *,
    origin: tuple[int, int],
    mode: str,
    padding: str,
) -> torch.Tensor:
    """Warp `image` [C, h, w] float32, whose pixel (0, 0) is pixel `origin` (row, column) of its full
    image, onto the rows and columns `out_box` of the output: output pixel (x, y) samples the full
    image at `matrix` @ (x, y, 1) (float64 coordinates). Returns [C, rows, cols]."""
    rows, cols = out_box
    device = image.device
    ys = torch.arange(rows.start, rows.stop, dtype=torch.float64, device=device)  # [rows]
    xs = torch.arange(cols.start, cols.stop, dtype=torch.float64, device=device)  # [cols]
    m = torch.as_tensor(np.asarray(matrix, dtype=np.float64), device=device)
    u = m[0, 0] * xs[None, :] + m[0, 1] * ys[:, None] + m[0, 2]  # [rows, cols] source column
    v = m[1, 0] * xs[None, :] + m[1, 1] * ys[:, None] + m[1, 2]  # [rows, cols] source row
    u, v = u - origin[1], v - origin[0]
    height, width = image.shape[-2:]
    grid = torch.stack([2.0 * u / max(width - 1, 1) - 1.0, 2.0 * v / max(height - 1, 1) - 1.0], dim=-1).to(
        torch.float32
    )  # [rows, cols, 2], align_corners=True: -1 and 1 are the outer pixel centres
    return F.grid_sample(image[None], grid[None], mode=mode, padding_mode=padding, align_corners=True)[0]


def _gaussian_size(sigma: float) -> int:
    """OpenCV's Gaussian kernel size for a uint8 image and `sigma`."""
    return round(GAUSSIAN_RADIUS_SIGMAS * 2.0 * sigma + 1.0) | 1


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """`image` [C, h, w] float32 blurred like cv2.GaussianBlur on uint8 (same kernel, reflect-101
    borders), rounded to integers."""
    size = _gaussian_size(sigma)
    kernel = torch.as_tensor(
        cv2.getGaussianKernel(size, sigma)[:, 0], dtype=torch.float32, device=image.device
    )
    channels = image.shape[0]
    radius = size // 2
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")  # [1, C, h+2r, w+2r]
    rows = F.conv2d(padded, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)
    both = F.conv2d(rows, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return torch.round(both[0])


def _reference_crop(frame: torch.Tensor, matrix: np.ndarray, window: Box) -> torch.Tensor:
    """The frame [H, W, 3] uint8 seen in the crop's `window` [h, w, 3] uint8, as `warp_to_crop(...,
    border="replicate", box=window)`: cubic, low-passed first when the crop shrinks the frame."""
    crop_to_frame = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    shrink = np.sqrt(abs(np.linalg.det(crop_to_frame[:2, :2])))
    sigma = (shrink - 1.0) / 2.0 if shrink > 1.0 else 0.0
    blur_reach = _gaussian_size(sigma) // 2 if sigma > 0.0 else 0
    # The frame pixels the window reads: its footprint (`frame_box` maps crop boxes into the frame)
    # with the cubic's reach, and the blur's reach around that.
    footprint = frame_box(window, matrix, tuple(frame.shape), margin=CUBIC_REACH)
    height, width = frame.shape[:2]
    rows, cols = window
    if footprint is None:  # the window lies outside the frame: replicate its nearest border
        footprint = (slice(0, height), slice(0, width))
    margin = blur_reach
    top, left = max(footprint[0].start - margin, 0), max(footprint[1].start - margin, 0)
    bottom, right = min(footprint[0].stop + margin, height), min(footprint[1].stop + margin, width)
    source = frame[top:bottom, left:right].permute(2, 0, 1).to(torch.float32)  # [3, h', w']
    if sigma > 0.0 and min(source.shape[-2:]) > blur_reach:
        source = _gaussian_blur(source, sigma)
    sampled = _sample(
        source, crop_to_frame, (rows, cols), origin=(top, left), mode="bicubic", padding="border"
    )
    return _to_uint8(sampled).permute(1, 2, 0)  # [h, w, 3]


def composite_face_torch(
    frame: np.ndarray,
    crop: np.ndarray | torch.Tensor,
    *,
    matrix: np.ndarray,
    mask_crop: np.ndarray,
    config: CompositeConfig,
    device: torch.device | str,
) -> np.ndarray:
    """`reenact.composite.composite_face` on `device`: the frame [H, W, 3] uint8 with the rendered `crop`
    [R, R, 3] uint8 (host array, or a tensor already on the device) pasted back through `matrix`.

    Poisson blending has no torch version: `config.poisson` is refused here (`paste_back` keeps it on
    the CPU). Where the warped mask is zero the frame's pixels are returned unchanged, bit for bit.
    """
    if config.poisson:
        raise ValueError("composite_face_torch has no Poisson blending; use reenact.composite.composite_face")
    resolution = crop.shape[0]
    if tuple(crop.shape[:2]) != (resolution, resolution) or mask_crop.shape != tuple(crop.shape[:2]):
        raise ValueError(f"crop {tuple(crop.shape)} and mask {mask_crop.shape} must both be [R, R(, 3)]")
    out = frame.copy()
    window = support_window(mask_crop > 0, margin=COLOR_MARGIN)  # crop pixels the paste-back reads
    box = None if window is None else frame_box(window, matrix, frame.shape, margin=FRAME_MARGIN)
    if window is None or box is None:
        return out
    device = torch.device(device)
    frame_t = torch.from_numpy(np.ascontiguousarray(frame)).to(device)  # [H, W, 3] uint8, uploaded once
    face_crop = torch.as_tensor(crop[window], device=device)  # [h, w, 3] uint8
    mask = torch.from_numpy(np.ascontiguousarray(mask_crop[window], dtype=np.float32)).to(device)  # [h, w]
    if config.color_match:
        original = _reference_crop(frame_t, matrix, window)  # [h, w, 3] uint8
        face_crop = match_color_box_torch(face_crop, original, mask, space=config.color_space)
    origin = (window[0].start, window[1].start)
    alpha = _sample(mask[None], matrix, box, origin=origin, mode="bilinear", padding="zeros")[0]
    alpha = alpha.clamp(0.0, 1.0)  # [h', w']
    inside = alpha > 0.0
    face = _sample(
        face_crop.permute(2, 0, 1).to(torch.float32),
        matrix,
        box,
        origin=origin,
        mode="bicubic",
        padding="zeros",
    )
    face = _to_uint8(face).permute(1, 2, 0).to(torch.float32)  # [h', w', 3], uint8 values as warpAffine's
    region = frame_t[box]  # [h', w', 3] uint8
    a = alpha[:, :, None]
    blended = _to_uint8(a * face + (1.0 - a) * region.to(torch.float32))
    out[box] = torch.where(inside[:, :, None], blended, region).cpu().numpy()
    return out
