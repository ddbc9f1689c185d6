"""The synthetic world: clips with known ground truth for tests, benchmarks and the offline demo.

A tiny StyleGAN2 whose weights are random but fixed by a seed (THE SYNTHETIC WORLD'S GENERATOR: it is
not a face model and never stands in for real weights) renders a target and a driver clip from known
W+ trajectories `[T, num_ws, w_dim]`:

- smooth motion: a sum of low-frequency sinusoids around a base w, in W, the same for every layer;
- an expression: one fixed direction confined to `expression_layers` (the layer mask), scaled by a
  per-frame weight; the driver's weight goes 0 -> 1 -> 0 over the clip (frame 0 is neutral, the
  natural reference frame), the target's stays 0.

Each rendered crop is pasted into a drifting, smooth textured background under a known similarity
transform (a quad per frame: slow translation, scale, rotation), and the 68 landmarks of a canonical
template (for which `ffhq_quad` gives exactly the crop square) are mapped into every frame. So the
FFHQ quad, crop matrix, latents and crops of every frame are known exactly.

A clip may have a scene cut (`target_cut`, `driver_cut`): from that frame on, a second shot as another
camera would film it. The face's placement jumps (new phases and direction of its slow motion, moved by
`CUT_FACE_SHIFT` and scaled by `CUT_FACE_SCALE`), the background is another texture with a colour cast
(`CUT_TINT`, so the aligner's colour-histogram detector finds the cut), and the smooth motion in W jumps
ahead by `target_cut_skip` / `driver_cut_skip` frames of its own course. The expression keeps its known
per-frame weight across the cut: the driver's second shot starts mid-expression and has no neutral frame
of its own, so the one reference of the whole driver stays its frame 0. The first shot is the cut-free
world's clip (same seed), so the two worlds compare frame by frame.

`make_world` builds everything in memory (tensors, fast enough for unit tests); `write_world` writes
the clips as H.264 with an AAC tone track, the landmark sidecars (`reenact.faces.landmarks` format)
and the ground truth as `.npz`. With `identity_noise > 0` the frames are rendered by a copy of the
generator with noisy synthesis weights: a "different identity" outside the generator's domain, as
real faces are outside a real generator's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from reenact.config import CompositeConfig, Config, InvertConfig, VideoConfig
from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, quads_from_params, rot90, transform_points
from reenact.faces.landmarks import NUM_LANDMARKS, write_landmarks
from reenact.gan.random import RANDOM_W_DIM, random_generator
from reenact.gan.stylegan2 import Generator
from reenact.imaging import images_to_uint8

W_STD_SAMPLES = 4096
"""z samples whose mapped spread is `w_std`."""
MOTION_COMPONENTS = 3
MOTION_PERIOD_RATIOS = (1.0, 0.61, 0.37)
"""Periods of the motion components relative to `motion_period` (incommensurate, so no exact repeat)."""
FACE_MOTION_PERIOD_RATIOS = (1.3, 0.9, 0.7)
"""Periods of the translation, scale and rotation of the face relative to `motion_period`."""
BACKGROUND_SIGMA = 6.0
"""Gaussian blur (pixels) of the background's noise texture: smooth, but with visible structure."""
BACKGROUND_RANGE = (40.0, 215.0)
AUDIO_SAMPLE_RATE = 48000
AUDIO_FRAME_SAMPLES = 1024
"""Samples per AAC frame."""
AUDIO_AMPLITUDE = 0.2
FACE_REGION_ALPHA = 0.5
"""A frame pixel is in the face region where the pasted face's mask alpha exceeds this."""
IDENTITY_NOISE_SALT = 7919
"""Added to the world's seed for the different-identity generator's noise."""
TINY_W_DIM = 32
TARGET_INDEX, DRIVER_INDEX = 0, 1
"""Each clip's index in the seed of its second shot."""
MIN_SHOT_FRAMES = 2
"""Frames each shot of a clip with a cut has at least (a shot of one frame has no motion to follow)."""
CUT_SALT = 104729
"""Mixed with the world's seed and the clip's index into the seed of a second shot's placement and background
(its own generator, so a cut leaves the first shot and the other clip exactly as in the cut-free world)."""
CUT_FACE_SHIFT = (14.0, -4.0)
"""Move of the face's centre in the frame at a cut, in pixels (x, y): the new camera frames it elsewhere."""
CUT_FACE_SCALE = 0.88
"""Size of the face in a second shot relative to the first (the new camera is a little farther away)."""
CUT_TINT = (40.0, 200.0, 90.0)
"""RGB colour that a second shot's background is pulled towards: another room, another light."""
CUT_TINT_MIX = 0.6
"""Share of `CUT_TINT` in a second shot's background (the rest is its own texture)."""
"""`tiny`'s width, which the inversion and PTI measurements use (see `reenact.gan.random.RANDOM_W_DIM`)."""


@dataclass
class SyntheticConfig:
    """The synthetic world: a fixed-seed tiny StyleGAN2 renders clips with known latents and transforms."""

    seed: int = 0
    """Seed of the world's generator, latent trajectories, transforms and backgrounds."""
    resolution: int = 32
    """Generator (and aligned crop) resolution, a power of two."""
    w_dim: int = RANDOM_W_DIM
    """Width of the generator's z and w. At 8 every style affine is injective and the latents are
    identifiable from the images (`reenact.gan.random.RANDOM_W_DIM`); 32 is `tiny`'s width."""
    num_frames: int = 16
    """Frames per clip."""
    fps: int = 25
    """Frame rate of the written clips."""
    frame_width: int = 128
    """Width of the video frames in pixels (even)."""
    frame_height: int = 96
    """Height of the video frames in pixels (even)."""
    face_size: float = 56.0
    """Side of the face's crop square in frame pixels."""
    motion: float = 0.5
    """Size of the smooth motion in W (all layers), in units of W's per-dimension standard deviation."""
    motion_period: float = 128.0
    """Frames per cycle of the slowest motion component (larger = slower, smoother)."""
    expression: float = 1.5
    """Size of the expression direction (only on `expression_layers`), in W standard deviations."""
    expression_layers: tuple[int, ...] = (2, 3, 4)
    """W+ indices the expression changes (must be < the generator's num_ws)."""
    translation: float = 6.0
    """Amplitude of the face's translation in the frame, in pixels."""
    rotation: float = 5.0
    """Amplitude of the face's in-plane rotation, in degrees."""
    scale: float = 0.06
    """Amplitude of the face's size change, as a fraction of `face_size`."""
    background_drift: float = 0.5
    """Speed of the background texture's drift, in pixels per frame."""
    identity_noise: float = 0.0
    """Frames are rendered by a copy of the generator whose synthesis weights get noise of this relative
    size (0 = rendered by the world's generator itself, in-domain)."""
    truncation: float = 1.0
    """Truncation psi of the target's and the driver's base latents (1 = none; the face world uses less,
    towards its average face, where its samples are faces most reliably)."""
    audio_frequency: float = 440.0
    """Pitch of the tone in the written clips' audio track, in Hz."""
    target_cut: int | None = None
    """First frame of the target's second shot (a scene cut there), or None for one shot."""
    driver_cut: int | None = None
    """First frame of the driver's second shot (a scene cut there), or None for one shot."""
    target_cut_skip: int = 32
    """Frames of the smooth motion in W that the target skips at its cut: the new shot's head pose and
    look continue from a later point of their course, a step in the target's own latents."""
    driver_cut_skip: int = 0
    """The same for the driver. The ground truth transfers every change of the driver on the expression
    layers, motion included, so a skip here would put a pose step into the true offsets that no method
    could tell from a chain's jump: 0 keeps the driver's true offsets continuous at its cut (expression)."""

    def __post_init__(self) -> None:
        if self.num_frames < 2:
            raise ReenactError(f"synthetic.num_frames must be >= 2, got {self.num_frames}")
        if self.w_dim < 1:
            raise ReenactError(f"synthetic.w_dim must be >= 1, got {self.w_dim}")
        if self.fps < 1:
            raise ReenactError(f"synthetic.fps must be >= 1, got {self.fps}")
        if self.frame_width % 2 or self.frame_height % 2 or min(self.frame_width, self.frame_height) < 16:
            raise ReenactError("synthetic.frame_width and frame_height must be even and >= 16")
        if not 0 < self.face_size <= min(self.frame_width, self.frame_height):
            raise ReenactError("synthetic.face_size must be > 0 and fit in the frame")
        if self.motion_period <= 0:
            raise ReenactError(f"synthetic.motion_period must be > 0, got {self.motion_period}")
        if min(self.expression_layers, default=0) < 0:
            raise ReenactError("synthetic.expression_layers must be W+ indices >= 0")
        for name in ("motion", "expression", "translation", "rotation", "scale", "identity_noise"):
            if getattr(self, name) < 0:
                raise ReenactError(f"synthetic.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.truncation <= 1:
            raise ReenactError(f"synthetic.truncation must be in (0, 1], got {self.truncation}")
        if self.audio_frequency <= 0:
            raise ReenactError(f"synthetic.audio_frequency must be > 0, got {self.audio_frequency}")
        for name in ("target_cut", "driver_cut"):
            cut = getattr(self, name)
            if cut is not None and not MIN_SHOT_FRAMES <= cut <= self.num_frames - MIN_SHOT_FRAMES:
                raise ReenactError(
                    f"synthetic.{name} must leave both shots >= {MIN_SHOT_FRAMES} frames "
                    f"({MIN_SHOT_FRAMES}..{self.num_frames - MIN_SHOT_FRAMES}), got {cut}"
                )
        for name in ("target_cut_skip", "driver_cut_skip"):
            if getattr(self, name) < 0:
                raise ReenactError(f"synthetic.{name} must be >= 0, got {getattr(self, name)}")


MIN_DIRECTION_NORM = 1e-12
"""Layers of a given expression direction shorter than this count as zero (they stay zero)."""


SYNTHETIC_PRESET = "synthetic"
"""The packaged preset (`configs/synthetic.toml`) that every run on the synthetic world uses: the demo,
`--generator random:tiny`, the tests and the benchmarks."""


MEASURED_PIX_FMT = "yuv444p"
"""Chroma of the world's clips and of every output whose pixels are measured: the world's face is 56 px
across, and 4:2:0 would put an encoding floor of about 39 dB under every face-region measurement (44 dB
with 4:4:4). Files meant for people keep the preset's 4:2:0, which every player opens."""


def synthetic_settings() -> Config:
    """Pipeline settings for the synthetic world: the packaged `synthetic` preset."""
    return Config.from_preset(SYNTHETIC_PRESET)


def measured_settings(settings: Config | None = None) -> Config:
    """`settings` (by default the synthetic preset) for runs whose output is measured: 4:4:4 video
    (`MEASURED_PIX_FMT`)."""
    return (settings or synthetic_settings()).with_values(video={"pix_fmt": MEASURED_PIX_FMT})


def quick_invert_config() -> InvertConfig:
    """A quicker Adam inversion for the inversion and PTI measurements (tests, bench_invert, bench_pti):
    the synthetic preset's MSE-only loss, from w_avg, warm batches of 4 frames with 50 steps each, on the
    world with `TINY_W_DIM`, whose W+ has spare directions like FFHQ's; Adam's warm start and moment
    handover are what those measure."""
    return replace(
        synthetic_settings().invert,
        optimiser="adam",
        first_steps=300,
        warm_steps=50,
        batch_size=4,
        learning_rate=0.05,
        warm_learning_rate=0.05,
        start_samples=0,
    )


# ---------------------------------------------------------------------------------------------------
# The generator


def w_std(generator: Generator, *, seed: int = 0) -> torch.Tensor:
    """Per-dimension standard deviation of W under the generator's mapping, [w_dim] (on G's device)."""
    device = generator.mapping.w_avg.device
    z = torch.randn(W_STD_SAMPLES, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator.mapping(z.to(device))[:, 0].std(dim=0)


def scaled_expression(
    expression: torch.Tensor, *, spread: torch.Tensor, size: float, layer_mask: torch.Tensor
) -> torch.Tensor:
    """A direction found in a trained world's W+ [num_ws, w_dim] as the world's expression: each layer of
    the mask `size` times as long as W's per-dimension spread `spread` [w_dim] (`w_std`), the others 0."""
    unit = expression / expression.norm(dim=1, keepdim=True).clamp_min(MIN_DIRECTION_NORM)
    return unit * spread.norm() * size * layer_mask[:, None]  # [num_ws, w_dim]


def perturbed_generator(generator: Generator, *, scale: float, seed: int) -> Generator:
    """A copy of `generator` with Gaussian noise of relative size `scale` on its synthesis weights.

    Every synthesis parameter named `weight` (convolutions, ToRGB, style affines) and the constant
    input gets noise with standard deviation `scale` times that parameter's own standard deviation.
    Its images are a "different identity": close to, but outside, the original generator's range.
    PSNR against the original on the same latents (32 px world, seed 0): scale 0.02 -> 49 dB,
    0.05 -> 41 dB, 0.1 -> 35 dB, 0.2 -> 29 dB, 0.5 -> 25 dB, 0.8 -> 21 dB.
    """
    other = copy.deepcopy(generator)
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in other.synthesis.named_parameters():
            if name.endswith(".weight") or name.endswith(".const"):
                noise = torch.randn(param.shape, generator=rng).to(param.device, param.dtype)
                param.add_(noise * scale * param.std())
    return other


# ---------------------------------------------------------------------------------------------------
# Landmarks


def landmark_template(resolution: int) -> np.ndarray:
    """Canonical 68 landmarks [68, 2] in crop pixels for which `ffhq_quad` is exactly the crop square.

    FFHQ's quad has half-side max(2 |eye_to_eye|, 1.8 |eye_to_mouth|) and centre eye_avg + 0.1
    eye_to_mouth. With the eyes R/4 apart (2 x R/4 = R/2, the crop's half-side), the mouth R/4.5 below
    them (1.8 x R/4.5 < R/2) and eye_avg 0.1 x R/4.5 above the crop centre, the quad's corners are the
    crop's outer pixel corners (-0.5 .. R - 0.5). Each eye's six points are symmetric about its centre
    and the mouth corners about the mouth centre, so the means are exact.
    """
    size = float(resolution)
    centre = np.array([(size - 1) / 2, (size - 1) / 2])
    eye_distance = size / 4.0
    eye_to_mouth = size / 4.5
    eye_avg = centre - np.array([0.0, 0.1 * eye_to_mouth])
    mouth_avg = eye_avg + np.array([0.0, eye_to_mouth])
    unit = size / 8.0  # the face's scale for the points that do not enter the quad
    points = np.zeros((NUM_LANDMARKS, 2))
    # Jaw 0-16: a half ellipse from ear to ear through the chin.
    angles = np.linspace(math.pi, 0.0, 17)
    points[0:17] = eye_avg + np.stack([2.0 * unit * -np.cos(angles), 2.6 * unit * np.sin(angles)], axis=1)
    # Brows 17-21 and 22-26: arcs above the eyes.
    for start, side in ((17, -1.0), (22, 1.0)):
        xs = np.linspace(-0.8, 0.8, 5) * unit
        brow_centre = eye_avg + np.array([side * eye_distance / 2, -0.7 * unit])
        points[start : start + 5] = brow_centre + np.stack([xs, 0.15 * unit * (xs / unit) ** 2], axis=1)
    # Nose bridge 27-30 and nostrils 31-35.
    points[27:31] = eye_avg + np.stack([np.zeros(4), np.linspace(0.1, 1.1, 4) * unit], axis=1)
    points[31:36] = eye_avg + np.stack([np.linspace(-0.4, 0.4, 5) * unit, np.full(5, 1.3 * unit)], axis=1)
    # Eyes 36-41 and 42-47: six points on an ellipse, symmetric about the eye centre.
    eye_angles = np.deg2rad([180.0, 240.0, 300.0, 0.0, 60.0, 120.0])
    eye_offsets = np.stack([0.4 * unit * np.cos(eye_angles), 0.15 * unit * np.sin(eye_angles)], axis=1)
    eye_offsets -= eye_offsets.mean(axis=0)
    points[36:42] = eye_avg - np.array([eye_distance / 2, 0.0]) + eye_offsets
    points[42:48] = eye_avg + np.array([eye_distance / 2, 0.0]) + eye_offsets
    # Mouth 48-59 (outer) and 60-67 (inner): corners 48 and 54 symmetric about the mouth centre.
    outer = np.linspace(math.pi, -math.pi, 12, endpoint=False)
    points[48:60] = mouth_avg + np.stack([0.8 * unit * np.cos(outer), 0.3 * unit * np.sin(-outer)], axis=1)
    inner = np.linspace(math.pi, -math.pi, 8, endpoint=False)
    points[60:68] = mouth_avg + np.stack([0.5 * unit * np.cos(inner), 0.1 * unit * np.sin(-inner)], axis=1)
    points[48] = mouth_avg - np.array([0.8 * unit, 0.0])
    points[54] = mouth_avg + np.array([0.8 * unit, 0.0])
    return points


def crop_square(resolution: int) -> np.ndarray:
    """The crop's own quad [4, 2] (TL, BL, BR, TR outer pixel corners), what `crop_matrix` maps to."""
    low, high = -0.5, resolution - 0.5
    return np.array([[low, low], [low, high], [high, high], [high, low]])


# ---------------------------------------------------------------------------------------------------
# Trajectories and transforms


def sinusoids(num_frames: int, *, periods: tuple[float, ...], phases: np.ndarray) -> np.ndarray:
    """Columns sin(2 pi t / period_k + phase_k) for t = 0..T-1: [T, K]."""
    t = np.arange(num_frames, dtype=np.float64)[:, None]
    return np.sin(2.0 * math.pi * t / np.asarray(periods)[None, :] + phases[None, :])


def motion_offsets(
    num_frames: int, *, w_std: torch.Tensor, size: float, period: float, rng: np.random.Generator
) -> torch.Tensor:
    """Smooth motion in W: sum of `MOTION_COMPONENTS` sinusoids along random directions, [T, w_dim]."""
    w_dim = w_std.shape[0]
    periods = tuple(period * ratio for ratio in MOTION_PERIOD_RATIOS)
    waves = sinusoids(num_frames, periods=periods, phases=rng.uniform(0, 2 * math.pi, MOTION_COMPONENTS))
    directions = rng.standard_normal((MOTION_COMPONENTS, w_dim)) / math.sqrt(MOTION_COMPONENTS)
    offsets = torch.from_numpy(waves @ directions).float()  # [T, w_dim]
    return offsets.to(w_std.device) * w_std * size


def expression_weights(num_frames: int, *, active: bool) -> np.ndarray:
    """Expression weight per frame [T]: sin^2 over the clip (0 at frame 0, 1 mid-clip) or all 0."""
    if not active:
        return np.zeros(num_frames)
    return np.sin(math.pi * np.arange(num_frames) / num_frames) ** 2


def face_quads(
    num_frames: int, *, config: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame quads [T, 4, 2] (similarity transforms of the crop square) and their matrices [T, 3, 3]."""
    periods = tuple(config.motion_period * ratio for ratio in FACE_MOTION_PERIOD_RATIOS)
    waves = sinusoids(num_frames, periods=periods, phases=rng.uniform(0, 2 * math.pi, len(periods)))
    shift_direction = rng.standard_normal(2)
    shift_direction /= np.linalg.norm(shift_direction)
    frame_centre = np.array([(config.frame_width - 1) / 2, (config.frame_height - 1) / 2])
    centres = frame_centre + config.translation * waves[:, 0:1] * shift_direction  # [T, 2]
    half_sides = 0.5 * config.face_size * (1.0 + config.scale * waves[:, 1])  # [T]
    angles = np.deg2rad(config.rotation) * waves[:, 2]  # [T]
    x = half_sides[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # [T, 2]
    quads = quads_from_params(centres, x, rot90(x))  # [T, 4, 2]
    matrices = np.stack([crop_matrix(quad, config.resolution) for quad in quads])  # [T, 3, 3]
    return quads, matrices


def drifting_background(num_frames: int, *, config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Smooth coloured noise texture translated by `background_drift` px per frame: [T, H, W, 3] uint8."""
    height, width = config.frame_height, config.frame_width
    noise = rng.standard_normal((height, width, 3)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), sigmaX=BACKGROUND_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    low, high = BACKGROUND_RANGE
    texture = (texture - texture.min()) / max(float(np.ptp(texture)), 1e-12) * (high - low) + low
    angle = rng.uniform(0, 2 * math.pi)
    step = config.background_drift * np.array([math.cos(angle), math.sin(angle)])
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        shift = np.array([[1.0, 0.0, step[0] * t], [0.0, 1.0, step[1] * t]])
        moved = cv2.warpAffine(
            texture, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        frames[t] = np.clip(np.round(moved), 0, 255).astype(np.uint8)
    return frames


def paste(background: np.ndarray, crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The crop [R, R, 3] uint8 pasted into background [H, W, 3] uint8 under frame->crop `matrix`."""
    resolution = crop.shape[0]
    face = cv2.warpAffine(
        crop.astype(np.float32),
        np.asarray(matrix, np.float64)[:2],
        (background.shape[1], background.shape[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )
    alpha = cv2.warpAffine(
        np.ones((resolution, resolution), np.float32),
        np.asarray(matrix, np.float64)[:2],
        (background.shape[1], background.shape[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )[..., None]
    # `face` is already premultiplied by alpha (zero border, same interpolation as `alpha`).
    blended = background.astype(np.float32) * (1.0 - alpha) + face
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# The world


@dataclass
class SyntheticClip:
    """One rendered clip and its ground truth."""

    ws: torch.Tensor
    """W+ latents [T, num_ws, w_dim] that rendered the crops."""
    motion: torch.Tensor
    """The motion part of `ws` (the same on every layer), [T, w_dim]."""
    expression_weights: np.ndarray
    """Weight of the expression direction per frame, [T]."""
    crops: torch.Tensor
    """Rendered aligned crops [T, 3, R, R], float in about [-1, 1] (the generator's raw output)."""
    frames: np.ndarray
    """Video frames [T, H, W, 3] uint8: the crops pasted into the drifting background."""
    backgrounds: np.ndarray
    """The background alone [T, H, W, 3] uint8."""
    quads: np.ndarray
    """FFHQ quad of every frame [T, 4, 2] (TL, BL, BR, TR)."""
    matrices: np.ndarray
    """Frame -> crop affine of every frame [T, 3, 3] (`reenact.faces.align.crop_matrix`)."""
    landmarks: np.ndarray
    """68 landmarks of every frame in frame pixels [T, 68, 2]."""
    cut: int | None = None
    """First frame of the clip's second shot, or None for one shot."""

    def shots(self) -> list[tuple[int, int]]:
        """The clip's shots as half-open frame ranges `[start, stop)`."""
        starts = [0] if self.cut is None else [0, self.cut]
        return list(zip(starts, [*starts[1:], len(self.frames)], strict=True))


@dataclass
class SyntheticWorld:
    """Everything known about the synthetic world: its generator, latent structure and the two clips."""

    config: SyntheticConfig
    generator: Generator
    """The world's generator (the one a pipeline inverts and tunes)."""
    render_generator: Generator
    """The generator that rendered the clips: `generator` itself, or its perturbed copy."""
    w_std: torch.Tensor
    """Per-dimension standard deviation of W, [w_dim]."""
    layer_mask: torch.Tensor
    """Layers the expression lives on, [num_ws] bool."""
    expression_direction: torch.Tensor
    """The expression direction [num_ws, w_dim], zero outside `layer_mask`."""
    target: SyntheticClip
    driver: SyntheticClip


@dataclass
class SyntheticFiles:
    """A written world: file paths, plus the in-memory ground truth."""

    target_video: Path
    driver_video: Path
    target_landmarks: Path
    driver_landmarks: Path
    audio: Path
    ground_truth: Path
    world: SyntheticWorld

    def transfer_args(self, output: Path, *, generator: Path) -> list[str]:
        """`reenact transfer` arguments for these clips: target, driver, output, the generator file and
        the landmark files (so no detector runs)."""
        return [
            "transfer",
            str(self.target_video),
            str(self.driver_video),
            "-o",
            str(output),
            "--generator",
            str(generator),
            "--target-landmarks",
            str(self.target_landmarks),
            "--driver-landmarks",
            str(self.driver_landmarks),
        ]


def second_shot_quads(quads: np.ndarray, *, config: SyntheticConfig) -> np.ndarray:
    """Quads [T, 4, 2] as the second shot's camera frames them: scaled by `CUT_FACE_SCALE` about the frame's
    centre and moved by `CUT_FACE_SHIFT`."""
    frame_centre = np.array([(config.frame_width - 1) / 2, (config.frame_height - 1) / 2])
    return frame_centre + CUT_FACE_SCALE * (quads - frame_centre) + np.asarray(CUT_FACE_SHIFT)


def tinted(frames: np.ndarray) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 pulled towards `CUT_TINT` by `CUT_TINT_MIX`: another shot's colours."""
    mixed = (1.0 - CUT_TINT_MIX) * frames.astype(np.float32) + CUT_TINT_MIX * np.asarray(CUT_TINT, np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def _render_clip(
    *,
    base: torch.Tensor,
    active_expression: bool,
    world_parts: tuple[Generator, torch.Tensor, torch.Tensor],
    config: SyntheticConfig,
    rng: np.random.Generator,
    cut: int | None = None,
    skip: int = 0,
    cut_seed: tuple[int, ...] = (),
) -> SyntheticClip:
    """One clip; with `cut`, frames from `cut` on are a second shot (see the module docstring) whose
    placement and background come from a generator seeded by `cut_seed`, and whose motion in W is the
    clip's own `skip` frames further on."""
    render_generator, spread, direction = world_parts
    num_frames, num_ws = config.num_frames, render_generator.num_ws
    motion = motion_offsets(
        num_frames + (skip if cut is not None else 0),
        w_std=spread,
        size=config.motion,
        period=config.motion_period,
        rng=rng,
    )
    if cut is not None:
        motion = torch.cat([motion[:cut], motion[cut + skip : num_frames + skip]])  # [T, w_dim]
    weights = expression_weights(num_frames, active=active_expression)
    ws = (base + motion)[:, None, :].repeat(1, num_ws, 1)  # [T, num_ws, w_dim]
    ws = ws + torch.from_numpy(weights).float().to(ws.device)[:, None, None] * direction[None]
    with torch.no_grad():
        crops = render_generator.synthesis(ws, noise_mode="const")  # [T, 3, R, R]
    crops_uint8 = images_to_uint8(crops).cpu().numpy()  # [T, R, R, 3]
    quads, matrices = face_quads(num_frames, config=config, rng=rng)
    backgrounds = drifting_background(num_frames, config=config, rng=rng)
    if cut is not None:
        cut_rng = np.random.default_rng([*cut_seed, CUT_SALT])
        second_quads, _ = face_quads(num_frames, config=config, rng=cut_rng)
        second_quads = second_shot_quads(second_quads, config=config)
        quads = np.concatenate([quads[:cut], second_quads[cut:]])
        matrices = np.stack([crop_matrix(quad, config.resolution) for quad in quads])  # [T, 3, 3]
        second_backgrounds = tinted(drifting_background(num_frames, config=config, rng=cut_rng))
        backgrounds = np.concatenate([backgrounds[:cut], second_backgrounds[cut:]])
    frames = np.stack(
        [paste(bg, crop, m) for bg, crop, m in zip(backgrounds, crops_uint8, matrices, strict=True)]
    )
    template = landmark_template(config.resolution)
    landmarks = np.stack([transform_points(template, np.linalg.inv(m)) for m in matrices])  # [T, 68, 2]
    return SyntheticClip(
        ws=ws,
        motion=motion,
        expression_weights=weights,
        crops=crops,
        frames=frames,
        backgrounds=backgrounds,
        quads=quads,
        matrices=matrices,
        landmarks=landmarks,
        cut=cut,
    )


def make_world(
    config: SyntheticConfig,
    *,
    device: torch.device | str = "cpu",
    generator: Generator | None = None,
    expression: torch.Tensor | None = None,
) -> SyntheticWorld:
    """Build the synthetic world in memory (deterministic for a given config).

    By default its generator is random (seeded by the config) and its expression a random direction on
    `expression_layers`. A trained `generator` (the face world) and an `expression` direction
    [num_ws, w_dim] found in its W+ replace them; the direction is scaled so each of its layers has the
    length a random one would have (`config.expression` W spreads)."""
    if generator is None:
        generator = random_generator(
            resolution=config.resolution, w_dim=config.w_dim, seed=config.seed, device=device
        )
    elif (generator.resolution, generator.w_dim) != (config.resolution, config.w_dim):
        raise ReenactError(
            f"the world's config asks for {config.resolution} px and w_dim {config.w_dim}; the generator "
            f"has {generator.resolution} px and w_dim {generator.w_dim}"
        )
    num_ws = generator.num_ws
    if any(index >= num_ws for index in config.expression_layers):
        raise ReenactError(
            f"synthetic.expression_layers {list(config.expression_layers)} must be < num_ws = {num_ws} "
            f"at resolution {config.resolution}"
        )
    render_generator = generator
    if config.identity_noise > 0:
        render_generator = perturbed_generator(
            generator, scale=config.identity_noise, seed=config.seed + IDENTITY_NOISE_SALT
        )
    spread = w_std(generator, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    layer_mask = torch.zeros(num_ws, dtype=torch.bool, device=device)
    layer_mask[list(config.expression_layers)] = True
    direction = torch.from_numpy(rng.standard_normal((num_ws, generator.w_dim))).float().to(device)
    if expression is None:
        # [num_ws, w_dim]: each layer about |spread| long
        direction = direction * spread * config.expression * layer_mask[:, None]
    else:
        direction = scaled_expression(
            expression.to(device), spread=spread, size=config.expression, layer_mask=layer_mask
        )
    z = torch.from_numpy(rng.standard_normal((2, generator.z_dim))).float().to(device)
    with torch.no_grad():
        bases = generator.mapping(z, truncation_psi=config.truncation)[:, 0]  # [2, w_dim]: target, driver
    parts = (render_generator, spread, direction)
    target = _render_clip(
        base=bases[0],
        active_expression=False,
        world_parts=parts,
        config=config,
        rng=rng,
        cut=config.target_cut,
        skip=config.target_cut_skip,
        cut_seed=(config.seed, TARGET_INDEX),
    )
    driver = _render_clip(
        base=bases[1],
        active_expression=True,
        world_parts=parts,
        config=config,
        rng=rng,
        cut=config.driver_cut,
        skip=config.driver_cut_skip,
        cut_seed=(config.seed, DRIVER_INDEX),
    )
    return SyntheticWorld(
        config=config,
        generator=generator,
        render_generator=render_generator,
        w_std=spread,
        layer_mask=layer_mask,
        expression_direction=direction,
        target=target,
        driver=driver,
    )


def write_tone(path: Path, *, duration_s: float, frequency: float) -> Path:
    """A mono AAC sine tone of `duration_s` seconds (an audio stream for `VideoWriter(audio_from=...)`)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=AUDIO_SAMPLE_RATE, layout="mono")
        total = math.ceil(duration_s * AUDIO_SAMPLE_RATE)
        for start in range(0, total, AUDIO_FRAME_SAMPLES):
            count = min(AUDIO_FRAME_SAMPLES, total - start)
            t = (np.arange(start, start + count) / AUDIO_SAMPLE_RATE).astype(np.float64)
            samples = (AUDIO_AMPLITUDE * np.sin(2 * math.pi * frequency * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = AUDIO_SAMPLE_RATE
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_world(
    world: SyntheticWorld,
    directory: Path | str,
    *,
    video_config: VideoConfig | None = None,
    overwrite: bool = False,
) -> SyntheticFiles:
    """Write both clips (H.264 + AAC tone), their landmark sidecars and the ground truth into `directory`.

    `video_config` defaults to the synthetic preset's with 4:4:4 chroma (`MEASURED_PIX_FMT`): the clips are
    the inputs of measured transfers.
    """
    from reenact.video import VideoWriter, new_video_info

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = world.config
    video_config = video_config or measured_settings().video
    audio = write_tone(
        directory / "tone.m4a", duration_s=config.num_frames / config.fps, frequency=config.audio_frequency
    )
    info = new_video_info(width=config.frame_width, height=config.frame_height, fps=Fraction(config.fps))
    paths: dict[str, tuple[Path, Path]] = {}
    for name, clip in (("target", world.target), ("driver", world.driver)):
        video = directory / f"{name}.mp4"
        with VideoWriter(
            video, like=info, config=video_config, audio_from=audio, overwrite=overwrite
        ) as writer:
            for index, frame in enumerate(clip.frames):
                writer.write(frame, pts=index)
        landmarks = write_landmarks(directory / f"{name}_landmarks.npz", clip.landmarks[:, None])
        paths[name] = (video, landmarks)
    ground_truth = directory / "ground_truth.npz"
    clips = (("target", world.target), ("driver", world.driver))
    np.savez(
        ground_truth,
        **{
            f"{name}_{key}": value
            for name, clip in clips
            for key, value in (
                ("ws", clip.ws.cpu().numpy()),
                ("quads", clip.quads),
                ("matrices", clip.matrices),
                ("expression_weights", clip.expression_weights),
            )
        },
        **{f"{name}_cut": np.array(clip.cut) for name, clip in clips if clip.cut is not None},
        layer_mask=world.layer_mask.cpu().numpy(),
        expression_direction=world.expression_direction.cpu().numpy(),
        seed=np.array(config.seed),
        resolution=np.array(config.resolution),
    )
    return SyntheticFiles(
        target_video=paths["target"][0],
        driver_video=paths["driver"][0],
        target_landmarks=paths["target"][1],
        driver_landmarks=paths["driver"][1],
        audio=audio,
        ground_truth=ground_truth,
        world=world,
    )


# ---------------------------------------------------------------------------------------------------
# Ground truth of an expression transfer


def true_transfer_latents(world: SyntheticWorld, *, strength: float = 1.0, ref: int = 0) -> torch.Tensor:
    """`w_target[t] + α·(w_driver[t] − w_driver[ref])` on the expression layers, from the true latents.

    Output frame `t` takes driver frame `t` (the clips have equal length). [T, num_ws, w_dim].
    """
    mask = world.layer_mask[None, :, None]  # [1, num_ws, 1]
    delta = (world.driver.ws - world.driver.ws[ref : ref + 1]) * mask  # [T, num_ws, w_dim]
    return world.target.ws + strength * delta


def true_transfer_frames(
    world: SyntheticWorld, *, composite: CompositeConfig, strength: float = 1.0, ref: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth output of a transfer onto the target clip, and each frame's face region.

    The true latents rendered by the world's generator and pasted into the target's frames with the
    true crop matrices and landmark masks (the same compositing the pipeline uses).
    Returns frames [T, H, W, 3] uint8 and the face region [T, H, W] bool (where the mask's alpha > 0.5).
    """
    from reenact.composite import composite_face, face_mask
    from reenact.faces.align import warp_to_frame

    latents = true_transfer_latents(world, strength=strength, ref=ref)
    with torch.no_grad():
        crops = images_to_uint8(world.generator.synthesis(latents, noise_mode="const")).cpu().numpy()
    clip, resolution = world.target, world.config.resolution
    frames, regions = [], []
    for index, crop in enumerate(crops):
        matrix = clip.matrices[index]
        mask = face_mask(clip.landmarks[index], matrix=matrix, resolution=resolution, config=composite)
        frames.append(
            composite_face(clip.frames[index], crop, matrix=matrix, mask_crop=mask, config=composite)
        )
        alpha = warp_to_frame(mask.astype(np.float32), matrix, clip.frames[index].shape)
        regions.append(alpha > FACE_REGION_ALPHA)
    return np.stack(frames), np.stack(regions)
