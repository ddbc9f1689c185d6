"""How far apart one inversion lands on two thread counts: the same warm chain of face crops inverted into
the face world on one thread and on `--threads`, with the face-world preset's L-BFGS and with Adam.

    python benchmarks/bench_thread_agreement.py [--source lp_driving_d3.mp4] [--frames 20] [--threads 2]

torch's CPU kernels sum in an order that depends on the thread count, so a render and its gradient
differ in their last bits between thread counts; the first table says by how much (one batch of the face
world's W+ codes). An inversion's optimiser carries such differences along its chain: the second table
gives, per frame, the distance between the two thread counts' pivots beside the chain's own motion (the
distance of its pivot from the chain's first), for each optimiser, and the mean PSNR of each run.

The crops are one source clip's of the face data (`tools/build_face_data.py`), in frame order.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tools"))

from face_world_direction import source_crops  # noqa: E402

from reenact.config import Config, InvertConfig  # noqa: E402
from reenact.device import resolve_runtime  # noqa: E402
from reenact.face_world import FACE_WORLD, face_world_generator  # noqa: E402
from reenact.gan.stylegan2 import Generator  # noqa: E402
from reenact.imaging import images_from_uint8  # noqa: E402
from reenact.invert import invert_clip  # noqa: E402

SHOWN_FRAMES = (0, 1, 2, 5, 10, 15)
"""Chain frames the second table shows (and the last)."""
GRADIENT_BATCH = 4
"""Codes in the first table's batch."""


def kernel_differences(generator: Generator, threads: int) -> list[tuple[str, str]]:
    """Largest absolute difference of a render and of its loss's gradient in w between one thread and
    `threads` (the same codes, the same loss)."""
    codes = generator.mapping.w_avg + torch.randn(
        GRADIENT_BATCH, generator.num_ws, generator.w_dim, generator=torch.Generator().manual_seed(0)
    )  # [B, num_ws, w_dim]
    results = []
    for count in (1, threads):
        torch.set_num_threads(count)
        latents = codes.clone().requires_grad_(True)
        images = generator.synthesis(latents, noise_mode="const")  # [B, 3, R, R]
        images.square().mean().backward()
        results.append((images.detach(), latents.grad))
    (images_1, grad_1), (images_n, grad_n) = results
    return [
        ("render", f"{float((images_1 - images_n).abs().max()):.3g} (pixels in [-1, 1])"),
        (
            "gradient in W+",
            f"{float((grad_1 - grad_n).abs().max()):.3g} (largest: {float(grad_1.abs().max()):.3g})",
        ),
    ]


def chain(
    generator: Generator, crops: torch.Tensor, *, config: InvertConfig, threads: int
) -> tuple[torch.Tensor, float, float]:
    """The crops' warm chain on `threads` threads: pivots [N, num_ws, w_dim], mean PSNR, seconds."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    result = invert_clip(generator, crops, config=config, perceptual=None, runtime=resolve_runtime("cpu"))
    return result.pivots, float(result.psnr.mean()), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "face-world" / "data" / "faces-64.npz")
    parser.add_argument("--source", default="lp_driving_d3.mp4", help="the clip whose crops are inverted")
    parser.add_argument("--frames", type=int, default=20, help="crops in the chain, from the clip's first")
    parser.add_argument("--threads", type=int, default=2, help="the thread count compared with one")
    args = parser.parse_args()
    generator = face_world_generator()
    crops = images_from_uint8(source_crops(args.data, args.source)[: args.frames])  # [N, 3, R, R]
    lbfgs = Config.from_preset(FACE_WORLD).invert
    default = InvertConfig()
    adam = dataclasses.replace(
        lbfgs,
        optimiser=default.optimiser,
        batch_size=default.batch_size,
        first_steps=default.first_steps,
        warm_steps=default.warm_steps,
        key_steps=default.key_steps,
    )
    print(f"\nthe face world's kernels, 1 thread against {args.threads}\n| figure | largest difference |")
    print("| --- | --- |")
    for name, value in kernel_differences(generator, args.threads):
        print(f"| {name} | {value} |")
    runs = {}
    for name, config in (("L-BFGS (face-world preset)", lbfgs), ("Adam (the default optimiser)", adam)):
        runs[name] = [chain(generator, crops, config=config, threads=count) for count in (1, args.threads)]
    print(f"\n{len(crops)} crops of {args.source}, one warm chain, 1 thread against {args.threads}")
    names = list(runs)
    print("| frame | " + " | ".join(f"{name}: apart | its motion" for name in names) + " |")
    print("|" + " --- |" * (1 + 2 * len(names)))
    shown = sorted({frame for frame in SHOWN_FRAMES if frame < len(crops)} | {len(crops) - 1})
    for frame in shown:
        cells = []
        for name in names:
            (one, _, _), (many, _, _) = runs[name]
            apart = float((one[frame] - many[frame]).norm())
            motion = float((one[frame] - one[0]).norm())
            cells += [f"{apart:.3f}", f"{motion:.2f}"]
        print(f"| {frame} | " + " | ".join(cells) + " |")
    for name in names:
        (_, psnr_1, seconds_1), (_, psnr_n, seconds_n) = runs[name]
        print(
            f"{name}: PSNR {psnr_1:.2f} / {psnr_n:.2f} dB, {seconds_1:.0f} / {seconds_n:.0f} s "
            f"(1 / {args.threads} threads)"
        )
    print(f"torch {torch.__version__}; apart and motion: Euclidean norms over all W+ layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
