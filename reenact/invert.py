"""W+ inversion of a whole clip (Image2StyleGAN, Abdal et al. ICCV 2019), warm-started over time.

Loss per frame: `perceptual_weight * perceptual(G(w), x) + mse_weight * MSE(G(w), x)`, minimised by
Adam (or L-BFGS, below) over the latents only (the generator is not touched). Consecutive frames of
a clip differ little, so after frame 0 (from `w_avg` or the best of `start_samples` random samples,
full budget `first_steps`) every frame starts from its neighbour and gets only `warm_steps`.

How close that start is decides how many steps a frame needs. Frames started in batches of B from the
previous batch's last pivot start up to B frames away, and such a chain needs several times the steps
per frame that a chain of single frames needs for the same PSNR. So warm Adam runs a window
(`AdamWindow`): up to `batch_size` consecutive frames in flight, one generator call a step for all
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
from `w_avg` with the full budget, in batches (`AdamBatch`): the baseline that
`benchmarks/bench_invert.py` compares with.

`optimiser="lbfgs"` replaces Adam by L-BFGS (`LbfgsBatch`) with a strong-Wolfe line search, one frame
per run: the loss is deterministic, so curvature estimates and line searches apply, and a warm-started
frame needs a few dozen iterations where Adam needs a few hundred steps (synthetic world: 30 iterations
fit the driver as well as 200 steps, at a sixth of the renders; `configs/synthetic.toml` uses it).

Every frame keeps its best latent seen (lowest loss), so a late overshoot never costs quality.
The procedure has no randomness (fixed start, fixed noise), so results are reproducible bit for bit
on one device; `perceptual` nets must be deterministic too.

Shape: each regime above (`AdamBatch`, `LbfgsBatch`, `AdamWindow`) is a small strategy over one
per-frame table (`FrameTable`: the frames in flight, one row each) that lets frames enter, steps them
and retires the finished ones (`run_regime`); the regimes that use Adam share one per-row Adam
(`reenact.adam.RowAdam`). `invert_clip` only plans the regimes (`plan_regimes`) and dispatches them,
each starting from what the one before handed over (`Handover`: the last pivot and its Adam moments).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import nn

from reenact.adam import AdamArithmetic, AdamMoments, RowAdam
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
    order they finished (the warm window, `AdamWindow`)."""
    renders: Renders
    """Images rendered by the generator (Adam: a batch per step; L-BFGS: its line searches' renders)."""
    seconds: float
    """Wall-clock time of the inversion."""


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


def layer_spread(latents: torch.Tensor) -> torch.Tensor:
    """Per-frame spread [A] of latents [A, K, w_dim] about their mean over the layers: 0 for a code in W.

    A W+ fit of a picture that is not the generator's own drifts along directions the picture barely
    shows, each layer its own way; offsets added there (an expression) then render unlike they do on a
    face's true code. Pulling the layers together (e4e's delta regularisation; PTI inverts into W) keeps
    the fit where offsets act as they should."""
    return (latents - latents.mean(dim=1, keepdim=True)).square().mean(dim=(1, 2))


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
    """The lowest-loss latents seen so far for each row of a table, with their loss and PSNR."""

    def __init__(self, start: torch.Tensor) -> None:
        self.latents = start.detach().clone()  # [A, K, w_dim]
        self.loss = torch.full((start.shape[0],), math.inf, device=start.device)  # [A]
        self.psnr = torch.zeros_like(self.loss)  # [A]

    def append(self, start: torch.Tensor) -> None:
        """Rows [n, K, w_dim] join at the end, nothing seen yet."""
        self.latents = torch.cat([self.latents, start.detach()])
        self.loss = torch.cat([self.loss, self.loss.new_full((len(start),), math.inf)])
        self.psnr = torch.cat([self.psnr, self.psnr.new_zeros(len(start))])

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the rows at `rows` [A']."""
        rows = rows.to(self.latents.device)
        self.latents, self.loss, self.psnr = self.latents[rows], self.loss[rows], self.psnr[rows]

    @torch.no_grad()
    def update(
        self, latents: torch.Tensor, images: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ) -> None:
        """Keep `latents` [A, K, w_dim] where their `loss` [A] (renders `images`) beats the best so far."""
        better = loss < self.loss
        self.latents[better] = latents.detach()[better]
        self.loss = torch.where(better, loss.detach(), self.loss)
        self.psnr = torch.where(better, psnr(images.detach(), targets), self.psnr)


# ---------------------------------------------------------------------------------------------------
# The per-frame table every regime steps


@dataclass(frozen=True)
class Problem:
    """What every regime works on: the generator, the clip, the loss, and the device."""

    generator: Generator
    targets: CropSource
    perceptual: nn.Module | None
    config: InvertConfig
    device: torch.device
    layers: int
    """K: latents optimised per frame (num_ws in W+; 1 in W, broadcast to every layer; the free layers'
    count when `free` is given)."""
    held: torch.Tensor | None = None
    """With `free`: every row's code [A, num_ws, w_dim] whose other layers stay as they are."""
    free: torch.Tensor | None = None
    """Bool [num_ws]: the only layers optimised (the rest held at `held`); None: every layer."""

    @classmethod
    def of(
        cls,
        generator: Generator,
        targets: CropSource,
        *,
        config: InvertConfig,
        perceptual: nn.Module | None,
        runtime: Runtime,
    ) -> Problem:
        """The problem of inverting `targets` in `config.space` on the runtime's device."""
        layers = generator.num_ws if config.space == "w+" else 1
        return cls(
            generator=generator,
            targets=targets,
            perceptual=perceptual,
            config=config,
            device=runtime.device,
            layers=layers,
        )

    def compose(self, latents: torch.Tensor) -> torch.Tensor:
        """Codes [A, num_ws, w_dim] of the optimised latents [A, K, w_dim]: broadcast over the layers,
        or put into the held codes' free layers."""
        if self.free is None or self.held is None:
            return latents.expand(-1, self.generator.num_ws, -1)
        codes = self.held.to(latents).clone()  # [A, num_ws, w_dim]
        codes[:, self.free.to(latents.device)] = latents
        return codes

    def render(self, latents: torch.Tensor) -> torch.Tensor:
        """Renders [A, 3, R, R] of latents [A, K, w_dim]."""
        return self.generator.synthesis(self.compose(latents), noise_mode="const")

    def loss(self, images: torch.Tensor, targets: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Per-frame loss [A] of renders against targets [A, 3, R, R], plus `invert.spread_weight` times
        the spread of their latents [A, K, w_dim] over the layers (`layer_spread`)."""
        loss = frame_loss(images, targets, perceptual=self.perceptual, config=self.config)
        if self.config.spread_weight:
            loss = loss + self.config.spread_weight * layer_spread(latents)
        return loss

    def crops(self, frames: range) -> torch.Tensor:
        """Targets [n, 3, R, R] of consecutive `frames`, on the device."""
        return to_device(self.targets[frames.start : frames.stop], self.device)


@dataclass(frozen=True)
class Finished:
    """Frames a regime finished and reports as one run: a batch, or one frame of the window."""

    frames: range
    latents: torch.Tensor
    """Best latents [n, num_ws, w_dim]."""
    loss: torch.Tensor
    """Their loss [n]."""
    psnr: torch.Tensor
    """Their PSNR in dB [n]."""
    steps: int
    """Optimiser steps (Adam) or iterations (L-BFGS) the run took."""


@dataclass(frozen=True)
class Handover:
    """What a regime leaves to the next: its last frame's pivot [1, K, w_dim] and Adam moments."""

    latents: torch.Tensor | None = None
    moments: AdamMoments | None = None


class FrameTable:
    """The frames in flight, one row each, in the order they entered.

    Every per-frame array of a regime lives here; rows enter (`enter`) and leave (`remove`) all of them
    at once, so the arrays cannot fall out of lockstep. `adam` holds the rows' Adam moments (unused by
    L-BFGS)."""

    def __init__(self, problem: Problem, *, arithmetic: AdamArithmetic) -> None:
        generator, device = problem.generator, problem.device
        self.compose = problem.compose
        self.frames: list[int] = []  # [A] clip index of each row
        self.latents = torch.zeros(0, problem.layers, generator.w_dim, device=device)  # [A, K, w_dim]
        resolution = generator.resolution
        self.targets = torch.zeros(0, 3, resolution, resolution, device=device)  # [A, 3, R, R]
        self.best = BestSeen(self.latents)
        self.taken = torch.zeros(0, dtype=torch.long)  # [A] steps each row has taken
        self.histories: list[list[float]] = []  # [A] each row's loss after each of its steps
        self.adam = RowAdam(self.latents, arithmetic=arithmetic)
        self.entered = 0
        """Frames that entered so far."""

    def __len__(self) -> int:
        return len(self.frames)

    def enter(
        self, frames: range, start: torch.Tensor, targets: torch.Tensor, moments: AdamMoments | None = None
    ) -> None:
        """Consecutive `frames` join, started at `start` [n, K, w_dim] towards `targets` [n, 3, R, R],
        with Adam `moments` (fresh when None)."""
        self.frames += list(frames)
        self.latents = torch.cat([self.latents, start])
        self.targets = torch.cat([self.targets, targets])
        self.best.append(start)
        self.taken = torch.cat([self.taken, torch.zeros(len(frames), dtype=torch.long)])
        self.histories += [[] for _ in frames]
        self.adam.enter(AdamMoments.zeros(start) if moments is None else moments)
        self.entered += len(frames)

    def finished(self, start: int, stop: int) -> Finished:
        """Rows `start:stop` (consecutive frames, same steps) as a finished run, latents on every layer."""
        return Finished(
            frames=range(self.frames[start], self.frames[stop - 1] + 1),
            latents=self.compose(self.best.latents[start:stop]).detach().clone(),
            loss=self.best.loss[start:stop].clone(),
            psnr=self.best.psnr[start:stop].clone(),
            steps=int(self.taken[start]),
        )

    def handover(self, slot: int) -> Handover:
        """Row `slot`'s best latents (a copy) and its Adam moments (views), for a frame after it."""
        return Handover(
            latents=self.best.latents[slot : slot + 1].clone(), moments=self.adam.rows(slot, slot + 1)
        )

    def remove(self, slots: list[int]) -> None:
        """The rows at `slots` leave."""
        keep = [slot for slot in range(len(self)) if slot not in slots]
        rows = torch.tensor(keep, dtype=torch.long, device=self.latents.device)
        self.frames = [self.frames[slot] for slot in keep]
        self.latents, self.targets = self.latents[rows], self.targets[rows]
        self.best.keep(rows)
        self.taken = self.taken[rows.cpu()]
        self.histories = [self.histories[slot] for slot in keep]
        self.adam.keep(rows)


class Regime(Protocol):
    """One way to invert some consecutive frames, stepped by `run_regime`: open a table, then
    repeatedly let frames enter, step the frames in flight, and retire those that finished."""

    frames: range
    steps: int
    """Most optimiser steps (L-BFGS: iterations) a frame gets."""

    def open(self, handover: Handover) -> FrameTable:
        """An empty table; `handover`: what the regime before left (the previous frame's pivot)."""
        ...

    def enter(self, table: FrameTable) -> Renders:
        """Let in the frames that start now; returns the renders their start cost."""
        ...

    def step(self, table: FrameTable) -> Renders:
        """Move the frames in flight (one optimiser step, or one L-BFGS run); returns the renders made."""
        ...

    def retire(self, table: FrameTable) -> list[Finished]:
        """Remove the frames that finished from the table and return them."""
        ...

    def handover(self) -> Handover:
        """What the next regime starts from: the last frame's pivot and Adam moments."""
        ...


def run_regime(regime: Regime, handover: Handover, *, on_finished: Callable[[Finished], None]) -> Renders:
    """Run `regime` over its frames; `on_finished` receives each finished run. Returns the renders made."""
    table = regime.open(handover)
    renders = NONE
    while table.entered < len(regime.frames) or len(table):
        renders += regime.enter(table)
        renders += regime.step(table)
        for finished in regime.retire(table):
            on_finished(finished)
    return renders


# ---------------------------------------------------------------------------------------------------
# The regimes


class Batch:
    """Frames that start together and finish together: from the start point (`warm=False`), the previous
    frame's pivot (`warm=True`), or latents of their own (`given` [n, K, w_dim]: a refit). The common
    part of `AdamBatch` and `LbfgsBatch`, which each define `step`."""

    def __init__(
        self, problem: Problem, frames: range, *, steps: int, warm: bool, given: torch.Tensor | None = None
    ) -> None:
        self.problem, self.frames, self.steps, self.warm = problem, frames, steps, warm
        self.given = given
        self.previous = Handover()
        self.last = Handover()
        self.done = False

    def open(self, handover: Handover) -> FrameTable:
        self.previous = handover
        return FrameTable(self.problem, arithmetic="torch")

    def enter(self, table: FrameTable) -> Renders:
        if table.entered:
            return NONE
        targets = self.problem.crops(self.frames)  # [B, 3, R, R]
        if self.given is not None:
            table.enter(self.frames, self.given.to(self.problem.device), targets)
            return NONE
        if self.warm:
            if self.previous.latents is None:
                raise ValueError("a warm batch needs the previous frame's pivot")
            table.enter(self.frames, self.previous.latents.expand(len(self.frames), -1, -1), targets)
            return NONE
        config = self.problem.config
        start = start_latents(self.problem.generator, targets, config=config, layers=self.problem.layers)
        table.enter(self.frames, start, targets)
        return Renders(forward=config.start_samples)

    def step(self, table: FrameTable) -> Renders:
        raise NotImplementedError

    def retire(self, table: FrameTable) -> list[Finished]:
        """All rows as one run once `step` says done; the last row is the handover."""
        if not self.done:
            return []
        finished = table.finished(0, len(table))
        self.last = table.handover(len(table) - 1)
        table.remove(list(range(len(table))))
        return [finished]

    def handover(self) -> Handover:
        return self.last


class AdamBatch(Batch):
    """Adam on a batch of frames together (`config.learning_rate` from the start point,
    `config.warm_learning_rate` from the previous pivot). The batch stops together: after `steps`
    steps, or once its summed loss plateaus. The update is `torch.optim.Adam`'s (`RowAdam` "torch");
    the handover carries the last frame's moments."""

    def __init__(
        self, problem: Problem, frames: range, *, steps: int, warm: bool, given: torch.Tensor | None = None
    ) -> None:
        super().__init__(problem, frames, steps=steps, warm=warm, given=given)
        config = problem.config
        started = warm or given is not None  # from a pivot, not from the start point
        self.base_learning_rate = config.warm_learning_rate if started else config.learning_rate
        self.history: list[float] = []  # the batch's summed loss after each step

    def step(self, table: FrameTable) -> Renders:
        config = self.problem.config
        rate = learning_rate(int(table.taken[0]), steps=self.steps, base=self.base_learning_rate)
        latents = table.latents.detach().requires_grad_(True)  # [B, K, w_dim]
        images = self.problem.render(latents)  # [B, 3, R, R]
        loss = self.problem.loss(images, table.targets, latents)  # [B]
        table.taken += 1
        table.best.update(latents, images, table.targets, loss)
        self.history.append(float(loss.detach().sum()))
        if plateaued(self.history, window=config.plateau_window, tolerance=config.plateau_tolerance):
            self.done = True
            return Renders(forward=len(images))
        # Only the latents' gradient: no gradient is accumulated into the generator's parameters.
        (grad,) = torch.autograd.grad(loss.sum(), [latents])
        table.latents = table.adam.step(latents.detach(), grad, [rate] * len(table))
        self.done = int(table.taken[0]) >= self.steps
        return Renders(backward=len(images))


class LbfgsBatch(Batch):
    """L-BFGS with a strong-Wolfe line search on a batch's latents (one frame: `config.batch_size` 1)
    for at most `steps` iterations (torch's own tolerances may stop it sooner). One `step` is the
    whole run.

    The line search compares losses of nearby latents, so the run is in full precision even under the
    run's bf16 autocast. Each iteration renders once or more (its line search), every render with its
    gradient."""

    def step(self, table: FrameTable) -> Renders:
        latents = table.latents.detach().clone().requires_grad_(True)  # [B, K, w_dim]
        optimiser = torch.optim.LBFGS([latents], max_iter=self.steps, line_search_fn="strong_wolfe")
        renders = 0

        def closure() -> torch.Tensor:
            nonlocal renders
            images = self.problem.render(latents)  # [B, 3, R, R]
            loss = self.problem.loss(images, table.targets, latents)  # [B]
            renders += 1
            table.best.update(latents, images, table.targets, loss)
            # Only the latents' gradient: no gradient is accumulated into the generator's parameters.
            (grad,) = torch.autograd.grad(loss.sum(), [latents])
            latents.grad = grad
            return loss.sum().detach()

        with full_precision(self.problem.device):
            optimiser.step(closure)
        table.latents = latents.detach()
        table.taken += int(optimiser.state[latents].get("n_iter", 0))
        self.done = True
        return Renders(backward=renders)

    def handover(self) -> Handover:
        return Handover(latents=self.last.latents)  # L-BFGS has no moments to hand on


class AdamWindow:
    """Warm Adam over a sliding window of at most `width` consecutive frames (see the module doc).

    Each frame has its own step budget (`steps`), learning-rate ramps and early stop, and enters
    started from its immediate predecessor's best latents so far, with its Adam moments (fresh moments
    kick a warm start off its neighbour's solution). Entries are staggered: a frame enters once the
    newest has taken `steps / width` steps, so it starts from a neighbour that already moved towards
    its own solution. The start also moves on by `config.predict` times the last step between two
    finished neighbours. A frame leaves after `steps` steps or once its own loss plateaus; the step
    that finds it finished still updates its moments when other frames go on. The update keeps the
    window's own arithmetic (`RowAdam` "tensor")."""

    def __init__(self, problem: Problem, frames: range, *, steps: int, width: int) -> None:
        self.problem, self.frames, self.steps, self.width = problem, frames, steps, width
        self.base_learning_rate = problem.config.warm_learning_rate
        self.stagger = max(1, math.ceil(steps / width))
        # pivots [1, K, w_dim] and Adam moments of frames that left, kept while a successor may start
        # from one or a step between two may predict its start
        self.done_latents: dict[int, torch.Tensor] = {}
        self.done_moments: dict[int, AdamMoments] = {}
        self.velocity: torch.Tensor | None = None
        self.leaving: list[int] = []
        self.last = Handover()

    def open(self, handover: Handover) -> FrameTable:
        if handover.latents is None:
            raise ValueError("the warm window needs the pivot of the frame before its first")
        before = self.frames.start - 1
        self.done_latents[before] = handover.latents
        moments = handover.moments
        self.done_moments[before] = AdamMoments.zeros(handover.latents) if moments is None else moments
        return FrameTable(self.problem, arithmetic="tensor")

    def enter(self, table: FrameTable) -> Renders:
        full = len(table) >= self.width
        if table.entered == len(self.frames) or full or (len(table) and int(table.taken[-1]) < self.stagger):
            return NONE
        frame = self.frames.start + table.entered
        if frame - 1 in table.frames:  # the predecessor is in flight
            slot = table.frames.index(frame - 1)
            start, moments = table.best.latents[slot : slot + 1], table.adam.rows(slot, slot + 1)
        else:
            start, moments = self.done_latents[frame - 1], self.done_moments[frame - 1]
        predict = self.problem.config.predict
        if predict and self.velocity is not None:  # the motion goes on
            start = start + predict * self.velocity
        entering = range(frame, frame + 1)
        table.enter(entering, start, self.problem.crops(entering), moments)
        return NONE

    def step(self, table: FrameTable) -> Renders:
        config = self.problem.config
        latents = table.latents.detach().requires_grad_(True)  # [A, K, w_dim]
        images = self.problem.render(latents)  # [A, 3, R, R]
        loss = self.problem.loss(images, table.targets, latents)  # [A]
        table.best.update(latents, images, table.targets, loss)
        table.taken += 1
        self.leaving = []
        for slot, history in enumerate(table.histories):
            history.append(float(loss[slot].detach()))
            stalled = plateaued(history, window=config.plateau_window, tolerance=config.plateau_tolerance)
            if int(table.taken[slot]) >= self.steps or stalled:
                self.leaving.append(slot)
        if len(self.leaving) == len(table):
            table.latents = latents.detach()
            return Renders(forward=len(images))
        (grad,) = torch.autograd.grad(loss.sum(), [latents])  # [A, K, w_dim]
        rates = [
            learning_rate(int(done) - 1, steps=self.steps, base=self.base_learning_rate)
            for done in table.taken
        ]
        table.latents = table.adam.step(latents.detach(), grad, rates)
        return Renders(backward=len(images))

    def retire(self, table: FrameTable) -> list[Finished]:
        finished = []
        for slot in self.leaving:
            frame = table.frames[slot]
            finished.append(table.finished(slot, slot + 1))
            left = table.handover(slot)
            self.done_latents[frame], self.done_moments[frame] = left.latents, left.moments
            if frame > self.frames.start and frame - 1 in self.done_latents:
                self.velocity = self.done_latents[frame] - self.done_latents[frame - 1]
            if frame == self.frames.stop - 1:
                self.last = left
        entered = self.frames.start + table.entered
        self.done_latents = {i: v for i, v in self.done_latents.items() if i >= entered - self.width - 2}
        self.done_moments = {i: v for i, v in self.done_moments.items() if i >= entered - 1}
        if self.leaving:
            table.remove(self.leaving)
        return finished

    def handover(self) -> Handover:
        return self.last


# ---------------------------------------------------------------------------------------------------
# Plan and dispatch


def plan_regimes(problem: Problem, num_frames: int, *, chained: bool) -> list[Regime]:
    """The regimes that invert a clip of `num_frames`, in order (see the module doc).

    cold: batches of `batch_size` from the start point with `first_steps`. warm: frame 0 alone from
    the start point with `first_steps` (unless `chained`: the frame before the clip is known), then
    the window (Adam) or batches from their neighbour with `warm_steps` (L-BFGS)."""
    config = problem.config
    batch = LbfgsBatch if config.optimiser == "lbfgs" else AdamBatch
    warm = config.mode == "warm"
    regimes: list[Regime] = []
    first = 0
    if warm and not chained:
        regimes.append(batch(problem, range(0, 1), steps=config.first_steps, warm=False))
        first = 1
    if warm and config.optimiser == "adam":
        if first < num_frames:
            regimes.append(
                AdamWindow(
                    problem, range(first, num_frames), steps=config.warm_steps, width=config.batch_size
                )
            )
        return regimes
    steps = config.warm_steps if warm else config.first_steps
    for begin in range(first, num_frames, config.batch_size):
        frames = range(begin, min(begin + config.batch_size, num_frames))
        regimes.append(batch(problem, frames, steps=steps, warm=warm))
    return regimes


def invert_frames(
    generator: Generator,
    targets: CropSource,
    *,
    config: InvertConfig,
    perceptual: nn.Module | None,
    runtime: Runtime,
    on_finished: Callable[[Finished], None],
    progress: Progress = SILENT,
    on_batch: Callable[[InvertReport], None] | None = None,
    start: torch.Tensor | None = None,
) -> Renders:
    """`invert_clip` without the gathering: each finished run (its frames' pivots, losses and PSNRs) goes
    to `on_finished` as it finishes, so a caller can store a long clip's pivots without holding them.
    Runs finish in the order of their frames, but for the warm window's (`AdamWindow`): at most its width
    apart. Returns the renders made."""
    resolution = generator.resolution
    first = targets[0:1] if len(targets) else None
    if first is None or first.ndim != 4 or first.shape[1:] != (3, resolution, resolution):
        shape = "no frames" if first is None else f"[N, {', '.join(map(str, first.shape[1:]))}]"
        raise ValueError(f"targets must be [N, 3, {resolution}, {resolution}], got {shape}")
    num_frames = len(targets)
    problem = Problem.of(generator, targets, config=config, perceptual=perceptual, runtime=runtime)
    layers = problem.layers
    chained = config.mode == "warm" and start is not None
    handover = Handover()
    if chained:
        handover = Handover(
            latents=start.reshape(1, generator.num_ws, generator.w_dim)[:, :layers].to(runtime.device)
        )

    renders = NONE
    frames_done = 0
    with progress.task("invert", total=num_frames, unit="frame") as task, autocast(runtime):

        def finished(run: Finished) -> None:
            nonlocal frames_done
            frames_done += len(run.frames)
            on_finished(run)
            task.advance(len(run.frames))
            if on_batch is not None:
                loss, quality = float(run.loss.mean()), float(run.psnr.mean())
                report = InvertReport(
                    frames_done=frames_done, num_frames=num_frames, steps=run.steps, loss=loss, psnr=quality
                )
                on_batch(report)

        for regime in plan_regimes(problem, num_frames, chained=chained):
            renders += run_regime(regime, handover, on_finished=finished)
            handover = regime.handover()
    return renders


def refit_frames(
    generator: Generator,
    targets: CropSource,
    starts: torch.Tensor,
    *,
    config: InvertConfig,
    perceptual: nn.Module | None,
    runtime: Runtime,
    steps: int,
    free: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Renders]:
    """Every frame of `targets` (N crops [3, R, R]) fitted again from its own start `starts` [N, num_ws,
    w_dim] with at most `steps` optimiser steps (the warm learning rate), `config.batch_size` frames at a
    time: the refitted pivots [N, num_ws, w_dim] on the CPU, and the renders made. With `free` (bool
    [num_ws]) only those layers are fitted, every other held at its start."""
    if len(starts) != len(targets):
        raise ValueError(f"{len(starts)} starts for {len(targets)} frames")
    problem = Problem.of(generator, targets, config=config, perceptual=perceptual, runtime=runtime)
    batch = LbfgsBatch if config.optimiser == "lbfgs" else AdamBatch
    refitted = starts.detach().float().cpu().clone()  # [N, num_ws, w_dim]

    def gather(run: Finished) -> None:
        refitted[run.frames.start : run.frames.stop] = run.latents.detach().float().cpu()

    renders = NONE
    with autocast(runtime):
        for begin in range(0, len(starts), config.batch_size):
            frames = range(begin, min(begin + config.batch_size, len(starts)))
            rows = starts[frames.start : frames.stop].float()  # [n, num_ws, w_dim]
            if free is None:
                given, problem_rows = rows[:, : problem.layers], problem
            else:
                held = rows.to(runtime.device)
                problem_rows = replace(problem, held=held, free=free.bool(), layers=int(free.sum()))
                given = rows[:, free.bool().cpu()]  # [n, K, w_dim]
            regime = batch(problem_rows, frames, steps=steps, warm=True, given=given)
            renders += run_regime(regime, Handover(), on_finished=gather)
    return refitted, renders


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
    read a batch at a time) into W+ pivots. Only the frames in work are on the device; the pivots,
    losses and PSNRs are gathered on the CPU (`invert_frames` hands them over instead).

    `generator` must already be on `runtime.device`; `perceptual` (e.g.
    `reenact.losses.Image2StyleGANPerceptual`) may be None for an MSE-only loss. Latents and targets are
    float32; renders run under the runtime's autocast (L-BFGS excepted: always full precision).
    `progress` gets an "invert" task counting frames; `on_batch` receives each run's figures (a batch,
    or a frame of the window). `start` [1, num_ws, w_dim], in warm mode: the pivot of the frame before
    `targets[0]`, so these frames continue that warm chain (every frame warm, none from the start
    point): a long shot inverted in segments has no seam where one segment hands over to the next.
    """
    started = time.perf_counter()
    num_frames = len(targets)
    pivots = torch.empty(num_frames, generator.num_ws, generator.w_dim)  # [N, num_ws, w_dim]
    losses = torch.empty(num_frames)
    psnrs = torch.empty(num_frames)
    steps_taken: list[int] = []

    def gather(run: Finished) -> None:
        pivots[run.frames.start : run.frames.stop] = run.latents.detach().cpu()
        losses[run.frames.start : run.frames.stop] = run.loss.detach().cpu()
        psnrs[run.frames.start : run.frames.stop] = run.psnr.detach().cpu()
        steps_taken.append(run.steps)

    renders = invert_frames(
        generator,
        targets,
        config=config,
        perceptual=perceptual,
        runtime=runtime,
        on_finished=gather,
        progress=progress,
        on_batch=on_batch,
        start=start,
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


def fit_in_w(
    generator: Generator,
    targets: CropSource,
    *,
    config: InvertConfig,
    perceptual: nn.Module | None,
    runtime: Runtime,
    steps: int,
) -> tuple[torch.Tensor, Renders]:
    """Each of `targets` (N crops [3, R, R]) fitted in W (one w on every layer) from the start point, with
    at most `steps` optimiser steps: codes [N, num_ws, w_dim] on the CPU, and the renders made. A base that
    offsets on some layers act on as on a face's true code (`stages.expression`)."""
    in_w = replace(config, space="w", mode="cold", first_steps=steps)
    result = invert_clip(generator, targets, config=in_w, perceptual=perceptual, runtime=runtime)
    return result.pivots, result.renders
