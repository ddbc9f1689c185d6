"""Compare the temporal filters of `reenact.faces.align.smooth_quads`: jitter against lag.

Two kinds of evidence, printed as one table per kind:

* real clips (dlib 68-point landmarks, first N frames): jitter of the smoothed quads relative to the
  raw ones, and how far the smoothed corners move from the raw ones (mean and 95th percentile, in
  % of the quad side). Here the truth is unknown, so a large deviation is either removed noise or lag.
* synthetic tracks with a known truth (smooth head motion, fast turns, scale/rotation wobble, landmark
  noise with occasional outlier frames, levels matched to the real clips): jitter relative to the
  noisy input, mean error to the truth and its 99th percentile (where lag at fast turns shows).

    python benchmarks/compare_filters.py [--frames 150] [--testdata DIR] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np

from reenact.config import AlignConfig
from reenact.faces.align import ffhq_quad, quad_jitter, quad_size, quads_from_params, rot90, smooth_quads
from reenact.faces.landmarks import DlibLandmarks
from reenact.video import VideoReader

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTDATA = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared")) / "testdata"
CLIPS = ("retalk_face2.mp4", "lp_source_s18.mp4", "lp_driving_d3.mp4")
DETECT_WIDTH = 320
"""Faces are detected on a copy this wide; the 68 points are then fitted at full size."""

CANDIDATES: list[dict[str, object]] = (
    [{"filter": "loess", "loess_sigma": s} for s in (2.0, 2.5, 3.0, 4.0)]
    + [{"filter": "gaussian", "sigma": s} for s in (1.0, 1.5, 2.0, 3.0)]
    + [{"filter": "robust", "sigma": s} for s in (1.0, 1.5, 2.0, 3.0)]
    + [{"filter": "savgol", "savgol_window": w} for w in (9, 15, 21)]
    + [{"filter": "one_euro", "one_euro_min_cutoff": 0.02, "one_euro_beta": b} for b in (5.0, 10.0, 20.0)]
)

SYNTH_SEEDS = 8
SYNTH_FRAMES = 300
SYNTH_FPS = 30.0
SYNTH_SIZE = 500.0
SYNTH_NOISE = 0.003
"""Per-frame landmark-induced noise of the quad centre, in quad sides (real clips: 0.0015-0.004)."""
SYNTH_OUTLIER_RATE = 0.04
SYNTH_OUTLIER_GAIN = 5.0
"""A fraction of frames gets this many times the noise: the heavy tail seen in dlib tracks."""


def dlib_quads(path: Path, num_frames: int) -> np.ndarray:
    """FFHQ quads [T, 4, 2] of the largest face per frame (NaN where none), from dlib's 68 points."""
    backend = DlibLandmarks(detect_max_side=DETECT_WIDTH)
    quads = []
    with VideoReader(path) as reader:
        for frame in islice(reader.frames(upright=True), num_frames):
            faces = backend.detect(frame.image, frame_index=frame.index)
            largest = max(faces, key=lambda face: face.size) if faces else None
            quads.append(ffhq_quad(largest.points) if largest is not None else np.full((4, 2), np.nan))
    return np.stack(quads)


def synthetic_track(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth, noisy) quads [T, 4, 2]: smooth sway + three fast turns + scale/roll wobble, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(SYNTH_FRAMES) / SYNTH_FPS  # seconds
    centre = np.full((SYNTH_FRAMES, 2), 400.0)
    for freq in (0.15, 0.4, 0.9, 1.6):  # Hz; slower sways are larger
        centre += SYNTH_SIZE * 0.03 / (1.0 + freq) * np.sin(2 * np.pi * (freq * t[:, None] + rng.random(2)))
    for _ in range(3):  # a quick head turn: 15% of the quad in about 0.25 s
        onset = rng.uniform(1.0, t[-1] - 1.0)
        step = SYNTH_SIZE * rng.uniform(-0.15, 0.15, 2)
        centre += step / (1.0 + np.exp(-(t[:, None] - onset) / 0.06))
    roll = 0.08 * np.sin(2 * np.pi * (0.3 * t + rng.random()))
    half = SYNTH_SIZE / 2 * (1.0 + 0.03 * np.sin(2 * np.pi * (0.2 * t + rng.random())))
    x = np.stack([np.cos(roll), np.sin(roll)], axis=1) * half[:, None]
    truth = quads_from_params(centre, x, rot90(x))

    gain = np.where(rng.random(SYNTH_FRAMES) < SYNTH_OUTLIER_RATE, SYNTH_OUTLIER_GAIN, 1.0)[:, None]
    noisy_centre = centre + gain * rng.normal(0.0, SYNTH_NOISE * SYNTH_SIZE, centre.shape)
    noisy_x = x + gain * rng.normal(0.0, 0.5 * SYNTH_NOISE * SYNTH_SIZE, x.shape)
    return truth, quads_from_params(noisy_centre, noisy_x, rot90(noisy_x))


def corner_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean corner distance per frame [T] between quads, in quad sides of `b`."""
    return np.linalg.norm(a - b, axis=-1).mean(axis=-1) / quad_size(b)


def label(candidate: dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in candidate.items() if k != "filter")


def real_rows(testdata: Path, num_frames: int) -> list[dict[str, object]]:
    rows = []
    for name in CLIPS:
        quads = dlib_quads(testdata / name, num_frames)
        segments = [(0, len(quads))]
        raw_jitter = quad_jitter(quads, segments)
        for candidate in CANDIDATES:
            config = dataclasses.replace(AlignConfig(), **candidate)
            smoothed = smooth_quads(quads, segments=segments, config=config)
            deviation = corner_distance(smoothed, quads)
            rows.append(
                {
                    "clip": name,
                    "filter": candidate["filter"],
                    "setting": label(candidate),
                    "jitter_ratio": quad_jitter(smoothed, segments) / raw_jitter,
                    "deviation_mean_pct": 100 * float(np.nanmean(deviation)),
                    "deviation_p95_pct": 100 * float(np.nanpercentile(deviation, 95)),
                }
            )
    return rows


def synthetic_rows() -> list[dict[str, object]]:
    rows = []
    tracks = [synthetic_track(seed) for seed in range(SYNTH_SEEDS)]
    segments = [(0, SYNTH_FRAMES)]
    for candidate in [{"filter": "none"}, *CANDIDATES]:
        config = dataclasses.replace(AlignConfig(), **candidate)
        jitter, error, error_p99 = [], [], []
        for truth, noisy in tracks:
            smoothed = smooth_quads(noisy, segments=segments, config=config)
            jitter.append(quad_jitter(smoothed, segments) / quad_jitter(noisy, segments))
            distance = corner_distance(smoothed, truth)
            error.append(distance.mean())
            error_p99.append(np.percentile(distance, 99))
        rows.append(
            {
                "filter": candidate["filter"],
                "setting": label(candidate),
                "jitter_ratio": float(np.mean(jitter)),
                "error_mean_pct": 100 * float(np.mean(error)),
                "error_p99_pct": 100 * float(np.mean(error_p99)),
            }
        )
    return rows


def plain_cell(column: str, value: object) -> str:
    """One table cell: floats to 4 decimals."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def print_table(
    rows: list[dict[str, object]],
    columns: list[str],
    *,
    cell: Callable[[str, object], str] = plain_cell,
) -> None:
    """Rows as a left-aligned text table of `columns`, each cell written by `cell(column, value)`."""
    cells = [[cell(c, row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per real clip")
    parser.add_argument("--testdata", type=Path, default=DEFAULT_TESTDATA, help="folder of the real clips")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    real = real_rows(args.testdata, args.frames) if args.testdata.is_dir() else []
    synthetic = synthetic_rows()
    if args.json:
        print(json.dumps({"real": real, "synthetic": synthetic}, indent=2))
        return 0
    if real:
        print(f"Real clips, first {args.frames} frames (dlib landmarks): smoothed vs raw quads")
        print_table(
            real, ["clip", "filter", "setting", "jitter_ratio", "deviation_mean_pct", "deviation_p95_pct"]
        )
    else:
        print(f"(no real clips: {args.testdata} not found)")
    print(f"\nSynthetic tracks with known truth ({SYNTH_SEEDS} seeds x {SYNTH_FRAMES} frames)")
    print_table(synthetic, ["filter", "setting", "jitter_ratio", "error_mean_pct", "error_p99_pct"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
