"""Attribute directions in W: loaders for the published file formats and the `--direction` argument.

Formats (all for the StyleGAN2 FFHQ generator, w_dim 512):

- InterFaceGAN boundary `.npy`, (1, 512) float32, unit norm (the normal of a linear SVM boundary);
- e4e / PTI InterFaceGAN direction `.pt`, a (1, 512) tensor; GANInverter's per-layer `.pt`, (1, 18, 512);
- GANSpace PCA `.pt` (PTI's `ffhq_pca.pt`): a dict of `mean` (1, 512), `comp` (K, 1, 512) unit-norm,
  mutually orthogonal components and `std` (K,) their standard deviations in W. A component becomes
  the direction `comp[k] * std[k]`, so strength 1 moves w by one standard deviation along it.
  (GANSpace/PTI *set* the coordinate to `strength` instead; here every edit is additive.)

Every `.pt` is read with `torch.load(weights_only=True)`: nothing in a file is ever executed. The
readers and their checks live in `reenact.weights.formats`, which the weight cache runs on import too,
so the cache and the loaders accept the same files with the same errors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.weights import get_entry, weight_path
from reenact.weights.formats import (
    DIRECTION_MAX_BYTES,
    direction_vector,
    ganspace_components,
    is_ganspace,
    load_float_npy,
    load_torch_file,
)

GANSPACE_REGISTRY_NAME = "ganspace-ffhq-pca"
PCA_PREFIX = "pca"
DIRECTION_ALIASES: dict[str, str] = {
    "smile": "e4e-smile",
    "age": "e4e-age",
    "rotation": "e4e-rotation",
    "pose": "ganinverter-pose",
}
"""Short names for the registry's most used directions (`--direction smile=1.5`)."""
DIRECTION_SUFFIXES = (".npy", ".pt", ".pth")


@dataclass(frozen=True)
class Direction:
    """A direction in W or W+ to add to latents (`reenact.edit.apply_direction`)."""

    name: str
    vector: torch.Tensor
    """[num_ws, w_dim] per layer, or [1, w_dim] for the same move on every layer; float32, CPU."""
    source_format: str
    """Where it came from: interfacegan-npy, tensor-pt, per-layer-pt, ganspace-pca or memory."""


def _ganspace_component(path: Path, loaded: object, component: int | None) -> torch.Tensor:
    """Component `component` of a GANSpace PCA file, scaled by its standard deviation: [1, w_dim]."""
    comp, std = ganspace_components(path, loaded)  # [K, w_dim], [K]
    num_components = comp.shape[0]
    if component is None:
        raise ReenactError(
            f"{path} is a GANSpace PCA file with {num_components} components: choose one (pca:K or PATH:K)"
        )
    if not 0 <= component < num_components:
        raise ReenactError(f"{path} has GANSpace components 0..{num_components - 1}, not {component}")
    return direction_vector(path, comp[component : component + 1] * std[component])


def load_direction(path: Path | str, *, name: str | None = None, component: int | None = None) -> Direction:
    """Read a direction file (format chosen by suffix, checked by content); `component` for GANSpace.

    Raises `ReenactError` (naming the file and what was expected) for a missing, unreadable or
    wrongly shaped file, and for `component` on a file that has no components.
    """
    path = Path(path)
    if not path.is_file():
        raise ReenactError(f"direction file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = torch.from_numpy(np.array(load_float_npy(path)))
        vector, source_format = direction_vector(path, array), "interfacegan-npy"
    elif suffix in (".pt", ".pth"):
        loaded = load_torch_file(path, limit=DIRECTION_MAX_BYTES, what="direction file")  # weights_only
        if is_ganspace(loaded):
            vector, source_format = _ganspace_component(path, loaded, component), "ganspace-pca"
        else:
            vector = direction_vector(path, loaded)
            source_format = "per-layer-pt" if vector.shape[0] > 1 else "tensor-pt"
    else:
        raise ReenactError(f"{path}: unknown direction format {suffix!r}, expected .npy or .pt")
    if component is not None and source_format != "ganspace-pca":
        raise ReenactError(f"{path} is a single direction, it has no component {component}")
    default_name = path.stem if component is None else f"{path.stem}:{component}"
    return Direction(name=name or default_name, vector=vector, source_format=source_format)


def parse_direction_arg(text: str) -> tuple[str, float]:
    """`NAME=STRENGTH` -> (NAME, STRENGTH): "smile=1.5" -> ("smile", 1.5), "pca:3=2.0" -> ("pca:3", 2.0)."""
    name, sep, value = text.rpartition("=")
    name = name.strip()
    try:
        strength = float(value)
    except ValueError:
        strength = math.nan
    if not sep or not name or not math.isfinite(strength):
        raise ReenactError(f"--direction expects NAME=STRENGTH (e.g. smile=1.5 or pca:3=2.0), got {text!r}")
    return name, strength


def _looks_like_path(name: str) -> bool:
    return name.lower().endswith(DIRECTION_SUFFIXES) or "/" in name or "\\" in name or Path(name).exists()


def resolve_direction(name: str) -> Direction:
    """The direction called `name`: a file path, `pca:K` / `PATH:K` (GANSpace component K), a short
    alias (`DIRECTION_ALIASES`: smile, age, rotation, pose) or a registry name (`reenact weights list`).

    Registry files come from the weight cache (`reenact.weights.weight_path`), whose error says how to
    fetch or import a missing one. Apply the strength with `reenact.edit.apply_direction`.
    """
    name = name.strip()
    component_match = re.fullmatch(r"(.+):(\d+)", name)
    if component_match is not None:
        source, component = component_match.group(1), int(component_match.group(2))
        path = weight_path(GANSPACE_REGISTRY_NAME) if source.lower() == PCA_PREFIX else Path(source)
        return load_direction(path, name=name, component=component)
    if _looks_like_path(name):
        return load_direction(Path(name))
    registry_name = DIRECTION_ALIASES.get(name.lower(), name)
    entry = get_entry(registry_name)
    if entry.kind != "direction":
        raise ReenactError(f"{registry_name!r} is a {entry.kind} weight file, not a direction")
    if entry.name == GANSPACE_REGISTRY_NAME:
        raise ReenactError(f"{entry.name} holds many components: name one as pca:K (e.g. pca:3=2.0)")
    return load_direction(weight_path(registry_name), name=name)
