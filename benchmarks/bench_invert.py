"""Warm-started batched W+ inversion against per-frame cold start, on the synthetic world.

For each world seed, the target clip (smooth motion, in-domain) and the driver clip (motion plus an
expression that comes and goes) are inverted three ways with MSE-only loss on the 32-wide world
(`TINY_W_DIM`, whose W+ has spare directions, like FFHQ's) with `quick_invert_config`:

* cold:   every frame from w_avg with the full budget (`first_steps`), the baseline;
* warm:   frame 0 from w_avg, then batches warm-started from the previous result (`warm_steps`);
* broken: every frame from w_avg with only `warm_steps` (what a warm start without its start is);
* with `--segment N`, warm in segments of N frames, as the inversion stage cuts a long shot into
  resumable parts (`invert.segment_frames`): `chained` hands each segment the last pivot
  before it (one sequential chain), `fresh` starts each segment anew, `keyed` inverts each as one chain
  from the key chain's pivot of its first frame to the next segment's first frame, registered to the key
  chain (what the stage does: `reenact.stages.keys`, every `--stride`-th frame), so the segments can run
  in parallel.

Reported: mean and minimum PSNR, generator evaluations (images rendered), wall-clock, the W+ speed of
the pivots relative to the ground truth's (frame-to-frame distance; 1.0 = as smooth as the truth), and
the cold/warm ratios, all measured in the same run. With `--segment`, also the PSNR of the frames where
a segment starts, and the W+ step into them over the clip's median step (a seam shows as a jump).

    .venv/bin/python benchmarks/bench_invert.py [--seeds 0 1 2 3] [--frames 16] [--batch-size 4]
        [--threads 1] [--segment N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import numpy as np
import torch

from reenact.config import InvertConfig
from reenact.device import resolve_runtime
from reenact.invert import InversionResult, invert_clip, latent_speed, psnr
from reenact.renders import NONE
from reenact.stages.base import FrameRange
from reenact.stages.keys import KeyPivots, invert_chain, key_frames, segment_chain
from reenact.synthetic import TINY_W_DIM, SyntheticConfig, make_world, quick_invert_config

SETTINGS = quick_invert_config()
KEY_STRIDE = InvertConfig().key_stride
CPU = resolve_runtime("cpu")
"""fp32 on the CPU, where this benchmark runs."""


def segmented(
    world_generator, crops: torch.Tensor, *, config: InvertConfig, segment: int, start_from: str, stride: int
) -> InversionResult:
    """Warm inversion in segments of `segment` frames, each continuing the last one's chain (`chained`),
    fresh, or from the key chain (`keyed`, key frames every `stride`)."""
    parts: list[InversionResult] = []
    run = FrameRange(0, len(crops))
    extra = NONE
    if start_from == "keyed":
        frames = key_frames(run, stride=stride)
        keyed = invert_clip(world_generator, crops[frames], config=config, perceptual=None, runtime=CPU)
        keys = KeyPivots(np.array(frames), keyed.pivots)
        extra = keyed.renders
    for first in range(0, len(crops), segment):
        frames_range = FrameRange(first, min(first + segment, len(crops)))
        if start_from == "keyed":
            chain = segment_chain(frames_range, run)
            started = time.perf_counter()
            pivots, renders = invert_chain(
                world_generator,
                crops[chain.start : chain.stop],
                chain,
                keys=keys,
                config=config,
                perceptual=None,
                runtime=CPU,
                first_in_run=first == 0,
            )
            pivots = pivots[: len(frames_range)]
            with torch.no_grad():
                images = world_generator.synthesis(pivots, noise_mode="const")
            parts.append(
                InversionResult(
                    pivots=pivots,
                    loss=torch.full((len(pivots),), math.nan),
                    psnr=psnr(images, crops[frames_range.start : frames_range.stop]),
                    steps=[],
                    renders=renders,
                    seconds=time.perf_counter() - started,
                )
            )
            continue
        start = parts[-1].pivots[-1:] if (start_from == "chained" and parts) else None
        part = crops[first : first + segment]
        parts.append(
            invert_clip(world_generator, part, config=config, perceptual=None, runtime=CPU, start=start)
        )
    return dataclasses.replace(
        parts[0],
        pivots=torch.cat([part.pivots for part in parts]),
        psnr=torch.cat([part.psnr for part in parts]),
        renders=sum((part.renders for part in parts), extra),
        seconds=sum(part.seconds for part in parts),
    )


def run(
    *,
    seeds: list[int],
    frames: int,
    settings: InvertConfig,
    segment: int | None = None,
    stride: int = KEY_STRIDE,
) -> list[dict[str, object]]:
    """One row per (seed, clip, method)."""
    methods = {
        "cold": dataclasses.replace(settings, mode="cold"),
        "warm": dataclasses.replace(settings, mode="warm"),
        "broken": dataclasses.replace(settings, mode="cold", first_steps=settings.warm_steps),
    }
    starts = torch.arange(segment or frames, frames, segment or frames)  # segment starts but the first
    rows: list[dict[str, object]] = []
    for seed in seeds:
        world = make_world(SyntheticConfig(seed=seed, num_frames=frames, w_dim=TINY_W_DIM))
        for clip_name, clip in (("target", world.target), ("driver", world.driver)):
            truth_speed = float(latent_speed(clip.ws).mean())
            results = {
                name: invert_clip(world.generator, clip.crops, config=config, perceptual=None, runtime=CPU)
                for name, config in methods.items()
            }
            if segment is not None:
                for name in ("chained", "fresh", "keyed"):
                    results[name] = segmented(
                        world.generator,
                        clip.crops,
                        config=methods["warm"],
                        segment=segment,
                        start_from=name,
                        stride=stride,
                    )
            cold = results["cold"]
            for name, result in results.items():
                rows.append(
                    {
                        "seed": seed,
                        "clip": clip_name,
                        "method": name,
                        "psnr_mean": float(result.psnr.mean()),
                        "psnr_min": float(result.psnr.min()),
                        "psnr_vs_cold": float(result.psnr.mean() - cold.psnr.mean()),
                        "generator_evals": result.renders.total,
                        "eval_ratio_cold_over": cold.renders.total / result.renders.total,
                        "seconds": result.seconds,
                        "time_ratio_cold_over": cold.seconds / result.seconds,
                        "speed_vs_truth": float(latent_speed(result.pivots).mean()) / truth_speed,
                        **seam(result, starts),
                    }
                )
    return rows


def seam(result: InversionResult, starts: torch.Tensor) -> dict[str, float]:
    """PSNR at the segment starts and the largest W+ step into one over the median step (NaN: none)."""
    if len(starts) == 0:
        return {"psnr_at_starts": math.nan, "seam_jump": math.nan}
    steps = latent_speed(result.pivots)  # [N - 1]: step t is frame t -> t + 1
    return {
        "psnr_at_starts": float(result.psnr[starts].mean()),
        "seam_jump": float(steps[starts - 1].max() / steps.median()),
    }


def print_table(rows: list[dict[str, object]]) -> None:
    header = (
        f"{'seed':>4} {'clip':<6} {'method':<7} {'PSNR':>6} {'min':>6} {'Δcold':>6} "
        f"{'evals':>6} {'cold/x':>6} {'sec':>6} {'cold/x':>6} {'speed/truth':>11} "
        f"{'PSNR@seam':>9} {'jump':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['seed']:>4} {row['clip']:<6} {row['method']:<7} {row['psnr_mean']:6.2f} "
            f"{row['psnr_min']:6.2f} {row['psnr_vs_cold']:+6.2f} {row['generator_evals']:>6} "
            f"{row['eval_ratio_cold_over']:6.2f} {row['seconds']:6.2f} {row['time_ratio_cold_over']:6.2f} "
            f"{row['speed_vs_truth']:11.2f} {row['psnr_at_starts']:9.2f} {row['seam_jump']:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=SETTINGS.batch_size, help="frames per batch")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny convs: 1 is fastest)")
    parser.add_argument("--segment", type=int, default=None, help="also invert in segments of N frames")
    parser.add_argument("--stride", type=int, default=KEY_STRIDE, help="frames between key frames (keyed)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = dataclasses.replace(SETTINGS, batch_size=args.batch_size)
    rows = run(
        seeds=args.seeds, frames=args.frames, settings=settings, segment=args.segment, stride=args.stride
    )
    if args.json:
        print(
            json.dumps(
                {"settings": dataclasses.asdict(settings), "frames": args.frames, "rows": rows}, indent=2
            )
        )
    else:
        print(f"settings: {dataclasses.asdict(settings)}; frames per clip: {args.frames}")
        print_table(rows)


if __name__ == "__main__":
    main()
