"""The face world (`reenact.face_world`): its expression direction is found where the talking clip's
pivots vary most, the demo world built on it moves the expression layers only, by the asked size, the
default expression layers are those layers, and a chain registered to its key chain keeps its fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from reenact.config import Config, EditConfig
from reenact.device import resolve_runtime
from reenact.edit import layer_mask
from reenact.face_world import (
    EXPRESSION_LAYERS,
    FACE_WORLD,
    demo_config,
    expression_direction,
    face_world_generator,
    make_face_world,
    principal_directions,
)
from reenact.invert import invert_clip
from reenact.pti import clip_psnr
from reenact.stages.base import FrameRange
from reenact.stages.keys import KeyPivots, invert_chain, key_chain_config, key_frames
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


def test_the_expression_preset_names_the_face_worlds_expression_layers() -> None:
    """`--layers expression` (the default) on the 64 px face world is its 16 and 32 px styles, where its
    mouth moves: the bands of 64 px and larger generators keep FFHQ's indices."""
    mask = layer_mask(EditConfig().layers, num_ws=face_world_generator().num_ws)
    assert torch.nonzero(mask).flatten().tolist() == list(EXPRESSION_LAYERS)


REGISTRATION_FRAMES = 17
"""Key frames 0 and 16 (the default key stride): one stretch registered at both ends."""
MAX_REFIT_LOSS_DB = 1.5
"""Registered and refitted, the chain fits at most this much worse than on its own (measured: 0.7 dB;
registered without the refit: 2.9 dB)."""
MIN_REFIT_GAIN_DB = 1.0
"""What the refit wins back over the registered pivots (measured: 2.3 dB)."""


@pytest.mark.slow
def test_a_registered_chain_is_refitted_to_the_fit_of_the_chain_alone() -> None:
    world = make_face_world(SyntheticConfig(num_frames=REGISTRATION_FRAMES))
    generator, crops, runtime = world.generator, world.driver.crops, resolve_runtime("cpu")
    config = Config.from_preset(FACE_WORLD).invert
    run = FrameRange(0, REGISTRATION_FRAMES)
    keys = np.array(key_frames(run, stride=config.key_stride), dtype=np.int64)
    assert keys.tolist() == [0, REGISTRATION_FRAMES - 1]
    alone = invert_clip(generator, crops, config=config, perceptual=None, runtime=runtime).psnr.mean()
    key_config = key_chain_config(config)
    key_chain = invert_clip(generator, crops[keys], config=key_config, perceptual=None, runtime=runtime)
    means = {}
    for refit in (0, config.refit_steps):
        registered, _ = invert_chain(
            generator,
            crops,
            run,
            keys=KeyPivots(keys, key_chain.pivots),
            config=replace(config, refit_steps=refit),
            perceptual=None,
            runtime=runtime,
            first_in_run=True,
        )
        means[refit] = float(clip_psnr(generator, crops, registered, frames=torch.arange(len(crops))).mean())
    assert config.refit_steps > 0
    assert means[config.refit_steps] >= float(alone) - MAX_REFIT_LOSS_DB, (float(alone), means)
    assert means[config.refit_steps] >= means[0] + MIN_REFIT_GAIN_DB, means
