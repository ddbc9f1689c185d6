"""The face world: reenact's own 64 px StyleGAN2 of real faces (`--generator face-world`, trained here on
the faces of the test clips: docs/face-world.md), and the demo world built on it.

The demo world is the synthetic world (`reenact.synthetic`) with the face world's generator in place of
the random one, and an expression found in the face world's W+ in place of a random direction: the
principal direction of a talking clip's inverted frames (on the expression layers) that opens the mouth
most. Its clips therefore show faces whose mouths open and close, and the truth of a transfer is still
known exactly: `G(w_target + Δ_driver)`.
"""

from __future__ import annotations

import io
from dataclasses import replace
from importlib import resources

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.gan.stylegan2 import Generator
from reenact.synthetic import SyntheticConfig, SyntheticWorld, make_world
from reenact.weights.registry import FACE_WORLD_NAME

FACE_WORLD = FACE_WORLD_NAME
"""The face world's registry name (`--generator face-world`) and the name of its preset."""
FACE_WORLD_RESOLUTION = 64
"""The shipped face world's resolution (the CPU run of issue #27; tests/test_weights.py checks it)."""
EXPRESSION_RESOURCE = "weights/face_world/expression.npy"
"""The shipped expression direction [num_ws, w_dim] float32 (`tools/face_world_direction.py`)."""
EXPRESSION_LAYERS = (4, 5, 6, 7)
"""W+ layers of the face world's expression: its 16 and 32 px styles, FFHQ's default expression layers
at 64 px."""
DEMO_TRUNCATION = 0.7
"""The demo faces' truncation: nearer the average face, where the face world's samples are faces."""
DEMO_EXPRESSION = 2.0
"""Size of the demo's expression, in W spreads per layer (the synthetic world's 1.5 barely shows at
64 px)."""
DEMO_MOTION = 0.25
"""Size of the demo faces' slow motion in W, in W spreads (half the synthetic world's: a real face's
look changes less than a random generator's blobs)."""


def principal_directions(pivots: torch.Tensor, *, layers: tuple[int, ...], count: int) -> torch.Tensor:
    """The first `count` principal directions of W+ pivots [N, num_ws, w_dim] over the frames, on `layers`
    only (zero elsewhere), each of unit length: [count, num_ws, w_dim], largest variance first."""
    if pivots.ndim != 3 or len(pivots) < 2:
        raise ReenactError(
            f"principal directions need pivots [N >= 2, num_ws, w_dim], got {list(pivots.shape)}"
        )
    rows = pivots[:, list(layers)].reshape(len(pivots), -1).double()  # [N, L * w_dim]
    centred = rows - rows.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh [min(N, D), D]
    directions = torch.zeros(count, *pivots.shape[1:], dtype=torch.float64)
    directions[:, list(layers)] = vh[:count].reshape(count, len(layers), pivots.shape[2])
    return directions.float()


def expression_direction(*, device: torch.device | str = "cpu") -> torch.Tensor:
    """The face world's shipped expression direction [num_ws, w_dim]."""
    resource = resources.files("reenact").joinpath(EXPRESSION_RESOURCE)
    if not resource.is_file():
        raise ReenactError(f"the face world's expression direction is missing ({EXPRESSION_RESOURCE})")
    direction = np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False)
    return torch.from_numpy(direction.astype(np.float32)).to(device)


def face_world_generator(*, device: torch.device | str = "cpu") -> Generator:
    """The face world's generator, from the package through the weight registry's safe loader."""
    from reenact.generator_source import load_generator_spec

    return load_generator_spec(FACE_WORLD, device=device).generator


def demo_config(base: SyntheticConfig, generator: Generator) -> SyntheticConfig:
    """`base` (frames, frame size, seed, cuts) with the face world's generator size, expression layers,
    truncation, expression and motion."""
    return replace(
        base,
        resolution=generator.resolution,
        w_dim=generator.w_dim,
        expression_layers=EXPRESSION_LAYERS,
        truncation=DEMO_TRUNCATION,
        expression=DEMO_EXPRESSION,
        motion=DEMO_MOTION,
    )


def make_face_world(
    base: SyntheticConfig, *, device: torch.device | str = "cpu", generator: Generator | None = None
) -> SyntheticWorld:
    """The demo world on faces: `base`'s clips rendered by the face world (`generator`, when the caller has
    loaded it already) with its expression direction."""
    generator = face_world_generator(device=device) if generator is None else generator
    return make_world(
        demo_config(base, generator),
        device=device,
        generator=generator,
        expression=expression_direction(device=device),
    )
