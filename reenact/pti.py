"""Pivotal tuning (PTI, Roich et al. 2021) of the generator over a whole clip, in ONE pass.

The pivots (W+ latents from `reenact.invert`) are fixed; the synthesis weights of a copy of the
generator are tuned with Adam so that `G_tuned(pivot[t]) ≈ frame[t]` for every frame t at once:
loss = l2_weight * MSE + lpips_weight * LPIPS on mini-batches of (frame, pivot) pairs. The mapping
network is frozen and the input generator is never modified (it serves as the frozen original).

Locality regulariser (PTI section 3.3): each regularised step samples z, maps it with truncation
psi (`w_z`), and puts a point `w_r = w_p + d * (w_z - w_p) / ||w_z - w_p||` at distance d from a
pivot of the batch (norm over all num_ws x w_dim coordinates, as PTI's code). The tuned generator
must render `w_r` as the original does (same L2 + LPIPS loss, times `locality_weight`), so the edit
directions around the pivots keep their meaning. PTI's d = 30 is in FFHQ's absolute W units; here
d = locality_radius * spread * sqrt(num_ws), where spread is W's RMS distance from its mean per layer
(measured through the mapping), so one setting means the same for any generator.
On the synthetic world (benchmarks/bench_pti.py, 3 seeds, out of domain) the regulariser makes
G change 1.8-3.7x less at random w (truncation 0.5) for 0.2-0.3 dB of clip PSNR.

Step budget (`pti_steps`): base_steps * sqrt(N), clamped to [base_steps, max_steps]. PTI spends 350
steps on one image. The frames of one clip share identity, lighting and camera, which is most of what
tuning has to learn; extra frames add pose and expression variety with diminishing returns, so the
budget grows sublinearly. The cap keeps a long clip's tuning time bounded (a step shows `batch_size`
frames, so the cap shows each frame of a long clip cap x batch / N times). A clip shorter than the batch
is drawn at its own length (`tuning_batch`): a photo drawn four times a step costs four renders for one
gradient. `benchmarks/bench_budget.py` measures what the budget costs and buys.

Reproducible and resumable: the batch order (seeded shuffled passes over the clip) and the
regulariser's z samples are pure functions of (seed, step), so the only state is the weights, Adam's
moments, the step and the running PSNR estimate. These go, with a fingerprint of the run, into one
safetensors file written atomically every `checkpoint_every` steps and at the end. A run given an
existing checkpoint with the same fingerprint continues from it and ends bit-identical (same device)
to an uninterrupted run; a checkpoint of another run (other clip, pivots, generator or settings)
raises `ReenactError` and is left untouched: the caller owns it and decides.

Data-parallel over a `torch.distributed` group (`torchrun`): `batch_size` is the global batch. Every rank
draws the same seeded batch and renders its own slice of it (`rank_slice`), the loss is each frame's
loss over the global batch size, and the gradients are summed over the ranks before Adam's step, so
the update is the one-process update on the whole batch, whatever the number of ranks. The main rank
adds the regulariser, writes the checkpoints, and every rank reads them to resume.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reenact.config import PTIConfig
from reenact.device import Runtime, autocast, to_device
from reenact.distributed import SINGLE, Group
from reenact.errors import ReenactError
from reenact.files import read_safetensors, save_tensors
from reenact.gan.stylegan2 import Generator
from reenact.imaging import CropSource
from reenact.invert import psnr
from reenact.latents import LatentSource, latent_digest
from reenact.losses import weighted_image_loss
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.workspace import tensor_digest

CHECKPOINT_FORMAT = "reenact-pti-checkpoint"
CHECKPOINT_VERSION = "2"
CONTENT_KEY = "tensors_sha256"
"""Checkpoint metadata: the hash of its tensors, so a damaged checkpoint is never resumed from."""
PARAM_PREFIX = "param."
ADAM_PREFIX = "adam."
FRAME_PSNR_KEY = "frame_psnr"
EVAL_BATCH_SIZE = 8
"""Frames rendered at once for the before/after PSNR, and read at once for the fingerprint."""
REPORT_FRAMES = 64
"""At most this many frames, evenly spaced over the clip, measure the before/after PSNR and enter the
fingerprint: reports and resume checks cost the same on a clip of any length."""
W_SPREAD_SAMPLES = 4096
"""z samples whose mapped spread sets the regulariser's distance."""
FINGERPRINT_THUMBNAIL = 64
"""Targets enter the fingerprint as thumbnails of about this side (hashing full 1024 px clips is slow)."""
RESUME_FREE_FIELDS = ("base_steps", "max_steps", "target_psnr", "checkpoint_every")
"""Settings that do not change the optimisation trajectory: a run may resume with other values."""
BATCH_STREAM, LOCALITY_STREAM, SPREAD_STREAM = 0, 1, 2
"""Independent random streams derived from the seed."""


@dataclass(frozen=True)
class TuneReport:
    """What the `on_step` callback receives after each step."""

    step: int
    """Steps done so far (including those before a resume)."""
    total_steps: int
    loss: float
    """Total loss of the step (tuning loss + weighted regulariser)."""
    psnr: float
    """Mean PSNR (dB) of the step's batch, rendered before the update."""


@dataclass
class TuneResult:
    """The tuned generator and what tuning bought."""

    generator: Generator
    """The tuned copy (eval mode, frozen); the input generator is never modified."""
    psnr_before: torch.Tensor
    """PSNR (dB) of G_orig(pivot) against the `report_frames` [K] (every frame of a short clip)."""
    psnr_after: torch.Tensor
    """PSNR (dB) of G_tuned(pivot) against the same frames, [K]."""
    report_frames: torch.Tensor
    """The frames [K] the two PSNRs measure: `report_frames(N)`."""
    steps: int
    """Optimisation steps done in all (including those done before a resume)."""
    renders: Renders
    """Images this process rendered (tuning renders, the regulariser's and the PSNR reports')."""
    resumed_from: int
    """Step the run resumed from (0 = fresh start)."""
    seconds: float
    """Wall-clock time of this call."""


class CheckpointError(ReenactError):
    """A tuning checkpoint that cannot be resumed from: unreadable, damaged, or another run's."""


class TuneInterrupted(Exception):
    """Tuning was stopped by the `stop` hook after `step` steps; the checkpoint holds that step."""

    def __init__(self, step: int) -> None:
        super().__init__(f"tuning interrupted after step {step}")
        self.step = step


# ---------------------------------------------------------------------------------------------------
# Pure functions


def pti_steps(num_frames: int, *, config: PTIConfig) -> int:
    """Step budget of a clip: base_steps * sqrt(N), clamped to [base_steps, max_steps] (see module doc)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    steps = round(config.base_steps * math.sqrt(num_frames))
    return min(config.max_steps, max(config.base_steps, steps))


def tuning_batch(num_frames: int, *, config: PTIConfig, ranks: int = 1) -> int:
    """Frames per step: `config.batch_size`, but no more than the clip has (a batch of one photo drawn
    four times renders it four times for one gradient), and at least one per rank."""
    return min(config.batch_size, max(num_frames, ranks))


def report_frames(num_frames: int) -> torch.Tensor:
    """Every frame of a short clip, else `REPORT_FRAMES` evenly spaced from first to last: [K]."""
    if num_frames <= REPORT_FRAMES:
        return torch.arange(num_frames)
    return torch.linspace(0, num_frames - 1, REPORT_FRAMES).round().long()


def derived_seed(seed: int, stream: int, index: int) -> int:
    """A seed for item `index` of random stream `stream`, independent of the others."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def batch_indices(step: int, *, num_frames: int, batch_size: int, seed: int) -> torch.Tensor:
    """Frames of batch `step` [batch_size]: consecutive slices of an endless chain of seeded permutations
    of the clip (every frame once per pass). A pure function of its arguments, so resumes redraw it."""
    positions = range(step * batch_size, (step + 1) * batch_size)
    passes: dict[int, torch.Tensor] = {}
    indices = []
    for position in positions:
        epoch, offset = divmod(position, num_frames)
        if epoch not in passes:
            rng = torch.Generator().manual_seed(derived_seed(seed, BATCH_STREAM, epoch))
            passes[epoch] = torch.randperm(num_frames, generator=rng)
        indices.append(int(passes[epoch][offset]))
    return torch.tensor(indices, dtype=torch.long)


def rank_slice(batch: torch.Tensor, *, group: Group) -> torch.Tensor:
    """This rank's share of a global batch [B]: consecutive, as equal as can be."""
    size = len(batch)
    return batch[size * group.rank // group.size : size * (group.rank + 1) // group.size]


def times_drawn(steps: int, *, num_frames: int, batch_size: int, seed: int) -> np.ndarray:
    """How often each frame is in a batch over `steps` steps of tuning: [N] (the same draw as tuning's)."""
    counts = np.zeros(num_frames, dtype=np.int64)
    for step in range(steps):
        np.add.at(
            counts, batch_indices(step, num_frames=num_frames, batch_size=batch_size, seed=seed).numpy(), 1
        )
    return counts


def w_spread(mapping: nn.Module, *, z_dim: int, seed: int, device: torch.device | str) -> float:
    """RMS distance of mapped w from their mean, per layer (stylegan2-ada projector's `w_std`)."""
    rng = torch.Generator().manual_seed(derived_seed(seed, SPREAD_STREAM, 0))
    z = torch.randn(W_SPREAD_SAMPLES, z_dim, generator=rng).to(device)
    with torch.no_grad():
        w = mapping(z)[:, 0].float()  # [S, w_dim]
    return float((w - w.mean(dim=0)).pow(2).sum(dim=1).mean().sqrt())


def locality_points(pivots: torch.Tensor, sampled: torch.Tensor, *, distance: float) -> torch.Tensor:
    """PTI's regularisation points: from each pivot [S, L, D] towards its sampled w [S, L, D] by
    `distance` (norm over all L x D coordinates): w_p + distance * (w_z - w_p) / ||w_z - w_p||."""
    direction = sampled - pivots  # [S, L, D]
    norm = direction.flatten(1).norm(dim=1).clamp_min(torch.finfo(direction.dtype).eps)  # [S]
    return pivots + distance * direction / norm[:, None, None]


def image_loss(
    images: torch.Tensor, targets: torch.Tensor, *, perceptual: nn.Module | None, config: PTIConfig
) -> torch.Tensor:
    """l2_weight * MSE + lpips_weight * LPIPS per image, in float32: [B, 3, R, R] x2 -> [B]."""
    return weighted_image_loss(
        images,
        targets,
        pixel_weight=config.l2_weight,
        perceptual=perceptual,
        perceptual_weight=config.lpips_weight,
    )


def run_fingerprint(
    generator: Generator,
    targets: CropSource,
    pivots: LatentSource,
    *,
    config: PTIConfig,
    perceptual: nn.Module | None,
    autocast_dtype: torch.dtype | None,
) -> str:
    """Hex digest of everything that shapes the tuning trajectory: the generator's synthesis weights,
    the pivots, the targets (count + thumbnails of the report frames), the settings (but
    `RESUME_FREE_FIELDS`), whether and which LPIPS is used, and the autocast dtype."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUME_FREE_FIELDS}
    header = {
        "settings": settings,
        "targets": len(targets),
        "pivots": list(pivots.shape),
        "perceptual": None if perceptual is None else type(perceptual).__name__,
        "autocast": str(autocast_dtype),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, param in generator.synthesis.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(latent_digest(pivots).encode())
    for frames in report_frames(len(targets)).split(EVAL_BATCH_SIZE):  # the report frames' crops are big
        sample = targets[frames]  # [b, 3, R, R]
        stride = max(1, sample.shape[-1] // FINGERPRINT_THUMBNAIL)
        thumbnails = sample[:, :, ::stride, ::stride].detach().float().cpu().contiguous()
        digest.update(thumbnails.numpy().tobytes())  # in frame order: the bytes of all of them at once
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(
    path: Path,
    *,
    synthesis: nn.Module,
    optimiser: torch.optim.Adam,
    step: int,
    frame_psnr: torch.Tensor,
    fingerprint: str,
) -> None:
    """Tuned synthesis weights, Adam's state, the step and the running PSNR in one safetensors file,
    written atomically (`reenact.files.save_tensors`)."""
    tensors = {PARAM_PREFIX + name: param for name, param in synthesis.named_parameters()}
    for index, state in optimiser.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"{ADAM_PREFIX}{index}.{key}"] = torch.as_tensor(value)
    tensors[FRAME_PSNR_KEY] = frame_psnr.float()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "step": str(step),
        "fingerprint": fingerprint,
    }
    metadata[CONTENT_KEY] = tensor_digest(tensors)
    save_tensors(path, tensors, metadata=metadata)


def read_checkpoint(path: Path, *, fingerprint: str) -> tuple[int, dict[str, torch.Tensor]]:
    """Step and tensors of a checkpoint of this run; `ReenactError` for an unreadable one or another run's."""
    try:
        tensors, metadata = read_safetensors(path)
    except Exception as error:
        raise CheckpointError(
            f"cannot read tuning checkpoint {path}: {error}; delete it to start over"
        ) from None
    if metadata.get(CONTENT_KEY) != tensor_digest(tensors):
        raise CheckpointError(f"tuning checkpoint {path} is damaged (its tensors do not match their hash)")
    if metadata.get("format") != CHECKPOINT_FORMAT or metadata.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} is not a reenact tuning checkpoint (version {CHECKPOINT_VERSION})")
    if metadata.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"tuning checkpoint {path} belongs to another run (other clip, pivots, generator or settings); "
            "delete it or pass another checkpoint path"
        )
    return int(metadata["step"]), tensors


def restore_checkpoint(
    tensors: dict[str, torch.Tensor], *, synthesis: nn.Module, optimiser: torch.optim.Adam
) -> torch.Tensor:
    """Load weights and Adam's state from checkpoint tensors; returns the running per-frame PSNR."""
    with torch.no_grad():
        for name, param in synthesis.named_parameters():
            param.copy_(tensors[PARAM_PREFIX + name])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(ADAM_PREFIX):
            index, name = key[len(ADAM_PREFIX) :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    param_groups = optimiser.state_dict()["param_groups"]
    optimiser.load_state_dict({"state": state, "param_groups": param_groups})
    return tensors[FRAME_PSNR_KEY]


# ---------------------------------------------------------------------------------------------------
# Tuning


def _check_shapes(generator: Generator, targets: CropSource, pivots: LatentSource) -> None:
    resolution = generator.resolution
    first = targets[0:1] if len(targets) else None
    if first is None or first.ndim != 4 or first.shape[1:] != (3, resolution, resolution):
        shape = "no frames" if first is None else f"[N, {', '.join(map(str, first.shape[1:]))}]"
        raise ValueError(f"targets must be [N, 3, {resolution}, {resolution}], got {shape}")
    expected = (len(targets), generator.num_ws, generator.w_dim)
    if tuple(pivots.shape) != expected:
        raise ValueError(f"pivots must be [N, num_ws, w_dim] = {list(expected)}, got {list(pivots.shape)}")


def clip_psnr(
    generator: Generator, targets: CropSource, pivots: LatentSource, *, frames: torch.Tensor
) -> torch.Tensor:
    """PSNR (dB) of generator(pivot) against the `frames` [K] of the clip, in float32 and batches: [K]."""
    device = generator.mapping.w_avg.device
    scores = []
    with torch.no_grad():
        for batch in frames.split(EVAL_BATCH_SIZE):
            images = generator.synthesis(to_device(pivots[batch], device), noise_mode="const")
            scores.append(psnr(images, to_device(targets[batch], device)).cpu())
    return torch.cat(scores)


@dataclass
class TuningState:
    """What tuning carries from step to step besides the weights and Adam's moments; both go into the
    checkpoint."""

    step: int
    """Steps done (including those before a resume)."""
    frame_psnr: torch.Tensor
    """[N] each frame's PSNR when it was last in a batch (NaN: not drawn yet)."""

    def record(self, figures: StepFigures) -> None:
        """A step is done: its frames' PSNRs replace theirs."""
        self.frame_psnr[figures.frames] = figures.psnr
        self.step += 1


@dataclass(frozen=True)
class StepFigures:
    """What one step measured over the whole (global) batch."""

    frames: torch.Tensor
    """The batch's frames [B]."""
    psnr: torch.Tensor
    """Their PSNR (dB) rendered before the update [B]."""
    loss: float
    """Total loss of the step (tuning loss + weighted regulariser, summed over the ranks)."""


@dataclass(frozen=True)
class Tuning:
    """The fixed parts of one tuning run: what every step reads."""

    tuned: Generator
    original: Generator
    """The frozen reference (G_orig) the regulariser compares with."""
    targets: CropSource
    pivots: LatentSource
    config: PTIConfig
    perceptual: nn.Module | None
    runtime: Runtime
    group: Group
    batch_size: int
    """Frames of every step's global batch (`tuning_batch`)."""
    distance: float
    """The regulariser's distance from the pivots, in W units."""


def resume(
    checkpoint: Path | None,
    *,
    fingerprint: str,
    synthesis: nn.Module,
    optimiser: torch.optim.Adam,
    num_frames: int,
    group: Group,
) -> TuningState:
    """Where tuning starts: from `checkpoint` when it exists (weights and Adam's state restored in place;
    `CheckpointError` for another run's), else from step 0. Every rank must start from the same step."""
    state = TuningState(step=0, frame_psnr=torch.full((num_frames,), math.nan))
    if checkpoint is not None and checkpoint.exists():
        step, tensors = read_checkpoint(checkpoint, fingerprint=fingerprint)
        frame_psnr = restore_checkpoint(tensors, synthesis=synthesis, optimiser=optimiser)
        state = TuningState(step=step, frame_psnr=frame_psnr)
    if len(set(group.gather(state.step))) > 1:
        raise ReenactError(f"the ranks found different tuning checkpoints in {checkpoint}; run again")
    return state


def reached_target(frame_psnr: torch.Tensor, *, target_psnr: float) -> bool:
    """Early stop: every frame has been drawn and their mean PSNR [N] reaches `target_psnr` (0: never)."""
    seen_all = not bool(torch.isnan(frame_psnr).any())
    return target_psnr > 0 and seen_all and float(frame_psnr.mean()) >= target_psnr


def finished(state: TuningState, *, total_steps: int, target_psnr: float) -> bool:
    """Tuning ends once the step budget is spent or the clip `reached_target`."""
    return state.step >= total_steps or reached_target(state.frame_psnr, target_psnr=target_psnr)


def step_loss(run: Tuning, index: torch.Tensor, *, step: int) -> tuple[torch.Tensor, torch.Tensor, Renders]:
    """Step `step` on this rank, over the global batch `index` [B] (`batch_indices`): its loss (its
    share of the batch mean, plus the regulariser on the main rank every `locality_interval` steps), the
    step's figures packed for `reduce_step`, and the renders."""
    config, group, device = run.config, run.group, run.runtime.device
    mine = rank_slice(index, group=group)  # this rank's frames of the batch
    batch_pivots = to_device(run.pivots[mine], device)  # [b, num_ws, w_dim]
    batch_targets = to_device(run.targets[mine], device)  # [b, 3, R, R]
    with autocast(run.runtime):
        images = run.tuned.synthesis(batch_pivots, noise_mode="const")  # [b, 3, R, R]
    losses = image_loss(images.float(), batch_targets, perceptual=run.perceptual, config=config)  # [b]
    loss = losses.sum() / len(index)  # this rank's share of the batch mean
    renders = Renders(backward=len(mine))
    if config.locality_weight > 0 and group.is_main and step % config.locality_interval == 0:
        loss = loss + config.locality_weight * locality_loss(
            run, to_device(run.pivots[index], device), step=step
        )
        # G_tuned's render, and G_orig's reference
        renders += Renders(backward=config.locality_samples, forward=config.locality_samples)
    batch_psnr = psnr(images.detach().float(), batch_targets).cpu()  # [b]
    return loss, pack_figures(batch_psnr, float(loss.detach()), batch_size=len(index), group=group), renders


def pack_figures(batch_psnr: torch.Tensor, loss: float, *, batch_size: int, group: Group) -> torch.Tensor:
    """A rank's figures laid out so that summing them over the ranks gives the step's: [B + 1], this
    rank's PSNRs [b] at its slice of the batch (zeros elsewhere), its loss last."""
    packed = torch.zeros(batch_size + 1)  # [B + 1]
    first = batch_size * group.rank // group.size  # where this rank's slice starts (`rank_slice`)
    packed[first : first + len(batch_psnr)] = batch_psnr
    packed[-1] = loss
    return packed


def unpack_figures(packed: torch.Tensor, *, frames: torch.Tensor) -> StepFigures:
    """The step's figures from a summed `pack_figures` buffer [B + 1] of the batch `frames` [B]."""
    return StepFigures(frames=frames, psnr=packed[:-1], loss=float(packed[-1]))


def reduce_step(parameters: list[nn.Parameter], packed: torch.Tensor, *, group: Group) -> torch.Tensor:
    """Sum the gradients and the packed figures [B + 1] over the ranks (one collective); returns the
    summed figures. A single process has nothing to sum."""
    if not group.distributed:
        return packed
    return sum_gradients(parameters, extra=packed, group=group)


class Checkpointer:
    """Writes the run's checkpoint (main rank only; nowhere when no path is given)."""

    def __init__(self, path: Path | None, *, fingerprint: str, group: Group) -> None:
        self.path, self.fingerprint, self.group = path, fingerprint, group

    def write(self, state: TuningState, *, synthesis: nn.Module, optimiser: torch.optim.Adam) -> None:
        if self.path is None or not self.group.is_main:
            return
        save_checkpoint(
            self.path,
            synthesis=synthesis,
            optimiser=optimiser,
            step=state.step,
            frame_psnr=state.frame_psnr,
            fingerprint=self.fingerprint,
        )


def tune_generator(
    generator: Generator,
    targets: CropSource,
    pivots: LatentSource,
    *,
    config: PTIConfig,
    perceptual: nn.Module | None,
    runtime: Runtime,
    checkpoint: Path | None = None,
    progress: Progress = SILENT,
    on_step: Callable[[TuneReport], None] | None = None,
    stop: Callable[[int], bool] | None = None,
    group: Group = SINGLE,
    pivot_psnr: torch.Tensor | None = None,
) -> TuneResult:
    """Tune a copy of `generator`'s synthesis network so that it renders `pivots` [N, num_ws, w_dim] as
    `targets` (N aligned crops [3, R, R] in [-1, 1]: a tensor, or a store read a batch at a time); see
    the module docstring. Only the batch in use is on the device.

    `perceptual`: an LPIPS module (`reenact.losses.LPIPS`) or None for an L2-only loss.
    `runtime`: the device, and the autocast the tuned generator renders under (losses stay float32).
    `checkpoint`: file written every `config.checkpoint_every` steps and at the end; if it exists and
    belongs to this run, tuning resumes from it. `progress` gets a "tune" task counting steps (a resumed
    run starts at its checkpoint's step); `on_step` receives each step's figures. `stop(step)` is called
    after each step; True writes a checkpoint (when a path is given) and raises `TuneInterrupted`.
    `group`: the ranks tuning together, data-parallel (see the module docstring); each must call this
    with the same arguments. `pivot_psnr` [N]: each frame's PSNR at its pivot with `generator`, known from
    the inversion; the before-tuning PSNR is read from it instead of rendered again.

    The pieces: `resume`, then per step `step_loss`, backward, `reduce_step`, Adam's step and
    `TuningState.record`, until `finished`; `Checkpointer` writes the checkpoints.
    """
    _check_shapes(generator, targets, pivots)
    if config.batch_size < group.size:
        raise ReenactError(
            f"pti.batch_size ({config.batch_size}) is the batch of all ranks together and must be at least "
            f"the number of ranks ({group.size}); use e.g. --set pti.batch_size={group.size}"
        )
    started = time.perf_counter()
    device = runtime.device
    num_frames = len(targets)
    measured = report_frames(num_frames)  # [K]
    total_steps = pti_steps(num_frames, config=config)

    original = copy.deepcopy(generator).to(device).eval().requires_grad_(False)  # frozen reference
    tuned = copy.deepcopy(original)
    tuned.synthesis.requires_grad_(True)
    optimiser = torch.optim.Adam(tuned.synthesis.parameters(), lr=config.learning_rate)
    fingerprint = run_fingerprint(
        original, targets, pivots, config=config, perceptual=perceptual, autocast_dtype=runtime.autocast_dtype
    )
    state = resume(
        checkpoint,
        fingerprint=fingerprint,
        synthesis=tuned.synthesis,
        optimiser=optimiser,
        num_frames=num_frames,
        group=group,
    )
    start_step = state.step
    checkpoints = Checkpointer(checkpoint, fingerprint=fingerprint, group=group)

    if pivot_psnr is None:
        psnr_before = clip_psnr(original, targets, pivots, frames=measured)
    else:
        psnr_before = pivot_psnr.float().cpu()[measured]
    distance = config.locality_radius * math.sqrt(original.num_ws)
    distance *= w_spread(original.mapping, z_dim=original.z_dim, seed=config.seed, device=device)
    run = Tuning(
        tuned=tuned,
        original=original,
        targets=targets,
        pivots=pivots,
        config=config,
        perceptual=perceptual,
        runtime=runtime,
        group=group,
        batch_size=tuning_batch(num_frames, config=config, ranks=group.size),
        distance=distance,
    )
    renders = Renders(forward=len(measured) * (2 if pivot_psnr is None else 1))  # the PSNR reports
    parameters = list(tuned.synthesis.parameters())
    with progress.task("tune", total=total_steps, unit="step", initial=start_step) as task:
        while not finished(state, total_steps=total_steps, target_psnr=config.target_psnr):
            frames = batch_indices(
                state.step, num_frames=num_frames, batch_size=run.batch_size, seed=config.seed
            )
            loss, packed, made = step_loss(run, frames, step=state.step)
            renders += made
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            figures = unpack_figures(reduce_step(parameters, packed, group=group), frames=frames)
            optimiser.step()
            state.record(figures)
            task.advance()
            if on_step is not None:
                mean_psnr = float(figures.psnr.mean())
                on_step(
                    TuneReport(step=state.step, total_steps=total_steps, loss=figures.loss, psnr=mean_psnr)
                )
            if stop is not None and stop(state.step):
                checkpoints.write(state, synthesis=tuned.synthesis, optimiser=optimiser)
                raise TuneInterrupted(state.step)
            if state.step % config.checkpoint_every == 0:
                checkpoints.write(state, synthesis=tuned.synthesis, optimiser=optimiser)
    checkpoints.write(state, synthesis=tuned.synthesis, optimiser=optimiser)
    tuned.eval().requires_grad_(False)
    return TuneResult(
        generator=tuned,
        psnr_before=psnr_before,
        psnr_after=clip_psnr(tuned, targets, pivots, frames=measured),
        report_frames=measured,
        steps=state.step,
        renders=renders,
        resumed_from=start_step,
        seconds=time.perf_counter() - started,
    )


def sum_gradients(parameters: list[nn.Parameter], *, extra: torch.Tensor, group: Group) -> torch.Tensor:
    """Each parameter's gradient summed over the ranks, in place, with `extra` [K] (a step's figures)
    carried along in the same flat buffer: one collective per step. Returns `extra` summed, on the CPU.
    Every rank renders through the same layers, so the same parameters have gradients on each."""
    grads = [param.grad for param in parameters if param.grad is not None]
    device = grads[0].device
    flat = group.sum_(torch.cat([*(grad.reshape(-1) for grad in grads), extra.to(device)]))
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
    return flat[offset:].cpu()


def locality_loss(run: Tuning, batch_pivots: torch.Tensor, *, step: int) -> torch.Tensor:
    """Mean image loss between G_tuned and G_orig at `locality_samples` points near the batch's pivots
    [B, num_ws, w_dim] (step `step`'s seeded samples)."""
    config, original, device = run.config, run.original, batch_pivots.device
    rng = torch.Generator().manual_seed(derived_seed(config.seed, LOCALITY_STREAM, step))
    z = torch.randn(config.locality_samples, original.z_dim, generator=rng).to(device)  # [S, z_dim]
    anchors = batch_pivots[torch.arange(config.locality_samples, device=device) % batch_pivots.shape[0]]
    with torch.no_grad():
        sampled = original.mapping(z, truncation_psi=config.locality_truncation)  # [S, num_ws, w_dim]
        points = locality_points(anchors, sampled, distance=run.distance)
        reference = original.synthesis(points, noise_mode="const")  # [S, 3, R, R]
    with autocast(run.runtime):
        rendered = run.tuned.synthesis(points, noise_mode="const")
    return image_loss(rendered.float(), reference, perceptual=run.perceptual, config=config).mean()
