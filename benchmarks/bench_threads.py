"""`reenact demo` on a busy machine: alone, beside a second demo, beside busy loops; new threads and old.

Examples:
    python benchmarks/bench_threads.py                        # the demo's frames, 3 repeats
    python benchmarks/bench_threads.py --frames 8 --repeats 1 --json
    python benchmarks/bench_threads.py --settings new old one
    python benchmarks/bench_threads.py --generator-steps 40 --settings new old one   # the microbenchmark

Each run is `python -m reenact_cli demo` in its own output folder, timed from start to exit. A scene:
`alone`; `beside a twin` (a second, identical run started at the same moment; the figure is the median
of the two); `beside N busy loops` (`python -c 'while True: pass'`, started first, stopped after). A
setting is an environment:
    new  reenact's default (`--threads`' default: the usable cores, one thread for a small generator such
         as the demo's), idle threads spin briefly
    old  before `--threads`: torch's thread count, one per usable core (`REENACT_THREADS` set to it), and
         libgomp's default spinning wait (the CLI is run through `reenact_cli.main.run`, which leaves the
         wait policy alone, not the console script)
    one  one thread (`REENACT_THREADS=1`)
Every figure is the median over `--repeats`; `x alone` is the scene's time over the same setting's
time alone. `--generator-steps N` times N forward+backward batches of the tiny generator (as inversion
and tuning run them) in a process of its own instead of the demo: the microbenchmark behind the choice,
without the demo's video and start-up work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reenact.config import DEMO_FRAMES
from reenact.threads import (
    OPENMP_THREADS_ENV,
    SPIN_COUNT_ENV,
    THREADS_ENV,
    WAIT_POLICY_ENV,
    short_spinning,
    usable_cores,
)

CONSOLE_SCRIPT = ("-m", "reenact_cli")
"""How a user runs reenact: the console script, which asks for the short spin before torch loads."""
WITHOUT_WAIT_POLICY = ("-c", "import sys; from reenact_cli.main import run; sys.exit(run(sys.argv[1:]))")
"""The CLI without the console script's wait policy: libgomp's default spinning, as before `--threads`."""
GENERATOR_STEPS = """
import sys, time
import torch
from reenact.gan.stylegan2 import Generator, tiny
from reenact.threads import use_threads
use_threads()
torch.manual_seed(0)
G = Generator(tiny(64)).train(False)
ws = torch.randn(4, G.num_ws, G.w_dim)
def step():
    G.synthesis(ws.detach().requires_grad_(True), noise_mode="const").square().mean().backward()
    G.zero_grad(set_to_none=True)
step()
start = time.perf_counter()
for _ in range(int(sys.argv[1])):
    step()
print(time.perf_counter() - start)
"""
"""A child that times `argv[1]` forward+backward batches of 4 of the tiny 64 px generator; prints seconds."""
BUSY_LOOP = "import os, sys\nwhile os.getppid() == int(sys.argv[1]): pass"
"""A busy loop that ends with the benchmark (a benchmark killed mid-scene leaves no loop behind)."""
SCENES = ("alone", "pair", "busy")
SETTINGS = ("new", "old", "one")


def setting_environment(setting: str) -> dict[str, str]:
    """The environment of a demo run under `setting` (see the module docstring)."""
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in (THREADS_ENV, WAIT_POLICY_ENV, SPIN_COUNT_ENV, OPENMP_THREADS_ENV)
    }
    if setting == "one":
        return {**base, THREADS_ENV: "1"}
    if setting == "old":
        return {**base, THREADS_ENV: str(usable_cores())}
    return base


def start_steps(*, setting: str, steps: int) -> subprocess.Popen[str]:
    """The generator microbenchmark under `setting`, started now (the new setting's short spin set in its
    environment, as the console script does)."""
    environment = setting_environment(setting)
    if setting != "old":
        short_spinning(environment)
    return subprocess.Popen(
        [sys.executable, "-c", GENERATOR_STEPS, str(steps)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_demo(folder: Path, *, setting: str, frames: int) -> subprocess.Popen[str]:
    """A demo under `setting`, started now, in an empty folder (a folder of an earlier repeat would hand
    it that run's cached stages)."""
    shutil.rmtree(folder, ignore_errors=True)
    launch = WITHOUT_WAIT_POLICY if setting == "old" else CONSOLE_SCRIPT
    command = [sys.executable, *launch, "demo", "-o", str(folder), "--frames", str(frames)]
    return subprocess.Popen(
        [*command, "--quiet", "--overwrite"],
        env=setting_environment(setting),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], started: float) -> float:
    """Wait for a child; the seconds it printed (the microbenchmark), else its wall-clock since `started`."""
    printed, errors = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"error: a measured process failed:\n{errors[-3000:]}")
    return float(printed) if printed else seconds


def run_scene(scene: str, *, setting: str, frames: int, steps: int, busy: int, root: Path) -> float:
    """Seconds of one demo (or, with `steps`, of the microbenchmark) under `setting` in `scene` (the median
    of the two in `pair`)."""
    loops = (
        [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())]) for _ in range(busy)]
        if scene == "busy"
        else []
    )
    try:
        started = time.perf_counter()
        count = 2 if scene == "pair" else 1
        children = [
            start_steps(setting=setting, steps=steps)
            if steps
            else start_demo(root / f"{setting}-{scene}-{index}", setting=setting, frames=frames)
            for index in range(count)
        ]
        return statistics.median(finish(child, started) for child in children)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES, help="frames per synthetic clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="busy loops in the `busy` scene")
    parser.add_argument(
        "--generator-steps", type=int, default=0, help="time N tiny-generator batches instead of the demo"
    )
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=["new", "old"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    seconds: dict[str, dict[str, list[float]]] = {
        setting: {scene: [] for scene in SCENES} for setting in args.settings
    }
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as temp:
        for repeat in range(args.repeats):
            for setting in args.settings:
                for scene in SCENES:
                    value = run_scene(
                        scene,
                        setting=setting,
                        frames=args.frames,
                        steps=args.generator_steps,
                        busy=args.busy,
                        root=Path(temp),
                    )
                    seconds[setting][scene].append(value)
                    print(
                        f"repeat {repeat + 1}/{args.repeats}, {setting} {scene}: {value:.1f} s",
                        file=sys.stderr,
                    )
    table = []
    for setting, runs in seconds.items():
        medians = {scene: statistics.median(values) for scene, values in runs.items()}
        ratios = {scene: medians[scene] / medians["alone"] for scene in SCENES if scene != "alone"}
        table.append({"setting": setting, "seconds": medians, "x_alone": ratios})
    what = (
        f"{args.generator_steps} fwd+bwd batches of the tiny generator"
        if args.generator_steps
        else f"reenact demo --frames {args.frames}"
    )
    report = {
        "workload": what,
        "frames": args.frames,
        "repeats": args.repeats,
        "busy_loops": args.busy,
        "cores": usable_cores(),
        "table": table,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{what} on {usable_cores()} usable cores, median of {args.repeats}; "
        f"x alone: the time over the same setting's time alone"
    )
    header = (
        f"{'setting':<8}{'alone':>10}{'beside a twin':>15}{'x alone':>9}"
        f"{f'beside {args.busy} loops':>18}{'x alone':>9}"
    )
    print(header)
    print("-" * len(header))
    for entry in table:
        figures, ratios = entry["seconds"], entry["x_alone"]
        print(
            f"{entry['setting']:<8}{figures['alone']:>8.1f} s"
            f"{figures['pair']:>13.1f} s{ratios['pair']:>8.2f}x"
            f"{figures['busy']:>16.1f} s{ratios['busy']:>8.2f}x"
        )


if __name__ == "__main__":
    main()
