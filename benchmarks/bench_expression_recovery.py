"""Where the face demo's expression is lost: how well each way of reading the driver recovers offsets that
draw the truth's expression on the target (issue #27).

Examples:
    python benchmarks/bench_expression_recovery.py                  # the demo's 32 frames, every 2nd fitted
    python benchmarks/bench_expression_recovery.py --stride 1 --json

It runs `reenact demo` (the face world) in a temporary folder, then, for the driver's frames, takes
expression offsets `d[t]` on the expression layers in four ways and applies each to the world's **true**
target code with the face world's generator. Neither the target's inversion nor its tuning takes part, so
each row measures the driver alone. Rows:

- nothing: no offsets (the target left as it is);
- W+ pivots: the offsets between the driver's W+ pivots (`edit.driver_base = "pivots"`, the default);
- pipeline: W base: the offsets the face world's transfer takes (`edit.driver_base = "w"`: the neutral
  crop fitted in W, then each frame's expression layers alone from there, `stages.expression`);
- W base, renders: the same on the driver's own renders (no video, no alignment);
- true base, renders: every layer but the expression ones at the driver's true code, the expression
  layers fitted to its render from the true reference code (an oracle: it knows all but the expression).

Columns: the driver's fit (PSNR of the fitted code's render against what it was fitted to), the target's
crops against the truth's crops `G(w_target + d_true)` (PSNR), how much of the true offsets the offsets
carry (projection share) and their cosine to them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.config import DEMO_FRAMES, Config  # noqa: E402
from reenact.demo import demo_world_config, run_demo  # noqa: E402
from reenact.device import resolve_runtime  # noqa: E402
from reenact.edit import driver_deltas, layer_mask  # noqa: E402
from reenact.face_world import FACE_WORLD, face_world_generator, make_face_world  # noqa: E402
from reenact.gan.stylegan2 import Generator  # noqa: E402
from reenact.invert import fit_in_w, psnr, refit_frames  # noqa: E402
from reenact.stages.crops import CropStore  # noqa: E402
from reenact.stages.invert import Pivots  # noqa: E402
from reenact.synthetic import SyntheticConfig  # noqa: E402
from reenact.threads import use_threads  # noqa: E402

CPU = resolve_runtime("cpu")
DEMO_BASE_WIDTH = SyntheticConfig().frame_width
"""The unscaled world's frame width: a world's frame scale is its width over this."""
CLOSE_TO_TRUE = 1.0
"""Frames whose true offsets are shorter than this (in w units) are left out of the share and cosine."""


def psnr_db(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean PSNR over frames of images [N, 3, R, R] in [-1, 1]."""
    return float(psnr(images, reference).mean())


def expression_rows(
    generator: Generator, bases: torch.Tensor, pictures: torch.Tensor, *, settings: Config, mask: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Each picture [N, 3, R, R] fitted on the expression layers `mask` alone from its base [N, L, W], as the
    transfer does with `edit.driver_base = "w"` (`invert.refit_frames(free=)`): the codes [N, L, W] and
    their mean PSNR against the pictures."""
    fitted, _ = refit_frames(
        generator, pictures, bases, config=settings.invert, perceptual=None, runtime=CPU,
        steps=settings.edit.expression_steps, free=mask,
    )  # fmt: skip
    with torch.no_grad():
        fit = psnr_db(generator.synthesis(fitted, noise_mode="const"), pictures)
    return fitted, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES, help="the demo's frames")
    parser.add_argument("--stride", type=int, default=2, help="fit every N-th driver frame")
    parser.add_argument(
        "--frame-scale",
        type=float,
        default=None,
        help="the world's frame and face size over 128x96 and 56 px (default: the demo's own)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_threads(None, small_work=True)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="bench-expression-") as temp:
        folder = Path(temp) / "demo"
        run_demo(folder, runtime=CPU, num_frames=args.frames, frame_scale=args.frame_scale)
        report = json.loads((folder / "report.json").read_text())
        stages = [stage for stage in report["stages"] if stage.get("location")]
        where = {stage["name"]: Path(stage["location"]) for stage in stages}
        pivots = Pivots.load(where["dri-invert"])
        fits = Pivots.load(where["dri-expression"])
        crops = CropStore(where["dri-crops"])
        driver_ws = pivots.ws[0 : len(pivots.frames)]  # [N, L, W]
        fitted_ws = fits.ws[0 : len(fits.frames)]  # [N, L, W]
        crop_images = crops[0 : len(crops)]  # [N, 3, R, R]
        frames = pivots.frames

    settings = Config.from_preset(FACE_WORLD)
    generator = face_world_generator().requires_grad_(False)
    base = demo_world_config("faces", num_frames=args.frames, frame_scale=args.frame_scale)
    world = make_face_world(base, generator=generator)
    mask = layer_mask(settings.edit.layers, num_ws=generator.num_ws).bool()  # [L]
    ref = int(report["driver_ref"])
    chosen = torch.arange(0, args.frames, args.stride)
    true_driver = world.driver.ws  # [T, L, W]
    true_offsets = (true_driver - true_driver[ref : ref + 1]) * mask[None, :, None]
    with torch.no_grad():
        renders = generator.synthesis(true_driver, noise_mode="const")
        truth = generator.synthesis(world.target.ws[chosen] + true_offsets[chosen], noise_mode="const")

    def row(name: str, offsets: torch.Tensor, fit: float | None) -> dict:
        offsets = offsets * mask[None, :, None]  # [n, L, W]
        with torch.no_grad():
            out = generator.synthesis(world.target.ws[chosen] + offsets, noise_mode="const")
        flat, true = offsets[:, mask].flatten(1), true_offsets[chosen][:, mask].flatten(1)
        moving = true.norm(dim=1) > CLOSE_TO_TRUE
        share = (flat * true).sum(1) / true.norm(dim=1).square().clamp_min(1e-12)
        cosine = torch.nn.functional.cosine_similarity(flat, true, dim=1)
        return {
            "way": name,
            "driver_fit_db": None if fit is None else round(fit, 2),
            "target_vs_truth_db": round(psnr_db(out, truth), 2),
            "share": round(float(share[moving].mean()), 2),
            "cosine": round(float(cosine[moving].mean()), 2),
        }

    crops_vs_renders = psnr_db(crop_images[: len(renders)], renders[: len(crop_images)])
    rows = [row("nothing", torch.zeros_like(true_offsets[chosen]), None)]
    w_avg = generator.mapping.w_avg
    for name, codes in (("W+ pivots", driver_ws), ("pipeline: W base", fitted_ws)):
        deltas, _ = driver_deltas(
            codes, frames, num_frames=args.frames, config=settings.edit, w_avg=w_avg, ref=ref
        )
        with torch.no_grad():
            fit = psnr_db(generator.synthesis(codes, noise_mode="const"), crop_images)
        rows.append(row(name, deltas[chosen], fit))
    in_w, _ = fit_in_w(
        generator, renders[ref : ref + 1], config=settings.invert, perceptual=None, runtime=CPU,
        steps=settings.edit.base_steps,
    )  # fmt: skip
    fitted, fit = expression_rows(
        generator, in_w.repeat(len(chosen), 1, 1), renders[chosen], settings=settings, mask=mask
    )
    rows.append(row("W base, renders", fitted - in_w, fit))
    oracle_bases = true_driver[chosen].clone()
    oracle_bases[:, mask] = true_driver[ref : ref + 1, mask]
    fitted, fit = expression_rows(generator, oracle_bases, renders[chosen], settings=settings, mask=mask)
    rows.append(row("true base, renders", fitted - oracle_bases, fit))

    if args.json:
        print(
            json.dumps(
                {
                    "crops_vs_renders_db": round(crops_vs_renders, 2),
                    "driver_ref": ref,
                    "frames": args.frames,
                    "frame_scale": base.frame_width / DEMO_BASE_WIDTH,
                    "stride": args.stride,
                    "rows": rows,
                }
            )
        )
        return
    scale = base.frame_width / DEMO_BASE_WIDTH
    print(
        f"face demo, {args.frames} frames (every {args.stride}), frames and face {scale:g}x, "
        f"driver reference frame {ref}"
    )
    print(f"the driver's video crops against its own renders: {crops_vs_renders:.2f} dB")
    print(f"{'way':<20} {'driver fit':>10} {'target vs truth':>16} {'share':>6} {'cosine':>7}")
    for item in rows:
        fit = "-" if item["driver_fit_db"] is None else f"{item['driver_fit_db']:.2f} dB"
        print(
            f"{item['way']:<20} {fit:>10} {item['target_vs_truth_db']:>13.2f} dB "
            f"{item['share']:>6.2f} {item['cosine']:>7.2f}"
        )


if __name__ == "__main__":
    main()
