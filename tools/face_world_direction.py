"""Find the face world's expression direction: invert a talking clip's face crops into the face world's W+
and keep the principal direction (on the expression layers) that opens the mouth most (issue #27).

    python tools/face_world_direction.py --data face-world/data/faces-64.npz [--source lp_driving_d3.mp4]

Writes `reenact/weights/face_world/expression.npy` ([num_ws, w_dim] float32, unit length, oriented so that
+ opens the mouth), which the demo on faces moves its driver along, and prints each candidate's figures:
its share of the clip's variance and the mouth opening (dlib landmarks, in eye distances) of the clip's
mean face moved `--probe` standard deviations each way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.config import Config  # noqa: E402
from reenact.device import resolve_runtime  # noqa: E402
from reenact.errors import ReenactError  # noqa: E402
from reenact.face_world import (  # noqa: E402
    EXPRESSION_LAYERS,
    EXPRESSION_RESOURCE,
    FACE_WORLD,
    face_world_generator,
    principal_directions,
)
from reenact.faces.landmarks import DlibLandmarks  # noqa: E402
from reenact.files import load_arrays  # noqa: E402
from reenact.imaging import images_from_uint8, images_to_uint8  # noqa: E402
from reenact.invert import invert_clip  # noqa: E402
from reenact.metrics import rendered_mouth_openings  # noqa: E402
from reenact.threads import use_threads  # noqa: E402

CANDIDATES = 3
"""Principal directions tried, largest variance first."""
SPLITS = ("train", "held_out")


def source_crops(data: Path, source: str) -> np.ndarray:
    """The crops [N, R, R, 3] uint8 of one source file of a `faces-R.npz`, both splits, in frame order."""
    manifest = json.loads((data.parent / "manifest.json").read_text())
    names = [entry["file"] for entry in manifest["sources"]]
    if source not in names:
        raise ReenactError(f"{source} is not a source of {data} (it has {', '.join(names)})")
    index = names.index(source)
    arrays = load_arrays(data)
    crops, frames = [], []
    for split in SPLITS:
        chosen = arrays[f"{split}_source"] == index
        crops.append(arrays[split][chosen])
        frames.append(arrays[f"{split}_frame"][chosen])
    order = np.argsort(np.concatenate(frames), kind="stable")
    return np.concatenate(crops)[order]


def mouth_of(images: np.ndarray, landmarks: DlibLandmarks) -> float:
    """Mean mouth opening of the faces dlib finds in uint8 images [N, R, R, 3] (NaN where none is found)."""
    openings = rendered_mouth_openings(images, landmarks)  # [N]
    return float(np.nanmean(openings)) if np.isfinite(openings).any() else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="faces-64.npz of build_face_data.py")
    parser.add_argument("--source", default="lp_driving_d3.mp4", help="the talking clip (a source file name)")
    parser.add_argument("--probe", type=float, default=2.0, help="standard deviations the mouth is probed at")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reenact" / EXPRESSION_RESOURCE)
    args = parser.parse_args()
    try:
        use_threads(None)
        runtime = resolve_runtime("cpu")
        generator = face_world_generator(device=runtime.device)
        crops = source_crops(args.data, args.source)
        settings = Config.from_preset(FACE_WORLD)
        result = invert_clip(
            generator, images_from_uint8(crops), config=settings.invert, perceptual=None, runtime=runtime
        )
        print(f"{len(crops)} crops of {args.source}: inversion PSNR {result.psnr.mean():.2f} dB")
        pivots = result.pivots  # [N, num_ws, w_dim]
        directions = principal_directions(pivots, layers=EXPRESSION_LAYERS, count=CANDIDATES)
        centre = pivots.mean(dim=0)  # [num_ws, w_dim]
        centred = (pivots - centre).reshape(len(pivots), -1)
        total = float((centred**2).sum())
        landmarks = DlibLandmarks()
        best, best_change = 0, 0.0
        for index, direction in enumerate(directions):
            spread = float((centred @ direction.reshape(-1)).std())
            probes = torch.stack([centre + sign * args.probe * spread * direction for sign in (-1.0, 1.0)])
            with torch.no_grad():
                images = images_to_uint8(generator.synthesis(probes, noise_mode="const")).numpy()
            closed, opened = (mouth_of(image[None], landmarks) for image in images)
            change = opened - closed
            share = float((centred @ direction.reshape(-1)).square().sum()) / total
            print(f"direction {index}: {share:.1%} of the variance, mouth {closed:.3f} -> {opened:.3f}")
            if np.isfinite(change) and abs(change) > abs(best_change):
                best, best_change = index, change
        if best_change == 0.0:
            raise ReenactError("no candidate direction moves a mouth dlib can see")
        chosen = directions[best] * float(np.sign(best_change))  # + opens the mouth
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, chosen.numpy().astype(np.float32))
        print(f"direction {best} (mouth opening {abs(best_change):.3f} over ±{args.probe} sd) -> {args.out}")
    except ReenactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
