"""`reenact demo` on a busy machine: alone, beside a second demo, beside busy loops; new threads and old.

Examples:
    python benchmarks/bench_threads.py                        # the demo's frames, 3 repeats
    python benchmarks/bench_threads.py --frames 8 --repeats 1 --json
    python benchmarks/bench_threads.py --settings new old one

Each run is `python -m reenact_cli demo` in its own output folder, timed from start to exit. A scene:
`alone`; `beside a demo` (a second demo started at the same moment; the figure is the median of the
two); `beside N busy loops` (`python -c 'while True: pass'`, started first, stopped after). A setting
is an environment:
    new  reenact's default: the usable cores (`--threads`' default), idle threads sleep
    old  before `--threads`: torch's thread count and libgomp's default spinning wait (the CLI is run
         through `reenact_cli.main.run`, which leaves the wait policy alone, not the console script)
    one  one thread (`REENACT_THREADS=1`)
Every figure is the median over `--repeats`; `x alone` is the scene's time over the same setting's
time alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reenact.config import DEMO_FRAMES
from reenact.threads import OPENMP_THREADS_ENV, SPIN_COUNT_ENV, THREADS_ENV, WAIT_POLICY_ENV, usable_cores

CONSOLE_SCRIPT = ("-m", "reenact_cli")
"""How a user runs reenact: the console script, which asks for the passive wait before torch loads."""
WITHOUT_WAIT_POLICY = ("-c", "import sys; from reenact_cli.main import run; sys.exit(run(sys.argv[1:]))")
"""The CLI without the console script's wait policy: libgomp's default spinning, as before `--threads`."""
BUSY_LOOP = "while True: pass"
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
    return base


def start_demo(folder: Path, *, setting: str, frames: int) -> subprocess.Popen[str]:
    """A demo under `setting`, started now."""
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
    """Wait for a demo; its wall-clock seconds since `started`."""
    _, errors = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"error: the demo failed:\n{errors[-3000:]}")
    return seconds


def run_scene(scene: str, *, setting: str, frames: int, busy: int, root: Path) -> float:
    """Seconds of one demo under `setting` in `scene` (the median of the two demos in `pair`)."""
    loops = (
        [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)] if scene == "busy" else []
    )
    try:
        started = time.perf_counter()
        count = 2 if scene == "pair" else 1
        demos = [
            start_demo(root / f"{setting}-{scene}-{index}", setting=setting, frames=frames)
            for index in range(count)
        ]
        return statistics.median(finish(demo, started) for demo in demos)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES, help="frames per synthetic clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="busy loops in the `busy` scene")
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
                        scene, setting=setting, frames=args.frames, busy=args.busy, root=Path(temp)
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
    report = {
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
        f"reenact demo --frames {args.frames} on {usable_cores()} usable cores, median of {args.repeats}; "
        f"x alone: the time over the same setting's time alone"
    )
    header = (
        f"{'setting':<8}{'alone':>10}{'beside a demo':>15}{'x alone':>9}"
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
