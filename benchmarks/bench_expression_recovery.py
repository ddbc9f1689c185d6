"""Where the face demo's expression is lost: how well each way of reading the driver recovers offsets that
draw the truth's expression on the target (issue #27).

Examples:
    python benchmarks/bench_expression_recovery.py                  # the demo's 32 frames, every 2nd fitted
    python benchmarks/bench_expression_recovery.py --stride 1 --json

It runs `reenact demo` (the face world) in a temporary folder, then, for the driver's frames, takes
expression offsets `d[t]` on the expression layers in five ways and applies each to the world's **true**
target code with the face world's generator. Neither the target's inversion nor its tuning takes part, so
each row measures the driver alone. Rows:

- nothing: no offsets (the target left as it is);
- pipeline: the offsets the transfer takes (`edit.driver_deltas` of the demo's driver pivots);
- W base, crops: the driver's reference crop fitted in W (one w for every layer), then each frame's
  expression layers fitted to its video crop from there, every other layer held at the base;
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
from collections.abc import Callable
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.config import DEMO_FRAMES, Config, InvertConfig  # noqa: E402
from reenact.demo import run_demo, scaled_frames  # noqa: E402
from reenact.device import resolve_runtime  # noqa: E402
from reenact.edit import driver_deltas, layer_mask  # noqa: E402
from reenact.face_world import FACE_WORLD, face_world_generator, make_face_world  # noqa: E402
from reenact.gan.stylegan2 import Generator  # noqa: E402
from reenact.invert import psnr, start_latents  # noqa: E402
from reenact.stages.crops import CropStore  # noqa: E402
from reenact.stages.invert import Pivots  # noqa: E402
from reenact.synthetic import SyntheticConfig  # noqa: E402
from reenact.threads import use_threads  # noqa: E402

FIT_STEPS = 100
"""L-BFGS iterations of each frame's expression fit (and of the base's W fit, times `BASE_FACTOR`)."""
BASE_FACTOR = 3
CLOSE_TO_TRUE = 1.0
"""Frames whose true offsets are shorter than this (in w units) are left out of the share and cosine."""


def psnr_db(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean PSNR over frames of images [N, 3, R, R] in [-1, 1]."""
    return float(psnr(images, reference).mean())


def lbfgs_fit(
    generator: Generator,
    compose: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int,
) -> torch.Tensor:
    """The free values `start` fitted so that `generator.synthesis(compose(free))` draws `target`
    [1, 3, R, R]."""
    free = start.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([free], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = (generator.synthesis(compose(free), noise_mode="const") - target).square().mean()
        loss.backward()
        return loss

    optimiser.step(closure)
    return free.detach()


def w_base(generator: Generator, target: torch.Tensor, *, config: InvertConfig, steps: int) -> torch.Tensor:
    """A code [1, L, w_dim] in W (one w for every layer) fitted to `target` from the closest of the
    preset's start samples (`invert.start_latents`)."""
    start = start_latents(generator, target, config=config, layers=1)[:, 0]  # [1, W]
    w = lbfgs_fit(
        generator, lambda free: free[:, None].repeat(1, generator.num_ws, 1), start, target, steps=steps
    )
    return w[:, None].repeat(1, generator.num_ws, 1)


def expression_fits(
    generator: Generator, bases: torch.Tensor, targets: torch.Tensor, *, mask: torch.Tensor, steps: int
) -> tuple[torch.Tensor, float]:
    """Each target [N, 3, R, R] fitted on the expression layers alone from its base [N, L, W]: the fitted
    codes [N, L, W] and their mean PSNR against the targets."""
    fitted = bases.clone()
    for index in range(len(targets)):
        base = bases[index : index + 1]

        def compose(free: torch.Tensor, base: torch.Tensor = base) -> torch.Tensor:
            code = base.clone()
            code[:, mask] = free
            return code

        fitted[index, mask] = lbfgs_fit(
            generator, compose, base[:, mask], targets[index : index + 1], steps=steps
        )[0]
    with torch.no_grad():
        fit = psnr_db(generator.synthesis(fitted, noise_mode="const"), targets)
    return fitted, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES, help="the demo's frames")
    parser.add_argument("--stride", type=int, default=2, help="fit every N-th driver frame")
    parser.add_argument(
        "--frame-scale", type=float, default=1.0, help="the demo world's frame and face size, times"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_threads(None, small_work=True)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="bench-expression-") as temp:
        folder = Path(temp) / "demo"
        run_demo(folder, runtime=resolve_runtime("cpu"), num_frames=args.frames, frame_scale=args.frame_scale)
        report = json.loads((folder / "report.json").read_text())
        stages = [stage for stage in report["stages"] if stage.get("location")]
        where = {stage["name"]: Path(stage["location"]) for stage in stages}
        pivots = Pivots.load(where["dri-invert"])
        crops = CropStore(where["dri-crops"])
        driver_ws = pivots.ws[0 : len(pivots.frames)]  # [N, L, W]
        crop_images = crops[0 : len(crops)]  # [N, 3, R, R]
        frames = pivots.frames

    settings = Config.from_preset(FACE_WORLD)
    generator = face_world_generator().requires_grad_(False)
    base = scaled_frames(SyntheticConfig(num_frames=args.frames), scale=args.frame_scale)
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
    deltas, _ = driver_deltas(
        driver_ws, frames, num_frames=args.frames, config=settings.edit, w_avg=w_avg, ref=ref
    )
    with torch.no_grad():
        crops_fit = psnr_db(generator.synthesis(driver_ws, noise_mode="const"), crop_images)
    rows.append(row("pipeline", deltas[chosen], crops_fit))
    steps = FIT_STEPS
    for name, pictures in (("W base, crops", crop_images), ("W base, renders", renders)):
        base = w_base(generator, pictures[ref : ref + 1], config=settings.invert, steps=steps * BASE_FACTOR)
        fitted, fit = expression_fits(
            generator, base.repeat(len(chosen), 1, 1), pictures[chosen], mask=mask, steps=steps
        )
        rows.append(row(name, fitted - base, fit))
    oracle_bases = true_driver[chosen].clone()
    oracle_bases[:, mask] = true_driver[ref : ref + 1, mask]
    fitted, fit = expression_fits(generator, oracle_bases, renders[chosen], mask=mask, steps=steps)
    rows.append(row("true base, renders", fitted - oracle_bases, fit))

    if args.json:
        print(
            json.dumps(
                {
                    "crops_vs_renders_db": round(crops_vs_renders, 2),
                    "driver_ref": ref,
                    "frames": args.frames,
                    "frame_scale": args.frame_scale,
                    "stride": args.stride,
                    "rows": rows,
                }
            )
        )
        return
    print(
        f"face demo, {args.frames} frames (every {args.stride}), frames and face {args.frame_scale:g}x, "
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
