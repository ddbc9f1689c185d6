"""Speed of the image losses: LPIPS (VGG, AlexNet) and the Image2StyleGAN perceptual loss.

Examples:
    python benchmarks/bench_losses.py --quick
    python benchmarks/bench_losses.py --resolutions 256 1024 --batches 1 8 --json
    python benchmarks/bench_losses.py --devices cuda --dtypes float32 bfloat16

`fwd` is one loss evaluation, `fwd+bwd` adds the gradient w.r.t. the first image (what inversion pays per
step). Times are the median of `--repeats` runs after `--warmup` runs; random backbone weights (speed does
not depend on them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from reenact.losses import LPIPS, Image2StyleGANPerceptual
from reenact.weights import lpips_heads_path

LOSSES = ("lpips-vgg", "lpips-alex", "image2stylegan")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MS_PER_S = 1000.0


@dataclass
class Row:
    loss: str
    device: str
    dtype: str
    resolution: int
    batch: int
    fwd_ms: float
    fwd_bwd_ms: float


def build(loss: str, *, device: str, dtype: torch.dtype) -> torch.nn.Module:
    if loss == "image2stylegan":
        return Image2StyleGANPerceptual(random_backbone=True, device=device, dtype=dtype)
    net = loss.removeprefix("lpips-")
    heads = lpips_heads_path(net)  # the real heads; only the backbone is random
    return LPIPS(net=net, heads_path=heads, random_backbone=True, device=device, dtype=dtype)


def median_ms(step: Callable[[], None], *, device: str, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * MS_PER_S)
    return statistics.median(times)


def measure(
    loss: str, *, device: str, dtype: str, resolution: int, batch: int, warmup: int, repeats: int
) -> Row:
    model = build(loss, device=device, dtype=DTYPES[dtype])
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 3, resolution, resolution)
    x = (torch.rand(shape, generator=generator) * 2 - 1).to(device)  # [N, 3, R, R] in [-1, 1]
    y = (torch.rand(shape, generator=generator) * 2 - 1).to(device)

    def forward() -> None:
        with torch.no_grad():
            model(x, y)

    def forward_backward() -> None:
        source = x.clone().requires_grad_(True)
        model(source, y).sum().backward()

    return Row(
        loss=loss,
        device=device,
        dtype=dtype,
        resolution=resolution,
        batch=batch,
        fwd_ms=median_ms(forward, device=device, warmup=warmup, repeats=repeats),
        fwd_bwd_ms=median_ms(forward_backward, device=device, warmup=warmup, repeats=repeats),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=list(DTYPES))
    parser.add_argument("--resolutions", nargs="+", type=int, default=[256])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128x128, batch 1, one repeat")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if args.quick:
        args.resolutions, args.batches, args.warmup, args.repeats = [128], [1], 1, 1
    torch.manual_seed(0)
    rows = [
        measure(loss, device=device, dtype=dtype, resolution=resolution, batch=batch, **vars_subset(args))
        for device in args.devices
        for dtype in args.dtypes
        for loss in args.losses
        for resolution in args.resolutions
        for batch in args.batches
    ]
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    print(f"{'loss':<15} {'device':<6} {'dtype':<9} {'res':>5} {'batch':>5} {'fwd ms':>9} {'fwd+bwd ms':>11}")
    for row in rows:
        print(
            f"{row.loss:<15} {row.device:<6} {row.dtype:<9} {row.resolution:>5} {row.batch:>5} "
            f"{row.fwd_ms:>9.1f} {row.fwd_bwd_ms:>11.1f}"
        )


def vars_subset(args: argparse.Namespace) -> dict[str, int]:
    return {"warmup": args.warmup, "repeats": args.repeats}


if __name__ == "__main__":
    main()
