"""W+ inversion of a whole clip (Image2StyleGAN, Abdal et al. ICCV 2019), warm-started over time.

Loss per frame: `perceptual_weight * perceptual(G(w), x) + mse_weight * MSE(G(w), x)`, minimised by
Adam (or L-BFGS, below) over the latents only (the generator is not touched). Consecutive frames of
a clip differ little, so after frame 0 (from `w_avg` or the best of `start_samples` random samples,
full budget `first_steps`) the clip is processed in batches of `batch_size` consecutive frames, each
batch starting from the previous batch's last pivot and given only `warm_steps`. A warm batch also
inherits Adam's moments from the previous batch's last frame:
with fresh moments Adam's first steps are full-size in every coordinate, which kicks the latents off
the neighbour's solution and lets the directions the image barely constrains wander (on the synthetic
world the pivots then moved 1.6x as fast as the truth; with the handover 1.1x, at the same PSNR).
Adam is per-element, so frames in one batch are optimised independently; batching only shares the
generator calls. Each run follows stylegan2-ada's projector learning-rate ramps and stops early when
its loss plateaus. `mode="cold"` starts every frame from `w_avg` with the full budget: the baseline
that `benchmarks/bench_invert.py` compares with.

`optimiser="lbfgs"` replaces Adam by L-BFGS with a strong-Wolfe line search, one frame per run: the
loss is deterministic, so curvature estimates and line searches apply, and a warm-started frame needs
a few dozen iterations where Adam needs a few hundred steps (synthetic world: 30 iterations fit the
driver as well as 200 steps, at a sixth of the renders; `configs/synthetic.toml` uses it).

Every frame keeps its best latent seen (lowest loss), so a late overshoot never costs quality.
The procedure has no randomness (fixed start, fixed noise), so results are reproducible bit for bit
on one device; `perceptual` nets must be deterministic too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from reenact.config import InvertConfig
from reenact.device import Runtime, autocast, full_precision, to_device
from reenact.gan.stylegan2 import Generator
from reenact.imaging import UNIT_RANGE_PEAK, CropSource, psnr_from_mse
from reenact.losses import mse, weighted_image_loss
from reenact.progress import SILENT, Progress
from reenact.renders import NONE, Renders

MIN_MSE = 1e-12
"""Errors are clamped to this before the PSNR, so an exact fit reads about 126 dB, not infinity."""
LR_RAMPUP = 0.05
LR_RAMPDOWN = 0.25
"""Learning-rate schedule over a run's step budget, as stylegan2-ada-pytorch's `projector.py`: cosine
ramp-up over the first 5% (a warm start is not kicked away by Adam's first, full-size steps), cosine
ramp-down over the last 25% (the latents settle)."""


@dataclass(frozen=True)
class InvertReport:
    """What the `on_batch` callback receives after each batch."""

    frames_done: int
    num_frames: int
    steps: int
    """Optimiser steps the batch just finished took."""
    loss: float
    """Mean best loss of the batch's frames."""
    psnr: float
    """Mean PSNR (dB) of the batch's frames at their best latents."""


@dataclass
class InversionResult:
    """Pivots of a clip and what they cost."""

    pivots: torch.Tensor
    """Best latents [N, num_ws, w_dim] (in `w` space all layers are equal)."""
    loss: torch.Tensor
    """Loss of each frame at its pivot, [N]."""
    psnr: torch.Tensor
    """PSNR in dB of each frame's render at its pivot, [N]."""
    steps: list[int]
    """Optimiser steps taken by each optimisation run (frame 0 alone, then each batch)."""
    renders: Renders
    """Images rendered by the generator (Adam: a batch per step; L-BFGS: its line searches' renders)."""
    seconds: float
    """Wall-clock time of the inversion."""


@dataclass(frozen=True)
class AdamState:
    """Adam's moments for one frame's latents ([1, K, w_dim] each), handed on to the next batch."""

    step: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor


@dataclass(frozen=True)
class RunResult:
    """One optimisation run over a batch of frames."""

    latents: torch.Tensor
    """Best latents seen [B, num_ws, w_dim]."""
    loss: torch.Tensor
    """Their loss [B]."""
    psnr: torch.Tensor
    """Their PSNR in dB [B]."""
    steps: int
    """Optimiser steps (Adam) or iterations (L-BFGS) taken."""
    renders: Renders
    adam_state: AdamState | None = None
    """Adam's moments of the batch's last frame, for the next batch (None for L-BFGS)."""


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair in [-1, 1]: [N, C, H, W] x2 -> [N]."""
    return psnr_from_mse(mse(x, y).clamp_min(MIN_MSE), peak=UNIT_RANGE_PEAK)


def learning_rate(step: int, *, steps: int, base: float) -> float:
    """Learning rate at `step` of a run of `steps` (ramp-up, flat, ramp-down)."""
    progress = step / steps
    ramp_down = min(1.0, (1.0 - progress) / LR_RAMPDOWN)
    ramp_down = 0.5 - 0.5 * math.cos(ramp_down * math.pi)
    ramp_up = min(1.0, (step + 1) / max(LR_RAMPUP * steps, 1.0))
    return base * ramp_down * ramp_up


def plateaued(history: list[float], *, window: int, tolerance: float) -> bool:
    """True when the loss fell by less than `tolerance` (relative) over the last `window` steps."""
    if window == 0 or len(history) <= window:
        return False
    before, now = history[-window - 1], history[-1]
    return (before - now) <= tolerance * abs(before)


def frame_loss(
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    perceptual: nn.Module | None,
    config: InvertConfig,
) -> torch.Tensor:
    """Per-frame loss [N] of renders against targets, both [N, 3, R, R] in [-1, 1]."""
    return weighted_image_loss(
        images,
        targets,
        pixel_weight=config.mse_weight,
        perceptual=perceptual,
        perceptual_weight=config.perceptual_weight,
    )


def start_latents(
    generator: Generator,
    targets: torch.Tensor,
    *,
    config: InvertConfig,
    layers: int,
) -> torch.Tensor:
    """Starting latents [B, K, w_dim] for runs from scratch on `targets` [B, 3, R, R].

    `w_avg` for every frame when `config.start_samples` is 0; otherwise each frame's closest (pixel MSE)
    of `start_samples` seeded samples `mapping(z)`, rendered `batch_size` at a time.
    """
    device, dtype = targets.device, targets.dtype
    w_avg = generator.mapping.w_avg.to(device=device, dtype=dtype)
    if config.start_samples == 0:
        return w_avg.reshape(1, 1, -1).expand(targets.shape[0], layers, -1)
    rng = torch.Generator().manual_seed(config.start_seed)
    z = torch.randn(config.start_samples, generator.z_dim, generator=rng).to(device=device, dtype=dtype)
    with torch.no_grad():
        candidates = generator.mapping(z)[:, 0]  # [S, w_dim]
        errors = []
        for chunk in candidates.split(config.batch_size):
            images = generator.synthesis(chunk[:, None].expand(-1, generator.num_ws, -1), noise_mode="const")
            errors.append(torch.cdist(targets.flatten(1), images.flatten(1)))  # [B, chunk]
        closest = torch.cat(errors, dim=1).argmin(dim=1)  # [B]
    return candidates[closest][:, None].expand(-1, layers, -1)  # [B, K, w_dim]


class BestSeen:
    """The lowest-loss latents seen so far for each frame of a run, with their loss and PSNR."""

    def __init__(self, start: torch.Tensor) -> None:
        self.latents = start.detach().clone()  # [B, K, w_dim]
        self.loss = torch.full((start.shape[0],), math.inf, device=start.device)  # [B]
        self.psnr = torch.zeros_like(self.loss)  # [B]

    @torch.no_grad()
    def update(
        self, latents: torch.Tensor, images: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ) -> None:
        """Keep `latents` [B, K, w_dim] where their `loss` [B] (renders `images`) beats the best so far."""
        better = loss < self.loss
        self.latents[better] = latents.detach()[better]
        self.loss = torch.where(better, loss.detach(), self.loss)
        self.psnr = torch.where(better, psnr(images.detach(), targets), self.psnr)


def optimise_batch(
    generator: Generator,
    targets: torch.Tensor,
    start: torch.Tensor,
    *,
    steps: int,
    base_learning_rate: float,
    perceptual: nn.Module | None,
    config: InvertConfig,
    adam_state: AdamState | None = None,
) -> RunResult:
    """Adam on latents from `start` towards `targets` [B, 3, R, R] for at most `steps` steps.

    `start`: [B, K, w_dim] with K = num_ws (W+) or 1 (W, broadcast to every layer).
    """
    num_ws = generator.num_ws
    latents = start.detach().clone().requires_grad_(True)  # [B, K, w_dim]
    optimiser = torch.optim.Adam([latents], lr=base_learning_rate)
    if adam_state is not None:
        size = latents.shape[0]
        optimiser.state[latents] = {
            "step": adam_state.step.clone(),
            "exp_avg": adam_state.exp_avg.expand(size, -1, -1).clone(),
            "exp_avg_sq": adam_state.exp_avg_sq.expand(size, -1, -1).clone(),
        }
    best = BestSeen(latents)
    history: list[float] = []
    taken = 0
    renders = NONE
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, steps=steps, base=base_learning_rate)
        ws = latents.expand(-1, num_ws, -1)  # [B, num_ws, w_dim]
        images = generator.synthesis(ws, noise_mode="const")  # [B, 3, R, R]
        loss = frame_loss(images, targets, perceptual=perceptual, config=config)  # [B]
        taken += 1
        best.update(latents, images, targets, loss)
        history.append(float(loss.detach().sum()))
        if plateaued(history, window=config.plateau_window, tolerance=config.plateau_tolerance):
            renders += Renders(forward=len(images))
            break
        renders += Renders(backward=len(images))
        # Only the latents' gradient: no gradient is accumulated into the generator's parameters.
        (grad,) = torch.autograd.grad(loss.sum(), [latents])
        optimiser.zero_grad(set_to_none=True)
        latents.grad = grad
        optimiser.step()
    state = optimiser.state[latents]
    if state:
        last = AdamState(
            step=state["step"], exp_avg=state["exp_avg"][-1:], exp_avg_sq=state["exp_avg_sq"][-1:]
        )
    else:  # stopped before the first update
        last = adam_state or AdamState(
            step=torch.zeros([]),
            exp_avg=torch.zeros_like(latents[-1:]),
            exp_avg_sq=torch.zeros_like(latents[-1:]),
        )
    return RunResult(
        latents=best.latents.expand(-1, num_ws, -1).clone(),
        loss=best.loss,
        psnr=best.psnr,
        steps=taken,
        renders=renders,
        adam_state=last,
    )


def optimise_lbfgs(
    generator: Generator,
    target: torch.Tensor,
    start: torch.Tensor,
    *,
    steps: int,
    perceptual: nn.Module | None,
    config: InvertConfig,
) -> RunResult:
    """L-BFGS with a strong-Wolfe line search on one frame's latents from `start` [1, K, w_dim] towards
    `target` [1, 3, R, R], for at most `steps` iterations (torch's own tolerances may stop it sooner).

    The line search compares losses of nearby latents, so the whole run is in full precision even under
    the run's bf16 autocast. Each iteration renders once or more (its line search), every render with
    its gradient.
    """
    num_ws = generator.num_ws
    latents = start.detach().clone().requires_grad_(True)  # [1, K, w_dim]
    optimiser = torch.optim.LBFGS([latents], max_iter=steps, line_search_fn="strong_wolfe")
    best = BestSeen(latents)
    renders = 0

    def closure() -> torch.Tensor:
        nonlocal renders
        images = generator.synthesis(latents.expand(-1, num_ws, -1), noise_mode="const")  # [1, 3, R, R]
        loss = frame_loss(images, target, perceptual=perceptual, config=config)  # [1]
        renders += 1
        best.update(latents, images, target, loss)
        # Only the latents' gradient: no gradient is accumulated into the generator's parameters.
        (grad,) = torch.autograd.grad(loss.sum(), [latents])
        latents.grad = grad
        return loss.sum().detach()

    with full_precision(target.device):
        optimiser.step(closure)
    return RunResult(
        latents=best.latents.expand(-1, num_ws, -1).clone(),
        loss=best.loss,
        psnr=best.psnr,
        steps=int(optimiser.state[latents].get("n_iter", 0)),
        renders=Renders(backward=renders),
    )


def invert_clip(
    generator: Generator,
    targets: CropSource,
    *,
    config: InvertConfig,
    perceptual: nn.Module | None,
    runtime: Runtime,
    progress: Progress = SILENT,
    on_batch: Callable[[InvertReport], None] | None = None,
    start: torch.Tensor | None = None,
) -> InversionResult:
    """Invert aligned crops `targets` (N consecutive frames [3, R, R] in [-1, 1]: a tensor, or a store
    read a batch at a time) into W+ pivots. Only the batch in work is on the device; the pivots, losses
    and PSNRs are gathered on the CPU.

    `generator` must already be on `runtime.device`; `perceptual` (e.g.
    `reenact.losses.Image2StyleGANPerceptual`) may be None for an MSE-only loss. Latents and targets are
    float32; renders run under the runtime's autocast (L-BFGS excepted: always full precision).
    `progress` gets an "invert" task counting frames; `on_batch` receives each batch's figures.
    `start` [1, num_ws, w_dim], in warm mode: the pivot of the frame before `targets[0]`, so these frames
    continue that warm chain (every batch warm, none from the start point): a long shot inverted in
    segments has no seam where one segment hands over to the next.
    """
    resolution = generator.resolution
    first = targets[0:1] if len(targets) else None
    if first is None or first.ndim != 4 or first.shape[1:] != (3, resolution, resolution):
        shape = "no frames" if first is None else f"[N, {', '.join(map(str, first.shape[1:]))}]"
        raise ValueError(f"targets must be [N, 3, {resolution}, {resolution}], got {shape}")
    started = time.perf_counter()
    device = runtime.device
    num_frames = len(targets)
    layers = generator.num_ws if config.space == "w+" else 1

    chained = config.mode == "warm" and start is not None
    runs, first_batch, budget = [], 0, config.first_steps  # cold: every batch from the start point
    if config.mode == "warm":
        budget = config.warm_steps
        if not chained:  # frame 0 alone from the start point, then batches from their neighbours
            runs, first_batch = [(0, 1, config.first_steps)], 1
    runs += [
        (first_frame, min(first_frame + config.batch_size, num_frames), budget)
        for first_frame in range(first_batch, num_frames, config.batch_size)
    ]

    pivots = torch.empty(num_frames, generator.num_ws, generator.w_dim)
    losses = torch.empty(num_frames)
    psnrs = torch.empty(num_frames)
    steps_taken: list[int] = []
    renders = NONE
    adam_state: AdamState | None = None
    with progress.task("invert", total=num_frames, unit="frame") as task, autocast(runtime):
        for begin, stop, budget in runs:
            size = stop - begin
            batch = to_device(targets[begin:stop], device)  # [B, 3, R, R]
            if config.mode == "warm" and (begin > 0 or chained):
                before = pivots[begin - 1 : begin] if begin > 0 else start.reshape(1, *pivots.shape[1:])
                previous = before[:, :layers].to(device)  # [1, K, w_dim]: the neighbour's
                init, rate = previous.expand(size, -1, -1), config.warm_learning_rate
            else:
                init = start_latents(generator, batch, config=config, layers=layers)
                rate = config.learning_rate
                renders += Renders(forward=config.start_samples)
            if config.optimiser == "lbfgs":
                run = optimise_lbfgs(
                    generator, batch, init, steps=budget, perceptual=perceptual, config=config
                )
            else:
                handed_on = adam_state if (config.mode == "warm" and begin > 0) else None
                run = optimise_batch(
                    generator,
                    batch,
                    init,
                    steps=budget,
                    base_learning_rate=rate,
                    perceptual=perceptual,
                    config=config,
                    adam_state=handed_on,
                )
                adam_state = run.adam_state
            pivots[begin:stop] = run.latents.detach().cpu()
            losses[begin:stop] = run.loss.detach().cpu()
            psnrs[begin:stop] = run.psnr.detach().cpu()
            steps_taken.append(run.steps)
            renders += run.renders
            task.advance(size)
            if on_batch is not None:
                on_batch(
                    InvertReport(
                        frames_done=stop,
                        num_frames=num_frames,
                        steps=run.steps,
                        loss=float(run.loss.mean()),
                        psnr=float(run.psnr.mean()),
                    )
                )
    return InversionResult(
        pivots=pivots.detach(),
        loss=losses,
        psnr=psnrs,
        steps=steps_taken,
        renders=renders,
        seconds=time.perf_counter() - started,
    )


def latent_speed(latents: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame distance of latents [N, num_ws, w_dim] (Frobenius over layers and dims): [N - 1]."""
    return (latents[1:] - latents[:-1]).flatten(1).norm(dim=1)
