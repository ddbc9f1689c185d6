"""Where do a person's pivots lose the driver's offsets: at the chain starts of cuts, or in the crops?

Examples:
    python benchmarks/bench_chain_starts.py                  # scene seed 0, person 0
    python benchmarks/bench_chain_starts.py --seeds 0 1 --person 1

On the synthetic multi-person scene (`reenact.synthetic_scene`: 4 shots of 8 frames, so a person's
inversion restarts at each cut) one person's frames are inverted shot by shot with the synthetic preset's
inversion (`invert.invert_frames`), from three kinds of crops of that person:

- `generator`: the world generator's own renders of their true latents (in the generator's domain);
- `frames`: the aligned crops of the scene's frames (`faces.align.warp_to_crop` under the true crop
  matrices): the face resampled into the frame at its slot's size and back, with its shot's background
  at the borders; no encoding;
- `video`: the same from the written H.264 4:4:4 clip, as the pipeline sees it.

Each shot's chain starts in one of three ways:
- `fresh`: from the start point (`invert.start_samples`), as `stages.keys` starts every run;
- `continued`: from the person's last pivot of the shot before (the chain goes on through the cut);
- `anchored`: the shot's first frame fitted from that pivot with a proximity term
  `--anchor-weight * mean((w - w_prev)^2)` added to the pixel loss, then the chain from it.

Reported: the inversion PSNR of the pivots against the true renders, and the transfer PSNR: the pivots plus
the world driver's offsets (`w_driver[t] - w_driver[0]` on the world's expression layers, strength 1)
rendered by the same (untuned) generator against the truth `G(w_true + offsets)`, both per frame, as means
over the clip and per shot. No tuning and no paste-back: this isolates the pivots. `--spread-weight`
sets `invert.spread_weight` (the pull of the W+ layers towards their mean) for every inversion.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from reenact.config import InvertConfig
from reenact.demo import decode
from reenact.device import Runtime, resolve_runtime
from reenact.faces.align import warp_to_crop
from reenact.gan.stylegan2 import Generator
from reenact.imaging import UINT8_PEAK, images_to_uint8, psnr_from_mse
from reenact.invert import invert_frames
from reenact.synthetic import SyntheticConfig, make_world, synthetic_settings
from reenact.synthetic_scene import SceneConfig, SyntheticScene, make_scene, write_scene

CROPS = ("generator", "frames", "video")
STARTS = ("fresh", "continued", "anchored")
DEFAULT_ANCHOR_WEIGHT = 1e-3
"""Weight of the proximity term of `anchored` starts (1e-4 to 1e-2 measured alike)."""
ANCHOR_STEPS = 60
"""L-BFGS iterations of an anchored shot's first frame (the preset's `invert.first_steps`)."""


def person_crops(scene: SyntheticScene, person: int, kind: str, *, folder: Path) -> torch.Tensor:
    """The person's crops [n, 3, R, R] in [-1, 1] over their frames, of kind `kind` (see the docstring)."""
    frames_of = scene.frames_of(person)
    resolution = scene.config.resolution
    if kind == "generator":
        with torch.no_grad():
            return scene.generator.synthesis(scene.ws[person][frames_of], noise_mode="const").float()
    images = scene.frames if kind == "frames" else decode(write_scene(scene, folder)[0])
    crops = np.stack(
        [warp_to_crop(images[t], scene.matrices[person, t], resolution) for t in frames_of]
    )  # [n, R, R, 3] uint8
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(UINT8_PEAK / 2).sub(1)


def invert_chain(
    generator: Generator,
    crops: torch.Tensor,
    *,
    config: InvertConfig,
    runtime: Runtime,
    start: torch.Tensor | None,
) -> torch.Tensor:
    """One warm chain over `crops` [n, 3, R, R] from `start` [1, num_ws, w_dim] (None: the start point)."""
    rows: list[torch.Tensor] = []
    invert_frames(
        generator,
        crops,
        config=config,
        perceptual=None,
        runtime=runtime,
        on_finished=lambda run: rows.append(run.latents.detach().float().cpu()),
        start=start,
    )
    return torch.cat(rows)


def anchored_fit(
    generator: Generator, crop: torch.Tensor, anchor: torch.Tensor, *, weight: float
) -> torch.Tensor:
    """The latents [1, num_ws, w_dim] that fit `crop` [1, 3, R, R] from `anchor`, kept near it."""
    latents = anchor.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([latents], max_iter=ANCHOR_STEPS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        image = generator.synthesis(latents, noise_mode="const")
        loss = (image - crop).square().mean() + weight * (latents - anchor).square().mean()
        loss.backward()
        return loss

    optimiser.step(closure)
    return latents.detach()


def shot_pivots(
    generator: Generator,
    crops: torch.Tensor,
    shots: list[slice],
    *,
    start: str,
    config: InvertConfig,
    runtime: Runtime,
    anchor_weight: float,
) -> torch.Tensor:
    """The pivots [n, num_ws, w_dim] of the crops, one chain per shot (`shots`: rows of each), started as
    `start` says."""
    pivots: list[torch.Tensor] = []
    for shot in shots:
        before = pivots[-1][-1:] if pivots else None
        if before is None or start == "fresh":
            chain = invert_chain(generator, crops[shot], config=config, runtime=runtime, start=None)
        elif start == "continued":
            chain = invert_chain(generator, crops[shot], config=config, runtime=runtime, start=before)
        else:
            first = anchored_fit(generator, crops[shot][:1], before, weight=anchor_weight)
            chain = invert_chain(generator, crops[shot], config=config, runtime=runtime, start=first)
        pivots.append(chain)
    return torch.cat(pivots)


def frame_psnrs(generator: Generator, latents: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """Per-frame PSNR (dB) of `latents` rendered against `truth` [n, num_ws, w_dim] rendered (uint8)."""
    with torch.no_grad():
        got = images_to_uint8(generator.synthesis(latents, noise_mode="const")).float()
        want = images_to_uint8(generator.synthesis(truth, noise_mode="const")).float()
    mse = (got - want).square().mean(dim=(1, 2, 3)).clamp_min(1e-10)  # [n]
    return np.array([psnr_from_mse(float(value), peak=UINT8_PEAK) for value in mse])


def measure(
    seed: int, person: int, *, anchor_weight: float, spread_weight: float, runtime: Runtime, folder: Path
) -> list[dict]:
    """One row per crop kind and start: mean and per-shot inversion and transfer PSNR."""
    scene = make_scene(SceneConfig(seed=seed))
    world = make_world(SyntheticConfig(seed=seed, num_frames=scene.config.num_frames))
    generator = scene.generator
    frames_of = scene.frames_of(person)
    truth = scene.ws[person][frames_of]  # [n, num_ws, w_dim]
    offsets = ((world.driver.ws - world.driver.ws[0:1]) * world.layer_mask[None, :, None])[frames_of]
    starts = [start for start in scene.shot_starts if scene.present[person, start]]
    rows_of = np.searchsorted(frames_of, [*starts, scene.config.num_frames])
    shots = [slice(int(a), int(b)) for a, b in itertools.pairwise(rows_of)]
    config = replace(synthetic_settings().invert, spread_weight=spread_weight)
    results = []
    for kind in CROPS:
        crops = person_crops(scene, person, kind, folder=folder / f"seed{seed}")
        for start in STARTS:
            pivots = shot_pivots(
                generator,
                crops,
                shots,
                start=start,
                config=config,
                runtime=runtime,
                anchor_weight=anchor_weight,
            )
            inverted = frame_psnrs(generator, pivots, truth)
            moved = frame_psnrs(generator, pivots + offsets, truth + offsets)
            results.append(
                {
                    "seed": seed,
                    "crops": kind,
                    "start": start,
                    "inversion": float(inverted.mean()),
                    "transfer": float(moved.mean()),
                    "transfer_per_shot": [float(moved[shot].mean()) for shot in shots],
                }
            )
            print_row(results[-1], flush=True)
    return results


def print_row(row: dict, *, flush: bool = False) -> None:
    shots = " ".join(f"{value:5.1f}" for value in row["transfer_per_shot"])
    print(
        f"| {row['seed']} | {row['crops']} | {row['start']} | {row['inversion']:.2f} | {row['transfer']:.2f} "
        f"| {shots} |",
        flush=flush,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--person", type=int, default=0, help="The scene's person (0 is in every shot).")
    parser.add_argument("--anchor-weight", type=float, default=DEFAULT_ANCHOR_WEIGHT)
    parser.add_argument(
        "--spread-weight", type=float, default=0.0, help="invert.spread_weight (the pull of W+ towards W)."
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    runtime = resolve_runtime("cpu")
    folder = Path(tempfile.mkdtemp(prefix="bench-chain-starts-"))
    print(
        f"person {args.person} of the synthetic scene; anchored starts' weight {args.anchor_weight:g}; "
        f"invert.spread_weight {args.spread_weight:g}\n"
    )
    print("| seed | crops | chain start | inversion PSNR dB | transfer PSNR dB | transfer per shot |")
    print("|---:|---|---|---:|---:|---|")
    try:
        rows = [
            row
            for seed in args.seeds
            for row in measure(
                seed,
                args.person,
                anchor_weight=args.anchor_weight,
                spread_weight=args.spread_weight,
                runtime=runtime,
                folder=folder,
            )
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(args.seeds) > 1:
        print(
            "\nmedians over seeds:\n\n| crops | chain start | inversion PSNR dB | transfer PSNR dB |\n"
            "|---|---|---:|---:|"
        )
        for kind in CROPS:
            for start in STARTS:
                chosen = [row for row in rows if row["crops"] == kind and row["start"] == start]
                print(
                    f"| {kind} | {start} | {statistics.median(row['inversion'] for row in chosen):.2f} "
                    f"| {statistics.median(row['transfer'] for row in chosen):.2f} |"
                )


if __name__ == "__main__":
    main()
