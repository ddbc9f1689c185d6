"""`benchmarks/bench_e2e.py`: its figures come from the run summary, its channels-last generator renders
what the plain one renders, its CPU smoke run finishes with sane numbers (slow), and its CUDA paths (bf16
autocast, channels_last, `torch.compile`, peak device memory) run on a GPU (gpu)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from reenact.backbones import LPIPS_ARCH, LPIPS_CHANNELS, load_lpips_heads
from reenact.config import Config
from reenact.gan.random import random_generator
from reenact_cli.common import settings_for

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "benchmarks" / "bench_e2e.py"
SMOKE_FRAMES = 8
SMOKE_RESOLUTION = 256
SMOKE_STEPS = 1
"""The issue's CPU smoke run: 256 px config F, 8 frames, every step count cut to one."""
GPU_RESOLUTION = 64
GPU_FRAMES = 4
CHANNELS_LAST_TOLERANCE = 1e-5
"""Largest pixel difference (images in [-1, 1]) between the channels-last and the plain generator: the
same arithmetic in another order."""


def load_bench() -> ModuleType:
    """The benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_e2e", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def work(seconds: float, *, backward: int = 0, forward: int = 0) -> dict[str, Any]:
    """A per-rank stage entry as the run summary gives it."""
    return {"seconds": seconds, "renders": {"backward": backward, "forward": forward}}


def fake_summary() -> dict[str, Any]:
    """A run summary of 4 output frames: the two inversions ran together, so both report their joint
    wall-clock (10 s), while each one's own compute time is 4 and 6 s."""
    wall = {"tar-align": 1.0, "dri-align": 1.0, "tar-crops": 0.5, "dri-crops": 0.5, "tar-invert": 10.0}
    wall |= {"dri-invert": 10.0, "tar-tune": 8.0, "render": 2.0, "encode": 3.0}
    return {
        "frames": 4,
        "seconds": 30.0,
        "stages": [{"name": name, "seconds": seconds} for name, seconds in wall.items()],
        "ranks": [
            {
                "stages": {
                    "tar-align": work(1.0),
                    "dri-align": work(1.0),
                    "tar-crops": work(0.5),
                    "dri-crops": work(0.5),
                    "tar-invert": work(4.0, backward=8),
                    "dri-invert": work(6.0, backward=8, forward=4),
                    "tar-tune": work(8.0, backward=6, forward=10),
                    "render": work(2.0, forward=4),
                }
            }
        ],
        "peak_device_memory_bytes": None,
        "peak_memory_bytes": 2**30,
    }


def test_figures_are_read_from_the_run_summary() -> None:
    figures = bench.run_figures(fake_summary())
    per_frame = figures["seconds_per_frame"]
    assert per_frame["invert"] == pytest.approx((4.0 + 6.0) / 4)  # own compute times, not 2 x 10 s
    assert per_frame["align"] == pytest.approx(2.0 / 4)
    assert per_frame["paste+encode"] == pytest.approx(3.0 / 4)  # no parts: the stage's wall-clock
    assert per_frame["total"] == pytest.approx(30.0 / 4)
    assert figures["renders"]["invert"] == {"backward": 16, "forward": 4}
    assert figures["renders_per_second"]["invert"] == pytest.approx(20 / 10.0)
    assert figures["renders_per_second"]["tune"] == pytest.approx(16 / 8.0)
    assert figures["renders_per_second"]["render"] == pytest.approx(4 / 2.0)
    slower = fake_summary()
    slower["seconds"] = 50.0
    medians = bench.median_figures([figures, bench.run_figures(slower), figures])
    assert medians["seconds_per_frame"]["total"] == pytest.approx(30.0 / 4)
    assert medians["peak_device_memory_bytes"] is None


def test_step_counts_are_cut_only_when_asked() -> None:
    cut = bench.bench_settings(2)
    assert (cut.invert.first_steps, cut.invert.warm_steps) == (2, 2)
    assert (cut.pti.base_steps, cut.pti.max_steps) == (2, 2)
    assert cut.invert.perceptual_weight > 0 and cut.pti.lpips_weight > 0  # the loss networks still run
    assert bench.bench_settings(None) == settings_for(None, None)  # what `reenact transfer` runs


def test_random_lpips_heads_load_as_a_head_file(tmp_path: Path) -> None:
    net = Config().pti.lpips_net
    path = bench.random_lpips_heads(tmp_path / "heads.pth", net=net, seed=0)
    heads = load_lpips_heads(path, LPIPS_CHANNELS[LPIPS_ARCH[net]])
    assert all(bool((head >= 0).all()) and head.abs().sum() > 0 for head in heads)


def test_channels_last_generator_renders_the_same_images() -> None:
    generator = random_generator(resolution=32, seed=0)
    ws = generator.mapping(torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        plain = generator.synthesis(ws)
        bench.to_channels_last(generator.synthesis)
        last = generator.synthesis(ws)
    weights = [p for p in generator.synthesis.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not all(p.is_contiguous() for p in weights)  # really converted, not square 1x1 look-alikes
    assert (last - plain).abs().max() < CHANNELS_LAST_TOLERANCE


def run_bench(*options: str) -> list[str]:
    """The benchmark's output lines (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, str(BENCH), *options],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def row_value(lines: list[str], label: str, *, indent: str = "") -> float:
    """The figure of the table row `label` (a stage row; `indent="  "`: a renders-per-second row)."""
    (line,) = [line for line in lines if line.startswith(f"{indent}{label} ")]
    return float(line.split()[-1])


@pytest.mark.slow
def test_cpu_smoke_run_reports_sane_figures() -> None:
    """The issue's CPU smoke run: the first line says the weights are random, every stage took time,
    the generator stages rendered, at a finite positive rate."""
    lines = run_bench(
        "--device", "cpu", "--resolution", str(SMOKE_RESOLUTION), "--frames", str(SMOKE_FRAMES),
        "--steps", str(SMOKE_STEPS),
    )  # fmt: skip
    assert lines[0] == bench.RANDOM_WEIGHTS_NOTICE and lines[0].startswith("RANDOM WEIGHTS")
    for row in [*bench.STAGE_ROWS, "total"]:
        seconds = row_value(lines, row)
        assert math.isfinite(seconds) and seconds > 0, row
    for row in bench.RENDER_ROWS:
        rate = row_value(lines, row, indent="  ")
        assert math.isfinite(rate) and rate > 0, row
    renders = next(line for line in lines if line.startswith("renders per frame"))
    counts = [float(token.strip(",")) for token in renders.split(":")[1].split() if token[0].isdigit()]
    assert len(counts) == 2 * len(bench.RENDER_ROWS) and sum(counts) > 0
    assert row_value(lines, "total") >= row_value(lines, "invert") + row_value(lines, "tune")


@pytest.mark.gpu
def test_cuda_variants_run_and_report_device_memory() -> None:
    """Every variant on CUDA (bf16 autocast, channels_last, `torch.compile`, all three) runs the whole
    transfer and reports its peak device memory."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    lines = run_bench(
        "--device", "cuda", "--resolution", str(GPU_RESOLUTION), "--frames", str(GPU_FRAMES),
        "--steps", str(SMOKE_STEPS), "--json",
    )  # fmt: skip
    report = json.loads("\n".join(lines))
    assert report["notice"] == bench.RANDOM_WEIGHTS_NOTICE
    assert set(report["variants"]) == set(bench.VARIANTS)
    for name, figures in report["variants"].items():
        assert figures["peak_device_memory_bytes"] > 0, name
        for row, seconds in figures["seconds_per_frame"].items():
            assert math.isfinite(seconds) and seconds > 0, (name, row)
        for row, rate in figures["renders_per_second"].items():
            assert math.isfinite(rate) and rate > 0, (name, row)
