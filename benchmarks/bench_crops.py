"""Where tuning's crops come from: the crop cache on disk against decoding and warping on demand.

Tuning draws its batches from anywhere in the clip. Two ways to serve a batch of crops at random frames:

- cache: the crops stage's compressed parts (lossless PNG), read through `CropStore` (what reenact does);
- on demand: seek to the keyframe before each frame, decode up to it (exact colour conversion), warp
  the crop; no disk, but a decode of up to a GOP per crop.

A real clip of the test data is looped to `--frames` frames and encoded with reenact's writer (its GOP
is printed); both serve the same batches of `--batch` random frames, as float crops [B, 3, R, R].
Printed: median milliseconds per crop over the batches, the ratio measured in the same run, and the
cache's disk cost per frame.

`--codecs`: how to store a crop instead. Each lossless codec of `CODECS` encodes every `--every`-th crop
of the clip (not looped) and decodes it back, checked bit for bit; printed: mean MiB per crop, and
milliseconds to encode and to decode one. The crops stage's level (`CROP_PNG_LEVEL`) comes from it.

    .venv/bin/python benchmarks/bench_crops.py [--frames 500] [--resolution 1024] [--batches 16]
    .venv/bin/python benchmarks/bench_crops.py --codecs [--every 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from reenact import video
from reenact.config import Config
from reenact.faces.align import warp_to_crop
from reenact.files import ImageWriter
from reenact.imaging import images_from_uint8
from reenact.stages.base import FrameRange, split_range
from reenact.stages.crops import CROP_PART_FRAMES, CROP_PNG_LEVEL, PART_PREFIX, PART_SUFFIX, CropStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_CLIP = SHARED_DIR / "testdata" / "retalk_face2.mp4"
MIB = 2**20
MS = 1e3
CROP_FRACTION = 0.8
"""The crop covers this fraction of the frame's shorter side, centred (the cost of a warp does not
depend on where the face is)."""
WEBP_LOSSLESS = 101
"""OpenCV's WebP quality above 100 means lossless."""
CODECS: dict[str, tuple[str, list[int]]] = {
    **{f"png {level}": (".png", [cv2.IMWRITE_PNG_COMPRESSION, level]) for level in (1, 3, 6, 9)},
    "webp lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, WEBP_LOSSLESS]),
}
"""The lossless codecs compared by `--codecs`: name -> (extension, OpenCV parameters)."""


def crop_matrix(width: int, height: int, resolution: int) -> np.ndarray:
    """A frame -> crop affine [3, 3] of a centred square."""
    side = CROP_FRACTION * min(width, height)
    scale = resolution / side
    return np.array(
        [[scale, 0.0, -(width - side) / 2 * scale], [0.0, scale, -(height - side) / 2 * scale], [0, 0, 1]],
        np.float64,
    )


def looped_clip(clip: Path, frames: int, output: Path) -> video.VideoInfo:
    reader = video.VideoReader(clip)
    images = [frame.image for frame in reader.frames(upright=True)]
    period = round(1 / (reader.info.fps_avg * float(reader.info.time_base_fraction)))
    with video.VideoWriter(output, like=reader.info, config=Config().video, overwrite=True) as writer:
        for index in range(frames):
            writer.write(images[index % len(images)], pts=index * period)
    return video.probe(output)


def write_cache(clip: Path, matrix: np.ndarray, resolution: int, folder: Path, frames: int) -> CropStore:
    """Every frame's crop in the crops stage's layout."""
    decoded = (frame.image for frame in video.VideoReader(clip).frames(upright=True))
    for part in split_range(FrameRange(0, frames), size=CROP_PART_FRAMES):
        path = folder / f"{PART_PREFIX}{part.name}{PART_SUFFIX}"
        with ImageWriter(
            path, rows=len(part), image_shape=(resolution, resolution, 3), level=CROP_PNG_LEVEL
        ) as out:
            for _ in range(len(part)):
                out.write(warp_to_crop(next(decoded), matrix, resolution))
    return CropStore(folder)


def on_demand(clip: Path, indices: np.ndarray, matrix: np.ndarray, resolution: int) -> np.ndarray:
    """Crops [B, R, R, 3] of frames `indices`: seek to the keyframe before each, decode up to it, warp."""
    crops = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        step = round(1 / (float(stream.average_rate) * float(stream.time_base)))
        for index in indices:
            target = int(index) * step + (stream.start_time or 0)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts >= target:
                    crops.append(warp_to_crop(video.frame_to_rgb(frame), matrix, resolution))
                    break
    return np.stack(crops)


def compare_codecs(clip: Path, *, resolution: int, every: int) -> None:
    """Print each of `CODECS` on every `every`-th crop of `clip`: MiB per crop, ms to encode and decode."""
    reader = video.VideoReader(clip)
    matrix = crop_matrix(reader.info.width, reader.info.height, resolution)
    crops = [
        warp_to_crop(frame.image, matrix, resolution)
        for frame in reader.frames(upright=True)
        if frame.index % every == 0
    ]  # [R, R, 3] each
    raw = crops[0].nbytes / MIB
    print(f"{len(crops)} crops of {clip.name}, {resolution} px (raw {raw:.2f} MiB each), lossless codecs")
    print(f"{'codec':<14} {'MiB/crop':>8} {'encode ms':>9} {'decode ms':>9}")
    for name, (extension, params) in CODECS.items():
        sizes, encode, decode = [], 0.0, 0.0
        for crop in crops:
            started = time.perf_counter()
            _, encoded = cv2.imencode(extension, crop, params)
            encode += time.perf_counter() - started
            started = time.perf_counter()
            back = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
            decode += time.perf_counter() - started
            if not np.array_equal(back, crop):
                raise SystemExit(f"{name} is not lossless")
            sizes.append(encoded.nbytes)
        size, count = statistics.mean(sizes) / MIB, len(crops)
        print(f"{name:<14} {size:8.3f} {encode / count * MS:9.0f} {decode / count * MS:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4, help="crops per tuning batch")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codecs", action="store_true", help="compare lossless codecs for a stored crop")
    parser.add_argument("--every", type=int, default=12, help="--codecs: every how many frames a crop")
    args = parser.parse_args()
    if args.codecs:
        compare_codecs(args.clip, resolution=args.resolution, every=args.every)
        return
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_crops-") as tmp:
        folder = Path(tmp)
        clip = folder / "looped.mp4"
        info = looped_clip(args.clip, args.frames, clip)
        with av.open(str(clip)) as container:
            keyframes = sum(packet.is_keyframe for packet in container.demux(video=0) if packet.size)
        matrix = crop_matrix(info.width, info.height, args.resolution)
        (folder / "cache").mkdir()
        store = write_cache(clip, matrix, args.resolution, folder / "cache", args.frames)
        batches = [
            np.sort(rng.choice(args.frames, size=args.batch, replace=False)) for _ in range(args.batches)
        ]
        timings: dict[str, list[float]] = {"cache": [], "on demand": []}
        for indices in batches:
            started = time.perf_counter()
            cached = store[indices]  # [B, 3, R, R]
            timings["cache"].append((time.perf_counter() - started) / args.batch)
            started = time.perf_counter()
            decoded = images_from_uint8(on_demand(clip, indices, matrix, args.resolution))
            timings["on demand"].append((time.perf_counter() - started) / args.batch)
            if not np.array_equal(cached.numpy(), decoded.numpy()):
                raise SystemExit("the two ways gave different crops")
        print(
            f"{args.frames} frames of {args.clip.name} looped ({info.width}x{info.height}, "
            f"{args.frames / max(keyframes, 1):.0f} frames per keyframe), {args.resolution} px crops, "
            f"batches of {args.batch} random frames, median of {args.batches}"
        )
        print(f"{'source':<10} {'ms/crop':>8} {'disk/frame':>11}")
        medians = {name: statistics.median(values) * MS for name, values in timings.items()}
        disk = store.disk_bytes / args.frames / MIB
        print(f"{'cache':<10} {medians['cache']:8.1f} {disk:8.2f} MiB")
        print(f"{'on demand':<10} {medians['on demand']:8.1f} {0:8.2f} MiB")
        print(f"on demand / cache: {medians['on demand'] / medians['cache']:.1f}x the time per crop")


if __name__ == "__main__":
    main()
