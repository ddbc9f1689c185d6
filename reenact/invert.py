"""W+ inversion of a whole clip (Image2StyleGAN, Abdal et al. ICCV 2019), warm-started over time.

Loss per frame: `perceptual_weight * perceptual(G(w), x) + mse_weight * MSE(G(w), x)`, minimised by
Adam (or L-BFGS, below) over the latents only (the generator is not touched). Consecutive frames of
a clip differ little, so after frame 0 (from `w_avg` or the best of `start_samples` random samples,
full budget `first_steps`) every frame starts from its neighbour and gets only `warm_steps`.

How close that start is decides how many steps a frame needs. Frames started in batches of B from the
previous batch's last pivot start up to B frames away, and such a chain needs several times the steps
per frame that a chain of single frames needs for the same PSNR. So warm Adam runs a window
(`optimise_window`): up to `batch_size` consecutive frames in flight, one generator call a step for all
of them, each frame with its own step budget, learning-rate ramps and early stop, entering started from
its immediate predecessor's best latents so far (entries are staggered so the predecessor has moved
towards its own solution first), moved on by `predict` times the last step between two finished
neighbours: faces move smoothly, so the next pivot is further along the same way. A frame also
inherits its predecessor's Adam moments: with fresh moments Adam's first steps are full-size in every
coordinate, which kicks the latents off the neighbour's solution and lets the directions the image
barely constrains wander (on the synthetic world the pivots then moved 1.6x as fast as the truth; with
the handover 1.1x, at the same PSNR).
`benchmarks/bench_budget.py` measures the renders and the quality. Adam is per-element, so frames are
optimised independently; batching only shares the generator calls. Runs follow stylegan2-ada's
projector learning-rate ramps and stop early when their loss plateaus. `mode="cold"` starts every frame
from `w_avg` with the full budget, in batches: the baseline that `benchmarks/bench_invert.py` compares
with.

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
    """Optimiser steps of each run: frame 0 alone, then each batch (cold, L-BFGS) or each frame in the
    order they finished (the warm window, `optimise_window`)."""
    renders: Renders
    """Images rendered by the generator (Adam: a batch per step; L-BFGS: its line searches' renders)."""
    seconds: float
    """Wall-clock time of the inversion."""


@dataclass(frozen=True)
class AdamState:
    """Adam's moments for one frame's latents ([1, K, w_dim] each), handed on to the next frame."""

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
    """Adam's moments of the batch's last frame, for the frames after it (None for L-BFGS)."""


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

    def append(self, start: torch.Tensor) -> None:
        """A frame [1, K, w_dim] joins the batch, nothing seen yet."""
        self.latents = torch.cat([self.latents, start.detach()])
        self.loss = torch.cat([self.loss, self.loss.new_full((1,), math.inf)])
        self.psnr = torch.cat([self.psnr, self.psnr.new_zeros(1)])

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the frames at `rows` [A'] of the batch."""
        rows = rows.to(self.latents.device)
        self.latents, self.loss, self.psnr = self.latents[rows], self.loss[rows], self.psnr[rows]

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
) -> RunResult:
    """Adam on latents from `start` towards `targets` [B, 3, R, R] for at most `steps` steps.

    `start`: [B, K, w_dim] with K = num_ws (W+) or 1 (W, broadcast to every layer).
    """
    num_ws = generator.num_ws
    latents = start.detach().clone().requires_grad_(True)  # [B, K, w_dim]
    optimiser = torch.optim.Adam([latents], lr=base_learning_rate)
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
        last = AdamState(
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


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
"""Adam's constants (torch's defaults), for the window's per-frame Adam."""


@dataclass
class FrameDone:
    """A frame the window finished: its best latents [1, num_ws, w_dim], loss, PSNR and steps."""

    index: int
    latents: torch.Tensor
    loss: float
    psnr: float
    steps: int


def optimise_window(
    generator: Generator,
    targets: CropSource,
    previous: torch.Tensor,
    *,
    first: int,
    handed_on: AdamState | None,
    steps: int,
    width: int,
    base_learning_rate: float,
    perceptual: nn.Module | None,
    config: InvertConfig,
    device: torch.device,
    on_frame: Callable[[FrameDone], None],
) -> Renders:
    """Warm chain over `targets[first:]` (frames [3, R, R] in order) after the frame whose pivot is
    `previous` [1, K, w_dim]: up to `width` frames are optimised at once, each with its own Adam and
    step budget, and each enters started from its immediate predecessor's best latents so far, with its
    Adam moments (fresh moments kick a warm start off its neighbour's solution: see the module doc).

    A frame leaves after `steps` steps or once its own loss plateaus (`config.plateau_window`), and the
    next frame enters; entries are staggered (a frame enters once the newest has taken
    `steps / width` steps), so a frame starts from a neighbour that already moved towards its own
    solution, not from one `width` frames back. The start also moves on by `config.predict` times the
    last step between two finished neighbours. `handed_on`: the Adam moments of `previous`'s run, if
    any. Batching only shares the generator calls: every frame's optimisation is its own. `on_frame`
    receives each finished frame (`index` counts from `first`). Returns the renders made.
    """
    num_ws, count = generator.num_ws, len(targets) - first
    stagger = max(1, math.ceil(steps / width))
    beta1, beta2 = ADAM_BETAS
    latents = previous.new_zeros((0, *previous.shape[1:]))  # [A, K, D] the frames in flight
    exp_avg, exp_avg_sq = latents.clone(), latents.clone()
    taken = torch.zeros(0, dtype=torch.long)  # [A] steps each has taken
    batch = torch.zeros(0, 3, generator.resolution, generator.resolution, device=device)  # [A, 3, R, R]
    indices: list[int] = []
    histories: list[list[float]] = []
    best = BestSeen(latents)
    # [1, K, D] pivots of frames that left, kept while a successor may start from one or a step between
    # two may predict its start
    done_latents = {-1: previous}
    velocity: torch.Tensor | None = None
    zeros = torch.zeros_like(previous)
    done_moments = {-1: (zeros, zeros, torch.zeros(1, device=device))}  # their Adam moments and steps
    if handed_on is not None:  # the moments of `previous`'s own run
        step = handed_on.step.reshape(1).to(device=device, dtype=previous.dtype)
        done_moments[-1] = (handed_on.exp_avg.to(device), handed_on.exp_avg_sq.to(device), step)
    adam_steps = torch.zeros(0, device=device)  # [A] Adam steps behind each frame's moments
    renders = NONE
    entered = 0
    while entered < count or indices:
        if entered < count and len(indices) < width and (not indices or int(taken[-1]) >= stagger):
            before = entered - 1  # the entering frame's predecessor: in flight, or done
            if before in indices:
                slot = indices.index(before)
                start = best.latents[slot : slot + 1]
                moments = (exp_avg[slot : slot + 1], exp_avg_sq[slot : slot + 1], adam_steps[slot : slot + 1])
            else:
                start, moments = done_latents[before], done_moments[before]
            if config.predict and velocity is not None:  # the motion goes on
                start = start + config.predict * velocity
            latents = torch.cat([latents, start])
            exp_avg = torch.cat([exp_avg, moments[0]])
            exp_avg_sq = torch.cat([exp_avg_sq, moments[1]])
            adam_steps = torch.cat([adam_steps, moments[2]])
            taken = torch.cat([taken, torch.zeros(1, dtype=torch.long)])
            batch = torch.cat([batch, to_device(targets[first + entered : first + entered + 1], device)])
            best.append(start)
            indices.append(entered)
            histories.append([])
            entered += 1
        ws = latents.detach().requires_grad_(True)
        images = generator.synthesis(ws.expand(-1, num_ws, -1), noise_mode="const")  # [A, 3, R, R]
        loss = frame_loss(images, batch, perceptual=perceptual, config=config)  # [A]
        best.update(ws, images, batch, loss)
        taken += 1
        leaving = []
        for slot, history in enumerate(histories):
            history.append(float(loss[slot].detach()))
            window, tolerance = config.plateau_window, config.plateau_tolerance
            if int(taken[slot]) >= steps or plateaued(history, window=window, tolerance=tolerance):
                leaving.append(slot)
        if len(leaving) < len(indices):
            (grad,) = torch.autograd.grad(loss.sum(), [ws])  # [A, K, D]
            renders += Renders(backward=len(images))
            with torch.no_grad():
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                adam_steps += 1
                step = adam_steps[:, None, None]  # [A, 1, 1]
                rates = torch.tensor(
                    [learning_rate(int(done) - 1, steps=steps, base=base_learning_rate) for done in taken],
                    device=device,
                )[:, None, None]
                denominator = (exp_avg_sq / (1 - beta2**step)).sqrt() + ADAM_EPS
                latents = ws.detach() - rates * (exp_avg / (1 - beta1**step)) / denominator
        else:
            renders += Renders(forward=len(images))
            latents = ws.detach()
        keep = [slot for slot in range(len(indices)) if slot not in leaving]
        for slot in leaving:
            done = FrameDone(
                index=first + indices[slot],
                latents=best.latents[slot : slot + 1].expand(-1, num_ws, -1).clone(),
                loss=float(best.loss[slot]),
                psnr=float(best.psnr[slot]),
                steps=int(taken[slot]),
            )
            frame = indices[slot]
            done_latents[frame] = best.latents[slot : slot + 1].clone()
            if frame > 0 and frame - 1 in done_latents:
                velocity = done_latents[frame] - done_latents[frame - 1]
            done_moments[frame] = (
                exp_avg[slot : slot + 1],
                exp_avg_sq[slot : slot + 1],
                adam_steps[slot : slot + 1],
            )
            on_frame(done)
        done_latents = {index: value for index, value in done_latents.items() if index >= entered - width - 2}
        done_moments = {index: value for index, value in done_moments.items() if index >= entered - 1}
        if leaving:
            rows = torch.tensor(keep, dtype=torch.long, device=device)
            latents, exp_avg, exp_avg_sq = latents[rows], exp_avg[rows], exp_avg_sq[rows]
            adam_steps, batch = adam_steps[rows], batch[rows]
            taken = taken[rows.cpu()]
            best.keep(rows)
            indices = [indices[slot] for slot in keep]
            histories = [histories[slot] for slot in keep]
    return renders


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
        if not chained:  # frame 0 alone from the start point, then the others from their neighbours
            runs, first_batch = [(0, 1, config.first_steps)], 1
    window = config.mode == "warm" and config.optimiser == "adam"  # the rest: `optimise_window`
    if not window:
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
                run = optimise_batch(
                    generator,
                    batch,
                    init,
                    steps=budget,
                    base_learning_rate=rate,
                    perceptual=perceptual,
                    config=config,
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
        if window and first_batch < num_frames:
            done_count = first_batch

            def finished(done: FrameDone) -> None:
                nonlocal done_count
                done_count += 1
                pivots[done.index] = done.latents[0].detach().cpu()
                losses[done.index], psnrs[done.index] = done.loss, done.psnr
                steps_taken.append(done.steps)
                task.advance(1)
                if on_batch is not None:
                    report = InvertReport(
                        frames_done=done_count,
                        num_frames=num_frames,
                        steps=done.steps,
                        loss=done.loss,
                        psnr=done.psnr,
                    )
                    on_batch(report)

            previous = (
                pivots[first_batch - 1 : first_batch] if first_batch else start.reshape(1, *pivots.shape[1:])
            )
            renders += optimise_window(
                generator,
                targets,
                previous[:, :layers].to(device),
                first=first_batch,
                handed_on=adam_state,
                steps=config.warm_steps,
                width=config.batch_size,
                base_learning_rate=config.warm_learning_rate,
                perceptual=perceptual,
                config=config,
                device=device,
                on_frame=finished,
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
