"""Train reenact's StyleGAN2 `Generator` from scratch on aligned face crops (the face world, issue #27).

The recipe is StyleGAN2's as stylegan2-ada-pytorch runs it (`training/training_loop.py`, `loss.py`):
a 'resnet' discriminator (`reenact.gan.discriminator`), the non-saturating logistic loss, lazy R1 on D,
style mixing, an EMA copy of G that is the result, Adam with beta1 = 0; plus DiffAugment on everything
D sees (`reenact.gan.augment`), because the data is a few thousand frames of a dozen people. Path
length regularisation is left out (it costs a second G pass per interval; the face world is judged by
its samples, not by PPL).

Everything random in a step comes from the trainer's own streams (a `torch.Generator` for data,
latents and augmentation; a saved global-RNG state for the synthesis noise, which the generator draws
from torch's global RNG of the training device), so a run stopped at a checkpoint and resumed is
bit-identical to one that never stopped, and training leaves the caller's RNG untouched. The tests show
it on the CPU; on CUDA the same streams are kept, but no GPU has run this code yet, and cuDNN's
convolutions are themselves not bit-reproducible unless made deterministic.

A run folder holds `checkpoint.pt` (all training state, written atomically), `log.jsonl` (one line of
figures every `log_every` steps, with the face detection rate of the EMA samples every
`face_check_every` steps) and `generator.safetensors` (the EMA generator, loadable by `--generator`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.files import atomic_path, write_text_atomic
from reenact.gan.augment import DEFAULT_POLICY, diff_augment, parse_policy
from reenact.gan.checkpoints import save_generator
from reenact.gan.discriminator import Discriminator, DiscriminatorConfig
from reenact.gan.stylegan2 import Generator, GeneratorConfig
from reenact.gan.training_losses import (
    discriminator_loss,
    ema_beta,
    generator_loss,
    lazy_adam,
    r1_loss,
    r1_penalty,
    update_ema,
)
from reenact.plots import AXIS_COLOUR, Axis, Series, two_axis_plot
from reenact.progress import SILENT, Progress
from reenact.sampling import FACE_CHECK_TRUNCATION, FaceCounter, render_seeds

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
GENERATOR_NAME = "generator.safetensors"
"""The files of a run folder (module docstring)."""
CHECKPOINT_VERSION = 1
"""Bumped when the checkpoint's layout changes; an unknown version is refused, not misread."""
RUN_CONTROL_FIELDS = frozenset({"steps", "checkpoint_every", "log_every", "face_check_every"})
"""Settings a resumed run may change (they steer the run, not the training): the rest must match."""
UINT8_HALF_RANGE = 127.5
"""uint8 pixels map to [-1, 1] as p / 127.5 - 1 (`reenact.imaging`'s convention)."""
MIRROR_CHANCE = 0.5
"""With `mirror`, each real image is flipped with this probability (both orientations equally likely)."""
WEIGHT_MEMORY_FORMAT = torch.channels_last
"""Layout of the networks' conv weights while training: oneDNN's convolutions run faster on the CPU with
channels-last weights (`benchmarks/bench_train.py --memory-format`); the maths is the same."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Every setting of a training run. Architecture defaults are a small StyleGAN2 for a CPU budget."""

    resolution: int = 64
    """Image side in pixels (the dataset's): 64 for a CPU run, 128 where a GPU is lent."""
    z_dim: int = 256
    """Input latent width."""
    w_dim: int = 256
    """W width (the FFHQ generators' 512 would double the style affines for no gain on this data)."""
    mapping_layers: int = 2
    """Mapping depth: stylegan2-ada's 'auto' config uses 2 for small datasets."""
    channel_base: int = 2048
    """Channels at resolution r are min(channel_base // r, channel_max), in G and in D."""
    channel_max: int = 128
    """Upper bound on the channels of any layer, in G and in D."""
    batch: int = 16
    """Images per step (a multiple of the minibatch-stddev group, 4)."""
    g_lr: float = 0.0025
    """Generator Adam learning rate (StyleGAN2's)."""
    d_lr: float = 0.0025
    """Discriminator Adam learning rate before the lazy-R1 adjustment (StyleGAN2's)."""
    betas: tuple[float, float] = (0.0, 0.99)
    """Adam betas (StyleGAN2's: no first-moment momentum)."""
    r1_gamma: float = 0.05
    """R1 weight: stylegan2-ada's 'auto' heuristic 0.0002 * resolution^2 / batch at 64 px, batch 16."""
    r1_interval: int = 16
    """R1 runs every this many steps, its loss scaled by the interval (lazy regularisation)."""
    ema_half_life_images: int = 5000
    """Half-life of the EMA generator in images (stylegan2-ada 'auto': batch * 10/32 kimg)."""
    ema_rampup: float | None = 0.05
    """The EMA half-life is at most this share of the images seen so far; None: no ramp-up."""
    style_mixing: float = 0.9
    """Probability that a batch's W+ switches to a second latent after a random layer (StyleGAN2's)."""
    augment: str = DEFAULT_POLICY
    """DiffAugment policy applied to every image D sees ('' for none)."""
    mirror: bool = True
    """Flip each real image horizontally with probability 1/2 (doubles the data; faces are near symmetric)."""
    steps: int = 20_000
    """Training steps (each: one G update, one D update, plus R1 every r1_interval)."""
    seed: int = 0
    """Seed of the initial weights and of every random draw of the run."""
    checkpoint_every: int = 500
    """Steps between checkpoints (and exports of the EMA generator); the last step always writes one."""
    log_every: int = 50
    """Steps between log lines (losses averaged over the steps since the last line)."""
    face_check_every: int = 1000
    """Steps between face detection rates of the EMA samples (0: never; needs dlib)."""
    face_check_seeds: int = 64
    """Seeds 0..n-1 of the face check, at truncation 0.7, upscaled to 256 px."""

    def __post_init__(self) -> None:
        at_least_one = (
            "z_dim",
            "w_dim",
            "mapping_layers",
            "batch",
            "r1_interval",
            "ema_half_life_images",
            "steps",
            "checkpoint_every",
            "log_every",
            "face_check_seeds",
        )
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ReenactError(f"training: {name} must be >= 1, got {getattr(self, name)}")
        if self.face_check_every < 0:
            raise ReenactError("training: face_check_every must be >= 0 (0 turns the check off)")
        for name in ("g_lr", "d_lr", "r1_gamma"):
            if not getattr(self, name) >= 0.0:
                raise ReenactError(f"training: {name} must be >= 0, got {getattr(self, name)}")
        if not all(0.0 <= beta < 1.0 for beta in self.betas) or len(self.betas) != 2:
            raise ReenactError(f"training: betas must be two numbers in [0, 1), got {self.betas}")
        if not 0.0 <= self.style_mixing <= 1.0:
            raise ReenactError("training: style_mixing must be a probability in [0, 1]")
        parse_policy(self.augment)
        object.__setattr__(self, "betas", tuple(float(beta) for beta in self.betas))
        self.discriminator_config()  # validates resolution and channels
        group = min(self.discriminator_config().mbstd_group_size, self.batch)
        if self.batch % group:
            raise ReenactError(f"training: batch {self.batch} must be a multiple of {group}")

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            resolution=self.resolution,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            mapping_layers=self.mapping_layers,
        )

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(
            resolution=self.resolution, channel_base=self.channel_base, channel_max=self.channel_max
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ReenactError(f"training config has unknown fields {unknown}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


def dataset_digest(images: np.ndarray) -> str:
    """sha256 of the training images' bytes and shape: a resumed run must see the same data."""
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def _rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose global RNG `fork_rng` must save and restore besides the CPU's."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _noise_state(device: torch.device) -> torch.Tensor:
    """The global RNG state that the synthesis noise on `device` draws from (a CPU byte tensor)."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


@contextlib.contextmanager
def _noise_rng(state: torch.Tensor, device: torch.device) -> Iterator[list[torch.Tensor]]:
    """Run with `device`'s global RNG at `state`; yields a one-item list that holds the state after.

    The caller's own global RNG states are restored on exit."""
    after = [state]
    with torch.random.fork_rng(devices=_rng_devices(device)):
        if device.type == "cuda":
            torch.cuda.set_rng_state(state, device)
        else:
            torch.set_rng_state(state)
        yield after
        after[0] = _noise_state(device)


class Trainer:
    """The state of a run (networks, optimisers, RNG streams, step) and one training step."""

    def __init__(
        self, config: TrainConfig, images: np.ndarray, *, device: torch.device | str = "cpu"
    ) -> None:
        expected = (config.resolution, config.resolution, 3)
        if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
            raise ReenactError(
                f"training images must be uint8 [N, {config.resolution}, {config.resolution}, 3], "
                f"got {images.dtype} {list(images.shape)}"
            )
        if len(images) == 0:
            raise ReenactError("training: the dataset has no images")
        self.config = config
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)  # [N, R, R, 3] uint8
        self.digest = dataset_digest(images)
        self.policy = parse_policy(config.augment)
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.manual_seed(config.seed)  # the CPU's and every CUDA device's
            self.G = Generator(config.generator_config()).to(self.device, memory_format=WEIGHT_MEMORY_FORMAT)
            self.D = Discriminator(config.discriminator_config()).to(
                self.device, memory_format=WEIGHT_MEMORY_FORMAT
            )
            self.noise_state = _noise_state(self.device)
        self.G.train()
        self.D.train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.g_lr, betas=config.betas)
        d_lr, d_betas = lazy_adam(lr=config.d_lr, betas=config.betas, interval=config.r1_interval)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=d_betas)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.step = 0
        self.images_seen = 0
        self.seconds = 0.0

    # -- one step -----------------------------------------------------------------------------------

    def _real_batch(self) -> torch.Tensor:
        """Dataset images [B, 3, R, R] in [-1, 1], drawn with replacement, each mirrored with chance 1/2."""
        batch = self.config.batch
        index = torch.randint(len(self.images), [batch], generator=self.rng, device=self.device)
        real = self.images[index].permute(0, 3, 1, 2).float() / UINT8_HALF_RANGE - 1.0  # [B, 3, R, R]
        if self.config.mirror:
            flip = torch.rand([batch], generator=self.rng, device=self.device) < MIRROR_CHANCE
            real = torch.where(flip[:, None, None, None], real.flip(3), real)
        return real

    def _fake_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated images [B, 3, R, R] (random noise) and their unmixed w [B, w_dim]."""
        shape = [self.config.batch, self.G.z_dim]
        z = torch.randn(shape, generator=self.rng, device=self.device)
        z_mix = torch.randn(shape, generator=self.rng, device=self.device)
        cutoff = int(torch.randint(1, self.G.num_ws, [1], generator=self.rng, device=self.device))
        mix = float(torch.rand([1], generator=self.rng, device=self.device)) < self.config.style_mixing
        ws = self.G.mapping(z)  # [B, num_ws, w_dim]
        if mix:
            ws = torch.cat([ws[:, :cutoff], self.G.mapping(z_mix)[:, cutoff:]], dim=1)
        return self.G.synthesis(ws, noise_mode="random"), ws[:, 0]

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, self.policy, rng=self.rng)

    def train_step(self) -> dict[str, float]:
        """One G update, one D update, R1 on the steps the interval names, the EMA; figures of the step."""
        config = self.config
        figures: dict[str, float] = {}
        with _noise_rng(self.noise_state, self.device) as noise_after:
            # G: make D call the fakes real.
            self.D.requires_grad_(False)
            fake, w = self._fake_batch()
            fake_logits = self.D(self._augment(fake))
            loss_g = generator_loss(fake_logits)
            self.opt_G.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_G.step()
            self.G.mapping.track_w_avg(w)
            self.D.requires_grad_(True)
            figures["g_loss"] = float(loss_g.detach())

            # D: tell real from fake.
            with torch.no_grad():
                fake, _ = self._fake_batch()
            real = self._real_batch()
            real_logits = self.D(self._augment(real))
            fake_logits = self.D(self._augment(fake))
            loss_d = discriminator_loss(real_logits, fake_logits)
            self.opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_D.step()
            figures.update(
                d_loss=float(loss_d.detach()),
                real_logit=float(real_logits.detach().mean()),
                fake_logit=float(fake_logits.detach().mean()),
            )

            # Lazy R1 on the same real batch.
            if self.step % config.r1_interval == 0 and config.r1_gamma > 0:
                real_in = real.detach().requires_grad_(True)
                penalty = r1_penalty(real_in, self.D(self._augment(real_in)))
                loss_r1 = r1_loss(penalty, gamma=config.r1_gamma, interval=config.r1_interval)
                self.opt_D.zero_grad(set_to_none=True)
                loss_r1.backward()
                self.opt_D.step()
                figures["r1_penalty"] = float(penalty.detach().mean())
        self.noise_state = noise_after[0]

        self.images_seen += config.batch
        beta = ema_beta(
            batch=config.batch,
            half_life_images=config.ema_half_life_images,
            images_seen=self.images_seen,
            rampup=config.ema_rampup,
        )
        update_ema(self.G_ema, self.G, beta=beta)
        self.step += 1
        if not all(math.isfinite(value) for value in figures.values()):
            raise ReenactError(f"training diverged at step {self.step}: {figures}")
        return figures

    # -- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "dataset": self.digest,
            "step": self.step,
            "images_seen": self.images_seen,
            "seconds": self.seconds,
            "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": self.rng.get_state(),
            "noise_rng": self.noise_state,
        }

    def save(self, path: Path) -> Path:
        """Write the whole training state to `path` atomically."""
        with atomic_path(path) as temporary:
            torch.save(self.state_dict(), temporary)
        return path

    def load(self, path: Path) -> None:
        """Continue from a checkpoint written by `save` for the same settings (bar RUN_CONTROL_FIELDS) and
        the same dataset; a `ReenactError` naming the difference otherwise."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # RNG states live on the CPU
        except Exception as error:
            raise ReenactError(f"cannot read the training checkpoint {path}: {error}") from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise ReenactError(
                f"{path}: checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}"
            )
        saved = TrainConfig.from_dict(json.loads(state["config"])).to_dict()
        for name, value in self.config.to_dict().items():
            if name not in RUN_CONTROL_FIELDS and saved[name] != value:
                raise ReenactError(
                    f"{path} was trained with {name}={saved[name]}, not {value}; use a new run folder"
                )
        if state["dataset"] != self.digest:
            raise ReenactError(f"{path} was trained on another dataset; use a new run folder")
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.rng.set_state(state["rng"])
        self.noise_state = state["noise_rng"]
        self.step = int(state["step"])
        self.images_seen = int(state["images_seen"])
        self.seconds = float(state["seconds"])


# ---------------------------------------------------------------------------------------------------
# A run


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended: its step, training time, last log line and the exported EMA generator."""

    step: int
    seconds: float
    last: dict[str, float]
    generator: Path


def read_log(path: Path) -> list[dict[str, float]]:
    """The complete lines of a run's log.jsonl ([] when there is none)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash: not a finished entry
            continue
    return entries


LOSS_STEP = 0.5
"""The loss axis of the training curves is rounded out to multiples of this."""
RATE_STEP = 0.1
D_LOSS_COLOUR, G_LOSS_COLOUR, FACE_RATE_COLOUR = (200, 90, 30), (60, 160, 60), (30, 120, 230)  # BGR


def training_curves(entries: list[dict[str, float]]) -> np.ndarray:
    """BGR image of a run's log (`read_log`): D's and G's losses (left axis) and the face detection rate
    of the EMA samples (right axis) against the step."""

    def series(name: str, colour: tuple[int, int, int], label: str) -> Series:
        rows = [entry for entry in entries if name in entry]
        return Series(
            np.array([entry["step"] for entry in rows], dtype=np.float64),
            np.array([entry[name] for entry in rows], dtype=np.float64),
            colour,
            label,
        )

    losses = (series("d_loss", D_LOSS_COLOUR, "D loss"), series("g_loss", G_LOSS_COLOUR, "G loss"))
    rate = series("face_rate", FACE_RATE_COLOUR, "samples with a face (dlib)")
    return two_axis_plot(
        left=Axis("loss", losses, step=LOSS_STEP, colour=AXIS_COLOUR),
        right=Axis(
            "face rate", (rate,), step=RATE_STEP, colour=FACE_RATE_COLOUR, decimals=1, limits=(0.0, 1.0)
        ),
        x_name="step",
    )


def _keep_log_until(path: Path, step: int) -> None:
    """Drop log lines after `step` (written after the checkpoint a resumed run restarts from)."""
    lines = [entry for entry in read_log(path) if entry["step"] <= step]
    if path.exists():
        write_text_atomic(path, "".join(json.dumps(entry) + "\n" for entry in lines))


def _mean_figures(window: list[dict[str, float]]) -> dict[str, float]:
    """Each figure averaged over the steps of `window` that have it."""
    names = sorted({name for figures in window for name in figures})
    return {name: float(np.mean([f[name] for f in window if name in f])) for name in names}


def train(
    config: TrainConfig,
    images: np.ndarray,
    *,
    run_dir: Path,
    device: torch.device | str = "cpu",
    progress: Progress = SILENT,
) -> TrainResult:
    """Train until `config.steps`, continuing from `run_dir`'s checkpoint when it has one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, log_path = run_dir / CHECKPOINT_NAME, run_dir / LOG_NAME
    trainer = Trainer(config, images, device=device)
    if checkpoint.exists():
        trainer.load(checkpoint)
        progress.note(f"resumed {run_dir} at step {trainer.step}")
    _keep_log_until(log_path, trainer.step)
    faces = FaceCounter() if config.face_check_every else None
    seeds = list(range(config.face_check_seeds))
    window: list[dict[str, float]] = []
    last: dict[str, float] = {}
    started, seconds_before = time.perf_counter(), trainer.seconds
    with progress.task("train", total=config.steps, unit="step", initial=trainer.step) as task:
        while trainer.step < config.steps:
            window.append(trainer.train_step())
            trainer.seconds = seconds_before + time.perf_counter() - started
            step = trainer.step
            entry: dict[str, float] = {}
            if step % config.log_every == 0 or step == config.steps:
                entry = _mean_figures(window)
                window = []
            if faces is not None and step % config.face_check_every == 0:
                samples = render_seeds(trainer.G_ema, seeds, truncation=FACE_CHECK_TRUNCATION)
                entry["face_rate"] = faces.rate(samples)
            if entry:
                entry = {"step": step, "images": trainer.images_seen, "seconds": trainer.seconds, **entry}
                with log_path.open("a") as handle:
                    handle.write(json.dumps(entry) + "\n")
                last = entry
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_generator(trainer.G_ema, run_dir / GENERATOR_NAME)
                trainer.save(checkpoint)
            task.advance()
    if not (run_dir / GENERATOR_NAME).exists():  # a run asked for no more steps than it had
        save_generator(trainer.G_ema, run_dir / GENERATOR_NAME)
    return TrainResult(
        step=trainer.step, seconds=trainer.seconds, last=last, generator=run_dir / GENERATOR_NAME
    )
