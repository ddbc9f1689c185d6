"""Wall-clock speed-up of one transfer on 2 ranks over 1, per stage, under `torchrun`.

Examples:
    python benchmarks/bench_distributed.py                       # CPU, gloo: 64-frame synthetic clips
    python benchmarks/bench_distributed.py --frames 128 --repeats 5 --json
    python benchmarks/bench_distributed.py --device cuda --ranks 1 2 4   # NCCL, one GPU per rank

The synthetic world (target and driver of `--frames` frames, its random generator, its landmarks) is
written once; each rank count then runs `reenact transfer` through `torchrun --standalone` in a fresh
workspace, `--repeats` times, alternating, and every figure is the median over the repeats. A stage's
time is the main rank's wall-clock from its start until its result is stored, so it includes waiting
for the slowest rank. Both clips' alignments, crops and inversions run together, so each of those rows
is the two clips' stages summed. Each process uses one CPU thread (`torchrun`'s default), so on the
CPU, N ranks use N cores against the single rank's one. The last columns check the runs agree: the
face-region PSNR against the ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from reenact.demo import decode, face_psnr
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import (
    MEASURED_PIX_FMT,
    SyntheticConfig,
    SyntheticFiles,
    make_world,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)

TORCHRUN = Path(sys.executable).with_name("torchrun")
ROWS = {
    "align": ("tar-align", "dri-align"),
    "crops": ("tar-crops", "dri-crops"),
    "invert": ("tar-invert",),  # the two inversions run as one: both report the same wall-clock
    "tune": ("tar-tune",),
    "render": ("render",),
    "encode": ("encode",),
}


def run_once(files: SyntheticFiles, generator: Path, *, ranks: int, device: str, work: Path) -> dict:
    """One transfer on `ranks` ranks: the main rank's JSON summary and the output's face PSNR."""
    output = work / "out.mp4"
    command = [
        str(TORCHRUN),
        "--standalone",
        f"--nproc_per_node={ranks}",
        "-m",
        "reenact_cli",
        *files.transfer_args(output, generator=generator),
        "--preset",
        "synthetic",
        "--set",
        f"video.pix_fmt={MEASURED_PIX_FMT}",  # the output is measured
        "--device",
        device,
        "--workdir",
        str(work / "work"),
        "--quiet",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"error: {ranks}-rank run failed:\n{done.stderr[-3000:]}")
    return {"summary": json.loads(done.stdout), "output": output}


def stage_seconds(summary: dict) -> dict[str, float]:
    by_name = {stage["name"]: stage["seconds"] for stage in summary["stages"]}
    rows = {row: sum(by_name.get(name, 0.0) for name in names) for row, names in ROWS.items()}
    rows["total"] = summary["seconds"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64, help="frames of the target and of the driver")
    parser.add_argument(
        "--ranks", type=int, nargs="+", default=[1, 2], help="rank counts; the first is the base"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as temp:
        root = Path(temp)
        world = make_world(SyntheticConfig(seed=args.seed, num_frames=args.frames))
        files = write_world(world, root / "world")
        generator = save_generator(world.generator, root / "g.safetensors")
        truth, regions = true_transfer_frames(world, composite=synthetic_settings().composite, ref=0)
        seconds: dict[int, list[dict[str, float]]] = {ranks: [] for ranks in args.ranks}
        quality: dict[int, list[float]] = {ranks: [] for ranks in args.ranks}
        evals: dict[int, list[list[int]]] = {ranks: [] for ranks in args.ranks}
        for repeat in range(args.repeats):
            for ranks in args.ranks:
                work = root / f"run-{ranks}-{repeat}"
                result = run_once(files, generator, ranks=ranks, device=args.device, work=work)
                summary = result["summary"]
                seconds[ranks].append(stage_seconds(summary))
                quality[ranks].append(face_psnr(decode(result["output"]), truth, regions))
                evals[ranks].append([sum(rank["renders"].values()) for rank in summary["ranks"]])
                print(
                    f"repeat {repeat + 1}/{args.repeats}, {ranks} rank(s): {summary['seconds']:.1f} s",
                    file=sys.stderr,
                )

    base = args.ranks[0]
    medians = {
        ranks: {row: statistics.median(run[row] for run in runs) for row in [*ROWS, "total"]}
        for ranks, runs in seconds.items()
    }
    table = []
    for row in [*ROWS, "total"]:
        entry: dict[str, object] = {"stage": row}
        for ranks in args.ranks:
            entry[f"seconds_{ranks}"] = medians[ranks][row]
            if ranks != base and medians[ranks][row] > 0:
                entry[f"speedup_{ranks}"] = medians[base][row] / medians[ranks][row]
        table.append(entry)
    report = {
        "frames": args.frames,
        "device": args.device,
        "repeats": args.repeats,
        "table": table,
        "face_psnr": {ranks: statistics.median(values) for ranks, values in quality.items()},
        "generator_evals_per_rank": {ranks: runs[-1] for ranks, runs in evals.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"transfer of {args.frames}-frame synthetic clips on {args.device}, median of {args.repeats} "
        "(one thread per process)"
    )
    header = f"{'stage':<8}" + "".join(f"{f'{r} rank(s)':>12}" for r in args.ranks)
    header += "".join(f"{f'x{r} speed-up':>14}" for r in args.ranks if r != base)
    print(header)
    print("-" * len(header))
    for entry in table:
        line = f"{entry['stage']:<8}" + "".join(f"{entry[f'seconds_{r}']:>10.2f} s" for r in args.ranks)
        line += "".join(f"{entry.get(f'speedup_{r}', float('nan')):>13.2f}x" for r in args.ranks if r != base)
        print(line)
    print(
        "face PSNR vs truth: " + ", ".join(f"{r} rank(s) {report['face_psnr'][r]:.2f} dB" for r in args.ranks)
    )
    print(
        "generator evaluations per rank: "
        + "; ".join(f"{r} rank(s) {report['generator_evals_per_rank'][r]}" for r in args.ranks)
    )


if __name__ == "__main__":
    main()
