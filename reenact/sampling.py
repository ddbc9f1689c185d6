"""Samples of a generator by seed: what `reenact generate` writes and what training measures.

A seed's latent is `numpy.random.RandomState(seed).randn(1, z_dim)`, as the official `generate.py`
draws it, so a seed names the same image whatever other seeds are asked for, in whatever batches.
The face detection rate is the figure the face world is held to (issue #27): the share of samples
in which dlib's frontal (HOG) detector finds a face, the samples upscaled first so that a face the
size of an FFHQ crop's is well above the detector's smallest window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from reenact.errors import ReenactError, UsageError
from reenact.files import atomic_path
from reenact.gan.stylegan2 import Generator
from reenact.imaging import images_to_uint8

SEED_MAX = 2**32 - 1
"""numpy's RandomState takes seeds in [0, 2^32)."""
SEED_ITEM = re.compile(r"(\d+)(?:-(\d+))?")
"""One item of a seed list: `7` or an inclusive range `0-63`."""
MAX_SEEDS = 100_000
"""Longest seed list one command renders (a typo like 0-99999999 is refused, not run for days)."""
RENDER_BATCH = 16
"""Seeds rendered per forward pass."""
FACE_CHECK_SIDE = 256
"""Side the samples are upscaled to before face detection."""
FACE_CHECK_TRUNCATION = 0.7
"""Truncation psi of the samples whose faces are counted."""
FACE_CHECK_UPSAMPLE = 0
"""dlib's detector upsampling passes: none is needed at FACE_CHECK_SIDE."""
GRID_PAD = 2
"""Pixels between the tiles of a contact sheet."""
GRID_NAME = "grid.png"
"""File name of the contact sheet of `write_samples`."""


def seed_file_name(seed: int) -> str:
    """`seed0007.png`: the official generate.py's name for a seed's image."""
    return f"seed{seed:04d}.png"


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]: comma-separated seeds and inclusive ranges, in the order given.

    A `UsageError` (one line) for anything else: an empty list, a reversed range, a seed out of numpy's
    range, a repeated seed, more than MAX_SEEDS seeds."""
    seeds: list[int] = []
    for item in text.split(","):
        match = SEED_ITEM.fullmatch(item.strip())
        if match is None:
            raise UsageError(f"--seeds: {item.strip()!r} is not a seed or a range like 0-63")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise UsageError(f"--seeds: the range {item.strip()} runs backwards")
        if last > SEED_MAX:
            raise UsageError(f"--seeds: {last} is larger than the largest seed {SEED_MAX}")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise UsageError(f"--seeds: more than {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise UsageError("--seeds: a seed is listed twice")
    return seeds


def seed_latents(seeds: Sequence[int], *, z_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """z [len(seeds), z_dim] (float32): each row drawn from its own seed, as the official generate.py."""
    rows = [np.random.RandomState(seed).randn(1, z_dim) for seed in seeds]
    return torch.from_numpy(np.concatenate(rows)).to(device=device, dtype=torch.float32)


@torch.no_grad()
def render_seeds(
    generator: Generator, seeds: Sequence[int], *, truncation: float, batch: int = RENDER_BATCH
) -> np.ndarray:
    """uint8 images [len(seeds), R, R, 3] of the seeds at truncation psi, constant noise (deterministic)."""
    device = next(generator.parameters()).device
    out = []
    for start in range(0, len(seeds), batch):
        z = seed_latents(seeds[start : start + batch], z_dim=generator.z_dim, device=device)
        images = generator(z, truncation_psi=truncation, noise_mode="const")  # [n, 3, R, R]
        out.append(images_to_uint8(images).cpu().numpy())
    return (
        np.concatenate(out) if out else np.zeros((0, generator.resolution, generator.resolution, 3), np.uint8)
    )


def contact_sheet(images: np.ndarray, *, columns: int | None = None, pad: int = GRID_PAD) -> np.ndarray:
    """One uint8 image [H, W, 3] of the tiles images [N, R, R, 3], row by row, on black."""
    count, side = images.shape[0], images.shape[1]
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    sheet = np.zeros((rows * (side + pad) + pad, columns * (side + pad) + pad, 3), np.uint8)
    for index, image in enumerate(images):
        top = pad + (index // columns) * (side + pad)
        left = pad + (index % columns) * (side + pad)
        sheet[top : top + side, left : left + side] = image
    return sheet


def upscaled_for_check(image: np.ndarray, *, side: int = FACE_CHECK_SIDE) -> np.ndarray:
    """A square uint8 image [R, R, 3] upscaled (bicubic) to `side` px, where dlib's detector finds faces."""
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)


class FaceCounter:
    """dlib's frontal face detector over generated samples (built once, used for every check)."""

    def __init__(self, *, side: int = FACE_CHECK_SIDE, upsample: int = FACE_CHECK_UPSAMPLE) -> None:
        import dlib  # local: only training and the face checks need it

        self.side = side
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()

    def has_face(self, image: np.ndarray) -> bool:
        """Whether a face is found in one uint8 RGB image [R, R, 3], upscaled to `side` first."""
        return self.has_face_at(upscaled_for_check(image, side=self.side))

    def has_face_at(self, image: np.ndarray) -> bool:
        """Whether a face is found in one uint8 RGB image [H, W, 3] as it is."""
        return len(self._detector(np.ascontiguousarray(image), self.upsample)) > 0

    def rate(self, images: np.ndarray) -> float:
        """Share of images [N, R, R, 3] (uint8) with a face found."""
        if len(images) == 0:
            return 0.0
        return sum(self.has_face(image) for image in images) / len(images)


def write_png(path: Path, image: np.ndarray) -> Path:
    """An RGB uint8 image [H, W, 3] as a PNG, written atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always has PNG
        raise ReenactError(f"OpenCV could not encode {path.name} as PNG")
    with atomic_path(path) as temporary:
        temporary.write_bytes(encoded.tobytes())
    return path


def write_samples(
    generator: Generator,
    seeds: Sequence[int],
    *,
    truncation: float,
    out_dir: Path,
    grid: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """One PNG per seed (`seed_file_name`) in `out_dir`, and with `grid` one contact sheet of them all
    (`GRID_NAME`); returns the paths written. An existing file is a `ReenactError` unless `overwrite`,
    checked before anything is rendered."""
    if not np.isfinite(truncation):
        raise UsageError(f"--trunc must be a finite number, got {truncation}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ReenactError(f"output {out_dir} is a file, not a folder")
    seed_paths = [out_dir / seed_file_name(seed) for seed in seeds]
    paths = seed_paths + ([out_dir / GRID_NAME] if grid else [])
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise ReenactError(
            f"{existing[0]} exists (and {len(existing) - 1} more); pass --overwrite to replace"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    images = render_seeds(generator, seeds, truncation=truncation)  # [N, R, R, 3]
    for path, image in zip(seed_paths, images, strict=True):
        write_png(path, image)
    if grid:
        write_png(out_dir / GRID_NAME, contact_sheet(images))
    return paths
