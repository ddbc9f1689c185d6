"""Latent arithmetic: expression transfer recovers the synthetic world's ground truth, and the helpers
(layer masks, smoothing, length policies, morph, crossover, directions) do exactly what they say."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.config import EditConfig, load_config
from reenact.directions import Direction
from reenact.edit import (
    apply_direction,
    crossover,
    delta_basis,
    delta_rows,
    driver_deltas,
    expression_deltas,
    join_chains,
    layer_mask,
    length_indices,
    morph,
    nearest_slots,
    neutral_frame,
    output_length,
    smooth_latents,
    smooth_rows,
    transfer,
    transfer_to_frames,
)
from reenact.errors import ReenactError
from reenact.latents import LATENT_BATCH, StoredLatents
from reenact.stages.keys import register_to_keys
from reenact.synthetic import SyntheticConfig, SyntheticWorld, expression_weights, make_world, motion_offsets

NEUTRAL_WEIGHT = 0.05
"""A frame whose expression weight is below this counts as neutral."""
MIN_COSINE = 0.9
"""Recovered expression vs. ground truth; the driver's motion leaks in (measured: cosine 0.93)."""
MAX_MOTION_LEAK = 0.45
"""|Δ - expression| / |expression| over the clip: the driver's motion on the masked layers (measured 0.39)."""


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_world(SyntheticConfig())


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def true_expression(world: SyntheticWorld) -> torch.Tensor:
    """The driver's expression part of W+ [T, L, D]: weight[t] * direction."""
    weights = torch.from_numpy(world.driver.expression_weights).float()
    return weights[:, None, None] * world.expression_direction[None]


# ---------------------------------------------------------------------------------------------------
# Expression transfer on the synthetic world


def test_neutral_frame_of_the_synthetic_driver(world: SyntheticWorld) -> None:
    ref = neutral_frame(world.driver.ws, mask=world.layer_mask, w_avg=world.generator.mapping.w_avg)
    assert world.driver.expression_weights[ref] < NEUTRAL_WEIGHT
    assert ref == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_frames", [16, 48, 100])
def test_neutral_frame_on_drivers_built_like_the_world(
    world: SyntheticWorld, seed: int, num_frames: int
) -> None:
    """Same latent structure as the world (base + slow motion + expression on the mask), other seeds
    and lengths, no rendering. The plain distance to w_avg fails several of these (weights 0.1-0.15)."""
    config = world.config
    rng = np.random.default_rng(seed)
    spread = world.w_std
    motion = motion_offsets(
        num_frames, w_std=spread, size=config.motion, period=config.motion_period, rng=rng
    )  # [T, D]
    z = torch.from_numpy(rng.standard_normal((1, world.generator.z_dim))).float()
    base = world.generator.mapping(z)[0, 0]
    direction = torch.from_numpy(rng.standard_normal(tuple(world.expression_direction.shape))).float()
    direction = direction * spread * config.expression * world.layer_mask[:, None]
    weights = expression_weights(num_frames, active=True)
    ws = (base + motion)[:, None, :] + torch.from_numpy(weights).float()[:, None, None] * direction
    ref = neutral_frame(ws, mask=world.layer_mask, w_avg=world.generator.mapping.w_avg)
    assert weights[ref] < NEUTRAL_WEIGHT


def test_transfer_adds_the_drivers_expression_to_the_target(world: SyntheticWorld) -> None:
    driver, target, mask = world.driver, world.target, world.layer_mask
    ref = neutral_frame(driver.ws, mask=mask, w_avg=world.generator.mapping.w_avg)
    deltas = expression_deltas(driver.ws, ref=ref, mask=mask)
    out = transfer(target.ws, deltas, strength=1.0)
    expression = true_expression(world) - true_expression(world)[ref]  # [T, L, D]
    motion = (driver.motion - driver.motion[ref])[:, None, :] * mask[None, :, None]  # [T, L, D]

    # Exact: the target plus the driver's expression, plus the driver's own motion on the masked layers.
    torch.testing.assert_close(out, target.ws + expression + motion, atol=1e-5, rtol=0)
    assert torch.equal(out[:, ~mask], target.ws[:, ~mask]), "layers outside the mask stay the target's"

    # The expression dominates what was added; the motion leak is bounded.
    added = out - target.ws
    assert cosine(added, expression) > MIN_COSINE
    assert float((added - expression).norm() / expression.norm()) < MAX_MOTION_LEAK
    # A sign flip or a dropped delta fails the same check.
    flipped = transfer(target.ws, deltas, strength=-1.0) - target.ws
    assert cosine(flipped, expression) < -MIN_COSINE
    assert cosine(transfer(target.ws, torch.zeros_like(deltas), strength=1.0) - target.ws, expression) < 0.5
    # Strength scales the added expression linearly.
    torch.testing.assert_close(transfer(target.ws, deltas, strength=2.0) - target.ws, 2 * added)


def test_still_photo_is_broadcast_over_the_driver(world: SyntheticWorld) -> None:
    deltas = expression_deltas(world.driver.ws, ref=0, mask=world.layer_mask)
    photo = world.target.ws[3:4]  # [1, L, D]
    out = transfer(photo, deltas, strength=0.5)
    assert out.shape == deltas.shape
    for t in range(deltas.shape[0]):
        torch.testing.assert_close(out[t], photo[0] + 0.5 * deltas[t])
    with pytest.raises(ReenactError, match="length_indices"):
        transfer(world.target.ws[:5], deltas, strength=1.0)


def test_expression_deltas_reference_mask_and_errors(world: SyntheticWorld) -> None:
    mask = world.layer_mask
    deltas = expression_deltas(world.driver.ws, ref=5, mask=mask)
    assert float(deltas[5].abs().max()) == 0.0
    assert float(deltas[:, ~mask].abs().max()) == 0.0
    assert float(deltas[:, mask].abs().max()) > 0.1
    with pytest.raises(ReenactError, match="reference frame"):
        expression_deltas(world.driver.ws, ref=world.driver.ws.shape[0], mask=mask)
    with pytest.raises(ReenactError, match="layer mask"):
        expression_deltas(world.driver.ws, ref=0, mask=mask[:-1])


def test_min_component_zeroes_small_deltas_and_shrinks_the_rest(world: SyntheticWorld) -> None:
    mask = world.layer_mask
    plain = expression_deltas(world.driver.ws, ref=0, mask=mask)
    fraction = 0.2
    shrunk = expression_deltas(world.driver.ws, ref=0, mask=mask, min_component=fraction)
    lengths, new_lengths = plain.norm(dim=2), shrunk.norm(dim=2)  # [T, L]
    threshold = fraction * lengths.amax(dim=0, keepdim=True)  # [1, L]
    small = lengths < threshold
    assert bool(small[:, mask].any()), "the neutral end of the clip has small deltas"
    assert float(new_lengths[small].max()) == 0.0
    torch.testing.assert_close(new_lengths[~small], (lengths - threshold.expand_as(lengths))[~small])
    # Directions are kept: the shrunk deltas point where the plain ones do.
    keep = ~small & mask[None]
    cos = torch.nn.functional.cosine_similarity(shrunk[keep], plain[keep], dim=-1)
    assert float(cos.min()) > 1 - 1e-5


def test_smoothed_deltas_follow_the_expression_through_inversion_noise(world: SyntheticWorld) -> None:
    mask = world.layer_mask
    generator = torch.Generator().manual_seed(1)
    noise = 0.3 * world.w_std * torch.randn(world.driver.ws.shape, generator=generator)
    noisy = world.driver.ws + noise
    motion = (world.driver.motion - world.driver.motion[0])[:, None, :] * mask[None, :, None]
    truth = true_expression(world) + motion  # [T, L, D]: what noise-free deltas are
    raw = expression_deltas(noisy, ref=0, mask=mask)
    smooth = expression_deltas(noisy, ref=0, mask=mask, sigma=1.5)
    assert float(smooth[0].abs().max()) == 0.0, "the reference frame's delta stays zero"
    assert float((smooth - truth).norm()) < 0.6 * float((raw - truth).norm())
    assert jitter(smooth) < 0.5 * jitter(raw)


# ---------------------------------------------------------------------------------------------------
# Layer masks


def indices(mask: torch.Tensor) -> list[int]:
    return torch.nonzero(mask).flatten().tolist()


def test_presets_on_the_ffhq_generator() -> None:
    assert indices(layer_mask("expression", num_ws=18)) == [4, 5, 6, 7]
    assert indices(layer_mask("pose", num_ws=18)) == [0, 1, 2, 3]
    assert indices(layer_mask("expression+pose", num_ws=18)) == list(range(8))
    assert indices(layer_mask("color", num_ws=18)) == list(range(8, 18))
    assert indices(layer_mask("all", num_ws=18)) == list(range(18))
    # 256 px (14 layers): the same resolutions, fewer fine layers.
    assert indices(layer_mask("expression", num_ws=14)) == [4, 5, 6, 7]
    assert indices(layer_mask("fine", num_ws=14)) == list(range(8, 14))
    # 64 px (10 layers, the face world): its 16 and 32 px blocks are layers 4-7, as at 1024 px.
    assert indices(layer_mask("expression", num_ws=10)) == [4, 5, 6, 7]
    assert indices(layer_mask("pose", num_ws=10)) == [0, 1, 2, 3]
    assert indices(layer_mask("fine", num_ws=10)) == [8, 9]


def test_presets_scale_on_generators_without_a_fine_band() -> None:
    num_ws = 8  # 32 px: the middle band is its last
    assert indices(layer_mask("pose", num_ws=num_ws)) == [0, 1]
    assert indices(layer_mask("expression", num_ws=num_ws)) == [2, 3]
    assert indices(layer_mask("fine", num_ws=num_ws)) == list(range(4, num_ws))
    assert indices(layer_mask("all", num_ws=num_ws)) == list(range(num_ws))


def test_layer_ranges() -> None:
    assert indices(layer_mask("3-7", num_ws=18)) == [3, 4, 5, 6, 7]
    assert indices(layer_mask("2,4,6-8", num_ws=18)) == [2, 4, 6, 7, 8]
    assert indices(layer_mask(" pose , 9 ", num_ws=18)) == [0, 1, 2, 3, 9]
    assert indices(layer_mask("17", num_ws=18)) == [17]
    assert layer_mask("0-17", num_ws=18).dtype == torch.bool


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("7-3", "low to high"),
        ("18", "within 0-17"),
        ("4-18", "within 0-17"),
        ("smiles", "neither a preset"),
        ("1-2-3", "neither a preset"),
        ("", "neither a preset"),
        ("2,,3", "neither a preset"),
        ("-1", "neither a preset"),
    ],
)
def test_bad_layer_specs(spec: str, message: str) -> None:
    with pytest.raises(ReenactError, match=message):
        layer_mask(spec, num_ws=18)


# ---------------------------------------------------------------------------------------------------
# Smoothing


def jitter(ws: torch.Tensor) -> float:
    """Mean frame-to-frame step length."""
    return float((ws[1:] - ws[:-1]).flatten(1).norm(dim=1).mean())


def test_smoothing_reduces_jitter_and_keeps_the_signal() -> None:
    generator = torch.Generator().manual_seed(0)
    num_frames = 60
    t = torch.arange(num_frames, dtype=torch.float32)[:, None, None]
    clean = torch.sin(2 * math.pi * t / 40) * torch.randn(1, 4, 16, generator=generator)  # [T, 4, 16]
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=generator)
    smooth = smooth_latents(noisy, sigma=2.0)
    assert jitter(smooth) < 0.4 * jitter(noisy)
    assert float((smooth - clean).norm()) < 0.6 * float((noisy - clean).norm())


def test_smoothing_identity_constant_and_edges() -> None:
    ws = torch.randn(10, 3, 5, generator=torch.Generator().manual_seed(2))
    same = smooth_latents(ws, sigma=0.0)
    assert torch.equal(same, ws) and same is not ws
    constant = torch.full((7, 2, 3), 1.25)
    torch.testing.assert_close(smooth_latents(constant, sigma=3.0), constant)
    # A kernel wider than the clip still works (reflection, not zero padding): constant stays constant.
    torch.testing.assert_close(smooth_latents(constant[:2], sigma=5.0), constant[:2])
    # The ends are reflected, not padded or wrapped: a step keeps its plateaus up to the clip's ends.
    step = (torch.arange(30) >= 15).float()[:, None, None].expand(30, 2, 2)
    smoothed_step = smooth_latents(step, sigma=1.0)
    torch.testing.assert_close(smoothed_step[[0, -1]], step[[0, -1]], atol=1e-4, rtol=0)
    # A linear ramp is unchanged away from the ends (the kernel is symmetric).
    ramp = torch.arange(30, dtype=torch.float32)[:, None, None].expand(30, 2, 2)
    torch.testing.assert_close(smooth_latents(ramp, sigma=1.0)[4:-4], ramp[4:-4])
    with pytest.raises(ReenactError, match="sigma"):
        smooth_latents(ws, sigma=-1.0)


# ---------------------------------------------------------------------------------------------------
# Length policies


def test_length_policies_for_a_shorter_driver() -> None:
    assert length_indices(8, 3, policy="loop").tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert length_indices(8, 3, policy="pingpong").tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert length_indices(6, 3, policy="hold").tolist() == [0, 1, 2, 2, 2, 2]
    assert length_indices(6, 3, policy="cut").tolist() == [0, 1, 2, 2, 2, 2]
    assert output_length(6, 3, policy="cut") == 3
    assert output_length(6, 3, policy="hold") == 6
    assert length_indices(4, 1, policy="pingpong").tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("policy", ["loop", "pingpong", "cut", "hold"])
def test_length_policies_for_a_longer_driver(policy: str) -> None:
    assert length_indices(5, 9, policy=policy).tolist() == [0, 1, 2, 3, 4]
    assert output_length(5, 9, policy=policy) == 5


def test_pingpong_never_jumps() -> None:
    steps = np.abs(np.diff(length_indices(100, 7, policy="pingpong")))
    assert steps.max() == 1


def test_bad_length_policy() -> None:
    with pytest.raises(ReenactError, match="length policy"):
        length_indices(4, 3, policy="bounce")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# Morph, crossover, directions


@pytest.mark.parametrize("ease", [True, False])
def test_morph_endpoints_and_midpoint(ease: bool) -> None:
    generator = torch.Generator().manual_seed(3)
    w_a, w_b = torch.randn(8, 32, generator=generator), torch.randn(1, 8, 32, generator=generator)
    frames = morph(w_a, w_b, num_frames=9, ease=ease)
    assert frames.shape == (9, 8, 32)
    assert torch.equal(frames[0], w_a) and torch.equal(frames[-1], w_b[0])
    torch.testing.assert_close(frames[4], (w_a + w_b[0]) / 2)
    # Progress along a -> b only grows.
    progress = ((frames - w_a) * (w_b[0] - w_a)).sum(dim=(1, 2)) / (w_b[0] - w_a).square().sum()
    assert bool((progress[1:] > progress[:-1]).all())


def test_morph_ease_starts_slowly() -> None:
    w_a, w_b = torch.zeros(2, 4), torch.ones(2, 4)
    eased, linear = morph(w_a, w_b, num_frames=11, ease=True), morph(w_a, w_b, num_frames=11, ease=False)
    assert float(eased[1].mean()) < 0.5 * float(linear[1].mean())
    with pytest.raises(ReenactError, match="num_frames"):
        morph(w_a, w_b, num_frames=1)


def test_crossover_splits_at_the_layer() -> None:
    w_a, w_b = torch.zeros(3, 8, 4), torch.ones(3, 8, 4)
    mixed = crossover(w_a, w_b, layer=3)
    assert torch.equal(mixed[:, :3], w_a[:, :3]) and torch.equal(mixed[:, 3:], w_b[:, 3:])
    assert torch.equal(crossover(w_a, w_b, layer=0), w_b)
    assert torch.equal(crossover(w_a, w_b, layer=8), w_a)
    with pytest.raises(ReenactError, match=r"0\.\.8"):
        crossover(w_a, w_b, layer=9)


def test_apply_direction_moves_only_the_chosen_layers() -> None:
    generator = torch.Generator().manual_seed(4)
    ws = torch.randn(5, 8, 32, generator=generator)
    direction = Direction(name="d", vector=torch.randn(1, 32, generator=generator), source_format="memory")
    layers = layer_mask("2-4", num_ws=8)
    edited = apply_direction(ws, direction, strength=1.5, layers=layers)
    assert torch.equal(edited[:, ~layers], ws[:, ~layers])
    torch.testing.assert_close(edited[:, layers] - ws[:, layers], (1.5 * direction.vector).expand(5, 3, 32))
    everywhere = apply_direction(ws, direction, strength=-1.0)
    torch.testing.assert_close(everywhere - ws, (-direction.vector).expand(5, 8, 32))
    per_layer = Direction(name="p", vector=torch.randn(8, 32, generator=generator), source_format="memory")
    torch.testing.assert_close(
        apply_direction(ws, per_layer, strength=2.0) - ws, 2 * per_layer.vector.expand(5, 8, 32)
    )
    wrong = Direction(name="ffhq", vector=torch.randn(1, 512), source_format="memory")
    with pytest.raises(ReenactError, match="w_dim 512"):
        apply_direction(ws, wrong, strength=1.0)
    with pytest.raises(ReenactError, match="18 layers"):
        apply_direction(
            ws, Direction(name="x", vector=torch.randn(18, 32), source_format="memory"), strength=1.0
        )


# ---------------------------------------------------------------------------------------------------
# Config


def test_edit_config_reference_and_validation() -> None:
    assert load_config(overrides=["edit.reference=3"]).edit.reference == 3
    assert load_config(overrides=["edit.reference=auto"]).edit.reference == "auto"
    with pytest.raises(ReenactError, match=r"edit\.reference"):
        load_config(overrides=["edit.reference=first"])
    with pytest.raises(ReenactError, match=r"edit\.min_component"):
        EditConfig(min_component=1.0)
    with pytest.raises(ReenactError, match=r"edit\.layers"):
        EditConfig(layers="4..7")
    for spec in (EditConfig().layers, EditConfig().direction_layers):
        assert bool(layer_mask(spec, num_ws=18).any())


def test_nearest_slots_match_the_brute_force_answer() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        length = int(rng.integers(1, 60))
        frames = np.sort(rng.choice(length, size=int(rng.integers(1, length + 1)), replace=False))
        points = np.arange(length)
        expected = np.abs(points[:, None] - frames[None, :]).argmin(axis=1)  # [P, N]: what it replaces
        np.testing.assert_array_equal(nearest_slots(points, frames), expected)


def test_neutral_frame_of_a_long_driver_is_the_principal_axis_answer() -> None:
    """Past the size of its covariance, the axis comes from streamed sums: the same frame as the SVD's."""
    generator = torch.Generator().manual_seed(0)
    num_ws, w_dim, frames = 6, 8, 3000
    base, axis = (
        torch.randn(num_ws, w_dim, generator=generator),
        torch.randn(num_ws, w_dim, generator=generator),
    )
    weight = torch.sin(torch.linspace(0, 20, frames)) ** 2  # [T]: expression on and off
    ws = base + weight[:, None, None] * axis + 0.05 * torch.randn(frames, num_ws, w_dim, generator=generator)
    mask = torch.tensor([False, True, True, True, True, False])
    w_avg = torch.randn(w_dim, generator=generator)
    offsets = (ws[:, mask] - w_avg).flatten(1).double()  # [T, M * D]
    principal = torch.linalg.svd(offsets - offsets.mean(dim=0), full_matrices=False).Vh[0]
    coordinates = offsets @ principal
    low, high = int(coordinates.argmin()), int(coordinates.argmax())
    expected = low if abs(float(coordinates[low])) <= abs(float(coordinates[high])) else high
    chosen = neutral_frame(ws, mask=mask, w_avg=w_avg)
    assert chosen == expected
    assert float(weight[chosen]) < 0.01, "the chosen frame is not the neutral one"


# ---------------------------------------------------------------------------------------------------
# Long clips: the same numbers, a batch at a time


def store_latents(ws: torch.Tensor, directory: Path, *, part: int) -> StoredLatents:
    """`ws` as a stage would store it: `.npy` parts of `part` rows."""
    directory.mkdir()
    for start in range(0, len(ws), part):
        stop = min(start + part, len(ws))
        np.save(directory / f"rows-{start:08d}-{stop:08d}.npy", ws[start:stop].numpy())
    return StoredLatents(directory, prefix="rows-")


def whole_clip_deltas(ws: torch.Tensor, *, ref: int, mask: torch.Tensor, sigma: float, fraction: float):
    """The offsets as the whole-clip arithmetic gives them (smooth all, subtract, shrink by the clip max)."""
    smooth = smooth_latents(ws, sigma=sigma)
    deltas = (smooth - smooth[ref : ref + 1]) * mask[None, :, None]
    lengths = deltas.norm(dim=2, keepdim=True)
    threshold = fraction * lengths.amax(dim=0, keepdim=True)
    return deltas * torch.clamp(1 - threshold / lengths.clamp_min(torch.finfo(deltas.dtype).tiny), min=0)


def test_streamed_offsets_and_transfer_are_the_whole_clip_numbers(tmp_path: Path) -> None:
    """Over a stored driver longer than a batch, read a batch at a time (in any order, with repeats), the
    offsets, the neutral frame and the transferred latents equal the whole-clip arithmetic's."""
    generator = torch.Generator().manual_seed(3)
    num_ws, w_dim, frames = 6, 8, 3 * LATENT_BATCH + 17
    ws = torch.randn(frames, num_ws, w_dim, generator=generator).cumsum(dim=0) * 0.1  # [T, L, D] a walk
    stored = store_latents(ws, tmp_path / "driver", part=100)
    mask = torch.tensor([False, True, True, True, False, False])
    sigma, fraction, ref = 1.5, 0.1, 700

    expected = whole_clip_deltas(ws, ref=ref, mask=mask, sigma=sigma, fraction=fraction)
    rows = np.random.default_rng(0).integers(0, frames, size=300)  # any order, repeats
    basis = delta_basis(stored, ref=ref, mask=mask, sigma=sigma, min_component=fraction)
    torch.testing.assert_close(delta_rows(stored, rows, basis=basis), expected[rows], rtol=0, atol=1e-6)
    torch.testing.assert_close(
        expression_deltas(ws, ref=ref, mask=mask, sigma=sigma, min_component=fraction), expected
    )
    torch.testing.assert_close(
        smooth_rows(stored, 5, 400, sigma=sigma), smooth_latents(ws, sigma=sigma)[5:400]
    )
    w_avg = torch.randn(w_dim, generator=generator)
    assert neutral_frame(stored, mask=mask, w_avg=w_avg) == neutral_frame(ws, mask=mask, w_avg=w_avg)

    config = EditConfig(
        layers="1-3", sigma=sigma, min_component=fraction, reference="auto", length_policy="pingpong"
    )
    faces = np.flatnonzero(np.arange(frames) % 7 != 3)  # frames with a face
    deltas, ref_frame = driver_deltas(
        store_latents(ws[faces], tmp_path / "faces", part=64), faces, num_frames=frames, config=config,
        w_avg=w_avg, ref=None,
    )  # fmt: skip
    ref_slot = int(np.flatnonzero(faces == ref_frame)[0])
    per_face = whole_clip_deltas(ws[faces], ref=ref_slot, mask=mask, sigma=sigma, fraction=fraction)
    per_frame = per_face[nearest_slots(np.arange(frames), faces)]  # [T, L, D]
    torch.testing.assert_close(deltas[0:frames], per_frame, rtol=0, atol=1e-6)

    target = torch.randn(500, num_ws, w_dim, generator=generator)
    target_frames = np.arange(0, 1000, 2)
    latents = transfer_to_frames(
        store_latents(target, tmp_path / "target", part=256), target_frames, deltas, num_target=1000,
        config=config,
    )  # fmt: skip
    which = length_indices(1000, frames, policy="pingpong")[target_frames]
    torch.testing.assert_close(
        latents[np.arange(500)],
        transfer(target, per_frame[which], strength=config.strength),
        rtol=0,
        atol=1e-6,
    )


# ------------------------------------------------------------------------------ chains and key chains


def _drifting_chains(
    *, frames: int, segment: int, stride: int, drift: float
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """A true trajectory [T, 2, 3], each segment's chain (from the key frame it continues from: its own
    first frame, or the frame before it) and the key frames (every `stride`-th frame and the frame before
    each segment). A chain starts on the truth and drifts off it linearly by `drift` a frame along a
    direction of its own, as an inversion chain wanders in W+ along what the picture does not see."""
    generator = torch.Generator().manual_seed(0)
    truth = torch.cumsum(0.1 * torch.randn(frames, 2, 3, generator=generator), dim=0)  # [T, 2, 3]
    chains = []
    for start in range(0, frames, segment):
        first = max(start - 1, 0)
        stop = min(start + segment, frames)
        direction = torch.randn(2, 3, generator=generator)
        direction = direction / direction.norm()
        steps = torch.arange(stop - first, dtype=torch.float32)  # frames since the chain's start
        chains.append(truth[first:stop] + drift * steps[:, None, None] * direction)
    keys = sorted(set(range(0, frames, stride)) | {start - 1 for start in range(segment, frames, segment)})
    return truth, chains, torch.tensor(keys)


def test_registering_to_the_key_chain_removes_the_drift_at_segment_starts() -> None:
    """Chains that drift off the key chain: raw, the step into each segment is the drift undone (many
    times the median step); registered (`register_to_keys`), every row at a key frame is the key's, the
    step into a segment is an ordinary one, and the rows stay within the drift's reach of the truth."""
    frames, segment, stride, drift = 48, 16, 4, 0.2
    truth, chains, key_frames = _drifting_chains(frames=frames, segment=segment, stride=stride, drift=drift)
    raw, registered = [], []
    for start, chain in zip(range(0, frames, segment), chains, strict=True):
        first = max(start - 1, 0)
        inside = key_frames[(key_frames >= first) & (key_frames < first + len(chain))].numpy()
        rows = register_to_keys(chain, first, key_frames=inside, keys=truth[inside])
        raw.append(chain[start - first :])
        registered.append(rows[start - first :])
    pivots, rows = torch.cat(raw), torch.cat(registered)  # [T, 2, 3] each
    seams = [start - 1 for start in range(segment, frames, segment)]  # steps into a segment

    def steps(ws: torch.Tensor) -> torch.Tensor:
        return (ws[1:] - ws[:-1]).flatten(1).norm(dim=1)  # [T - 1]

    median = float(steps(truth).median())
    assert float(steps(pivots)[seams].min()) > 10 * median, "the raw segments must jump"
    assert float(steps(rows)[seams].max()) < 3 * median
    torch.testing.assert_close(rows[key_frames], truth[key_frames])
    assert float((rows - truth).flatten(1).norm(dim=1).max()) <= drift * stride
    assert float((pivots - truth).flatten(1).norm(dim=1).max()) > drift * stride, "raw chains must drift"


def test_joining_chains_makes_the_step_into_each_segment_the_mean_of_its_neighbours() -> None:
    """A constant jump into each segment (a fresh chain elsewhere in W+) is gone once joined; segments
    that do not continue the one before (a gap) are left where they are."""
    generator = torch.Generator().manual_seed(1)
    truth = torch.cumsum(0.1 * torch.randn(30, 2, 3, generator=generator), dim=0)  # [30, 2, 3]
    jumped = truth.clone()
    jumped[10:] += 5.0
    jumped[20:] -= 3.0
    joined = join_chains(jumped, [range(0, 10), range(10, 20), range(20, 30)])[np.arange(30)]
    steps = (joined[1:] - joined[:-1]).flatten(1).norm(dim=1)  # [29]
    true_steps = (truth[1:] - truth[:-1]).flatten(1).norm(dim=1)
    assert float(steps.max()) <= 2 * float(true_steps.max())
    torch.testing.assert_close(joined[:10], truth[:10])
    apart = join_chains(jumped, [range(0, 10), range(11, 20), range(20, 30)])[np.arange(20)]
    torch.testing.assert_close(apart[11:20], jumped[11:20])  # a segment after a gap is not moved
