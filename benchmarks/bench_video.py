"""Faithfulness of the video path: PSNR of the default encode and level drift over chained re-encodes.

Examples:
    python benchmarks/bench_video.py                     # every clip of ../shared/testdata + hard sources
    python benchmarks/bench_video.py --passes 1 --crf 16 # one pass at another quality
    python benchmarks/bench_video.py --clips lp_driving_d0.mp4 --no-hard --json

Each source goes through `--passes` chained `reencode` passes (decode, RGB, encode again, as every frame of
the pipeline does). Columns: `psnr_mean`/`psnr_min` of the first pass against the decoded source (dB over
frames), `drift` the mean RGB level change of each pass, `kb_per_frame` the first pass's size, `fps` its
encode speed. The hard sources (noisy MPEG-4 Part 2, VP9, 240 fps) are made from real clips by
`tests/videotools.py` (`HARD_SOURCES`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for tests.videotools

from reenact import video  # noqa: E402
from reenact.config import VideoConfig  # noqa: E402
from tests.videotools import HARD_SOURCES, psnr, write_hard_source  # noqa: E402

SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
TESTDATA = SHARED_DIR / "testdata"
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv")
KB = 1000


@dataclass(frozen=True)
class Row:
    source: str
    codec: str
    fps: float
    frames: int
    psnr_mean: float
    psnr_min: float
    drift: list[float]
    kb_per_frame: float
    encode_fps: float


def mean_level(path: Path) -> float:
    with video.VideoReader(path) as reader:
        return float(np.mean([frame.image.mean(dtype=np.float64) for frame in reader.frames()]))


def measure(source: Path, folder: Path, *, passes: int, config: VideoConfig) -> Row:
    paths = [source]
    seconds = 0.0
    for index in range(passes):
        destination = folder / f"{source.stem}.pass{index + 1}.mp4"
        start = time.perf_counter()
        video.reencode(video.VideoReader(paths[-1]), destination, config=config, overwrite=True)
        seconds = seconds or time.perf_counter() - start
        paths.append(destination)
    with video.VideoReader(source) as a, video.VideoReader(paths[1]) as b:
        scores = [psnr(x.image, y.image) for x, y in zip(a.frames(), b.frames(), strict=True)]
    levels = [mean_level(path) for path in paths]
    info = video.probe(source)
    return Row(
        source=source.name,
        codec=info.video_codec,
        fps=info.fps_avg,
        frames=len(scores),
        psnr_mean=round(float(np.mean(scores)), 2),
        psnr_min=round(float(np.min(scores)), 2),
        drift=[round(float(d), 3) for d in np.diff(levels)],
        kb_per_frame=round(paths[1].stat().st_size / KB / len(scores), 1),
        encode_fps=round(len(scores) / seconds, 1),
    )


HEADER = (
    "source",
    "codec",
    "fps",
    "frames",
    "psnr_mean",
    "psnr_min",
    "drift per pass",
    "kB/frame",
    "enc fps",
)
WIDTHS = (34, 10, 7, 6, 9, 8, 22, 8, 8)


def table_line(cells: tuple[str, ...]) -> str:
    return " ".join(
        cell.ljust(width) if i in (0, 1, 6) else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, WIDTHS, strict=True))
    )


def row_cells(row: Row) -> tuple[str, ...]:
    drift = " ".join(f"{d:+.3f}" for d in row.drift)
    return (
        row.source,
        row.codec,
        f"{row.fps:.2f}",
        str(row.frames),
        f"{row.psnr_mean:.2f}",
        f"{row.psnr_min:.2f}",
        drift,
        f"{row.kb_per_frame:.1f}",
        f"{row.encode_fps:.1f}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--clips", nargs="*", help="file names in testdata (default: every video there)")
    parser.add_argument("--no-hard", action="store_true", help="leave out the made hard sources")
    parser.add_argument("--passes", type=int, default=3, help="chained re-encodes per source")
    parser.add_argument("--crf", type=int, default=VideoConfig.crf, help="x264 CRF of every pass")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if args.clips:
        sources = [TESTDATA / name for name in args.clips]
    else:
        sources = sorted(p for p in TESTDATA.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    config = VideoConfig(crf=args.crf)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_video-") as tmp:
        folder = Path(tmp)
        if not args.no_hard:
            sources += [write_hard_source(recipe, TESTDATA / recipe.clip, folder) for recipe in HARD_SOURCES]
        if not args.json:
            print(table_line(HEADER))
        for source in sources:
            rows.append(measure(source, folder, passes=args.passes, config=config))
            if not args.json:
                print(table_line(row_cells(rows[-1])), flush=True)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    worst = max((abs(d) for row in rows for d in row.drift), default=0.0)
    lowest = min(row.psnr_mean for row in rows)
    print(f"crf {args.crf}: lowest mean PSNR {lowest:.2f} dB; largest drift per pass {worst:.3f} levels")


if __name__ == "__main__":
    main()
