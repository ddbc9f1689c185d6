"""Inversion alone against pivotal tuning (PTI), in and out of domain, on the synthetic world.

For each world seed and each identity-noise level (0 = frames rendered by the world's own generator,
in-domain; > 0 = by a perturbed copy, out of domain), the target clip of the 32-wide world
(`TINY_W_DIM`) is inverted (`quick_invert_config`), then the generator is tuned on the pivots (the
synthetic preset's `pti` settings, MSE only) with PTI's locality regulariser and without it
(locality_weight = 0).

Reported per row: mean and minimum PSNR of the clip at its pivots (original generator for `invert`,
the tuned one for `pti`/`pti-noreg`), the locality change: mean |G_tuned(w) - G_orig(w)| over fresh
random w = mapping(z) at truncation 0.5 (the regulariser's own sampling) and 1.0, the tuning steps
and the wall-clock seconds.

Usage: python benchmarks/bench_pti.py [--seeds 0 1 2] [--frames 8] [--noise 0 0.8] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from reenact.config import PTIConfig
from reenact.device import resolve_runtime
from reenact.gan.stylegan2 import Generator
from reenact.invert import invert_clip
from reenact.pti import pti_steps, tune_generator
from reenact.synthetic import TINY_W_DIM, SyntheticConfig, make_world, quick_invert_config, synthetic_settings

SETTINGS = synthetic_settings().pti
PROBES = 64
PROBE_SEED = 123
PROBE_TRUNCATIONS = (0.5, 1.0)
CPU = resolve_runtime("cpu")
"""fp32 on the CPU, where this benchmark runs."""


def locality_change(original: Generator, tuned: Generator, *, truncation: float) -> float:
    """Mean |G_tuned(w) - G_orig(w)| over PROBES random w = mapping(z) at `truncation`."""
    z = torch.randn(PROBES, original.z_dim, generator=torch.Generator().manual_seed(PROBE_SEED))
    with torch.no_grad():
        ws = original.mapping(z, truncation_psi=truncation)
        return float((tuned.synthesis(ws) - original.synthesis(ws)).abs().mean())


def run(
    *, seeds: list[int], frames: int, noises: list[float], settings: PTIConfig
) -> list[dict[str, object]]:
    """One row per (seed, noise, method)."""
    methods = {"pti": settings, "pti-noreg": dataclasses.replace(settings, locality_weight=0.0)}
    rows: list[dict[str, object]] = []
    for seed in seeds:
        for noise in noises:
            world = make_world(
                SyntheticConfig(seed=seed, num_frames=frames, identity_noise=noise, w_dim=TINY_W_DIM)
            )
            targets = world.target.crops
            inversion = invert_clip(
                world.generator, targets, config=quick_invert_config(), perceptual=None, runtime=CPU
            )
            base = {"seed": seed, "noise": noise}
            rows.append(
                {
                    **base,
                    "method": "invert",
                    "psnr_mean": float(inversion.psnr.mean()),
                    "psnr_min": float(inversion.psnr.min()),
                    "gain_db": 0.0,
                    **{f"change_psi{t}": 0.0 for t in PROBE_TRUNCATIONS},
                    "steps": sum(inversion.steps),
                    "seconds": inversion.seconds,
                }
            )
            for name, config in methods.items():
                result = tune_generator(
                    world.generator, targets, inversion.pivots, config=config, perceptual=None, runtime=CPU
                )
                rows.append(
                    {
                        **base,
                        "method": name,
                        "psnr_mean": float(result.psnr_after.mean()),
                        "psnr_min": float(result.psnr_after.min()),
                        "gain_db": float(result.psnr_after.mean() - result.psnr_before.mean()),
                        **{
                            f"change_psi{t}": locality_change(world.generator, result.generator, truncation=t)
                            for t in PROBE_TRUNCATIONS
                        },
                        "steps": result.steps,
                        "seconds": result.seconds,
                    }
                )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    changes = [f"change_psi{t}" for t in PROBE_TRUNCATIONS]
    header = (
        f"{'seed':>4} {'noise':>5} {'method':<9} {'PSNR':>6} {'min':>6} {'gain':>6} "
        + " ".join(f"{'Δ|G| ψ' + str(t):>10}" for t in PROBE_TRUNCATIONS)
        + f" {'steps':>6} {'sec':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['seed']:>4} {row['noise']:5.2f} {row['method']:<9} {row['psnr_mean']:6.2f} "
            f"{row['psnr_min']:6.2f} {row['gain_db']:+6.2f} "
            + " ".join(f"{row[key]:10.4f}" for key in changes)
            + f" {row['steps']:>6} {row['seconds']:6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.8], help="identity-noise levels")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny convs: 1 is fastest)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(seeds=args.seeds, frames=args.frames, noises=args.noise, settings=SETTINGS)
    budget = pti_steps(args.frames, config=SETTINGS)
    if args.json:
        print(
            json.dumps(
                {
                    "settings": dataclasses.asdict(SETTINGS),
                    "frames": args.frames,
                    "budget": budget,
                    "rows": rows,
                },
                indent=2,
            )
        )
    else:
        print(
            f"settings: {dataclasses.asdict(SETTINGS)}; frames per clip: {args.frames}; PTI steps: {budget}"
        )
        print_table(rows)


if __name__ == "__main__":
    main()
