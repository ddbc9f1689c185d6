"""Quad smoothing before and after: jitter cut and delay per real clip and against the synthetic truth.

    python benchmarks/bench_smoothing.py [--testdata DIR] [--workdir DIR] [--json]

Real clips: the clip's alignment as `reenact align` computes it (dlib landmarks, tracking, scene cuts; cached
in --workdir, so a second run takes seconds), its raw quads smoothed by the old default filter (`robust`,
Gaussian sigma 1.5) and by the new one (`AlignConfig()`). Per clip: jitter (`quad_jitter`, RMS second
difference of the corners in quad sides, within shots) raw and after each filter, the cut in %, and
around the clip's fastest motion (`fastest_frame`, +-HALF_WINDOW frames) the jitter cut there, the delay
of the smoothed centre behind the raw one (`quad_delay`, frames) and the mean corner distance between
them (% of the side: noise removed plus any bias; there is no truth here).

Synthetic world: true quads of `reenact.synthetic.face_quads` made fast (translation, roll and zoom with
periods of about one second), plus dlib-like noise with occasional outlier frames. Per filter (none, a
causal moving average as the laggy reference, old, new): jitter cut, error to the truth over the clip
and around its fastest motion, and the delay behind the truth there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for tests.smoothtools and benchmarks.compare_filters

from benchmarks.compare_filters import print_table  # noqa: E402
from reenact.config import AlignConfig, Config  # noqa: E402
from reenact.device import resolve_runtime  # noqa: E402
from reenact.faces.align import fastest_frame, quad_delay, quad_jitter, quad_size, smooth_quads  # noqa: E402
from reenact.pipeline import align_clip  # noqa: E402
from reenact.workspace import Workspace  # noqa: E402
from tests.smoothtools import CAUSAL_WINDOW, SYNTH_FRAMES, causal_average, fast_synthetic_track  # noqa: E402

DEFAULT_TESTDATA = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared")) / "testdata"
DEFAULT_WORKDIR = Path("/tmp/reenact-bench-smoothing")
CLIPS = (
    "lp_driving_d0.mp4",
    "lp_driving_d3.mp4",
    "lp_driving_d13_vertical.mp4",
    "lp_source_s18.mp4",
    "retalk_face2.mp4",
    "retalk_face1_vfr.mp4",
    "facerec_short_hamilton_clip.mp4",
    "ghost_2person.mp4",
)
"""Every clip in testdata with a human face."""
OLD_FILTER = AlignConfig(filter="robust", sigma=1.5, robust_iterations=3)
"""The default before the loess filter (issue #23): robust Gaussian, sigma 1.5 frames."""
HALF_WINDOW = 15
"""Frames each side of the fastest motion over which delay and deviation are measured (~0.5 s)."""
MAX_SHIFT = 6
"""Largest delay (frames) `quad_delay` looks for."""

SYNTH_SEEDS = 6


def corner_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean corner distance per frame [T] between quads [T, 4, 2], in quad sides of `b`."""
    return np.linalg.norm(a - b, axis=-1).mean(axis=-1) / quad_size(b)


def real_row(path: Path, *, workspace: Workspace) -> dict[str, object]:
    settings = dataclasses.replace(Config(), align=OLD_FILTER)
    alignment, _ = align_clip(
        path,
        workspace=workspace,
        settings=settings,
        resolution=OLD_FILTER.resolution,
        runtime=resolve_runtime("cpu"),
    )
    raw, segments = alignment.quads_raw, alignment.track.segments
    old = smooth_quads(raw, segments=segments, config=OLD_FILTER)
    new = smooth_quads(raw, segments=segments, config=AlignConfig())
    jitter_raw = quad_jitter(raw, segments)
    row: dict[str, object] = {
        "clip": path.name,
        "frames": len(raw),
        "shots": len(segments),
        "jitter_raw": jitter_raw,
        "jitter_old": quad_jitter(old, segments),
        "jitter_new": quad_jitter(new, segments),
    }
    row["cut_old_pct"] = 100.0 * (1.0 - row["jitter_old"] / jitter_raw)
    row["cut_new_pct"] = 100.0 * (1.0 - row["jitter_new"] / jitter_raw)
    peak = fastest_frame(raw, segments, half_window=HALF_WINDOW)
    if peak is None:
        return row
    window = np.arange(peak - HALF_WINDOW, peak + HALF_WINDOW + 1)
    centre = raw.mean(axis=1)  # [T, 2]
    speed = np.linalg.norm(np.gradient(centre[window], axis=0), axis=1) / quad_size(raw[window])
    row["fast_frame"] = peak
    row["fast_speed"] = float(np.max(speed))
    fast_segment = [(int(window[0]), int(window[-1]) + 1)]
    for name, smoothed in (("old", old), ("new", new)):
        jitter_fast = quad_jitter(smoothed, fast_segment) / quad_jitter(raw, fast_segment)
        row[f"cut_fast_{name}_pct"] = 100.0 * (1.0 - jitter_fast)
        row[f"delay_{name}"] = quad_delay(
            smoothed[window], raw[window], np.arange(len(window)), max_shift=MAX_SHIFT
        )
        row[f"dev_fast_{name}_pct"] = 100.0 * float(np.mean(corner_distance(smoothed[window], raw[window])))
    return row


def synthetic_rows() -> list[dict[str, object]]:
    tracks = [fast_synthetic_track(seed) for seed in range(SYNTH_SEEDS)]
    filters = {
        "none": lambda q, s: q,
        f"causal mean {CAUSAL_WINDOW}": lambda q, s: causal_average(q, window=CAUSAL_WINDOW),
        "old (robust 1.5)": lambda q, s: smooth_quads(q, segments=s, config=OLD_FILTER),
        "new (loess)": lambda q, s: smooth_quads(q, segments=s, config=AlignConfig()),
    }
    rows = []
    for name, smooth in filters.items():
        cuts, errors, fast_errors, delays = [], [], [], []
        for truth, noisy in tracks:
            segments = [(0, len(noisy))]
            smoothed = smooth(noisy, segments)
            cuts.append(100.0 * (1.0 - quad_jitter(smoothed, segments) / quad_jitter(noisy, segments)))
            error = corner_distance(smoothed, truth)
            peak = fastest_frame(truth, segments, half_window=HALF_WINDOW)
            window = np.arange(peak - HALF_WINDOW, peak + HALF_WINDOW + 1)
            errors.append(100.0 * error.mean())
            fast_errors.append(100.0 * error[window].mean())
            delays.append(quad_delay(smoothed, truth, window, max_shift=MAX_SHIFT))
        rows.append(
            {
                "filter": name,
                "cut_pct": float(np.mean(cuts)),
                "cut_min_pct": float(np.min(cuts)),
                "error_pct": float(np.mean(errors)),
                "error_fast_pct": float(np.mean(fast_errors)),
                "delay": float(np.mean(delays)),
                "delay_max": float(np.max(np.abs(delays))),
            }
        )
    return rows


def cell(column: str, value: object) -> str:
    """One table cell: jitter and speed in quad sides, percentages, delays in frames."""
    if not isinstance(value, float):
        return "-" if value is None else str(value)
    if column.startswith("delay"):
        return f"{value:+.2f}"
    if column.startswith("cut"):
        return f"{value:.1f}"
    if column.endswith("pct"):
        return f"{value:.2f}"
    return f"{value:.5f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testdata", type=Path, default=DEFAULT_TESTDATA, help="folder of the real clips")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where alignments are cached")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    workspace = Workspace(args.workdir)
    real = [real_row(args.testdata / n, workspace=workspace) for n in CLIPS if (args.testdata / n).exists()]
    synthetic = synthetic_rows()
    if args.json:
        print(json.dumps({"real": real, "synthetic": synthetic}, indent=2))
        return 0
    if real:
        print("Real clips (dlib landmarks, whole clip): jitter raw / old filter / new filter, cut %;")
        print(
            f"around the fastest motion (+-{HALF_WINDOW} frames): jitter cut, delay behind raw (frames), "
            "mean corner distance to raw (% side)"
        )
        print_table(
            real,
            [
                "clip", "frames", "shots", "jitter_raw", "jitter_old", "jitter_new",
                "cut_old_pct", "cut_new_pct", "fast_speed",
                "cut_fast_old_pct", "cut_fast_new_pct", "delay_old", "delay_new",
                "dev_fast_old_pct", "dev_fast_new_pct",
            ],
            cell=cell,
        )  # fmt: skip
    else:
        print(f"(no real clips: {args.testdata} not found)")
    print(f"\nSynthetic world, fast motion ({SYNTH_SEEDS} seeds x {SYNTH_FRAMES} frames): against the truth")
    print_table(
        synthetic,
        ["filter", "cut_pct", "cut_min_pct", "error_pct", "error_fast_pct", "delay", "delay_max"],
        cell=cell,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
