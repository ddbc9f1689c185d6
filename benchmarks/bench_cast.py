"""A cast's tuning: one tuned generator per person against one generator tuned on every person's crops.

Issue #25 item 4. `reenact transfer SCENE --cast` tunes a generator of its own for each cast person, so a
cast of N people tunes N times and holds N tuned copies while it renders. The other way is one generator
tuned on all the cast people's crops and pivots together. This benchmark measures both on the synthetic
multi-person scene (`reenact.synthetic_scene`: 2 people, 4 shots of 8 frames, sidecar landmarks), where
each person's true reenacted face is known.

Per scene seed: the scene and the synthetic world of the same seed (one generator) are written and the
world's generator saved, as tests/test_cast.py does. Person 0 is driven by the world's driver clip at
strength 1.0, person 1 by its target clip at strength 0.5, driver reference frame 0, settings
`measured_settings()` (the synthetic preset, 4:4:4). Each person goes through the Python API as
`pipeline.transfer_cast` takes them: `prepare_clips` (their scene face and their driver, `tune_first=True`),
`driver_offsets` and `edit.transfer_to_frames`. Their crops are the decoded scene frames warped
(`warp_to_crop`) where their alignment is valid, as `stages.crops` stores them.

Then `pti.tune_generator` (the preset's `pti` settings, `perceptual=context.lpips`) runs two ways, each timed:
- per person: on each person's own crops and pivots (one run each);
- joint: once, on both persons' crops and pivots concatenated.

Reported per person and way: frames, tuning steps and seconds (joint: the one run, shown once, against
the per-person runs' sum), renders, tuned PSNR (mean per-frame PSNR of the pivots rendered by the tuned
generator against the person's crops, as tuning reports it) and transfer PSNR: the person's transfer
latents rendered by the tuned generator against the true crops
`G(scene.ws[p] + s * (driver_ws - driver_ws[0]) * layer_mask)`, pooled MSE over the person's frames, uint8
on both sides, in crop space (no paste-back, no encode); for reference, the same two with the original
(untuned) generator. Then the generator copies held at render time and their parameter bytes, and a
one-line verdict.

Note that the step budget grows as sqrt(frames) (`pti.pti_steps`), so the joint run takes fewer steps
than the per-person runs together: part of its time saving is that budget, not sharing.

Usage: python benchmarks/bench_cast.py [--seeds 0 1 2] [--threads 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from reenact import pipeline
from reenact.demo import decode
from reenact.device import Runtime, resolve_runtime
from reenact.faces.align import warp_to_crop
from reenact.gan.checkpoints import save_generator
from reenact.gan.stylegan2 import Generator
from reenact.generator_source import load_generator_spec
from reenact.imaging import UINT8_PEAK, images_from_uint8, images_to_uint8, psnr_from_mse
from reenact.invert import psnr
from reenact.pipeline import ClipRequest, RunContext
from reenact.pti import TuneResult, pti_steps, tune_generator
from reenact.stages.align import FaceChoice
from reenact.synthetic import SyntheticConfig, make_world, measured_settings, write_world
from reenact.synthetic_scene import SceneConfig, make_scene, write_scene
from reenact.workspace import Workspace

STRENGTHS = (1.0, 0.5)
"""Person 0 follows the world's driver clip at full strength, person 1 its target clip at half."""
DRIVER_REF = 0
RENDER_BATCH = 16
"""Latents rendered at once for the measurements."""
WAYS = ("per person", "joint")
MEGABYTE = 1e6


@dataclass
class Person:
    """One cast person, prepared: their crops, pivots, transfer latents and true crops."""

    frames: np.ndarray
    """Scene frames with their face [N]."""
    crops: torch.Tensor
    """Aligned crops [N, 3, R, R] in [-1, 1]."""
    pivots: torch.Tensor
    """[N, num_ws, w_dim]"""
    pivot_psnr: torch.Tensor
    """[N] dB with the original generator (from the inversion)."""
    latents: torch.Tensor
    """Transfer latents [N, num_ws, w_dim] (`edit.transfer_to_frames`, as `transfer_cast`)."""
    truth: np.ndarray
    """True reenacted crops [N, R, R, 3] uint8."""
    pipeline_psnr: float
    """The pipeline's own tuning of this person (`prepare_clips(tune_first=True)`): PSNR after, dB."""


@dataclass
class Row:
    person: int
    way: str
    frames: int
    steps: int
    seconds: float
    renders: int
    tuned_psnr: float
    transfer_psnr: float


def render(generator: Generator, latents: torch.Tensor) -> torch.Tensor:
    """[N, num_ws, w_dim] -> [N, 3, R, R] (no grad, constant noise)."""
    with torch.no_grad():
        return torch.cat(
            [
                generator.synthesis(latents[i : i + RENDER_BATCH], noise_mode="const")
                for i in range(0, len(latents), RENDER_BATCH)
            ]
        )


def pooled_psnr(images: np.ndarray, truth: np.ndarray) -> float:
    """PSNR (dB) of uint8 images against the truth, MSE pooled over all of them."""
    mse = float(((images.astype(np.float64) - truth.astype(np.float64)) ** 2).mean())
    return float(psnr_from_mse(max(mse, 1e-10), peak=UINT8_PEAK))


def param_bytes(generator: Generator) -> int:
    return sum(p.numel() * p.element_size() for p in generator.parameters())


def prepare_people(seed: int, root: Path, runtime: Runtime) -> tuple[list[Person], Generator, RunContext]:
    """Write the scene and world of `seed`, run each person through the pipeline's cast steps."""
    scene = make_scene(SceneConfig(seed=seed))
    world = make_world(SyntheticConfig(seed=seed, num_frames=scene.config.num_frames))
    assert torch.equal(scene.generator.mapping.w_avg, world.generator.mapping.w_avg), "one world generator"
    clip, landmarks = write_scene(scene, root / "scene")
    files = write_world(world, root / "world")
    generator_file = save_generator(world.generator, root / "g.safetensors")
    settings = measured_settings()
    workspace = Workspace(root / "work")
    source = load_generator_spec(str(generator_file), device=runtime.device, workspace=workspace)
    context = pipeline.make_context(workspace=workspace, source=source, settings=settings, runtime=runtime)
    generator = source.generator
    resolution = generator.resolution
    images = decode(clip)  # [T, H, W, 3]
    drivers = (
        (files.driver_video, files.driver_landmarks, world.driver.ws),
        (files.target_video, files.target_landmarks, world.target.ws),
    )
    mask_layers = world.layer_mask[None, :, None]
    people = []
    for person, ((video, marks, driver_ws), strength) in enumerate(zip(drivers, STRENGTHS, strict=True)):
        config = replace(settings.edit, strength=strength)
        target, driver = pipeline.prepare_clips(
            [
                ClipRequest(
                    clip, landmarks=str(landmarks), face=FaceChoice(person=person), role=f"p{person}"
                ),
                ClipRequest(video, landmarks=str(marks), role=f"d{person}"),
            ],
            context=context,
            tune_first=True,
        )
        assert target.tuned is not None
        deltas, _ = pipeline.driver_offsets(
            driver, config=config, w_avg=generator.mapping.w_avg, ref=DRIVER_REF
        )
        latents = pipeline.transfer_latents(target, deltas, config=config)  # [N, num_ws, w_dim]
        frames = np.asarray(target.pivots.frames)
        assert np.array_equal(frames, np.flatnonzero(target.alignment.valid)), "pivots of the valid frames"
        assert np.array_equal(frames, scene.frames_of(person)), f"person {person}'s frames"
        crops = images_from_uint8(
            np.stack([warp_to_crop(images[f], target.alignment.matrices[f], resolution) for f in frames])
        )  # [N, 3, R, R], what the crops stage stores
        index = torch.from_numpy(frames)
        true_ws = (
            scene.ws[person][index] + strength * (driver_ws[index] - driver_ws[DRIVER_REF]) * mask_layers
        )
        people.append(
            Person(
                frames=frames,
                crops=crops,
                pivots=target.pivots.ws[np.arange(len(frames))].float().cpu(),
                pivot_psnr=target.pivots.psnr,
                latents=latents[np.arange(len(frames))].float().cpu(),
                truth=images_to_uint8(render(world.generator, true_ws)).numpy(),
                pipeline_psnr=float(target.tuned.psnr_after),
            )
        )
    return people, generator, context


def measure(person: Person, generator: Generator) -> tuple[float, float]:
    """Tuned PSNR (mean per frame, dB) and transfer PSNR against the truth (pooled, dB)."""
    tuned = float(psnr(render(generator, person.pivots), person.crops).mean())
    transfer = pooled_psnr(images_to_uint8(render(generator, person.latents)).numpy(), person.truth)
    return tuned, transfer


def run_seed(seed: int, root: Path, runtime: Runtime) -> tuple[list[Row], dict[str, float]]:
    people, generator, context = prepare_people(seed, root, runtime)
    config = context.settings.pti

    def tune(crops: torch.Tensor, pivots: torch.Tensor, pivot_psnr: torch.Tensor) -> tuple[TuneResult, float]:
        started = time.perf_counter()
        result = tune_generator(
            generator,
            crops,
            pivots,
            config=config,
            perceptual=context.lpips,
            runtime=runtime,
            pivot_psnr=pivot_psnr,
        )
        return result, time.perf_counter() - started

    rows = []
    checks = {}
    singles = []
    for index, person in enumerate(people):
        result, seconds = tune(person.crops, person.pivots, person.pivot_psnr)
        singles.append(result.generator)
        tuned, transfer = measure(person, result.generator)
        checks[f"p{index} tuned PSNR: here {tuned:.2f}, pipeline {person.pipeline_psnr:.2f}"] = abs(
            tuned - person.pipeline_psnr
        )
        rows.append(
            Row(
                index,
                WAYS[0],
                len(person.frames),
                result.steps,
                seconds,
                result.renders.total,
                tuned,
                transfer,
            )
        )
    joint, joint_seconds = tune(
        torch.cat([p.crops for p in people]),
        torch.cat([p.pivots for p in people]),
        torch.cat([p.pivot_psnr for p in people]),
    )
    for index, person in enumerate(people):
        tuned, transfer = measure(person, joint.generator)
        rows.append(
            Row(
                index,
                WAYS[1],
                len(person.frames),
                joint.steps,
                joint_seconds,
                joint.renders.total,
                tuned,
                transfer,
            )
        )
    memory = {
        "copies_per_person": float(len(singles)),
        "copies_joint": 1.0,
        "param_bytes": float(param_bytes(joint.generator)),
        "pipeline_max_gap_db": max(checks.values()),
    }
    for index, person in enumerate(people):  # reference: the original generator, untuned
        memory[f"untuned p{index}"], memory[f"untuned transfer p{index}"] = measure(person, generator)
    return rows, memory


def summary(rows: list[Row]) -> dict[str, float]:
    """Mean transfer and tuned PSNR per way, and tuning seconds per way (per person: summed)."""
    out = {}
    for way in WAYS:
        mine = [row for row in rows if row.way == way]
        out[f"{way} transfer"] = statistics.fmean(row.transfer_psnr for row in mine)
        out[f"{way} tuned"] = statistics.fmean(row.tuned_psnr for row in mine)
        out[f"{way} seconds"] = sum(row.seconds for row in mine) if way == WAYS[0] else mine[0].seconds
        out[f"{way} steps"] = sum(row.steps for row in mine) if way == WAYS[0] else mine[0].steps
        out[f"{way} renders"] = sum(row.renders for row in mine) if way == WAYS[0] else mine[0].renders
    return out


def verdict(numbers: dict[str, float]) -> str:
    a, b = numbers["per person transfer"], numbers["joint transfer"]
    better = "per person" if a > b else "joint" if b > a else "neither"
    ratio = numbers["joint seconds"] / numbers["per person seconds"]
    return (
        f"verdict: {better} gives the higher mean transfer PSNR ({a:.2f} per person vs {b:.2f} joint dB, "
        f"{b - a:+.2f} dB joint); joint tuning takes {ratio:.2f}x the per-person runs' time "
        f"({numbers['joint seconds']:.1f} s vs {numbers['per person seconds']:.1f} s, "
        f"{numbers['joint steps']:.0f} vs {numbers['per person steps']:.0f} steps)"
    )


def print_table(seed: int, rows: list[Row], memory: dict[str, float]) -> None:
    numbers = summary(rows)
    print(f"\n### seed {seed}\n")
    print("| person | way | frames | steps | tune s | renders | tuned PSNR dB | transfer PSNR dB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    shown = False
    for row in sorted(rows, key=lambda r: (r.person, WAYS.index(r.way))):
        if row.way == WAYS[1]:
            seconds = f"{row.seconds:.1f}" if not shown else "same"
            steps = f"{row.steps}" if not shown else "same"
            renders = f"{row.renders}" if not shown else "same"
            shown = True
        else:
            seconds, steps, renders = f"{row.seconds:.1f}", f"{row.steps}", f"{row.renders}"
        print(
            f"| {row.person} | {row.way} | {row.frames} | {steps} | {seconds} | {renders} | "
            f"{row.tuned_psnr:.2f} | {row.transfer_psnr:.2f} |"
        )
    for way in WAYS:
        label = "sum" if way == WAYS[0] else "one run"
        print(
            f"| all | {way} ({label}) | {sum(r.frames for r in rows if r.way == way)} | "
            f"{numbers[f'{way} steps']:.0f} | {numbers[f'{way} seconds']:.1f} | "
            f"{numbers[f'{way} renders']:.0f} | {numbers[f'{way} tuned']:.2f} (mean) | "
            f"{numbers[f'{way} transfer']:.2f} (mean) |"
        )
    size = memory["param_bytes"] / MEGABYTE
    print(
        f"\nmemory at render time: per person holds {memory['copies_per_person']:.0f} tuned generators, "
        f"joint {memory['copies_joint']:.0f}; each {size:.2f} MB of parameters "
        f"({memory['copies_per_person'] * size:.2f} MB vs {memory['copies_joint'] * size:.2f} MB)"
    )
    print(
        f"check: per-person tuning here matches the pipeline's own tuned PSNR within "
        f"{memory['pipeline_max_gap_db']:.3f} dB"
    )
    people = sorted({row.person for row in rows})
    print(
        "reference, the original generator (untuned): "
        + ", ".join(
            f"p{p} tuned-column PSNR {memory[f'untuned p{p}']:.2f} dB, "
            f"transfer {memory[f'untuned transfer p{p}']:.2f} dB"
            for p in people
        )
    )
    print(verdict(numbers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="scene (and world) seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny convs: 1 is fastest)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtime = resolve_runtime("cpu")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-cast-") as temp:
        base = args.workdir or Path(temp)
        print(
            f"synthetic scene {SceneConfig().num_people} people x {SceneConfig().num_frames} frames, "
            f"strengths {STRENGTHS}, driver ref {DRIVER_REF}, on {runtime.describe()}; "
            f"PTI budget: {pti_steps(1, config=measured_settings().pti)} steps x sqrt(frames)"
        )
        all_numbers = []
        for seed in args.seeds:
            rows, memory = run_seed(seed, base / f"seed{seed}", runtime)
            print_table(seed, rows, memory)
            all_numbers.append(summary(rows))
    if len(all_numbers) > 1:
        medians = {key: statistics.median(n[key] for n in all_numbers) for key in all_numbers[0]}
        print(f"\n### medians over seeds {args.seeds}\n")
        print("| way | steps | tune s | renders | tuned PSNR dB | transfer PSNR dB |")
        print("|---|---:|---:|---:|---:|---:|")
        for way in WAYS:
            print(
                f"| {way} | {medians[f'{way} steps']:.0f} | {medians[f'{way} seconds']:.1f} | "
                f"{medians[f'{way} renders']:.0f} | {medians[f'{way} tuned']:.2f} | "
                f"{medians[f'{way} transfer']:.2f} |"
            )
        print(verdict(medians))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
