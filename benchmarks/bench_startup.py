"""Start-up time of the `reenact` command: the answers that need no torch, against importing torch.

Examples:
    python benchmarks/bench_startup.py                  # median of 5 runs of each command
    python benchmarks/bench_startup.py --runs 9 --json
    python benchmarks/bench_startup.py --clip ../shared/testdata/retalk_face2.mp4

Each command runs `--runs` times, each time in a fresh process (`subprocess.run` of the installed console
script `reenact` beside this Python), and the figures are wall-clock seconds from start to exit: median,
fastest and slowest. `probe` reads the smallest video listed in ../shared/testdata/MANIFEST.tsv, or a
short clip written with PyAV when that folder is absent; `weights list` looks at an empty weight cache
($REENACT_HOME in a temporary folder). The last row, `python -c "import torch"`, is what every command
paid at start before the CLI's imports became lazy (#16).
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

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
MANIFEST = SHARED_DIR / "testdata" / "MANIFEST.tsv"
REENACT = Path(sys.executable).with_name("reenact")
GENERATED_FRAMES = 25
"""Frames of the clip written when the shared test data is absent (one second at 25 fps)."""


def smallest_manifest_clip() -> Path | None:
    """The smallest video (it has a duration; photos have none) of the shared test data, if present."""
    if not MANIFEST.is_file():
        return None
    lines = MANIFEST.read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line.strip()]
    videos = [row for row in rows if row.get("duration_s") and (MANIFEST.parent / row["file"]).is_file()]
    if not videos:
        return None
    return MANIFEST.parent / min(videos, key=lambda row: int(row["bytes"]))["file"]


def generated_clip(folder: Path) -> Path:
    """A short H.264 clip written with PyAV (through the tests' helper)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.videotools import write_preroll_clip

    path = folder / "clip.mp4"
    write_preroll_clip(path, preroll=0, frames=GENERATED_FRAMES)
    return path


def time_runs(command: list[str], *, runs: int, env: dict[str, str]) -> list[float]:
    """Wall-clock seconds of `runs` fresh processes of `command`; exits with its stderr if one fails."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"error: {' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command")
    parser.add_argument("--clip", type=Path, help="file for `reenact probe` (default: see above)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if not REENACT.is_file():
        raise SystemExit(f"error: no console script {REENACT}; install reenact (pip install -e .) first")

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temp:
        folder = Path(temp)
        clip = args.clip or smallest_manifest_clip() or generated_clip(folder)
        env = {**os.environ, "REENACT_HOME": str(folder / "home")}
        commands = {
            "reenact --version": [str(REENACT), "--version"],
            "reenact --help": [str(REENACT), "--help"],
            f"reenact probe {clip.name}": [str(REENACT), "probe", str(clip)],
            "reenact weights list": [str(REENACT), "weights", "list"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
        }
        rows = []
        for name, command in commands.items():
            seconds = time_runs(command, runs=args.runs, env=env)
            rows.append(
                {
                    "command": name,
                    "median_s": round(statistics.median(seconds), 3),
                    "min_s": round(min(seconds), 3),
                    "max_s": round(max(seconds), 3),
                }
            )
            print(f"{name}: {rows[-1]['median_s']:.3f} s", file=sys.stderr)

    if args.json:
        print(json.dumps({"runs": args.runs, "clip": str(clip), "rows": rows}, indent=2))
        return
    width = max(len(row["command"]) for row in rows)
    print(f"wall-clock of {args.runs} fresh processes per command (probe: {clip})")
    header = f"{'command':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}"
    print(header)
    print("-" * len(header))
    for row in rows:
        figures = "".join(f"  {row[key]:>7.3f}s" for key in ("median_s", "min_s", "max_s"))
        print(f"{row['command']:<{width}}{figures}")


if __name__ == "__main__":
    main()
