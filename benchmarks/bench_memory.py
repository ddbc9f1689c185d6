"""Peak memory of `transfer` against the clip's length: the data path must not grow with it.

Examples:
    python benchmarks/bench_memory.py                              # 100, 1000 and 5000 frames, 1024 px
    python benchmarks/bench_memory.py --frames 100 400 --resolution 256
    python benchmarks/bench_memory.py --frames 100 400 --resolution 1024 --face-renders   # the ending
    python benchmarks/bench_memory.py --device cuda --json         # the real generator on a GPU

Target and driver are a real clip of the test data looped to N frames (written once as a video, its
landmarks looped alongside, so detection is not measured). Each length runs in a fresh subprocess
through the pipeline API: a config-F generator at `--resolution` with random weights, every loss
network off and every step count cut to one, so only the data path counts. On the CPU a config-F
render costs seconds, so the synthesis arithmetic is swapped for a cheap stand-in with the same
parameters (tuning still keeps their gradients and Adam state) and the same output shape: a flat image,
or with `--face-renders` a real face (the target's first frame, moved a little by each latent), whose
pixels cost what real ones cost to compress; the first line of the output says so. On CUDA the real
architecture runs.

Columns: peak host RSS (VmHWM), peak heap (the bytes malloc has handed out and not taken back, sampled
every `HEAP_SAMPLE_S`; glibc only), peak device memory (CUDA), seconds per frame, the ending's seconds per
frame (render, paste back and encode: the `encode` stage's wall-clock, which the render overlaps) and the
median step between two frames reaching the encoder, the workspace's size per frame when the run has
finished (the crop caches, pivots and alignment) and at its largest during the run (sampled: the tuning
checkpoints; one process never stores renders), and the whole-clip arrays held on the host (the target's
and the driver's alignment, but the landmarks, read as a memory map) per frame. The last lines give each
peak's growth per extra frame, from the shortest length and between the two longest (where every batch is
full), the latter extrapolated arithmetically to `EXTRAPOLATE_FRAMES`, and the workspace's cost per extra
frame. The peak RSS also counts
what the allocator keeps after a free (two runs of one length have differed by ~150 MB at 1024 px); the
peak heap is what was in use, so its growth is the one to read for what grows with the clip.
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
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_CLIP = SHARED_DIR / "testdata" / "retalk_face2.mp4"
DEFAULT_FRAMES = (100, 1000, 5000)
MIB = 2**20
KIB = 2**10
DRIVER_OFFSET = 40
"""The driver is the same loop started this many frames later: other content, same faces."""
EXTRAPOLATE_FRAMES = 50_000
"""The clip length the peak's growth is extrapolated to: a long shot (about 30 minutes at 30 fps)."""
HEAP_SAMPLE_S = 0.02
"""Seconds between two samples of the heap in use: short, as a peak (a tuning batch) lasts a moment."""

FACE_SHIFT = 0.1
"""`--face-renders`: the stand-in's face moves by up to this much of its [-1, 1] range with the latent, so
every render differs."""

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import numpy as np
import torch
from reenact import pipeline, video
from reenact.config import Config
from reenact.report import peak_memory_bytes
from reenact.device import resolve_runtime
from reenact.gan import stylegan2
from reenact.generator_source import GeneratorSource
from reenact.gan.stylegan2 import Generator, ffhq_config_f
from reenact.workspace import Workspace

(target, driver, target_marks, driver_marks, out, work, resolution, device, stand_in, shift,
 every) = sys.argv[1:12]
resolution, stand_in, face_shift, every = int(resolution), stand_in == "1", float(shift), float(every)
try:  # glibc: the bytes handed out by malloc (small blocks and mapped ones) and not freed
    import ctypes
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
except (OSError, AttributeError):
    mallinfo2 = None
def heap_bytes():
    info = mallinfo2()
    return info.uordblks + info.hblkhd
face = face_shift > 0
if stand_in:
    pixels = None
    if face:  # the target's first frame, its centre square: renders that compress as real ones do
        import cv2
        image = next(iter(video.VideoReader(Path(target)).frames(upright=True))).image
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = cv2.resize(image[top:top + side, left:left + side], (resolution, resolution),
                            interpolation=cv2.INTER_AREA)
        pixels = torch.from_numpy(square).permute(2, 0, 1).float() / 127.5 - 1.0  # [3, R, R]
    def cheap_forward(self, ws, **kwargs):  # same parameters and output shape, trivial arithmetic
        touch = sum(p.reshape(-1)[0] for p in self.parameters()) * 0.0
        level = torch.tanh(ws.mean(dim=(1, 2)))[:, None, None, None]
        size = self.block_resolutions[-1]
        flat = level.expand(ws.shape[0], 3, size, size)
        images = flat if pixels is None else (pixels[None] + face_shift * flat).clamp(-1.0, 1.0)
        return images + touch
    stylegan2.SynthesisNetwork.forward = cheap_forward
runtime = resolve_runtime(device)
generator = Generator(ffhq_config_f(resolution)).to(runtime.device).eval().requires_grad_(False)
source = GeneratorSource(spec="bench", generator=generator, digest=f"bench-f-{resolution}", is_random=True)
settings = Config().with_values(
    invert={"first_steps": 1, "warm_steps": 1, "perceptual_weight": 0.0, "start_samples": 0},
    pti={"base_steps": 1, "max_steps": 1, "lpips_weight": 0.0, "locality_weight": 0.0},
)
context = pipeline.make_context(workspace=Workspace(work), source=source, settings=settings, runtime=runtime)
def folder_bytes():
    return sum(p.stat().st_size for p in Path(work).rglob("*") if p.is_file())
largest, done = [0], threading.Event()
def sample():  # the workspace at its largest: renders in flight included
    while not done.wait(0.5):
        try:
            largest[0] = max(largest[0], folder_bytes())
        except FileNotFoundError:  # a file renamed or removed under the sweep
            pass
heap = [0]
def sample_heap():  # the heap at its largest
    while not done.wait(every):
        heap[0] = max(heap[0], heap_bytes())
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
heap_sampler = threading.Thread(target=sample_heap, daemon=True)
if mallinfo2 is not None:
    heap_sampler.start()
written = []  # when each output frame reached the encoder
original_write = video.VideoWriter.write
def timed_write(self, image, **kwargs):
    original_write(self, image, **kwargs)
    written.append(time.perf_counter())
video.VideoWriter.write = timed_write
started = time.perf_counter()
report = pipeline.transfer(Path(target), Path(driver), Path(out), context=context,
                           target_landmarks=target_marks, driver_landmarks=driver_marks)
seconds = time.perf_counter() - started
done.set()
sampler.join()
if mallinfo2 is not None:
    heap_sampler.join()
device_peak = torch.cuda.max_memory_allocated() if runtime.device.type == "cuda" else None
work_bytes = folder_bytes()
peak_rss = peak_memory_bytes()
held = 0  # whole-clip host arrays: each clip's alignment (cached now)
for clip, marks in ((target, target_marks), (driver, driver_marks)):
    alignment, _ = pipeline.align_clip(Path(clip), context=context, resolution=resolution, landmarks=marks)
    held += sum(v.nbytes for v in (*vars(alignment).values(), *vars(alignment.track).values())
                if isinstance(v, np.ndarray) and not isinstance(v, np.memmap))  # a map is read, not held
ending = next(stage.seconds for stage in report.stages if stage.name == "encode")
steps = np.diff(np.array(written)) if len(written) > 1 else np.zeros(1)
print(json.dumps({"frames": report.frames, "seconds": seconds, "peak_rss": peak_rss,
                  "peak_heap": heap[0] if mallinfo2 is not None else None,
                  "ending": ending, "ending_step": float(np.median(steps)),
                  "peak_device": device_peak, "workspace": work_bytes,
                  "workspace_peak": max(largest[0], work_bytes), "held_arrays": held}))
"""


def looped_inputs(clip: Path, frames: int, folder: Path, *, offset: int = 0) -> tuple[Path, Path]:
    """`clip` looped to `frames` frames from its frame `offset` (one video file), and its landmarks looped
    alongside."""
    import numpy as np

    from reenact import video
    from reenact.config import Config
    from reenact.device import resolve_runtime
    from reenact.faces.landmarks import write_landmarks
    from reenact.pipeline import RunContext, align_clip
    from reenact.workspace import Workspace

    context = RunContext(
        workspace=Workspace(folder / "align-work"), settings=Config(), runtime=resolve_runtime("cpu")
    )
    alignment, _ = align_clip(clip, context=context, resolution=64)  # cached after the first length
    points = alignment.track.points  # [T, 68, 2], NaN where no face
    reader = video.VideoReader(clip)
    images = [frame.image for frame in reader.frames(upright=True)]
    period = round(1 / (reader.info.fps_avg * float(reader.info.time_base_fraction)))
    order = (np.arange(frames) + offset) % len(images)  # [N]
    output = folder / f"looped-{frames}-{offset}.mp4"
    with video.VideoWriter(output, like=reader.info, config=Config().video, overwrite=True) as writer:
        for index, source in enumerate(order):
            writer.write(images[source], pts=index * period)
    marks = folder / f"looped-{frames}-{offset}.npz"
    return output, write_landmarks(marks, np.ascontiguousarray(points[order][:, None]))  # [N, 1, 68, 2]


def slope(short: dict[str, Any], long: dict[str, Any], column: str) -> float:
    """How much `column` grows per extra frame from the run `short` to the run `long`."""
    return (long[column] - short[column]) / (long["frames"] - short["frames"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=list(DEFAULT_FRAMES))
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--face-renders", action="store_true", help="the CPU's stand-in renders a real face, not a flat image"
    )
    args = parser.parse_args()
    stand_in = args.device == "cpu"
    if not args.json:
        print(
            "stand-in synthesis arithmetic (same parameters and output shapes): data path only"
            + (", renders a real face" if args.face_renders else "")
            if stand_in
            else "real config-F architecture with random weights"
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_memory-") as tmp:
        folder = Path(tmp)
        for frames in args.frames:
            target, target_marks = looped_inputs(args.clip, frames, folder)
            driver, driver_marks = looped_inputs(args.clip, frames, folder, offset=DRIVER_OFFSET)
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(target), str(driver), str(target_marks), str(driver_marks),
                 str(folder / f"out-{frames}.mp4"), str(folder / f"work-{frames}"), str(args.resolution),
                 args.device, "1" if stand_in else "0", str(FACE_SHIFT if args.face_renders else 0.0),
                 str(HEAP_SAMPLE_S)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise SystemExit(f"{frames} frames failed:\n{result.stderr[-3000:]}")
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["wall"] = time.perf_counter() - started
            rows.append(row)
            if not args.json:
                device = "-" if row["peak_device"] is None else f"{row['peak_device'] / MIB:.0f}"
                heap = "-" if row["peak_heap"] is None else f"{row['peak_heap'] / MIB:.0f}"
                print(
                    f"{frames:>6} frames  peak RSS {row['peak_rss'] / MIB:8.0f} MiB  heap {heap:>6} MiB  "
                    f"device {device:>6} MiB  "
                    f"{row['seconds'] / frames:6.3f} s/frame  "
                    f"ending {row['ending'] / frames:6.4f} s/frame (median step {row['ending_step']:6.4f})  "
                    f"workspace {row['workspace'] / frames / MIB:5.2f} MiB/frame "
                    f"(largest {row['workspace_peak'] / frames / MIB:5.2f})  "
                    f"whole-clip arrays {row['held_arrays'] / frames / 1024:5.2f} KiB/frame",
                    flush=True,
                )
            shutil.rmtree(folder / f"work-{frames}", ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if len(rows) > 1:
        first, before, last = rows[0], rows[-2], rows[-1]
        held = slope(before, last, "held_arrays")
        for name, column in (("peak RSS", "peak_rss"), ("peak heap", "peak_heap")):
            if first[column] is None or last[column] is None:
                continue
            starts = [first, before] if len(rows) > 2 else [first]
            slopes = ", ".join(
                f"{slope(row, last, column) / KIB:+.2f} from {row['frames']}" for row in starts
            )
            at_target = last[column] + slope(before, last, column) * (EXTRAPOLATE_FRAMES - last["frames"])
            print(
                f"{name} {(last[column] - first[column]) / MIB:+.0f} MiB from {first['frames']} to "
                f"{last['frames']} frames; KiB per extra frame: {slopes} "
                f"(whole-clip arrays {held / KIB:.2f}); "
                f"at {EXTRAPOLATE_FRAMES:,} frames: {at_target / MIB:.0f} MiB "
                f"({(at_target - first[column]) / first[column]:+.1%} over {first['frames']} frames)"
            )
        print(f"workspace {slope(first, last, 'workspace') / MIB:.2f} MiB per extra frame")


if __name__ == "__main__":
    main()
