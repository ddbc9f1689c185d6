"""The seeded random test generator: a tiny StyleGAN2 that is NOT a face model.

It renders the synthetic world (`reenact.synthetic`), and `--generator random:tiny[-RES]` puts it under
the real pipeline to try the machinery on real clips. It never stands in for real weights: a run gets it
only by naming it.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.gan.stylegan2 import Generator, GeneratorConfig, tiny

RANDOM_PREFIX = "random:"
"""Generator specs starting with this name a random generator."""
RANDOM_TINY = re.compile(r"tiny(?:-(\d+))?")
RANDOM_TINY_RESOLUTION = 32
RANDOM_GENERATOR_SEED = 0
MIN_RESOLUTION = 8

W_AVG_SAMPLES = 4096
"""z samples whose mapped mean is the random generator's w_avg."""
OUTPUT_QUANTILE = 0.999
OUTPUT_PEAK = 1.0
"""The generator's output is centred per channel and scaled so that this quantile of |pixel| is
`OUTPUT_PEAK`: almost no pixel leaves [-1, 1], as with a trained generator. A video frame cannot hold
values outside that range, so a clipped pixel is one that no latent reproduces exactly: with a plain
std calibration (0.4) the random generator's heavy-tailed images lost 2-5% of their pixels to clipping,
and the inversion's optimum moved away from the true latents."""
TORCH_QUANTILE_MAX_ELEMENTS = 1 << 24
"""`torch.quantile` refuses larger inputs."""
CALIBRATION_SAMPLES = 256
CALIBRATION_BATCH_PIXELS = 1 << 20
"""Calibration renders at most this many output pixels at once (all samples at once up to 64 px)."""

RANDOM_W_DIM = 8
"""Default width of the random generator's z and w (the synthetic world's `w_dim`). Every style affine
maps w to at least 16 channels, so at width 8 it is injective and, with the affine bias, no w direction
only rescales a layer's styles (which weight demodulation cancels): the latents are identifiable from
the images, and a latent delta added to inverted pivots renders what it renders at the true latents,
which the transfer's ground truth needs. At `tiny`'s width 32 the 32 px generator's W+ has dozens of
null directions, like FFHQ's 18 x 512: the inversion tests use that width to show the warm start."""


def random_generator_config(resolution: int = 32, *, w_dim: int = RANDOM_W_DIM) -> GeneratorConfig:
    """The random generator's architecture: `tiny` with z and w `w_dim` wide."""
    return replace(tiny(resolution), z_dim=w_dim, w_dim=w_dim)


def random_generator(
    *, resolution: int = 32, w_dim: int = RANDOM_W_DIM, seed: int = 0, device: torch.device | str = "cpu"
) -> Generator:
    """A tiny StyleGAN2 with random weights fixed by `seed`, w_avg set, output calibrated.

    Deterministic (the global RNG is neither used nor disturbed). Frozen (`requires_grad_(False)`), eval.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(random_generator_config(resolution, w_dim=w_dim))
        z = torch.randn(W_AVG_SAMPLES, generator.z_dim)
    generator.eval().requires_grad_(False)
    with torch.no_grad():
        w = generator.mapping(z)[:, 0]  # [S, w_dim]
        generator.mapping.w_avg.copy_(w.mean(dim=0))
        chunk = max(1, CALIBRATION_BATCH_PIXELS // resolution**2)  # bounded activations at any size
        images = torch.cat(
            [generator.synthesis(ws) for ws in w[:CALIBRATION_SAMPLES].split(chunk)]
        )  # [S, 3, R, R]
        mean = images.mean(dim=(0, 2, 3))  # [3]
        magnitudes = (images - mean[None, :, None, None]).abs().flatten()
        if magnitudes.numel() <= TORCH_QUANTILE_MAX_ELEMENTS:
            peak = float(magnitudes.quantile(OUTPUT_QUANTILE))
        else:  # large resolutions: the same linear-interpolated quantile, where torch refuses
            peak = float(np.quantile(magnitudes.numpy(), OUTPUT_QUANTILE))
        gain = OUTPUT_PEAK / peak
        last = getattr(generator.synthesis, f"b{generator.resolution}")
        for res in generator.synthesis.block_resolutions:
            # Every ToRGB output is linear in its weight and the skip images add up: exact rescale.
            block = getattr(generator.synthesis, f"b{res}")
            block.torgb.weight.mul_(gain)
            block.torgb.bias.mul_(gain)
        # A constant added to the last ToRGB's bias shifts the image by that constant: centre it.
        last.torgb.bias.sub_(gain * mean)
    return generator.to(device)


def is_random_spec(spec: str) -> bool:
    """Whether a `--generator` value names a random generator."""
    return spec.startswith(RANDOM_PREFIX)


def random_generator_from_spec(spec: str, *, device: torch.device | str = "cpu") -> Generator:
    """`random:tiny` or `random:tiny-RES`: the seeded random generator at that resolution."""
    match = RANDOM_TINY.fullmatch(spec.removeprefix(RANDOM_PREFIX))
    if not is_random_spec(spec) or match is None:
        raise ReenactError(f"unknown random generator {spec!r}; use random:tiny or random:tiny-RES (e.g. 64)")
    resolution = int(match[1] or RANDOM_TINY_RESOLUTION)
    if resolution < MIN_RESOLUTION or resolution & (resolution - 1):
        raise ReenactError(f"{spec}: the resolution must be a power of two >= {MIN_RESOLUTION}")
    return random_generator(resolution=resolution, seed=RANDOM_GENERATOR_SEED, device=device)
