"""The face world (`reenact.face_world`): its expression direction is found where the talking clip's
pivots vary most, and the demo world built on it moves the expression layers only, by the asked size."""

from __future__ import annotations

import torch

from reenact.face_world import (
    EXPRESSION_LAYERS,
    demo_config,
    expression_direction,
    face_world_generator,
    make_face_world,
    principal_directions,
)
from reenact.synthetic import SyntheticConfig

NUM_WS, W_DIM, FRAMES = 10, 16, 40
PLANTED_SIZE, NOISE_SIZE = 3.0, 0.1
"""A planted direction's spread over the frames against the noise on every coordinate."""
MIN_ALIGNMENT = 0.99
"""|cosine| of the found direction with the planted one; a random unit direction scores about 0.1."""
WORLD_FRAMES = 6
SIZE_TOLERANCE = 1e-4


def test_the_first_principal_direction_is_the_planted_one_on_the_chosen_layers() -> None:
    generator = torch.Generator().manual_seed(0)
    planted = torch.zeros(NUM_WS, W_DIM)
    planted[list(EXPRESSION_LAYERS)] = torch.randn(len(EXPRESSION_LAYERS), W_DIM, generator=generator)
    planted /= planted.norm()
    amounts = PLANTED_SIZE * torch.randn(FRAMES, generator=generator)
    noise = NOISE_SIZE * torch.randn(FRAMES, NUM_WS, W_DIM, generator=generator)
    pose = torch.zeros(NUM_WS, W_DIM)
    pose[0] = 1.0  # a larger change outside the expression layers is not the expression
    pivots = amounts[:, None, None] * planted + noise + 2 * PLANTED_SIZE * torch.randn(FRAMES, 1, 1) * pose
    found = principal_directions(pivots, layers=EXPRESSION_LAYERS, count=2)  # [2, NUM_WS, W_DIM]
    assert found.shape == (2, NUM_WS, W_DIM)
    assert torch.allclose(found.flatten(1).norm(dim=1), torch.ones(2), atol=1e-5)
    outside = [layer for layer in range(NUM_WS) if layer not in EXPRESSION_LAYERS]
    assert found[:, outside].abs().max() == 0
    assert abs(float((found[0] * planted).sum())) >= MIN_ALIGNMENT
    assert abs(float((found[1] * planted).sum())) < MIN_ALIGNMENT  # the second is another direction


def test_the_face_demo_world_moves_the_expression_layers_by_the_asked_size() -> None:
    base = SyntheticConfig(num_frames=WORLD_FRAMES)
    world = make_face_world(base)
    generator = face_world_generator()
    config = demo_config(base, generator)
    assert world.config == config and world.generator.resolution == generator.resolution
    direction = world.expression_direction  # [num_ws, w_dim]
    outside = [layer for layer in range(generator.num_ws) if layer not in EXPRESSION_LAYERS]
    assert direction[outside].abs().max() == 0
    lengths = direction[list(EXPRESSION_LAYERS)].norm(dim=1)
    expected = world.w_std.norm() * config.expression
    assert torch.allclose(lengths, expected.expand_as(lengths), rtol=SIZE_TOLERANCE)
    shipped = expression_direction()[list(EXPRESSION_LAYERS)]
    cosine = torch.nn.functional.cosine_similarity(direction[list(EXPRESSION_LAYERS)], shipped, dim=1)
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=SIZE_TOLERANCE)
    # the driver's latents move along it, the target's do not
    assert world.driver.expression_weights.max() > 0 and world.target.expression_weights.max() == 0
