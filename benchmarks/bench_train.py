"""Speed of face-world training (`reenact.train`): steps per second, and the steps a time budget buys.

Examples:
    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --threads 1 --batches 8 16
    python benchmarks/bench_train.py --threads 2 --budget-hours 2 --json
    python benchmarks/bench_train.py --resolution 128 --device cuda --batches 32

A step is what `Trainer.train_step` does: one G update, one D update, and R1 every `r1_interval` steps,
so the timed window is a whole number of intervals (the R1 step's cost is averaged in). Random uint8
images stand in for the faces (speed does not depend on the pixels); the architecture is TrainConfig's
unless --channel-base/--channel-max say otherwise. Median of --repeats windows after one warm-up window.
Say how busy the machine was (`uptime` is printed): on a shared CPU the figures move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reenact.gan.stylegan2 import count_parameters
from reenact.train import TrainConfig, Trainer

DATASET_IMAGES = 256
"""Random images in the stand-in dataset."""
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@dataclass
class Row:
    device: str
    threads: int
    resolution: int
    batch: int
    channel_base: int
    channel_max: int
    g_params_m: float
    d_params_m: float
    steps_per_s: float
    images_per_s: float
    steps_in_budget: int
    budget_hours: float
    memory_format: str
    load_average: float


def time_steps(trainer: Trainer, *, steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` steps."""
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=TrainConfig().resolution)
    parser.add_argument("--batches", type=int, nargs="+", default=[TrainConfig().batch])
    parser.add_argument("--channel-base", type=int, default=TrainConfig().channel_base)
    parser.add_argument("--channel-max", type=int, default=TrainConfig().channel_max)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows of r1_interval steps each")
    parser.add_argument("--budget-hours", type=float, default=2.0)
    parser.add_argument(
        "--memory-format",
        choices=sorted(MEMORY_FORMATS),
        default="channels_last",
        help="layout of the conv weights (the trainer's is channels_last)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for batch in args.batches:
        config = TrainConfig(
            resolution=args.resolution,
            batch=batch,
            channel_base=args.channel_base,
            channel_max=args.channel_max,
            face_check_every=0,
        )
        shape = (DATASET_IMAGES, args.resolution, args.resolution, 3)
        images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        trainer = Trainer(config, images, device=device)
        for module in (trainer.G, trainer.G_ema, trainer.D):
            module.to(memory_format=MEMORY_FORMATS[args.memory_format])
        window = config.r1_interval
        time_steps(trainer, steps=window, device=device)  # warm-up
        seconds = statistics.median(
            time_steps(trainer, steps=window, device=device) for _ in range(args.repeats)
        )
        steps_in_budget = int(args.budget_hours * 3600 / seconds)
        rows.append(
            Row(
                device=str(device),
                threads=args.threads,
                resolution=args.resolution,
                batch=batch,
                channel_base=args.channel_base,
                channel_max=args.channel_max,
                g_params_m=round(count_parameters(trainer.G) / 1e6, 2),
                d_params_m=round(count_parameters(trainer.D) / 1e6, 2),
                steps_per_s=round(1 / seconds, 3),
                images_per_s=round(batch / seconds, 1),
                steps_in_budget=steps_in_budget,
                budget_hours=args.budget_hours,
                memory_format=args.memory_format,
                load_average=os.getloadavg()[0],
            )
        )
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return
    for row in rows:
        images = row.steps_in_budget * row.batch
        print(
            f"{row.device} {row.threads} thr {row.resolution} px batch {row.batch} "
            f"(G {row.g_params_m}M, D {row.d_params_m}M): {row.steps_per_s} steps/s, "
            f"{row.images_per_s} img/s; {row.steps_in_budget} steps ({images} images) in "
            f"{row.budget_hours} h; {row.memory_format}; load average {row.load_average:.1f}"
        )


if __name__ == "__main__":
    main()
