"""Throughput and peak memory of landmarks + tracking + alignment on a 720p clip, short and 10x longer.

Examples:
    python benchmarks/bench_align.py                         # lp_source_s18.mp4 (1280x720), 1 and 10 loops
    python benchmarks/bench_align.py --frames 60 --loops 1 5 --resolution 256 --json
    python benchmarks/bench_align.py --clip my.mp4 --detect-max-side 960

Each run is a fresh subprocess, so `ru_maxrss` is that run's own peak. The long input is the clip's
frames looped: by default written once into a temporary long video (`--long file`, decoded once, like
a real long input), or decoded again per loop (`--long loop`). `py_peak_mb` is tracemalloc's peak of
Python/numpy allocations during the run: a pipeline that streams keeps it near-constant (the track grows
by ~1.5 KB per frame); one that keeps frames would grow by ~2.6 MB per 720p frame. `peak_mb`
(ru_maxrss) also counts native allocator behaviour (decoder threads, heap fragmentation).

Stages timed: `detect` (decode + dlib detection + 68 points + tracking + cut detection, pass 1),
`smooth` (FFHQ quads, temporal smoothing, crop matrices), `crops` (decode + warp to R x R crops, pass 2).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_CLIP = SHARED_DIR / "testdata" / "lp_source_s18.mp4"
DEFAULT_LOOPS = (1, 10)
KIB = 1024


@dataclass
class Row:
    clip: str
    size: str
    loops: int
    frames: int
    found_pct: float
    detect_fps: float
    smooth_ms: float
    crops_fps: float
    total_fps: float
    baseline_mb: float
    peak_mb: float
    growth_mb: float
    py_peak_mb: float


def _looped_frames(clip: Path, *, loops: int, max_frames: int) -> Iterator[np.ndarray]:
    """The clip's upright frames (at most `max_frames` per loop), `loops` times over, decoded each time."""
    from reenact.video import VideoReader

    for _ in range(loops):
        with VideoReader(clip) as reader:
            for frame in reader.frames(upright=True):
                if max_frames and frame.index >= max_frames:
                    break
                yield frame.image


def make_long_clip(clip: Path, output: Path, *, loops: int, max_frames: int) -> Path:
    """Write the clip's frames `loops` times into one video (timestamps continue across loops)."""
    from reenact.config import VideoConfig
    from reenact.video import VideoReader, VideoWriter

    with VideoReader(clip) as reader:
        info = reader.info
    quick = VideoConfig(crf=18, preset="ultrafast")
    offset, last, step = 0, 0, 1
    with VideoWriter(output, like=info, config=quick, upright_frames=True, overwrite=True) as writer:
        for _ in range(loops):
            with VideoReader(clip) as reader:
                previous = None
                for frame in reader.frames(upright=True):
                    if max_frames and frame.index >= max_frames:
                        break
                    if previous is not None:
                        step = frame.pts - previous
                    previous = frame.pts
                    last = offset + frame.pts
                    writer.write(frame.image, pts=last)
            offset = last + step
    return output


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB  # Linux: KiB


def worker(args: argparse.Namespace) -> dict:
    """One measured run (inside its own process)."""
    from reenact.config import AlignConfig, FacesConfig
    from reenact.faces.align import crop_matrix, smooth_quads, warp_to_crop
    from reenact.faces.landmarks import DlibLandmarks
    from reenact.faces.track import track_faces, track_quads
    from reenact.video import probe

    faces = FacesConfig(detect_max_side=args.detect_max_side)
    align = AlignConfig(resolution=args.resolution)
    backend = DlibLandmarks(detect_max_side=faces.detect_max_side)
    info = probe(args.clip)
    baseline = _maxrss_mb()
    tracemalloc.start()

    start = time.perf_counter()
    track = track_faces(
        _looped_frames(args.clip, loops=args.run_loops, max_frames=args.frames), backend=backend, config=faces
    )
    detect_s = time.perf_counter() - start

    start = time.perf_counter()
    quads = smooth_quads(track_quads(track), segments=track.segments, config=align)  # [T, 4, 2]
    matrices = [crop_matrix(q, align.resolution) if np.isfinite(q).all() else None for q in quads]
    smooth_s = time.perf_counter() - start

    start = time.perf_counter()
    checksum = 0.0
    frames = _looped_frames(args.clip, loops=args.run_loops, max_frames=args.frames)
    for image, matrix in zip(frames, matrices, strict=True):
        if matrix is not None:
            crop = warp_to_crop(image, matrix, align.resolution, border=align.border)  # [R, R, 3]
            checksum += float(crop[::64, ::64].mean())  # keep the work observable
    crops_s = time.perf_counter() - start

    py_peak = tracemalloc.get_traced_memory()[1] / KIB / KIB
    peak = _maxrss_mb()
    num = track.num_frames
    return asdict(
        Row(
            clip=Path(args.clip).name,
            size=f"{info.display_width}x{info.display_height}",
            loops=args.run_loops,
            frames=num,
            found_pct=round(100.0 * float(track.found.mean()), 1),
            detect_fps=round(num / detect_s, 1),
            smooth_ms=round(1000 * smooth_s, 1),
            crops_fps=round(num / crops_s, 1),
            total_fps=round(num / (detect_s + smooth_s + crops_s), 1),
            baseline_mb=round(baseline, 1),
            peak_mb=round(peak, 1),
            growth_mb=round(peak - baseline, 1),
            py_peak_mb=round(py_peak, 1),
        )
    )


def _run_in_subprocess(args: argparse.Namespace, clip: Path, *, loops: int, frames: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--clip",
        str(clip),
        "--run-loops",
        str(loops),
        "--frames",
        str(frames),
        "--resolution",
        str(args.resolution),
        "--detect-max-side",
        str(args.detect_max_side),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clip", type=Path, default=DEFAULT_CLIP, help="Input clip (default: a 720p test clip)."
    )
    parser.add_argument(
        "--loops", type=int, nargs="+", default=list(DEFAULT_LOOPS), help="Input lengths in loops."
    )
    parser.add_argument("--frames", type=int, default=0, help="Frames per loop (0 = the whole clip).")
    parser.add_argument("--resolution", type=int, default=1024, help="Aligned crop size.")
    parser.add_argument("--detect-max-side", type=int, default=640, help="Detection copy's longest side.")
    parser.add_argument(
        "--long", choices=("file", "loop"), default="file", help="How longer inputs are made (see above)."
    )
    parser.add_argument("--json", action="store_true", help="Print JSON rows instead of a table.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-loops", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if not args.clip.is_file():
        raise SystemExit(f"clip not found: {args.clip} (pass --clip)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for loops in args.loops:
            if args.long == "file" and loops > 1:
                long_clip = make_long_clip(
                    args.clip, Path(tmp) / f"x{loops}.mp4", loops=loops, max_frames=args.frames
                )
                row = _run_in_subprocess(args, long_clip, loops=1, frames=0)
                row["clip"], row["loops"] = args.clip.name, loops
            else:
                row = _run_in_subprocess(args, args.clip, loops=loops, frames=args.frames)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


if __name__ == "__main__":
    main()
