"""Adam against L-BFGS for the synthetic world's inversion, measured by what the transfer needs.

For each world seed (the default, 8-wide world), the target and driver clips are written as video
(4:4:4 H.264, as the pipeline reads them), decoded, and cropped with the world's true crop matrices;
both clips are then inverted with each optimiser:

* adam:  Image2StyleGAN's Adam, one frame per warm run, 300 steps for frame 0 and 200 per later frame
         at learning rate 0.05 (the synthetic preset before L-BFGS);
* lbfgs: the synthetic preset's `invert` settings (L-BFGS, 60 iterations for frame 0 and 30 per later frame).

Reported per seed and optimiser: the inversion's mean PSNR (target / driver), images rendered and
seconds for both clips, and the crop-level transfer against the ground truth `G(w_target + Δ_driver)`:
the PSNR of `G(pivots_target + Δ_estimated)` and how much worse the same with Δ dropped and with Δ's
sign flipped are (the test through the CLI asks for >= 6 dB). The last line gives the median time
ratio adam/lbfgs, measured in the same run.

    .venv/bin/python benchmarks/bench_optimisers.py [--seeds 0 1 2 3 4 5] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from reenact.config import InvertConfig
from reenact.demo import decode
from reenact.device import resolve_runtime
from reenact.faces.align import warp_to_crop
from reenact.imaging import images_from_uint8
from reenact.invert import InversionResult, invert_clip, psnr
from reenact.synthetic import (
    SyntheticClip,
    SyntheticConfig,
    make_world,
    quick_invert_config,
    synthetic_settings,
    write_world,
)

ADAM = dataclasses.replace(quick_invert_config(), warm_steps=200, batch_size=1, start_samples=64)
"""The synthetic preset before L-BFGS: Adam, one frame per warm run, from the closest of 64 samples."""
OPTIMISERS: dict[str, InvertConfig] = {"adam": ADAM, "lbfgs": synthetic_settings().invert}
CPU = resolve_runtime("cpu")
"""fp32 on the CPU, where this benchmark runs."""


def decoded_crops(path: Path, clip: SyntheticClip, *, resolution: int) -> torch.Tensor:
    """The clip's frames as the pipeline sees them (decoded video), cut with the true crop matrices."""
    crops = np.stack(
        [
            warp_to_crop(frame, matrix, resolution)
            for frame, matrix in zip(decode(path), clip.matrices, strict=True)
        ]
    )
    return images_from_uint8(crops)  # [N, 3, R, R]


def pooled_psnr(images: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR (dB) over all frames together: [N, 3, R, R] x2 -> float."""
    return float(
        psnr(images.flatten(0, 1)[None], truth.flatten(0, 1)[None])[0]
    )  # as one [1, N*3, R, R] image


def run(*, seeds: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for seed in seeds:
        world = make_world(SyntheticConfig(seed=seed))
        generator, resolution = world.generator, world.config.resolution
        mask = world.layer_mask[None, :, None]  # [1, num_ws, 1]
        with tempfile.TemporaryDirectory() as root:
            files = write_world(world, Path(root))
            target = decoded_crops(files.target_video, world.target, resolution=resolution)
            driver = decoded_crops(files.driver_video, world.driver, resolution=resolution)
        with torch.no_grad():
            true_delta = (world.driver.ws - world.driver.ws[:1]) * mask
            truth = generator.synthesis(world.target.ws + true_delta)
        for name, config in OPTIMISERS.items():
            results: dict[str, InversionResult] = {
                clip: invert_clip(generator, crops, config=config, perceptual=None, runtime=CPU)
                for clip, crops in (("target", target), ("driver", driver))
            }
            pivots = results["target"].pivots
            delta = (results["driver"].pivots - results["driver"].pivots[:1]) * mask
            with torch.no_grad():
                transfer = pooled_psnr(generator.synthesis(pivots + delta), truth)
                dropped = pooled_psnr(generator.synthesis(pivots), truth)
                flipped = pooled_psnr(generator.synthesis(pivots - delta), truth)
            rows.append(
                {
                    "seed": seed,
                    "optimiser": name,
                    "psnr_target": float(results["target"].psnr.mean()),
                    "psnr_driver": float(results["driver"].psnr.mean()),
                    "renders": sum(result.renders.total for result in results.values()),
                    "seconds": sum(result.seconds for result in results.values()),
                    "transfer_psnr": transfer,
                    "dropped_gap": transfer - dropped,
                    "flipped_gap": transfer - flipped,
                }
            )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    header = (
        f"{'seed':>4} {'optimiser':<9} {'PSNR tgt':>8} {'PSNR drv':>8} {'renders':>7} {'sec':>6} "
        f"{'transfer':>8} {'dropped':>8} {'flipped':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['seed']:>4} {row['optimiser']:<9} {row['psnr_target']:8.2f} {row['psnr_driver']:8.2f} "
            f"{row['renders']:>7} {row['seconds']:6.2f} {row['transfer_psnr']:8.2f} "
            f"{row['dropped_gap']:+8.2f} {row['flipped_gap']:+8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(seeds=args.seeds)
    seconds = {row["seed"]: {} for row in rows}
    for row in rows:
        seconds[row["seed"]][row["optimiser"]] = row["seconds"]
    ratio = statistics.median(times["adam"] / times["lbfgs"] for times in seconds.values())
    if args.json:
        print(json.dumps({"rows": rows, "median_time_ratio_adam_over_lbfgs": ratio}, indent=2))
        return
    print_table(rows)
    print(f"median time ratio adam / lbfgs: {ratio:.2f}")


if __name__ == "__main__":
    main()
