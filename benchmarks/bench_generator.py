"""Speed of the StyleGAN2 config-F generator: forward and forward+backward, per resolution, batch and dtype.

Examples:
    python benchmarks/bench_generator.py --quick
    python benchmarks/bench_generator.py --resolutions 256 1024 --batches 1 8 --json
    python benchmarks/bench_generator.py --devices cuda --resolutions 1024 --batches 8

The backward pass is what inversion and pivotal tuning pay per step (gradients w.r.t. W+ and all weights).
Times: median of `--repeats` runs after `--warmup` runs; random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from reenact.device import Runtime, autocast
from reenact.gan.stylegan2 import Generator, count_parameters, ffhq_config_f

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@dataclass
class Row:
    device: str
    resolution: int
    params_m: float
    batch: int
    dtype: str
    mode: str
    median_ms: float
    per_image_ms: float
    repeats: int
    peak_cuda_mb: float | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(
    G: Generator, *, batch: int, dtype: str, mode: str, device: torch.device, repeats: int, warmup: int
) -> tuple[float, float | None]:
    """Median wall time (ms) of one forward (no grad) or forward+backward (grads to W+ and all weights)."""
    ws = torch.randn(batch, G.num_ws, G.w_dim, device=device)
    runtime = Runtime(device=device, autocast_dtype=DTYPES[dtype], compile=False)

    def step() -> None:
        with autocast(runtime):
            if mode == "fwd":
                with torch.no_grad():
                    G.synthesis(ws, noise_mode="const")
            else:
                latents = ws.detach().requires_grad_(True)
                G.synthesis(latents, noise_mode="const").float().square().mean().backward()
                G.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for index in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if index >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--modes", nargs="+", choices=["fwd", "fwdbwd"], default=["fwd", "fwdbwd"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="only 256 px, batch 1, 2 repeats")
    parser.add_argument("--json", action="store_true", help="print rows as JSON instead of a table")
    args = parser.parse_args()

    if args.quick:
        args.resolutions, args.batches, args.repeats = [256], [1], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    rows: list[Row] = []
    if not args.json:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
        print(HEADER)
    for device_name in devices:
        device = torch.device(device_name)
        for resolution in args.resolutions:
            torch.manual_seed(0)
            G = Generator(ffhq_config_f(resolution)).to(device).train(False)
            G.requires_grad_(True)
            params_m = count_parameters(G) / 1e6
            for batch in args.batches:
                for dtype in args.dtypes:
                    for mode in args.modes:
                        median_ms, peak = time_case(
                            G,
                            batch=batch,
                            dtype=dtype,
                            mode=mode,
                            device=device,
                            repeats=args.repeats,
                            warmup=args.warmup,
                        )
                        row = Row(
                            device_name, resolution, round(params_m, 3), batch, dtype, mode,
                            round(median_ms, 1), round(median_ms / batch, 1), args.repeats,
                            None if peak is None else round(peak, 1),
                        )  # fmt: skip
                        rows.append(row)
                        if not args.json:
                            print(_format(row), flush=True)
            del G
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rows": [asdict(r) for r in rows]}, indent=1))


HEADER = (
    f"{'dev':>5} {'res':>5} {'params_M':>8} {'batch':>5} {'dtype':>5} {'mode':>7} "
    f"{'median_ms':>11} {'ms/image':>10} {'cuda_MB':>9}"
)


def _format(row: Row) -> str:
    peak = "-" if row.peak_cuda_mb is None else f"{row.peak_cuda_mb:.0f}"
    return (
        f"{row.device:>5} {row.resolution:>5} {row.params_m:>8.3f} {row.batch:>5} {row.dtype:>5} "
        f"{row.mode:>7} {row.median_ms:>11.1f} {row.per_image_ms:>10.1f} {peak:>9}"
    )


if __name__ == "__main__":
    main()
