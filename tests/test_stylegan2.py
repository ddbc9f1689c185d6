"""StyleGAN2 generator: official layout, maths of the building blocks, latents, noise, dtypes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reenact.errors import ReenactError
from reenact.gan.stylegan2 import (
    Generator,
    GeneratorConfig,
    count_parameters,
    ffhq_config_f,
    modulated_conv2d,
    setup_filter,
    tiny,
    upsample2d,
)
from reenact.imaging import images_to_uint8
from tests.gantools import FIXTURE, official_layout, randomized_generator

OFFICIAL_FFHQ_PARAMS_LOW, OFFICIAL_FFHQ_PARAMS_HIGH = 29.9e6, 30.5e6  # ~30.0M as published
# bf16 keeps 8 mantissa bits (eps 2^-8); through the tiny generator the measured relative L2 error is
# ~0.009-0.012 and the max error ~1-2 % of the output range.
BF16_REL_L2_TOL = 0.025
BF16_REL_MAX_TOL = 0.04


def test_fixture_cites_reference_sources() -> None:
    header = json.loads(FIXTURE.read_text())["header"]
    for source in header["sources"].values():
        assert len(source["commit"]) == 40
        assert source["repo"] in ("NVlabs/stylegan2-ada-pytorch", "rosinality/stylegan2-pytorch")


def test_config_f_layout_matches_official_g_ema_exactly() -> None:
    with torch.device("meta"):
        G = Generator(ffhq_config_f(1024))
    ours = {key: list(value.shape) for key, value in G.state_dict().items()}
    official = official_layout("stylegan2_ada_pytorch")
    assert set(ours) == set(official)
    mismatched = [key for key in official if ours[key] != official[key]]
    assert mismatched == []


def test_parameter_count_matches_fixture() -> None:
    data = json.loads(FIXTURE.read_text())
    expected = sum(math.prod(e["shape"]) for e in data["stylegan2_ada_pytorch"] if e["kind"] == "parameter")
    with torch.device("meta"):
        G = Generator(ffhq_config_f(1024))
    assert count_parameters(G) == expected
    assert OFFICIAL_FFHQ_PARAMS_LOW < expected < OFFICIAL_FFHQ_PARAMS_HIGH
    assert G.num_ws == 18


@pytest.mark.parametrize("resolution", [4, 8, 32, 64])
def test_any_power_of_two_resolution(resolution: int) -> None:
    G = randomized_generator(tiny(resolution))
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2
    img = G(torch.randn(2, G.z_dim))
    assert img.shape == (2, 3, resolution, resolution)
    assert torch.isfinite(img).all()


def test_config_validation() -> None:
    with pytest.raises(ReenactError, match="power of two"):
        GeneratorConfig(resolution=48)
    with pytest.raises(ReenactError, match="outside"):
        GeneratorConfig(resolution=2048)
    assert GeneratorConfig.from_dict(tiny(16).to_dict()) == tiny(16)


def _fused_reference(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool, up: int
) -> torch.Tensor:
    """The official fused form: per-sample weights, grouped (transposed) conv, FIR after upsampling."""
    batch, in_ch, height, width = x.shape
    out_ch, _, k, _ = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_ch, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch, out_ch, 1, 1, 1)
    xg = x.reshape(1, batch * in_ch, height, width)
    if up == 1:
        out = F.conv2d(xg, w.reshape(batch * out_ch, in_ch, k, k), padding=k // 2, groups=batch)
        return out.reshape(batch, out_ch, height, width)
    wt = w.transpose(1, 2).reshape(batch * in_ch, out_ch, k, k)
    out = F.conv_transpose2d(xg, wt, stride=2, groups=batch).reshape(
        batch, out_ch, 2 * height + 1, 2 * width + 1
    )
    f = setup_filter([1, 3, 3, 1]) * 4  # pad 1 each side, then the 4x4 FIR (symmetric: no flip needed)
    out = F.pad(out, [1, 1, 1, 1])
    return F.conv2d(out.reshape(-1, 1, *out.shape[2:]), f[None, None]).reshape(
        batch, out_ch, 2 * height, 2 * width
    )


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_official_fused_form(up: int, demodulate: bool) -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 6, 5, 5)
    weight = torch.randn(4, 6, 3, 3)
    styles = torch.randn(3, 6)
    ours = modulated_conv2d(
        x, weight, styles, demodulate=demodulate, up=up, resample_filter=setup_filter([1, 3, 3, 1])
    )
    reference = _fused_reference(x, weight, styles, demodulate=demodulate, up=up)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 1e-5


def test_upsample2d_preserves_constant_and_interpolates() -> None:
    f = setup_filter([1, 3, 3, 1])
    constant = torch.full([1, 1, 6, 6], 2.0)
    up = upsample2d(constant, f)
    assert up.shape == (1, 1, 12, 12)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 2.0), atol=1e-6)
    ramp = torch.arange(8.0).reshape(1, 1, 1, 8).repeat(1, 1, 8, 1)
    up_ramp = upsample2d(ramp, f)[0, 0, 4, 2:-2]
    # [1,3,3,1] upsampling of a linear ramp is the ramp sampled at half-pixel offsets: steps of 0.5.
    assert torch.allclose(up_ramp.diff(), torch.full_like(up_ramp.diff(), 0.5), atol=1e-5)


def test_mapping_is_scale_invariant_and_truncation_follows_w_avg() -> None:
    G = randomized_generator(tiny(16))
    z = torch.randn(4, G.z_dim)
    ws = G.mapping(z)
    assert ws.shape == (4, G.num_ws, G.w_dim)
    assert torch.allclose(G.mapping(3.0 * z), ws, atol=1e-5)
    assert torch.allclose(G.mapping(z, truncation_psi=0.0), G.mapping.w_avg.expand_as(ws), atol=1e-6)
    half = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(half[:, :2], 0.5 * (ws[:, :2] + G.mapping.w_avg), atol=1e-5)
    assert torch.equal(half[:, 2:], ws[:, 2:])


def test_track_w_avg_is_explicit() -> None:
    G = randomized_generator(tiny(16))
    before = G.mapping.w_avg.clone()
    G.train()
    G.mapping(torch.randn(4, G.z_dim))
    assert torch.equal(G.mapping.w_avg, before)
    w = torch.randn(8, G.w_dim)
    G.mapping.track_w_avg(w)
    expected = w.mean(0) + G.config.w_avg_beta * (before - w.mean(0))
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)


def test_single_w_broadcasts_to_all_layers_and_layers_matter() -> None:
    G = randomized_generator(tiny(16))
    w = torch.randn(2, G.w_dim)
    ws = w.unsqueeze(1).repeat(1, G.num_ws, 1)
    assert torch.equal(G.synthesis(w), G.synthesis(ws))
    for layer in (0, G.num_ws - 1):
        edited = ws.clone()
        edited[:, layer] += 1.0
        assert (G.synthesis(edited) - G.synthesis(ws)).abs().max() > 1e-3


def test_noise_modes() -> None:
    G = randomized_generator(tiny(16))
    ws = G.mapping(torch.randn(2, G.z_dim))
    const_a = G.synthesis(ws, noise_mode="const")
    assert torch.equal(const_a, G.synthesis(ws, noise_mode="const"))
    assert (G.synthesis(ws, noise_mode="random") - const_a).abs().max() > 1e-3
    assert (G.synthesis(ws, noise_mode="none") - const_a).abs().max() > 1e-3
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.zero_()
    assert torch.allclose(G.synthesis(ws, noise_mode="none"), G.synthesis(ws, noise_mode="random"), atol=1e-6)


def test_gradients_reach_every_parameter_and_the_latents() -> None:
    G = randomized_generator(tiny(16))
    G.requires_grad_(True)
    ws = G.mapping(torch.randn(2, G.z_dim)).detach().requires_grad_(True)
    G.synthesis(ws, noise_mode="const").square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().min() > 0
    no_grad = [n for n, p in G.synthesis.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert no_grad == []


def test_bf16_autocast_cpu_close_to_fp32() -> None:
    G = randomized_generator(tiny(32))
    ws = G.mapping(torch.randn(2, G.z_dim))
    with torch.no_grad():
        reference = G.synthesis(ws)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = G.synthesis(ws)
    assert low.dtype == torch.float32
    rel_l2 = float((low - reference).norm() / reference.norm())
    rel_max = float((low - reference).abs().max() / reference.abs().max())
    assert rel_l2 < BF16_REL_L2_TOL, rel_l2
    assert rel_max < BF16_REL_MAX_TOL, rel_max


def test_images_to_uint8() -> None:
    images = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 5).repeat(1, 3, 1, 1)
    out = images_to_uint8(images)
    assert out.shape == (1, 1, 5, 3)
    assert out[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    G = randomized_generator(tiny(32))
    ws = G.mapping(torch.randn(2, G.z_dim))
    with torch.no_grad():
        cpu = G.synthesis(ws)
        gpu = G.to("cuda").synthesis(ws.cuda()).cpu()
    assert (cpu - gpu).abs().max() < 1e-3


def test_fixture_is_what_its_generator_script_writes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_layouts", FIXTURE.with_name("make_official_layouts.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = json.loads(FIXTURE.read_text())
    assert [[n, s, k] for n, s, k in module.ada_layout()] == [
        [e["name"], e["shape"], e["kind"]] for e in data["stylegan2_ada_pytorch"]
    ]
    assert [[n, s, k] for n, s, k in module.rosinality_layout()] == [
        [e["name"], e["shape"], e["kind"]] for e in data["rosinality"]
    ]
