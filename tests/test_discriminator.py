"""The training side of the GAN: discriminator, non-saturating loss, lazy R1, EMA, DiffAugment."""

from __future__ import annotations

import math

import pytest
import torch

from reenact.errors import ReenactError
from reenact.gan.augment import DEFAULT_POLICY, cutout, diff_augment, parse_policy, translation
from reenact.gan.discriminator import Discriminator, DiscriminatorConfig, minibatch_stddev
from reenact.gan.stylegan2 import Generator, tiny
from reenact.gan.training_losses import (
    discriminator_loss,
    ema_beta,
    generator_loss,
    lazy_adam,
    r1_loss,
    r1_penalty,
    update_ema,
)

SMALL_CHANNELS = {"channel_base": 512, "channel_max": 32}
"""Discriminators narrow enough for tests on one thread."""


def small_discriminator(resolution: int, **changes: int) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(DiscriminatorConfig(resolution=resolution, **{**SMALL_CHANNELS, **changes}))


@pytest.mark.parametrize("resolution", [64, 128])
def test_discriminator_shapes_and_official_names(resolution: int) -> None:
    D = small_discriminator(resolution)
    logits = D(torch.randn(4, 3, resolution, resolution))
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    names = set(D.state_dict())
    for name in (
        f"b{resolution}.fromrgb.weight",
        f"b{resolution}.conv0.weight",
        f"b{resolution}.conv1.weight",
        f"b{resolution}.skip.weight",
        "b8.conv1.bias",
        "b4.conv.weight",
        "b4.fc.weight",
        "b4.out.weight",
    ):
        assert name in names
    assert D.block_resolutions == [2**i for i in range(int(math.log2(resolution)), 2, -1)]
    assert D.b4.conv.weight.shape[1] == D.config.channels(4) + 1  # the stddev channel


def test_discriminator_refuses_bad_configs_and_inputs() -> None:
    with pytest.raises(ReenactError, match="power of two"):
        DiscriminatorConfig(resolution=48)
    with pytest.raises(ReenactError, match="power of two"):
        DiscriminatorConfig(resolution=4)
    D = small_discriminator(16)
    with pytest.raises(ValueError, match="images must be"):
        D(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="group size"):
        D(torch.randn(6, 3, 16, 16))  # groups of 4 do not divide 6


def test_discriminator_config_round_trips() -> None:
    config = DiscriminatorConfig(resolution=32, channel_base=1024, channel_max=64, mbstd_group_size=2)
    assert DiscriminatorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ReenactError, match="unknown fields"):
        DiscriminatorConfig.from_dict({"resolution": 32, "width": 3})


def test_minibatch_stddev_against_a_direct_computation() -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 6, 4, 4)
    out = minibatch_stddev(x, group_size=4, num_channels=2)
    assert out.shape == (8, 8, 4, 4)
    assert torch.equal(out[:, :6], x)
    groups = 8 // 4
    for sample in range(8):
        members = x[sample % groups :: groups]  # the official grouping: n, n + N/G, n + 2N/G, ...
        assert members.shape[0] == 4
        for feature in range(2):
            part = members[:, feature * 3 : (feature + 1) * 3]  # [G, c, H, W]
            std = (part.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
            assert torch.allclose(out[sample, 6 + feature], std.expand(4, 4), atol=1e-6)


def test_downsampling_conv_keeps_a_constant_image_constant_inside() -> None:
    D = small_discriminator(16, mbstd_channels=0)
    skip = D.b16.skip
    with torch.no_grad():
        skip.weight.zero_()
        skip.weight[:, 0] = 1.0 / skip.weight_gain  # every output channel = input channel 0
    out = skip(torch.full([1, 32, 16, 16], 3.0))
    assert out.shape == (1, 32, 8, 8)
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.tensor(3.0))  # the FIR filter sums to 1


def test_r1_penalty_matches_per_image_autograd() -> None:
    """Without minibatch stddev each logit depends on its own image: the batched penalty must equal each
    image's own squared gradient norm, computed one image at a time."""
    D = small_discriminator(16, mbstd_channels=0)
    torch.manual_seed(2)
    images = torch.randn(3, 3, 16, 16)
    batch = images.clone().requires_grad_(True)
    penalty = r1_penalty(batch, D(batch))
    assert penalty.shape == (3,)
    for index in range(3):
        one = images[index : index + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(one).sum(), one)
        assert torch.allclose(penalty[index], grad.square().sum(), rtol=1e-4)
    # create_graph: the penalty itself has a gradient w.r.t. D's weights.
    (weight_grad,) = torch.autograd.grad(penalty.sum(), D.b16.conv0.weight)
    assert weight_grad.abs().sum() > 0


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm() -> None:
    weight = torch.randn(1, 3, 4, 4)
    images = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (images * weight).sum(dim=[1, 2, 3]).unsqueeze(1)  # [N, 1]
    penalty = r1_penalty(images, logits)
    assert torch.allclose(penalty, weight.square().sum().expand(2))
    assert torch.allclose(r1_loss(penalty, gamma=10.0, interval=16), penalty.mean() * 5.0 * 16)


def test_non_saturating_losses() -> None:
    zero = torch.zeros(4, 1)
    assert torch.allclose(generator_loss(zero), torch.tensor(math.log(2.0)))
    assert torch.allclose(discriminator_loss(zero, zero), torch.tensor(2 * math.log(2.0)))
    fake = torch.zeros(4, 1, requires_grad=True)
    generator_loss(fake).backward()
    assert (fake.grad < 0).all()  # G pushes its logits up
    real = torch.zeros(4, 1, requires_grad=True)
    fake = torch.zeros(4, 1, requires_grad=True)
    discriminator_loss(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()  # D pushes real up, fake down


def test_lazy_adam_and_ema_decay() -> None:
    lr, betas = lazy_adam(lr=0.0025, betas=(0.0, 0.99), interval=16)
    assert lr == pytest.approx(0.0025 * 16 / 17) and betas == (0.0, pytest.approx(0.99 ** (16 / 17)))
    beta = ema_beta(batch=8, half_life_images=800, images_seen=10**6, rampup=0.05)
    assert beta**100 == pytest.approx(0.5)  # 100 steps of 8 images: one half-life
    early = ema_beta(batch=8, half_life_images=800, images_seen=160, rampup=0.05)
    assert early == pytest.approx(0.5)  # ramp-up: half-life 0.05 * 160 = 8 images
    assert ema_beta(batch=8, half_life_images=800, images_seen=160, rampup=None) == pytest.approx(beta)


def test_update_ema_lerps_parameters_and_copies_buffers() -> None:
    torch.manual_seed(3)
    model, ema = Generator(tiny(8)), Generator(tiny(8))
    model.mapping.w_avg.fill_(2.0)
    before = {name: p.clone() for name, p in ema.named_parameters()}
    update_ema(ema, model, beta=0.75)
    for name, p in model.named_parameters():
        expected = 0.75 * before[name] + 0.25 * p
        assert torch.allclose(dict(ema.named_parameters())[name], expected, atol=1e-4)
    assert torch.equal(ema.mapping.w_avg, model.mapping.w_avg)


def test_policy_parsing() -> None:
    assert parse_policy(DEFAULT_POLICY) == ("color", "translation", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(ReenactError, match="unknown augmentation 'zoom'"):
        parse_policy("color,zoom")
    with pytest.raises(ReenactError, match="twice"):
        parse_policy("color,color")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augmentation_draws_do_not_depend_on_the_pixels() -> None:
    """Every augmentation is affine in the images once its draws are made, so with the same draws
    A(a) + A(b) - A(0) = A(a + b). Draws that depended on the batch (real vs fake) would break it: the
    real and the generated batch get the same policy, each from the same kind of draw."""
    policy = parse_policy(DEFAULT_POLICY)
    a, b = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    zero = torch.zeros_like(a)
    lhs = diff_augment(a, policy, rng=seeded()) + diff_augment(b, policy, rng=seeded())
    lhs = lhs - diff_augment(zero, policy, rng=seeded())
    assert torch.allclose(lhs, diff_augment(a + b, policy, rng=seeded()), atol=1e-5)
    assert not torch.allclose(diff_augment(a, policy, rng=seeded(0)), diff_augment(a, policy, rng=seeded(1)))
    assert torch.equal(diff_augment(a, (), rng=seeded()), a)


def test_augmentation_is_differentiable() -> None:
    images = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = diff_augment(images, parse_policy(DEFAULT_POLICY), rng=seeded())
    (grad,) = torch.autograd.grad(out.square().sum(), images)
    assert torch.isfinite(grad).all() and (grad.abs().flatten(1).sum(1) > 0).all()


def test_translation_is_a_zero_filled_shift() -> None:
    image = torch.arange(1, 1 + 3 * 16 * 16, dtype=torch.float32).reshape(1, 3, 16, 16).repeat(6, 1, 1, 1)
    out = translation(image, seeded(4))
    shift = 2  # 0.125 * 16
    for sample in range(6):
        matches = []
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                expected = torch.zeros_like(image[0])
                src = image[0, :, max(-dy, 0) : 16 - max(dy, 0), max(-dx, 0) : 16 - max(dx, 0)]
                expected[:, max(dy, 0) : 16 - max(-dy, 0), max(dx, 0) : 16 - max(-dx, 0)] = src
                matches.append(torch.equal(out[sample], expected))
        assert sum(matches) == 1


def test_cutout_zeroes_one_square_at_most_half_the_side() -> None:
    out = cutout(torch.ones(16, 1, 16, 16), seeded(5))
    for sample in out[:, 0]:
        zero_rows = (sample == 0).any(dim=1).nonzero().flatten()
        zero_cols = (sample == 0).any(dim=0).nonzero().flatten()
        assert 0 < len(zero_rows) <= 8 and 0 < len(zero_cols) <= 8
        assert int((sample == 0).sum()) == len(zero_rows) * len(zero_cols)  # one rectangle
