"""Cost of paste-back per 1024 px frame: face mask and `composite_face` on a real 1920x1080 frame.

Examples:
    python benchmarks/bench_composite.py                 # facerec_obama-1080p.jpg, median of 21 runs
    python benchmarks/bench_composite.py --runs 51 --color-space rgb --json
    python benchmarks/bench_composite.py --device auto   # also the torch paste-back, on CUDA if there

The frame is ../shared/testdata/facerec_obama-1080p.jpg with its dlib landmarks; the crop is its FFHQ
crop at `--resolution` with a colour cast (so the colour match has work to do), pasted back as the
output stage does: landmark mask (`face_mask`), then `composite_face` (colour match in `--color-space`,
warp back, feathered blend). Printed: median, fastest and slowest milliseconds of each over `--runs`.
With `--device` the torch paste-back (`composite_face_torch`, what a CUDA run uses) is timed too, from
the host frame and crop to the host result, with its agreement with the OpenCV path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from reenact.composite import composite_face, face_mask
from reenact.composite_torch import composite_face_torch
from reenact.config import CompositeConfig
from reenact.faces.align import crop_matrix, ffhq_quad, warp_to_crop
from reenact.faces.landmarks import DlibLandmarks

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
FRAME = SHARED_DIR / "testdata" / "facerec_obama-1080p.jpg"
CAST_GAIN = (0.83, 0.91, 1.07)
CAST_OFFSET = (17.0, -3.0, -9.0)
"""The rendered crop's colour cast: per-channel gain and offset in levels."""
MS = 1e3


def timings(job: Callable[[], object], *, runs: int) -> list[float]:
    """Milliseconds of `runs` calls of `job`, after one warm-up call."""
    job()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        job()
        seconds.append(time.perf_counter() - start)
    return [s * MS for s in seconds]


def torch_device(choice: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without a GPU stops the benchmark."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def torch_agreement(
    frame: np.ndarray,
    crop: np.ndarray,
    *,
    matrix: np.ndarray,
    mask: np.ndarray,
    config: CompositeConfig,
    device: torch.device,
) -> dict[str, float]:
    """Max level difference and share of differing blended pixels, torch paste-back vs OpenCV's."""
    expected = composite_face(frame, crop, matrix=matrix, mask_crop=mask, config=config)
    out = composite_face_torch(frame, crop, matrix=matrix, mask_crop=mask, config=config, device=device)
    alpha = cv2.warpAffine(
        mask, matrix[:2], frame.shape[1::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )  # [H, W], as composite_face warps it
    difference = np.abs(out.astype(np.int16) - expected).max(axis=-1)  # [H, W]
    return {
        "max_levels": int(difference.max()),
        "differing_share": float((difference[alpha > 0] > 0).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=21, help="timed runs of each step")
    parser.add_argument("--resolution", type=int, default=1024, help="crop size in pixels")
    parser.add_argument("--color-space", choices=("lab", "rgb"), default="lab", help="colour match space")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="also time the torch paste-back there (auto: CUDA when available)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    device = None if args.device is None else torch_device(args.device)
    frame = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)  # [H, W, 3]
    faces = DlibLandmarks().detect(frame, frame_index=0)
    if not faces:
        raise SystemExit(f"dlib finds no face in {FRAME}")
    points = max(faces, key=lambda face: face.size).points
    matrix = crop_matrix(ffhq_quad(points), args.resolution)
    crop = warp_to_crop(frame, matrix, args.resolution).astype(np.float32) * CAST_GAIN + CAST_OFFSET
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    config = CompositeConfig(color_match=True, color_space=args.color_space)
    mask = face_mask(points, matrix=matrix, resolution=args.resolution, config=config)
    steps: dict[str, Callable[[], object]] = {
        "face_mask": lambda: face_mask(points, matrix=matrix, resolution=args.resolution, config=config),
        "composite_face": lambda: composite_face(frame, crop, matrix=matrix, mask_crop=mask, config=config),
    }
    measured = {name: timings(job, runs=args.runs) for name, job in steps.items()}
    measured["paste-back (both)"] = [a + b for a, b in zip(*measured.values(), strict=True)]
    agreement = None
    if device is not None:
        name = f"torch ({device.type})"
        measured[name] = timings(
            lambda: composite_face_torch(
                frame, crop, matrix=matrix, mask_crop=mask, config=config, device=device
            ),
            runs=args.runs,
        )
        agreement = torch_agreement(frame, crop, matrix=matrix, mask=mask, config=config, device=device)
    rows = {
        name: {
            "median_ms": round(statistics.median(values), 1),
            "fastest_ms": round(min(values), 1),
            "slowest_ms": round(max(values), 1),
        }
        for name, values in measured.items()
    }
    height, width = frame.shape[:2]
    if args.json:
        result = {
            "frame": f"{width}x{height}",
            "resolution": args.resolution,
            "color_space": args.color_space,
        }
        print(
            json.dumps({**result, "runs": args.runs, "steps": rows, "torch_vs_opencv": agreement}, indent=2)
        )
        return
    print(
        f"{FRAME.name} {width}x{height}, crop {args.resolution} px, colour match in {args.color_space}, "
        f"{args.runs} runs, {cv2.getNumThreads()} OpenCV threads"
    )
    print(f"{'step':20} {'median ms':>10} {'fastest':>8} {'slowest':>8}")
    for name, row in rows.items():
        print(f"{name:20} {row['median_ms']:10.1f} {row['fastest_ms']:8.1f} {row['slowest_ms']:8.1f}")
    if agreement is not None:
        print(
            f"torch vs OpenCV: max {agreement['max_levels']} levels, "
            f"{agreement['differing_share']:.2e} of the blended pixels differ"
        )


if __name__ == "__main__":
    main()
