"""A second `transfer` on the same target costs a fraction of the first: the workspace at work.

On the synthetic world (written as real video files, sidecar landmarks), three runs with one fresh
workdir, timed in the same process:

* first:  target align + invert + PTI, driver align + invert, render;
* second: another driver (the first driver's frames reversed: new bytes, so new driver stages) on the
          same target: the target's alignment, pivots and tuned generator come from the workdir;
* again:  the first driver once more: everything but the render is cached.

Each configuration is repeated `--repeats` times (fresh workdir each) and the median is reported,
with the second/first ratio (target <= 0.30).

    .venv/bin/python benchmarks/bench_transfer.py [--frames 16] [--repeats 3] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from reenact import pipeline, video
from reenact.device import resolve_runtime
from reenact.faces.landmarks import read_landmarks, write_landmarks
from reenact.gan.checkpoints import save_generator
from reenact.generator_source import load_generator_spec
from reenact.synthetic import SyntheticConfig, make_world, synthetic_settings, write_world
from reenact.workspace import Workspace


def reversed_driver(files_dir: Path, driver: Path, landmarks: Path) -> tuple[Path, Path]:
    """The driver clip played backwards (new content, same generator), with its landmarks."""
    reader = video.VideoReader(driver)
    frames = [frame.image for frame in reader.frames(upright=True)]
    output = files_dir / "driver_reversed.mp4"
    with video.VideoWriter(
        output, like=reader.info, config=synthetic_settings().video, audio_from=driver, overwrite=True
    ) as writer:
        for index, image in enumerate(reversed(frames)):
            writer.write(image, pts=index)
    points = read_landmarks(landmarks)[::-1]
    return output, write_landmarks(files_dir / "driver_reversed_landmarks.npz", np.ascontiguousarray(points))


def one_round(root: Path, *, frames: int) -> dict[str, float]:
    world = make_world(SyntheticConfig(num_frames=frames))
    files = write_world(world, root / "files")
    driver2, landmarks2 = reversed_driver(root / "files", files.driver_video, files.driver_landmarks)
    generator = save_generator(world.generator, root / "generator.safetensors")
    runtime = resolve_runtime("cpu")
    workspace = Workspace(root / "work")
    source = load_generator_spec(str(generator), device=runtime.device, workspace=workspace)
    context = pipeline.make_context(
        workspace=workspace,
        source=source,
        settings=synthetic_settings(),
        runtime=runtime,
    )
    times = {}
    for name, driver, landmarks in (
        ("first", files.driver_video, files.driver_landmarks),
        ("second", driver2, landmarks2),
        ("again", files.driver_video, files.driver_landmarks),
    ):
        report = pipeline.transfer(
            files.target_video,
            driver,
            root / f"{name}.mp4",
            context=context,
            target_landmarks=str(files.target_landmarks),
            driver_landmarks=str(landmarks),
            overwrite=True,
        )
        times[name] = report.seconds
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as root:
            rounds.append(one_round(Path(root), frames=args.frames))
    median = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    ratios = [r["second"] / r["first"] for r in rounds]
    result = {
        "frames": args.frames,
        "repeats": args.repeats,
        "median_seconds": median,
        "median_ratio_second_over_first": statistics.median(ratios),
        "median_ratio_again_over_first": statistics.median(r["again"] / r["first"] for r in rounds),
        "rounds": rounds,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"transfer on the synthetic world, {args.frames} frames, median of {args.repeats} (seconds)")
    print(f"{'run':<8} {'seconds':>8} {'/ first':>8}")
    for name, seconds in median.items():
        print(f"{name:<8} {seconds:>8.2f} {seconds / median['first']:>8.2f}")
    print(f"median ratio second/first: {result['median_ratio_second_over_first']:.3f} (target <= 0.30)")


if __name__ == "__main__":
    main()
