"""The face world's targets (issue #27), each from one run of this script: samples with a face, inversion
of faces it was trained on and of faces it never saw, the demo on faces, and a real pair it never saw.

    python benchmarks/bench_face_world.py [--data face-world/data/faces-64.npz] [--duration 2]

- samples: the share of seeds 0-63 at truncation 0.7 (upscaled to 256 px) in which dlib finds a face;
- in-domain inversion: the held-out crops of the training clips (frames never trained on, of people it
  was), inverted by the face-world preset's inversion: PSNR, and the dlib descriptor distance between each
  crop and its inversion (both upscaled; dlib's own rule: under 0.6 is the same person);
- the demo on faces (`reenact demo`, 32 frames): face PSNR against its truth, the target's own, and the
  share of output frames with a face;
- a real pair it never saw (`build_face_data.KEPT_OUT`: a talking target and an expressive driver, the
  first `--duration` of the target): `reenact transfer --generator face-world`, its inversion and tuning
  PSNR (out of domain, before and after tuning), then `reenact evaluate --driver`: output faces nearer the
  target than the driver, and the correlation of the output's mouth opening with the driver's;
- how far the face world can open that target's mouth at all: the target's pivots (every
  `RANGE_STRIDE`-th) moved along the face world's expression direction, at fractions of the demo's
  expression, rendered by its tuned generator: the mean mouth opening dlib reads and the share of renders
  it still finds a face in; beside them, the world's own samples moved the same way.

Needs ../shared/testdata and the face data (`tools/build_face_data.py`). Prints one table per target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tools"))

from build_face_data import KEPT_OUT  # noqa: E402

from reenact.config import DEMO_FRAMES, Config  # noqa: E402
from reenact.demo import run_demo  # noqa: E402
from reenact.device import resolve_runtime  # noqa: E402
from reenact.face_world import (  # noqa: E402
    DEMO_EXPRESSION,
    EXPRESSION_LAYERS,
    FACE_WORLD,
    expression_direction,
    face_world_generator,
)
from reenact.faces.landmarks import DlibLandmarks  # noqa: E402
from reenact.files import load_arrays  # noqa: E402
from reenact.gan.checkpoints import load_generator  # noqa: E402
from reenact.gan.stylegan2 import Generator  # noqa: E402
from reenact.imaging import images_from_uint8, images_to_uint8  # noqa: E402
from reenact.invert import invert_clip  # noqa: E402
from reenact.metrics import IdentityEmbedder, rendered_mouth_openings  # noqa: E402
from reenact.sampling import (  # noqa: E402
    FACE_CHECK_TRUNCATION,
    FaceCounter,
    render_seeds,
    seed_latents,
    upscaled_for_check,
)
from reenact.stages.invert import Pivots  # noqa: E402
from reenact.stages.tune import GENERATOR_FILE  # noqa: E402
from reenact.synthetic import scaled_expression, w_std  # noqa: E402
from reenact.threads import use_threads  # noqa: E402

SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
SAMPLE_SEEDS = range(64)
SAME_PERSON_DISTANCE = 0.6
"""dlib's rule: descriptors of one person are nearer than this (Euclidean)."""
RANGE_FRACTIONS = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0)
"""Amounts of the demo's expression the mouth range moves faces by (1: the demo driver's whole amount)."""
RANGE_STRIDE = 4
"""Every this many target pivots are moved in the mouth range."""
RANGE_HEADER = (
    "amount of the demo's expression",
    "target: mouth",
    "target: faces",
    "samples: mouth",
    "samples: faces",
)
RANGE_SEEDS = range(12)
"""The world's own samples moved in the mouth range."""


def table(title: str, rows: list[tuple[str, ...]], *, header: tuple[str, ...] = ("figure", "value")) -> None:
    print(f"\n{title}\n| {' | '.join(header)} |\n|{' --- |' * len(header)}")
    for row in rows:
        print(f"| {' | '.join(row)} |")


def samples(generator: Generator) -> list[tuple[str, str]]:
    images = render_seeds(generator, list(SAMPLE_SEEDS), truncation=FACE_CHECK_TRUNCATION)
    rate = FaceCounter().rate(images)
    return [
        (f"seeds with a face (of {len(SAMPLE_SEEDS)}, truncation {FACE_CHECK_TRUNCATION})", f"{rate:.0%}")
    ]


def in_domain(generator: Generator, data: Path) -> list[tuple[str, str]]:
    """Each training clip's held-out crops, inverted as one chain per clip."""
    arrays = load_arrays(data)
    crops, sources = arrays["held_out"], arrays["held_out_source"]
    runtime = resolve_runtime("cpu")
    settings = Config.from_preset(FACE_WORLD)
    embedder = IdentityEmbedder()
    psnrs, distances = [], []
    for source in np.unique(sources):
        chosen = crops[sources == source]
        result = invert_clip(
            generator, images_from_uint8(chosen), config=settings.invert, perceptual=None, runtime=runtime
        )
        psnrs.extend(result.psnr.tolist())
        with torch.no_grad():
            renders = images_to_uint8(generator.synthesis(result.pivots, noise_mode="const")).numpy()
        for crop, render in zip(chosen, renders, strict=True):
            a, b = embedder.embed(upscaled_for_check(crop)), embedder.embed(upscaled_for_check(render))
            distances.append(np.nan if a is None or b is None else float(np.linalg.norm(a - b)))
    found = np.isfinite(distances)
    same = np.asarray(distances)[found] < SAME_PERSON_DISTANCE
    return [
        ("held-out crops (frames never trained on)", str(len(psnrs))),
        ("inversion PSNR, mean", f"{np.mean(psnrs):.2f} dB"),
        ("crop-to-inversion dlib distance, mean", f"{np.nanmean(distances):.3f}"),
        (
            f"pairs dlib calls the same person (< {SAME_PERSON_DISTANCE})",
            f"{same.mean():.0%} of {found.sum()}",
        ),
    ]


def demo(folder: Path) -> list[tuple[str, str]]:
    report = run_demo(folder, runtime=resolve_runtime("cpu"), num_frames=DEMO_FRAMES, world_name="faces")
    return [
        ("frames", str(DEMO_FRAMES)),
        ("face PSNR against the truth", f"{report.face_psnr:.2f} dB"),
        ("the target left as it is", f"{report.face_psnr_no_expression:.2f} dB"),
        ("output frames with a face (dlib, the face upscaled to about 224 px)", f"{report.face_rate:.0%}"),
        ("the truth's frames with a face (the same check)", f"{report.truth_face_rate:.0%}"),
        ("share of the driver's expression the output carries", f"{report.expression_share:.2f}"),
        ("seconds", f"{report.seconds:.0f}"),
    ]


def reenact(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "reenact_cli", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"reenact {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def stage(summary: dict, name: str) -> dict:
    return next(entry for entry in summary["stages"] if entry["name"] == name)


def real_pair(folder: Path, duration: str) -> tuple[list[tuple[str, str]], dict]:
    """The pair's figures, and the transfer's summary (`mouth_range` reads its workspace)."""
    target, driver = (SHARED_DIR / "testdata" / name for name in KEPT_OUT)
    output = folder / "pair.mp4"
    common = ["--workdir", str(folder / "work"), "--quiet", "--json"]
    summary = reenact(
        "transfer", str(target), str(driver), "-o", str(output), "--generator", FACE_WORLD,
        "--duration", duration, *common,
    )  # fmt: skip
    scores = reenact(
        "evaluate", str(output), "-r", str(target), "--driver", str(driver), "--duration", duration,
        "--no-lpips", "--no-people", *common,
    )  # fmt: skip
    figures = scores["summary"]["driver"]
    rows = [
        ("target, driver (kept out of training)", f"{target.name}, {driver.name}"),
        ("target frames", str(summary.get("frames", "?"))),
        ("threads the transfer computed with", str(summary["threads"])),
        ("target inversion PSNR (out of domain)", stage(summary, "tar-invert")["detail"]),
        ("target tuning PSNR (before -> after)", stage(summary, "tar-tune")["detail"]),
        ("driver inversion PSNR (out of domain)", stage(summary, "dri-invert")["detail"]),
        ("output faces nearer the target than the driver", f"{figures['nearer_reference_share']:.0%}"),
        (
            "mouth opening correlation with the driver",
            f"{figures['mouth_correlation']} over {figures['mouth_frames']} frames with the output's face",
        ),
        ("the target's own mouth correlation with the driver", f"{figures['mouth_correlation_reference']}"),
    ]
    return rows, summary


@torch.no_grad()
def mouth_range(world: Generator, summary: dict) -> list[tuple[str, ...]]:
    """The mouth opening and face share of the pair's target and of the face world `world`'s samples, moved
    along its expression direction by `RANGE_FRACTIONS` of the demo's expression (module docstring)."""
    tuned = load_generator(Path(stage(summary, "tar-tune")["location"]) / GENERATOR_FILE, device="cpu")
    pivots = Pivots.load(Path(stage(summary, "tar-invert")["location"]))
    target = pivots.ws[0 : len(pivots.frames)][::RANGE_STRIDE]  # [n, num_ws, w_dim]
    z = seed_latents(RANGE_SEEDS, z_dim=world.z_dim)
    samples = world.mapping(z, truncation_psi=FACE_CHECK_TRUNCATION)  # [m, num_ws, w_dim]
    mask = torch.zeros(world.num_ws, dtype=torch.bool)
    mask[list(EXPRESSION_LAYERS)] = True
    demo = scaled_expression(
        expression_direction(), spread=w_std(world), size=DEMO_EXPRESSION, layer_mask=mask
    )
    landmarks = DlibLandmarks()
    rows = []
    for fraction in RANGE_FRACTIONS:
        cells = []
        for generator, codes in ((tuned, target), (world, samples)):
            images = images_to_uint8(generator.synthesis(codes + fraction * demo, noise_mode="const")).numpy()
            openings = rendered_mouth_openings(images, landmarks)  # [N]
            found = np.isfinite(openings)
            mean = f"{openings[found].mean():.3f}" if found.any() else "-"
            cells += [mean, f"{found.mean():.0%} of {len(openings)}"]
        rows.append((f"{fraction:+.2f}", *cells))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "face-world" / "data" / "faces-64.npz")
    parser.add_argument("--duration", default="2", help="seconds of the real target transferred")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: samples,inversion,demo,pair"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    use_threads(None)
    generator = face_world_generator()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if "samples" not in skip:
            table("samples", samples(generator))
        if "inversion" not in skip:
            table("in-domain inversion", in_domain(generator, args.data))
        if "demo" not in skip:
            table("the demo on faces", demo(folder / "demo"))
        if "pair" not in skip:
            rows, summary = real_pair(folder, args.duration)
            table("a real pair never trained on", rows)
            table(
                "how far the face world opens the pair's target's mouth (dlib, eye distances)",
                mouth_range(generator, summary),
                header=RANGE_HEADER,
            )
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s; torch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
