"""Differentiable augmentation (DiffAugment) for training a GAN on little data.

Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020),
mit-han-lab/data-efficient-gans `DiffAugment_pytorch.py`: the same random transforms are applied to
every image the discriminator sees, real and generated, in D's and in G's steps, and they are
differentiable, so G learns the data, not the augmented data, while D cannot memorise the few real
images. Policies: 'color' (brightness, saturation, contrast), 'translation' (zero-padded integer shift
up to 1/8 of the side), 'cutout' (a zeroed square of half the side).

Every random draw takes an explicit `torch.Generator` (the trainer's augmentation stream), so a resumed
run draws exactly what an uninterrupted one would; the draws never depend on the pixel values.
"""

from __future__ import annotations

import torch

from reenact.errors import ReenactError

POLICIES = ("color", "translation", "cutout")
"""The augmentations a policy string may name, in the order they are applied."""
DEFAULT_POLICY = "color,translation,cutout"
"""The paper's policy for small datasets (its 100-image and 10%-data settings)."""
TRANSLATION_RATIO = 0.125
"""Largest shift, as a share of the side."""
CUTOUT_RATIO = 0.5
"""Side of the cut-out square, as a share of the image side."""
BRIGHTNESS_RANGE = 1.0
"""Brightness: add a uniform offset in [-range/2, range/2) (images are in [-1, 1])."""
SATURATION_MAX = 2.0
"""Saturation: scale the deviation from the per-pixel grey by a uniform factor in [0, max)."""
CONTRAST_RANGE = (0.5, 1.5)
"""Contrast: scale the deviation from the image mean by a uniform factor in this range."""


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> () (none). ReenactError for an unknown name."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ReenactError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise ReenactError(f"augmentation policy {policy!r} names one augmentation twice")
    return names


def _uniform(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One uniform [0, 1) draw per image, shaped [N, 1, 1, 1] to broadcast."""
    return torch.rand([x.shape[0], 1, 1, 1], generator=rng, device=x.device, dtype=x.dtype)


def colour(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random brightness, then saturation, then contrast, one draw of each per image. x: [N, C, H, W]."""
    x = x + (_uniform(x, rng) - 0.5) * BRIGHTNESS_RANGE
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (_uniform(x, rng) * SATURATION_MAX) + grey
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    low, high = CONTRAST_RANGE
    return (x - mean) * (_uniform(x, rng) * (high - low) + low) + mean


def translation(x: torch.Tensor, rng: torch.Generator, *, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by a random integer (dy, dx) in [-s, s], s = round(ratio * side); zeros fill in."""
    batch, _, height, width = x.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, [batch, 1, 1], generator=rng, device=x.device)
    dx = torch.randint(-shift_x, shift_x + 1, [batch, 1, 1], generator=rng, device=x.device)
    rows = torch.arange(height, device=x.device).reshape(1, height, 1) - dy  # [N, H, 1] source rows
    cols = torch.arange(width, device=x.device).reshape(1, 1, width) - dx  # [N, 1, W] source cols
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # [N, H, W]
    flat = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)  # [N, H, W]
    index = flat.reshape(batch, 1, height * width).expand(-1, x.shape[1], -1)  # [N, C, H*W]
    shifted = x.reshape(batch, x.shape[1], height * width).gather(2, index).reshape(x.shape)
    return shifted * inside.unsqueeze(1).to(x.dtype)


def cutout(x: torch.Tensor, rng: torch.Generator, *, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square of side round(ratio * side) per image, centred anywhere (clipped at the border)."""
    batch, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), [batch, 1, 1], generator=rng, device=x.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), [batch, 1, 1], generator=rng, device=x.device)
    rows = torch.arange(height, device=x.device).reshape(1, height, 1) - (centre_y - size_y // 2)
    cols = torch.arange(width, device=x.device).reshape(1, 1, width) - (centre_x - size_x // 2)
    cut = (rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x)  # [N, H, W]
    return x * (~cut).unsqueeze(1).to(x.dtype)


_AUGMENTATIONS = {"color": colour, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], *, rng: torch.Generator) -> torch.Tensor:
    """Apply the policy's augmentations in order to images x [N, C, H, W]; differentiable in x."""
    for name in policy:
        x = _AUGMENTATIONS[name](x, rng)
    return x
