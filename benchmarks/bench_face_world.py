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
  target than the driver, and the correlation of the output's mouth opening with the driver's.

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
from reenact.face_world import FACE_WORLD, face_world_generator  # noqa: E402
from reenact.files import load_arrays  # noqa: E402
from reenact.gan.stylegan2 import Generator  # noqa: E402
from reenact.imaging import images_from_uint8, images_to_uint8  # noqa: E402
from reenact.invert import invert_clip  # noqa: E402
from reenact.metrics import IdentityEmbedder  # noqa: E402
from reenact.sampling import FACE_CHECK_TRUNCATION, FaceCounter, render_seeds, upscaled_for_check  # noqa: E402
from reenact.threads import use_threads  # noqa: E402

SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
SAMPLE_SEEDS = range(64)
SAME_PERSON_DISTANCE = 0.6
"""dlib's rule: descriptors of one person are nearer than this (Euclidean)."""


def table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}\n| figure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


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


def real_pair(folder: Path, duration: str) -> list[tuple[str, str]]:
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
    return [
        ("target, driver (kept out of training)", f"{target.name}, {driver.name}"),
        ("target frames", str(summary.get("frames", "?"))),
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
            table("a real pair never trained on", real_pair(folder, args.duration))
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s; torch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
