"""Shared helpers for the generator tests: fully random generators and the official layout fixture."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reenact.gan.stylegan2 import Generator, GeneratorConfig

FIXTURE = Path(__file__).parent / "fixtures" / "stylegan2_official_layouts.json"
BIAS_NOISE_STD = 0.3


def randomized_generator(config: GeneratorConfig, seed: int = 0) -> Generator:
    """Every parameter random (biases and noise strengths too), so a wrong mapping cannot hide."""
    torch.manual_seed(seed)
    G = Generator(config).eval()
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith(("bias", "noise_strength")):
                param.copy_(torch.randn_like(param) * BIAS_NOISE_STD + (1.0 if "affine" in name else 0.0))
        G.mapping.w_avg.copy_(torch.randn(config.w_dim))
    return G


def official_layout(name: str) -> dict[str, list[int]]:
    """Parameter/buffer name -> shape of an official layout ("stylegan2_ada_pytorch" or "rosinality")."""
    return {entry["name"]: entry["shape"] for entry in json.loads(FIXTURE.read_text())[name]}
