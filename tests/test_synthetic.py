"""The synthetic world: exact landmark geometry, written clips, latent structure, different identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, ffhq_quad, transform_points
from reenact.faces.landmarks import read_landmarks
from reenact.gan.random import random_generator
from reenact.invert import psnr
from reenact.synthetic import (
    SyntheticConfig,
    SyntheticWorld,
    crop_square,
    landmark_template,
    make_world,
    perturbed_generator,
    scaled_expression,
    write_world,
)
from reenact.video import VideoReader, probe

CORNER_TOLERANCE_PX = 0.01
IDENTITY_NOISE = 0.3
IDENTITY_PSNR_RANGE = (18.0, 29.0)
"""PSNR (dB) of the different-identity generator (noise 0.3) against the original, same latents
(measured 20.9 and 26.7 dB in the two tests below)."""


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_world(SyntheticConfig(num_frames=10))


@pytest.mark.parametrize("resolution", [16, 32, 1024])
def test_template_quad_is_exactly_the_crop_square(resolution: int) -> None:
    template = landmark_template(resolution)
    assert template.shape == (68, 2)
    np.testing.assert_allclose(ffhq_quad(template), crop_square(resolution), atol=1e-9)
    # The crop matrix of that quad is the identity: the template lives in crop pixels.
    np.testing.assert_allclose(crop_matrix(ffhq_quad(template), resolution), np.eye(3), atol=1e-9)


def test_template_moves_the_quad_when_eyes_move() -> None:
    """The test above can fail: shifting one eye changes the quad."""
    template = landmark_template(32)
    template[36:42] += [1.0, 0.0]
    assert np.abs(ffhq_quad(template) - crop_square(32)).max() > 0.1


def test_written_world_reproduces_the_known_transforms(world: SyntheticWorld, tmp_path: Path) -> None:
    files = write_world(world, tmp_path)
    for clip, video, sidecar in (
        (world.target, files.target_video, files.target_landmarks),
        (world.driver, files.driver_video, files.driver_landmarks),
    ):
        points = read_landmarks(sidecar)  # [T, F, 68, 2]
        assert points.shape == (world.config.num_frames, 1, 68, 2)
        resolution = world.config.resolution
        for frame_points, quad, matrix in zip(points[:, 0], clip.quads, clip.matrices, strict=True):
            recovered = crop_matrix(ffhq_quad(frame_points), resolution)
            corners = transform_points(crop_square(resolution), np.linalg.inv(recovered))
            assert np.abs(corners - quad).max() < CORNER_TOLERANCE_PX
            assert (
                np.abs(transform_points(quad, recovered) - crop_square(resolution)).max()
                < CORNER_TOLERANCE_PX
            )
            np.testing.assert_allclose(recovered, matrix, atol=1e-6)

        info = probe(video)
        assert info.has_audio and info.audio_codec == "aac"
        assert (info.width, info.height) == (world.config.frame_width, world.config.frame_height)
        with VideoReader(video) as reader:
            decoded = np.stack([frame.image for frame in reader.frames()])
        assert len(decoded) == world.config.num_frames
        # H.264 at crf 16 on a smooth picture: close to the frames we rendered, frame by frame.
        error = np.abs(decoded.astype(np.float64) - clip.frames).mean(axis=(1, 2, 3))
        assert error.max() < 4.0

    truth = np.load(files.ground_truth)
    np.testing.assert_array_equal(truth["target_ws"], world.target.ws.numpy())
    np.testing.assert_array_equal(truth["layer_mask"], world.layer_mask.numpy())


def test_face_is_pasted_where_the_quad_says(world: SyntheticWorld) -> None:
    """Inside the quad the frame is the face, well outside it the untouched background."""
    clip = world.target
    for frame, background, quad in zip(clip.frames, clip.backgrounds, clip.quads, strict=True):
        centre = np.round(quad.mean(axis=0)).astype(int)
        assert np.any(frame[centre[1], centre[0]] != background[centre[1], centre[0]])
        corner = (0, 0)  # the frame corner is far from the centred face
        np.testing.assert_array_equal(frame[corner], background[corner])


def test_world_is_deterministic_and_seeded() -> None:
    config = SyntheticConfig(num_frames=3)
    first, again = make_world(config), make_world(config)
    assert torch.equal(first.target.ws, again.target.ws)
    assert torch.equal(first.target.crops, again.target.crops)
    np.testing.assert_array_equal(first.driver.frames, again.driver.frames)
    other = make_world(SyntheticConfig(num_frames=3, seed=1))
    assert not torch.allclose(first.target.crops, other.target.crops, atol=0.1)


def test_generator_is_calibrated_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generator = random_generator(resolution=16, seed=5)
    assert torch.equal(torch.rand(3), expected)
    assert not any(p.requires_grad for p in generator.parameters())
    z = torch.randn(64, generator.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = generator(z)
    assert float(images.mean(dim=(0, 2, 3)).abs().max()) < 0.1  # centred per channel
    assert 0.1 < float(images.std()) < 0.4
    assert float((images.abs() > 1).float().mean()) < 0.005  # almost nothing clips


def test_latent_structure(world: SyntheticWorld) -> None:
    """Motion is the same on every layer; the expression only on the masked layers, driver only."""
    mask = world.layer_mask
    assert mask.tolist() == [i in world.config.expression_layers for i in range(world.generator.num_ws)]
    assert torch.all(world.expression_direction[~mask] == 0)
    assert torch.all(world.expression_direction[mask].abs().sum(dim=1) > 0)
    target, driver = world.target, world.driver
    # Target: neutral, every layer identical.
    assert np.all(target.expression_weights == 0)
    assert torch.allclose(target.ws, target.ws[:, :1].expand_as(target.ws))
    # Driver: frame 0 neutral; the expression rises; unmasked layers carry only the motion.
    assert driver.expression_weights[0] == 0 and driver.expression_weights.max() > 0.9
    delta = driver.ws - driver.ws[:, :1]  # [T, L, D]: what differs from layer 0 (unmasked)
    assert torch.allclose(delta[:, ~mask], torch.zeros(()), atol=1e-6)
    weights = torch.from_numpy(driver.expression_weights).float()
    assert torch.allclose(
        delta[:, mask], weights[:, None, None] * world.expression_direction[mask], atol=1e-5
    )
    # Smooth motion: it moves, and its velocity changes far less from frame to frame than it is.
    velocity = target.motion[1:] - target.motion[:-1]  # [T - 1, D]
    acceleration = (velocity[1:] - velocity[:-1]).norm(dim=1)
    assert velocity.norm(dim=1).min() > 0
    assert acceleration.max() < 0.2 * velocity.norm(dim=1).mean()


def test_crops_are_the_generator_output(world: SyntheticWorld) -> None:
    with torch.no_grad():
        again = world.generator.synthesis(world.driver.ws, noise_mode="const")
    assert torch.allclose(again, world.driver.crops, atol=1e-5)
    assert world.render_generator is world.generator


def test_different_identity_psnr_range(world: SyntheticWorld) -> None:
    other = perturbed_generator(world.generator, scale=IDENTITY_NOISE, seed=1)
    ws = world.target.ws
    with torch.no_grad():
        value = float(psnr(other.synthesis(ws), world.generator.synthesis(ws)).mean())
    low, high = IDENTITY_PSNR_RANGE
    assert low < value < high
    # The original generator's weights are untouched.
    assert torch.allclose(world.generator.synthesis(ws), world.target.crops, atol=1e-5)


def test_world_rendered_by_a_different_identity() -> None:
    config = SyntheticConfig(num_frames=3, identity_noise=IDENTITY_NOISE)
    world = make_world(config)
    assert world.render_generator is not world.generator
    with torch.no_grad():
        in_domain = world.generator.synthesis(world.target.ws)
    value = float(psnr(world.target.crops, in_domain).mean())
    assert IDENTITY_PSNR_RANGE[0] < value < IDENTITY_PSNR_RANGE[1]


def test_expression_layers_must_fit_the_generator() -> None:
    with pytest.raises(ReenactError, match="expression_layers"):
        make_world(SyntheticConfig(resolution=8, expression_layers=(5,)))


def test_a_found_expression_is_scaled_to_the_spread_on_its_layers_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    found = torch.randn(6, 8, generator=generator) * torch.arange(1, 7)[:, None]  # layers of unequal length
    spread = torch.rand(8, generator=generator) + 0.5
    mask = torch.tensor([False, True, True, False, True, False])
    scaled = scaled_expression(found, spread=spread, size=1.5, layer_mask=mask)
    lengths = scaled.norm(dim=1)
    torch.testing.assert_close(lengths[mask], torch.full((3,), 1.5 * float(spread.norm())))
    assert torch.all(lengths[~mask] == 0)
    cosines = torch.nn.functional.cosine_similarity(scaled[mask], found[mask], dim=1)
    torch.testing.assert_close(cosines, torch.ones(3))  # each layer keeps its direction
