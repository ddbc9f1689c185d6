"""Image conversions and PSNR, in one place for every module, test and benchmark.

Two image forms meet in reenact: the generator's float tensors [N, 3, R, R] in [-1, 1] (peak-to-peak 2)
and video frames, uint8 arrays [N, H, W, 3] in 0..255 (peak 255). `images_to_uint8` and
`images_from_uint8` convert between them; `psnr_from_mse` is the one PSNR formula, for either range.
"""

from __future__ import annotations

import math
from typing import Protocol, TypeVar

import numpy as np
import torch

UINT8_PEAK = 255.0
"""Peak-to-peak range of uint8 images."""
UNIT_RANGE_PEAK = 2.0
"""Peak-to-peak range of images in [-1, 1] (the generator's output)."""
UINT8_HALF_RANGE = UINT8_PEAK / 2.0
"""uint8 value that maps to 0 in [-1, 1] (and the scale between the two ranges)."""

Value = TypeVar("Value", float, np.ndarray, torch.Tensor)
"""A number, a numpy array or a tensor: `psnr_from_mse` returns the kind it is given."""


class CropSource(Protocol):
    """Aligned crops addressed by frame: `source[a:b]` or `source[indices]` gives [n, 3, R, R] float in
    [-1, 1]. A [N, 3, R, R] tensor is one; `reenact.stages.crops.CropStore` is one that reads them from
    disk a batch at a time, so inversion and tuning never hold a clip."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice | torch.Tensor) -> torch.Tensor: ...


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, R, R] images in [-1, 1] -> [N, R, R, 3] uint8 (clamped: the generator's output is not)."""
    return (
        ((images.detach().float().permute(0, 2, 3, 1) + 1.0) * UINT8_HALF_RANGE)
        .round()
        .clamp(0, UINT8_PEAK)
        .to(torch.uint8)
    )


def images_from_uint8(images: np.ndarray) -> torch.Tensor:
    """[N, H, W, 3] uint8 images -> [N, 3, H, W] float32 in [-1, 1] (the inverse of `images_to_uint8`)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / UINT8_HALF_RANGE - 1.0


def image_from_uint8(image: np.ndarray, *, device: torch.device | str) -> torch.Tensor:
    """One [H, W, 3] uint8 image -> [1, 3, H, W] float32 in [-1, 1] on `device` (e.g. an LPIPS input)."""
    return images_from_uint8(image[None]).to(device)


def psnr_from_mse(mse: Value, *, peak: float) -> Value:
    """PSNR in dB, `10 log10(peak^2 / mse)`, of mean squared errors of images whose values span `peak`
    (`UINT8_PEAK` or `UNIT_RANGE_PEAK`). A float, numpy array or tensor in, the same kind out; a zero
    error gives infinity (callers that report it cap or clamp as their format needs)."""
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(peak**2 / mse)
    if isinstance(mse, np.ndarray):
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(peak**2 / mse)
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def uint8_mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all values of two uint8 images (or clips) of one shape, in float64."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def uint8_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (or clips) of one shape over all values (peak 255; identical: inf)."""
    return psnr_from_mse(uint8_mse(a, b), peak=UINT8_PEAK)
