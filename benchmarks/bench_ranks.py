"""One answer on any number of ranks? A real transfer on 1 rank against 2, and on 1 thread against 2.

Examples:
    python benchmarks/bench_ranks.py                 # retalk_face2 driven by hamilton, by lp_driving_d3
    python benchmarks/bench_ranks.py --drivers lp_driving_d0.mp4 --duration 40f
    python benchmarks/bench_ranks.py --target lp_source_s18.mp4 --duration 3 --json
    python benchmarks/bench_ranks.py --keep /tmp/ranks-work   # keep the workspaces and outputs

Each target/driver pair (clips of `--testdata`, see its MANIFEST.tsv) is transferred with the random tiny
generator (`random:tiny`, so the `synthetic` preset) and dlib landmarks in three settings: one process on
1 thread (the base), one process on 2 threads (`--threads 2`), and `torchrun --standalone
--nproc_per_node=2` with 1 thread per rank. Each setting has its own workspace, so nothing it computes is
reused from another; only the finished alignments of the base run are copied in first, since dlib
alignment is slow and gives the same quads on any number of ranks and threads (tests/test_distributed.py
checks that). The outputs are written in 4:4:4 chroma, so the encoding does not blur the comparison.

Reported per pair:
- Mean PSNR between outputs, over all frames of both decoded videos: 2 ranks against 1, and beside it 2
  threads against 1 (what floating-point noise alone gives).
- For the driver, in each setting: the frame-to-frame latent steps ||w[t] - w[t-1]|| (whole W+ code, L2)
  between consecutive rows, the largest at a chain start (a frame where an inversion chain starts: a run
  of the alignment, after a cut or a gap, or a segment of `invert.segment_frames`), the largest anywhere,
  the median, and the first against the last. Twice: of its pivots (the `dri-invert` result: each
  segment registered to its run's key chain), and of the path its offsets are taken along
  (`edit.expression_path`: the runs joined at cuts and gaps).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reenact.config import InvertConfig
from reenact.demo import decode
from reenact.edit import expression_path
from reenact.latents import LatentSource
from reenact.metrics import psnr
from reenact.pipeline import slot_ranges
from reenact.stages.align import ClipAlignment
from reenact.stages.invert import Pivots
from reenact.stages.keys import segments_of
from reenact.synthetic import MEASURED_PIX_FMT
from reenact.workspace import MANIFEST

TORCHRUN = Path(sys.executable).with_name("torchrun")
TESTDATA = Path(os.environ.get("REENACT_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "testdata"
"""The real clips, where the tests find them (`$REENACT_SHARED`, else the checkout's sibling `shared`)."""
DEFAULT_TARGET = "retalk_face2.mp4"
DEFAULT_DRIVERS = ("facerec_short_hamilton_clip.mp4", "lp_driving_d3.mp4")
"""A driver with scene cuts, and a long one-shot driver with strong expressions."""
GENERATOR = "random:tiny"
ALIGN_STAGE = "align"
"""Workspace folder of the alignment results, copied from the base run into the others."""
ALIGN_REPORTS = ("tar-align", "dri-align")
DRIVER_INVERT_REPORT = "dri-invert"
BATCH_ROWS = 64
"""Pivot rows read from the workspace at a time."""


@dataclass(frozen=True)
class Setting:
    """How one transfer is run: processes (ranks) and CPU threads per process."""

    name: str
    ranks: int
    threads: int


BASE = Setting("1 rank x 1 thread", ranks=1, threads=1)
THREADS = Setting("1 rank x 2 threads", ranks=1, threads=2)
RANKS = Setting("2 ranks x 1 thread", ranks=2, threads=1)
SETTINGS = (BASE, THREADS, RANKS)


@dataclass(frozen=True)
class DriverSteps:
    """Frame-to-frame latent steps of the driver's rows (pivots, or the offsets' path) in one setting."""

    chain_starts: list[int]
    """Frames (of the driver) where an inversion chain starts, after its first frame."""
    max_at_chain_start: float
    max_anywhere: float
    median: float

    @property
    def ratio(self) -> float:
        """The largest step at a chain start against the median step."""
        return self.max_at_chain_start / self.median if self.median > 0 else float("nan")


def transfer_command(
    setting: Setting, target: Path, driver: Path, output: Path, workdir: Path, extra: list[str]
) -> list[str]:
    launcher = (
        [sys.executable, "-m", "reenact_cli"]
        if setting.ranks == 1
        else [str(TORCHRUN), "--standalone", f"--nproc_per_node={setting.ranks}", "-m", "reenact_cli"]
    )
    return [
        *launcher,
        "transfer",
        str(target),
        str(driver),
        "--output",
        str(output),
        "--generator",
        GENERATOR,
        "--threads",
        str(setting.threads),
        "--set",
        f"video.pix_fmt={MEASURED_PIX_FMT}",
        "--workdir",
        str(workdir),
        "--overwrite",
        "--quiet",
        "--json",
        *extra,
    ]


def run_transfer(command: list[str], *, threads: int) -> dict[str, Any]:
    """The JSON summary of one transfer (exits with its error output when it fails)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def stage_location(summary: dict[str, Any], name: str) -> Path:
    return Path(next(stage["location"] for stage in summary["stages"] if stage["name"] == name))


def copy_alignments(summary: dict[str, Any], workdir: Path) -> None:
    """The base run's finished alignment results, copied into a fresh workspace."""
    for name in ALIGN_REPORTS:
        source = stage_location(summary, name)
        shutil.copytree(source, workdir / ALIGN_STAGE / source.name, dirs_exist_ok=True)


def mean_psnr(first: Path, second: Path) -> float:
    """Mean over frames of the PSNR between two videos of the same frames."""
    a, b = decode(first), decode(second)
    if a.shape != b.shape:
        raise SystemExit(f"error: {first} and {second} differ in shape: {a.shape} against {b.shape}")
    return float(np.mean([psnr(x, y) for x, y in zip(a, b, strict=True)]))


def row_steps(ws: LatentSource, frames: np.ndarray, starts: set[int]) -> DriverSteps:
    """The steps between consecutive rows of `ws` [N, num_ws, w_dim] (of frames `frames` [N]), those into
    a frame of `starts` apart."""
    steps = np.concatenate(
        [
            (
                ws[slice(row, min(row + BATCH_ROWS + 1, len(frames)))].diff(dim=0).flatten(1).norm(dim=1)
            ).numpy()
            for row in range(0, max(len(frames) - 1, 0), BATCH_ROWS)
        ]
    )  # [N - 1]: step into frames[1:]
    at_start = [index for index, frame in enumerate(frames[1:]) if int(frame) in starts]
    return DriverSteps(
        chain_starts=[int(frames[1 + index]) for index in at_start],
        max_at_chain_start=float(steps[at_start].max()) if at_start else float("nan"),
        max_anywhere=float(steps.max()),
        median=float(np.median(steps)),
    )


def driver_steps(summary: dict[str, Any]) -> tuple[DriverSteps, DriverSteps]:
    """The driver's latent steps: of its pivots, and of the path its offsets are taken along."""
    location = stage_location(summary, DRIVER_INVERT_REPORT)
    pivots = Pivots.load(location)
    parts = json.loads((location / MANIFEST).read_text())["parts"]
    alignment = ClipAlignment.load(location.parent.parent / ALIGN_STAGE / parts["align"])
    segments = segments_of(alignment, size=InvertConfig().segment_frames)
    starts = {segment.start for segment in segments}
    path = expression_path(pivots.ws, runs=slot_ranges(alignment.runs(), pivots.frames))
    return row_steps(pivots.ws, pivots.frames, starts), row_steps(path, pivots.frames, starts)


def run_pair(target: Path, driver: Path, root: Path, extra: list[str]) -> dict[str, Any]:
    """The three settings on one pair: outputs compared with the base, and the driver's steps."""
    outputs: dict[str, Path] = {}
    report: dict[str, Any] = {"target": target.name, "driver": driver.name, "settings": {}}
    base_summary: dict[str, Any] = {}
    for setting in SETTINGS:
        folder = root / setting.name.replace(" ", "")
        workdir = folder / "work"
        folder.mkdir(parents=True, exist_ok=True)
        if setting != BASE:
            copy_alignments(base_summary, workdir)
        outputs[setting.name] = folder / "out.mp4"
        command = transfer_command(setting, target, driver, outputs[setting.name], workdir, extra)
        began = time.monotonic()
        summary = run_transfer(command, threads=setting.threads)
        seconds = time.monotonic() - began
        if setting == BASE:
            base_summary = summary
        steps, path = driver_steps(summary)
        print(f"{target.name} + {driver.name}, {setting.name}: {seconds:.0f} s", file=sys.stderr)
        report["settings"][setting.name] = {
            "seconds": seconds,
            **asdict(steps),
            "ratio": steps.ratio,
            "path": {**asdict(path), "ratio": path.ratio},
        }
    report["psnr_ranks_db"] = mean_psnr(outputs[BASE.name], outputs[RANKS.name])
    report["psnr_threads_db"] = mean_psnr(outputs[BASE.name], outputs[THREADS.name])
    return report


def print_table(reports: list[dict[str, Any]]) -> None:
    print("mean PSNR between outputs (all frames), against 1 rank x 1 thread")
    header = f"{'target':<20}{'driver':<34}{'2 ranks':>10}{'2 threads':>11}"
    print(header)
    print("-" * len(header))
    for report in reports:
        print(
            f"{report['target']:<20}{report['driver']:<34}"
            f"{report['psnr_ranks_db']:>7.1f} dB{report['psnr_threads_db']:>8.1f} dB"
        )
    print()
    print("driver's frame-to-frame latent step ||w[t] - w[t-1]|| (W+, L2): pivots | the offsets' path")
    header = (
        f"{'driver':<34}{'setting':<20}{'seconds':>8}{'starts':>7}"
        f"{'max@start':>10}{'max':>8}{'median':>8}{'ratio':>7} |"
        f"{'max@start':>10}{'max':>8}{'median':>8}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        for name, entry in report["settings"].items():
            path = entry["path"]
            print(
                f"{report['driver']:<34}{name:<20}{entry['seconds']:>8.0f}{len(entry['chain_starts']):>7}"
                f"{entry['max_at_chain_start']:>10.2f}{entry['max_anywhere']:>8.2f}{entry['median']:>8.3f}"
                f"{entry['ratio']:>7.1f} |{path['max_at_chain_start']:>10.2f}{path['max_anywhere']:>8.2f}"
                f"{path['median']:>8.3f}{path['ratio']:>7.1f}"
            )
        print(f"{'':<34}chain starts: {report['settings'][BASE.name]['chain_starts']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testdata", type=Path, default=TESTDATA, help="folder of the clips")
    parser.add_argument("--target", default=DEFAULT_TARGET, help="target clip (a file name in --testdata)")
    parser.add_argument(
        "--drivers", nargs="+", default=list(DEFAULT_DRIVERS), help="driver clips, one pair each"
    )
    parser.add_argument("--start", help="slice of the target from this time (transfer's --start)")
    parser.add_argument(
        "--duration", help="slice of the target this long (transfer's --duration, 50f = 50 frames)"
    )
    parser.add_argument("--keep", type=Path, help="keep workspaces and outputs in this folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    extra = [
        *(["--start", args.start] if args.start else []),
        *(["--duration", args.duration] if args.duration else []),
    ]
    target = args.testdata / args.target
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-ranks-") as temp:
        root = args.keep or Path(temp)
        for number, name in enumerate(args.drivers):
            reports.append(run_pair(target, args.testdata / name, root / f"pair-{number}", extra))
    if args.json:
        print(json.dumps({"generator": GENERATOR, "pairs": reports}, indent=2))
        return
    print_table(reports)


if __name__ == "__main__":
    main()
