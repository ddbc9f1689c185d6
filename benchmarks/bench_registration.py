"""What registering a chain to its key chain costs in fit, and what the refit after it wins back.

Examples:
    python benchmarks/bench_registration.py                 # the face world and the random world
    python benchmarks/bench_registration.py --world faces --frames 33 --refit 0 10 20

Inversion cuts a run into segments, each a warm chain from the key chain's pivot of its first frame,
registered to the key chain (`stages.keys`): a correction, `key - pivot` at every key frame and linear in
between, moves the chain into the key chain's basin of W+. The correction follows directions the picture
barely shows, but not none, so the registered pivots fit worse than the chain's own; `invert.refit_steps`
fits every registered pivot again from where the registration put it.

On the demo driver of a world (its own renders, `--frames` frames, key frames every `invert.key_stride`),
with the world's preset (`face-world` or `synthetic`), each row is one way: the key chain's budget per
key frame (`invert.key_steps`, as `stages.keys` gives it, or `warm_steps`, as it gave it before), and the
refit budget. Reported: the mean and lowest PSNR of the registered (and refitted) pivots against the
crops, and the chain's own PSNR without registration (what registration must not lose).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from reenact.config import Config, InvertConfig
from reenact.device import resolve_runtime
from reenact.face_world import FACE_WORLD, make_face_world
from reenact.invert import invert_clip
from reenact.pti import clip_psnr
from reenact.stages.base import FrameRange
from reenact.stages.keys import KeyPivots, invert_chain, key_chain_config, key_frames
from reenact.synthetic import SYNTHETIC_PRESET, SyntheticConfig, SyntheticWorld, make_world
from reenact.threads import use_threads

KEY_BUDGETS = {"key_steps": key_chain_config, "warm_steps": lambda config: config}
"""The key chain's settings: as `stages.keys` inverts it, or with a warm frame's budget (as it did before)."""


def world_of(name: str, *, frames: int, seed: int) -> tuple[SyntheticWorld, InvertConfig]:
    base = SyntheticConfig(seed=seed, num_frames=frames)
    if name == "faces":
        return make_face_world(base), Config.from_preset(FACE_WORLD).invert
    return make_world(base), Config.from_preset(SYNTHETIC_PRESET).invert


def measure(world_name: str, *, frames: int, seed: int, refits: list[int]) -> list[tuple[str, ...]]:
    world, config = world_of(world_name, frames=frames, seed=seed)
    generator, crops, runtime = world.generator, world.driver.crops, resolve_runtime("cpu")
    run = FrameRange(0, frames)
    keys = np.array(key_frames(run, stride=config.key_stride), dtype=np.int64)  # [K]
    own = invert_clip(generator, crops, config=config, perceptual=None, runtime=runtime)
    rows = [
        (
            world_name,
            "none (the chain alone)",
            "-",
            f"{float(own.psnr.mean()):.2f}",
            f"{float(own.psnr.min()):.2f}",
        )
    ]
    for budget, settings_of in KEY_BUDGETS.items():
        key_config = settings_of(config)
        key_chain = invert_clip(generator, crops[keys], config=key_config, perceptual=None, runtime=runtime)
        pivots = KeyPivots(keys, key_chain.pivots)
        for refit in refits:
            registered, _ = invert_chain(
                generator,
                crops,
                run,
                keys=pivots,
                config=replace(config, refit_steps=refit),
                perceptual=None,
                runtime=runtime,
                first_in_run=True,
            )
            psnr = clip_psnr(generator, crops, registered, frames=torch.arange(frames))  # [T]
            rows.append(
                (
                    world_name,
                    f"keys {budget}",
                    str(refit),
                    f"{float(psnr.mean()):.2f}",
                    f"{float(psnr.min()):.2f}",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", nargs="+", choices=("faces", "random"), default=["faces", "random"])
    parser.add_argument("--frames", type=int, default=33, help="driver frames (key frames every key_stride)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refit", type=int, nargs="+", default=[0, 5, 10, 20], help="refit budgets")
    args = parser.parse_args()
    use_threads(None)
    started = time.perf_counter()
    print("| world | registration | refit steps | mean PSNR dB | lowest PSNR dB |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.world:
        for row in measure(name, frames=args.frames, seed=args.seed, refits=args.refit):
            print("| " + " | ".join(row) + " |", flush=True)
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s; torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
