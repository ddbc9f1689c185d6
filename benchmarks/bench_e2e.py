"""Seconds per frame of a whole `transfer` by stage, on generated clips, at config F with random weights.

Examples:
    python benchmarks/bench_e2e.py --device cuda                            # 1024 px, every variant
    python benchmarks/bench_e2e.py --device cuda --frames 32 --steps 50 --json
    python benchmarks/bench_e2e.py --device cpu --resolution 256 --frames 8 --steps 1   # the smoke run

A target and a driver clip of `--frames` frames are generated once (the synthetic world's clips, scaled
up to frames `--resolution` px high, with their landmark sidecars, so no detector runs). Each variant
then runs the whole transfer (align, crops, invert, tune, render, paste back, encode) through the
pipeline API in a fresh process and workspace, `--repeats` times; every figure is the median.

The generator is the real config-F architecture at `--resolution`, and the inversion's VGG16 perceptual
loss and PTI's LPIPS run at the default settings; ALL their weights are random (speed does not depend on
their values), which the output's first line says. No figure here is a quality figure. `--steps N` cuts
the inversion's first/warm steps and the tuning's steps to N (by default the config's own counts).

Variants: `fp32` (all off), `bf16` (bf16 autocast), `channels_last` (the generator's synthesis weights
in channels-last memory format), `compile` (`torch.compile` of the synthesis network), `all` (the three
on). channels_last is not a runtime option of the pipeline yet: it is applied here to the starting
generator, so it reaches the inversions and the tuning (whose copy keeps it), not the render stage, which
loads the tuned generator from the workspace (`--compile` reaches it: the tune stage compiles what it
loads). `torch.compile`'s one-off compilation
(and its recompilations for new batch shapes) counts in the stages that trigger it, mostly the inversion:
what a run pays; more frames spread it thinner.

Rows: a stage's seconds per output frame (its own compute time from the run summary; both clips'
alignment, crops and inversion summed), `paste+encode` (wall-clock of the paste-back and encoding, which
overlaps the render's background thread) and the whole run; then generator renders per second
(fwd+bwd and forward-only renders together, from the summary's counts) and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RANDOM_WEIGHTS_NOTICE = (
    "RANDOM WEIGHTS: config-F generator, VGG16 perceptual and LPIPS loss networks are random "
    "(speed does not depend on their values; allowed in this benchmark only, never a quality figure)"
)
"""The output's first line (`--json`: the object's first key, `notice`)."""

DEFAULT_RESOLUTION = 1024
DEFAULT_FRAMES = 16
FRAME_ASPECT = 16 / 9
"""Frames are `--resolution` px high and this much wider (rounded to even): 1024 px -> 1820 x 1024."""
FACE_SHARE = 0.5
"""Side of the face's crop square as a share of the frame's height."""
WORLD_RESOLUTION = 64
"""Resolution of the synthetic world's own tiny generator, which draws the clips' faces (cheap)."""
MIB = 2**20
SEED = 0

STAGE_ROWS: dict[str, tuple[str, ...]] = {
    "align": ("tar-align", "dri-align"),
    "crops": ("tar-crops", "dri-crops"),
    "invert": ("tar-invert", "dri-invert"),
    "tune": ("tar-tune",),
    "render": ("render",),
    "paste+encode": ("encode",),
}
"""Table rows and the run summary's stages that each sums."""
RENDER_ROWS = ("invert", "tune", "render")
"""Rows whose stages run the generator: their renders per second are reported."""
RENDER_KINDS = ("backward", "forward")
"""The summary's two render counts: fwd+bwd renders and forward-only renders."""


@dataclass(frozen=True)
class Variant:
    """One arithmetic configuration of the run."""

    precision: str
    """`fp32` or `bf16` (autocast), as `--precision`."""
    channels_last: bool
    compile: bool


VARIANTS: dict[str, Variant] = {
    "fp32": Variant(precision="fp32", channels_last=False, compile=False),
    "bf16": Variant(precision="bf16", channels_last=False, compile=False),
    "channels_last": Variant(precision="fp32", channels_last=True, compile=False),
    "compile": Variant(precision="fp32", channels_last=False, compile=True),
    "all": Variant(precision="bf16", channels_last=True, compile=True),
}
DEFAULT_VARIANTS: dict[str, tuple[str, ...]] = {"cuda": tuple(VARIANTS), "cpu": ("fp32",)}
"""On the CPU only fp32 by default: a config-F render costs about a second there, and bf16 autocast and
`torch.compile` are what the GPU run measures."""


@dataclass(frozen=True)
class Clips:
    """The generated clips and their landmark sidecars."""

    target: Path
    driver: Path
    target_landmarks: Path
    driver_landmarks: Path


# ------------------------------------------------------------------------------------------ one run


def frame_size(resolution: int) -> tuple[int, int]:
    """(width, height) of the generated frames: `resolution` high, `FRAME_ASPECT` wide, both even."""
    height = resolution + resolution % 2
    width = 2 * round(height * FRAME_ASPECT / 2)
    return width, height


def write_clips(folder: Path, *, frames: int, resolution: int, seed: int) -> Clips:
    """The synthetic world's target and driver clips (H.264 + AAC at the default video settings) in
    frames `resolution` px high, with their landmark sidecars."""
    from reenact.config import Config
    from reenact.synthetic import SyntheticConfig, make_world, write_world

    width, height = frame_size(resolution)
    world_config = SyntheticConfig(
        seed=seed,
        resolution=WORLD_RESOLUTION,
        num_frames=frames,
        frame_width=width,
        frame_height=height,
        face_size=FACE_SHARE * height,
    )
    files = write_world(make_world(world_config), folder, video_config=Config().video, overwrite=True)
    return Clips(files.target_video, files.driver_video, files.target_landmarks, files.driver_landmarks)


def to_channels_last(module: Any) -> Any:
    """`module`'s 4-D parameters and buffers (the convolution weights) in channels-last memory format, in
    place: the convolutions then produce channels-last activations (cuDNN and oneDNN follow the weight)."""
    import torch

    return module.to(memory_format=torch.channels_last)


def random_lpips_heads(path: Path, *, net: str, seed: int) -> Path:
    """An LPIPS v0.1 head file with seeded random, non-negative weights (the real heads are not needed to
    time the loss)."""
    import torch

    from reenact.backbones import LPIPS_ARCH, LPIPS_CHANNELS

    generator = torch.Generator().manual_seed(seed)
    heads = {
        f"lin{index}.model.1.weight": torch.rand(1, channels, 1, 1, generator=generator)
        for index, channels in enumerate(LPIPS_CHANNELS[LPIPS_ARCH[net]])  # type: ignore[index]
    }
    torch.save(heads, path)
    return path


def bench_settings(steps: int | None) -> Any:
    """The settings `reenact transfer` runs with by default, with the inversion's and the tuning's step
    counts cut to `steps` if given."""
    from reenact_cli.common import settings_for

    settings = settings_for(None, None)
    if steps is None:
        return settings
    return settings.with_values(
        invert={"first_steps": steps, "warm_steps": steps},
        pti={"base_steps": steps, "max_steps": steps},
    )


def run_variant(
    clips: Clips, *, variant: Variant, device: str, resolution: int, steps: int | None, seed: int, work: Path
) -> dict[str, Any]:
    """One whole transfer of `clips` under `variant` (in this process): the run's JSON summary."""
    import torch

    from reenact import pipeline
    from reenact.device import maybe_compile, resolve_runtime
    from reenact.gan.stylegan2 import Generator, ffhq_config_f
    from reenact.generator_source import GeneratorSource
    from reenact.losses import LPIPS, Image2StyleGANPerceptual
    from reenact.workspace import Workspace

    runtime = resolve_runtime(device, precision=variant.precision, compile=variant.compile)
    settings = bench_settings(steps)
    torch.manual_seed(seed)
    generator = Generator(ffhq_config_f(resolution)).to(runtime.device).eval().requires_grad_(False)
    if variant.channels_last:
        to_channels_last(generator.synthesis)
    source = GeneratorSource(
        spec=f"random config F {resolution}", generator=generator, digest=f"bench-e2e-f{resolution}-{seed}",
        is_random=True,
    )  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    net = settings.pti.lpips_net
    lpips = LPIPS(
        net=net,
        heads_path=random_lpips_heads(work / f"lpips-{net}.pth", net=net, seed=seed),
        random_backbone=True,
        seed=seed,
        device=runtime.device,
    )
    perceptual = Image2StyleGANPerceptual(random_backbone=True, seed=seed, device=runtime.device)
    maybe_compile(generator.synthesis, runtime=runtime)  # as `pipeline.make_context` does
    context = pipeline.RunContext(
        workspace=Workspace(work / "workspace"),
        source=source,
        settings=settings,
        runtime=runtime,
        perceptual=perceptual,
        lpips=lpips,
    )
    report = pipeline.transfer(
        clips.target,
        clips.driver,
        work / "out.mp4",
        context=context,
        target_landmarks=str(clips.target_landmarks),
        driver_landmarks=str(clips.driver_landmarks),
    )
    return report.summary  # what `reenact transfer --json` prints: the benchmark counts what the CLI counts


# ------------------------------------------------------------------------------------------ figures


def run_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """A run summary's figures: seconds per output frame by row, renders per second by generator row,
    peak memory.

    A stage's seconds are its own compute time (the rank's work), since stages that run together (the
    two inversions) each report their joint wall-clock; a stage without parts (encode) gives its
    wall-clock."""
    frames = summary["frames"]
    work = summary["ranks"][0]["stages"]
    wall = {stage["name"]: stage["seconds"] for stage in summary["stages"]}
    seconds: dict[str, float] = {}
    renders: dict[str, dict[str, int]] = {}
    for row, names in STAGE_ROWS.items():
        seconds[row] = sum(work[name]["seconds"] if name in work else wall.get(name, 0.0) for name in names)
        renders[row] = {
            kind: sum(work[name]["renders"][kind] for name in names if name in work) for kind in RENDER_KINDS
        }
    per_second = {
        row: sum(renders[row].values()) / seconds[row] if seconds[row] > 0 else math.nan
        for row in RENDER_ROWS
    }
    return {
        "frames": frames,
        "seconds_per_frame": {
            **{row: s / frames for row, s in seconds.items()},
            "total": summary["seconds"] / frames,
        },
        "renders": renders,
        "renders_per_second": per_second,
        "peak_device_memory_bytes": summary["peak_device_memory_bytes"],
        "peak_memory_bytes": summary["peak_memory_bytes"],
    }


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over repeated runs of one variant (render counts are the same in all)."""

    def median(values: list[Any]) -> Any:
        return None if any(value is None for value in values) else statistics.median(values)

    first = runs[0]
    return {
        "frames": first["frames"],
        "seconds_per_frame": {
            row: median([run["seconds_per_frame"][row] for run in runs]) for row in first["seconds_per_frame"]
        },
        "renders": first["renders"],
        "renders_per_second": {
            row: median([run["renders_per_second"][row] for run in runs])
            for row in first["renders_per_second"]
        },
        "peak_device_memory_bytes": median([run["peak_device_memory_bytes"] for run in runs]),
        "peak_memory_bytes": median([run["peak_memory_bytes"] for run in runs]),
    }


def print_table(report: dict[str, Any]) -> None:
    """The figures as a table: one column per variant."""
    names = list(report["variants"])
    figures = [report["variants"][name] for name in names]
    steps = "config defaults" if report["steps"] is None else report["steps"]
    print(
        f"transfer of {report['frames']}-frame generated clips (target + driver), {report['resolution']} px "
        f"config F on {report['device']}, steps {steps}, median of {report['repeats']}"
    )
    header = f"{'seconds per frame':<22}" + "".join(f"{name:>14}" for name in names)
    print(header)
    print("-" * len(header))
    for row in [*STAGE_ROWS, "total"]:
        print(f"{row:<22}" + "".join(f"{entry['seconds_per_frame'][row]:>14.3f}" for entry in figures))
    print(f"{'renders per second':<22}")
    for row in RENDER_ROWS:
        print(
            f"{'  ' + row:<22}" + "".join(f"{entry['renders_per_second'][row]:>14.2f}" for entry in figures)
        )
    device = [entry["peak_device_memory_bytes"] for entry in figures]
    print(
        f"{'peak device MiB':<22}" + "".join(f"{'-' if d is None else f'{d / MIB:.0f}':>14}" for d in device)
    )
    print(f"{'peak host RSS MiB':<22}" + "".join(f"{e['peak_memory_bytes'] / MIB:>14.0f}" for e in figures))
    per_frame = {
        row: {kind: count / report["frames"] for kind, count in figures[0]["renders"][row].items()}
        for row in RENDER_ROWS
    }
    print(
        "renders per frame (fwd+bwd + forward): "
        + ", ".join(f"{row} {n['backward']:.1f} + {n['forward']:.1f}" for row, n in per_frame.items())
    )


# ------------------------------------------------------------------------------------------ driver


def child_run(args: argparse.Namespace) -> None:
    """`--child`: one run of one variant, its summary on stdout as one JSON line."""
    clips = Clips(**{key: Path(value) for key, value in json.loads(args.child_clips).items()})
    summary = run_variant(
        clips,
        variant=VARIANTS[args.child],
        device=args.device,
        resolution=args.resolution,
        steps=args.steps,
        seed=args.seed,
        work=Path(args.child_work),
    )
    print(json.dumps(summary))


def spawn_run(args: argparse.Namespace, *, variant: str, clips: Clips, work: Path) -> dict[str, Any]:
    """One run of `variant` in a fresh process (its own peak memory, compile caches and allocator)."""
    paths = json.dumps({key: str(path) for key, path in asdict(clips).items()})
    command = [
        sys.executable, __file__, "--child", variant, "--child-clips", paths, "--child-work", str(work),
        "--device", args.device, "--resolution", str(args.resolution), "--seed", str(args.seed),
    ]  # fmt: skip
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the {variant} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument(
        "--resolution", type=int, default=DEFAULT_RESOLUTION, help="generator resolution (px)"
    )
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help="frames of the target and the driver"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="inversion first/warm steps and tuning steps (default: config's)",
    )
    parser.add_argument(
        "--variants", nargs="+", choices=tuple(VARIANTS), default=None,
        help="default: all on cuda, fp32 on cpu",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--child-clips", help=argparse.SUPPRESS)
    parser.add_argument("--child-work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child_run(args)
        return
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    from reenact.device import resolve_device
    from reenact.errors import ReenactError

    try:
        resolve_device(args.device)  # no GPU: one line now, not a failed run after the clips are written
    except ReenactError as exc:
        raise SystemExit(f"error: {exc}") from None
    variants = args.variants or list(DEFAULT_VARIANTS[args.device])
    if not args.json:
        print(RANDOM_WEIGHTS_NOTICE, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as temp:
        root = Path(temp)
        clips = write_clips(root / "clips", frames=args.frames, resolution=args.resolution, seed=args.seed)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            for name in variants:
                summary = spawn_run(args, variant=name, clips=clips, work=root / f"run-{name}-{repeat}")
                runs[name].append(run_figures(summary))
                print(
                    f"repeat {repeat + 1}/{args.repeats}, {name}: {summary['seconds']:.1f} s", file=sys.stderr
                )
    report = {
        "notice": RANDOM_WEIGHTS_NOTICE,
        "device": args.device,
        "resolution": args.resolution,
        "frames": args.frames,
        "steps": args.steps,
        "repeats": args.repeats,
        "variants": {name: median_figures(figures) for name, figures in runs.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_table(report)


if __name__ == "__main__":
    main()
