"""Generator renders per output frame, by stage, and the quality they buy, for a quality level.

Examples:
    python benchmarks/bench_budget.py                          # balanced, 32, 125 and 500 frames
    python benchmarks/bench_budget.py --quality fast balanced best   # docs/cost.md's table
    python benchmarks/bench_budget.py --frames 125 --set invert.warm_steps=30 --json   # try a budget

Each row is one `reenact transfer` (a subprocess, a fresh workspace) on the synthetic world: target and
driver of `--frames` frames each, its random 32 px generator and its landmarks. `--world faces` runs the
demo's face world instead (`reenact.face_world`: the 64 px face generator, a mouth that opens and closes)
with its own preset `face-world` under the quality level, the colour match off (the truth is drawn by the
generator inverted) and 4:4:4 video, as `reenact demo` does. The run takes the
quality level's budgets (`--quality`, over the `default` preset); only what the tiny world needs
differs from the defaults, and no budget: the `synthetic` preset's settings less its budgets
(`world_settings`), i.e. MSE-only losses (no VGG16/LPIPS weights exist here), the start-point search of
its random generator, the tuning step size of its few weights, and its edit layers, paste-back and
video settings. The counts are the run summary's (`--json`:
`renders`), which a test checks against an independent count. Quality, where the answer is known:
- target PSNR: the target inversion's mean PSNR of G(pivot) against the crops (dB);
- face PSNR: the transfer's output against the ground truth over the face regions (dB), beside the
  target left as it is ("still dB": what doing nothing scores);
- share: how much of the driver's expression the output carries (`demo.transferred_share`; 0 = none);
- faces (face world): the share of output frames in which dlib finds a face.
The renders per frame of one setting do not depend on the machine; the seconds do (CPU, one thread).
`best` runs only on clips up to `--best-max-frames`: its cost grows with the clip's length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reenact.config import QUALITY_LEVELS, Config, config_to_dict, quality_layer
from reenact.demo import decode, demo_world_config, face_psnr, output_face_rate, transferred_share
from reenact.demo import world_settings as demo_world_settings
from reenact.face_world import FACE_WORLD, make_face_world
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import (
    SyntheticFiles,
    make_world,
    measured_settings,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)

STEP_SETTINGS = ("invert.optimiser",)
"""Budgets beyond those a quality level names: the optimiser says what one of its steps is."""


def differing_settings(wanted: Config, base: Config, *, skip: set[str] = frozenset()) -> list[str]:
    """`--set` items that turn `base` into `wanted`: every setting that differs, less those in `skip`."""
    have, want = config_to_dict(base), config_to_dict(wanted)
    return [
        f"{section}.{key}={json.dumps(value)}"  # a JSON scalar is a TOML value
        for section, values in want.items()
        for key, value in values.items()
        if value != have[section][key] and f"{section}.{key}" not in skip
    ]


def world_settings() -> list[str]:
    """`--set` items for what the synthetic world needs: the `synthetic` preset's settings that differ from
    the defaults, less the budgets (any quality level's settings and `STEP_SETTINGS`)."""
    budgets = {
        f"{section}.{key}"
        for level in QUALITY_LEVELS
        for section, values in quality_layer(level).items()
        for key in values
    }
    return differing_settings(synthetic_settings(), Config(), skip={*budgets, *STEP_SETTINGS})


def face_world_settings() -> list[str]:
    """`--set` items for what `reenact demo` runs the face world with over its preset
    (`demo.world_settings`, measured: no colour match, 4:4:4 video)."""
    return differing_settings(measured_settings(demo_world_settings("faces")), Config.from_preset(FACE_WORLD))


STAGES = ("tar-invert", "tar-tune", "dri-invert")
COLUMNS = (
    ("frames", "frames", "{:>6}"),
    ("quality", "quality", "{:>8}"),
    ("target_invert", "tgt inv", "{:>7.1f}"),
    ("tuning", "tuning", "{:>7.1f}"),
    ("locality", "locality", "{:>8.1f}"),
    ("driver_invert", "drv inv", "{:>7.1f}"),
    ("total", "TOTAL", "{:>7.1f}"),
    ("forward_only", "fwd-only", "{:>8.1f}"),
    ("target_psnr", "tgt dB", "{:>7.2f}"),
    ("face_psnr", "face dB", "{:>7.2f}"),
    ("still_psnr", "still dB", "{:>8.2f}"),
    ("share", "share", "{:>6.2f}"),
    ("face_rate", "faces", "{:>6.0%}"),
    ("seconds", "seconds", "{:>8.1f}"),
)


def run_transfer(
    files: SyntheticFiles, generator: Path, *, preset: str, quality: str, work: Path, sets: list[str]
) -> dict:
    """One transfer at `quality` over `preset` in a fresh workspace: its JSON summary."""
    command = [
        sys.executable,
        "-m",
        "reenact_cli",
        *files.transfer_args(work / "out.mp4", generator=generator),
        "--preset",
        preset,
        "--quality",
        quality,
        "--device",
        "cpu",
        "--workdir",
        str(work / "work"),
        "--quiet",
        "--json",
        *[arg for setting in sets for arg in ("--set", setting)],
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        raise SystemExit(f"error: the {quality} transfer failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def stage_manifest(summary: dict, name: str) -> dict:
    stage = next(stage for stage in summary["stages"] if stage["name"] == name)
    return json.loads((Path(stage["location"]) / "manifest.json").read_text())


def row(
    summary: dict, *, preset: str, quality: str, sets: list[str], scores: dict[str, float], seconds: float
) -> dict[str, float | int | str]:
    """Renders per output frame by stage (fwd+bwd; the regulariser's share of tuning apart), forward-only
    renders per frame, and the quality figures (`scores`)."""
    frames = summary["frames"]
    by_stage = {stage["name"]: stage["renders"] for stage in summary["stages"]}
    settings = Config.from_preset(preset, quality=quality, overrides=sets).pti
    steps = stage_manifest(summary, "tar-tune")["summary"]["steps"]
    regularised = -(-steps // settings.locality_interval) if settings.locality_weight > 0 else 0
    locality = regularised * settings.locality_samples
    tune_frames = by_stage["tar-tune"]["backward"]
    return {
        "frames": frames,
        "quality": quality,
        "target_invert": by_stage["tar-invert"]["backward"] / frames,
        "tuning": (tune_frames - locality) / frames,
        "locality": locality / frames,
        "driver_invert": by_stage["dri-invert"]["backward"] / frames,
        "total": summary["renders"]["backward"] / frames,
        "forward_only": summary["renders"]["forward"] / frames,
        "target_psnr": stage_manifest(summary, "tar-invert")["summary"]["mean_psnr"],
        **scores,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[32, 125, 500], help="clip lengths")
    parser.add_argument("--quality", nargs="+", default=["balanced"], choices=QUALITY_LEVELS)
    parser.add_argument("--seed", type=int, default=0, help="the synthetic world's seed")
    parser.add_argument(
        "--world", choices=("random", "faces"), default="random", help="the random world or the face world"
    )
    parser.add_argument(
        "--best-max-frames", type=int, default=125, help="longest clip the best level runs on"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting over the quality level (repeatable), to try a budget",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    faces = args.world == "faces"
    preset = FACE_WORLD if faces else "default"
    sets = [*(face_world_settings() if faces else world_settings()), *args.sets]
    composite = Config.from_preset(preset, overrides=sets).composite
    clips = measured_settings(demo_world_settings(args.world)).video  # the demo's world clips
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as temp:
        root = Path(temp)
        for frames in args.frames:
            base = demo_world_config(args.world, num_frames=frames, seed=args.seed)
            world = make_face_world(base) if faces else make_world(base)
            files = write_world(world, root / f"world-{frames}", video_config=clips)
            own = root / f"g-{frames}.safetensors"
            generator = Path(FACE_WORLD) if faces else save_generator(world.generator, own)
            target = decode(files.target_video)
            for quality in args.quality:
                if quality == "best" and frames > args.best_max_frames:
                    continue
                work = root / f"run-{frames}-{quality}"
                started = time.perf_counter()
                summary = run_transfer(files, generator, preset=preset, quality=quality, work=work, sets=sets)
                seconds = time.perf_counter() - started
                # The truth takes the run's own neutral frame, as `reenact demo` does.
                truth, regions = true_transfer_frames(world, composite=composite, ref=summary["driver_ref"])
                output = decode(work / "out.mp4")
                scores = {
                    "face_psnr": face_psnr(output, truth, regions),
                    "still_psnr": face_psnr(target, truth, regions),
                    "share": transferred_share(output, target, truth, regions),
                    "face_rate": output_face_rate(output, face_size=world.config.face_size)
                    if faces
                    else float("nan"),
                }
                rows.append(
                    row(summary, preset=preset, quality=quality, sets=sets, scores=scores, seconds=seconds)
                )
                print(f"{frames} frames, {quality}: {seconds:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("fwd+bwd generator renders per output frame (driver as long as the target); forward-only apart")
    print(" ".join(title.rjust(len(fmt.format(rows[0][key]))) for key, title, fmt in COLUMNS))
    for entry in rows:
        print(" ".join(fmt.format(entry[key]) for key, _, fmt in COLUMNS))


if __name__ == "__main__":
    main()
