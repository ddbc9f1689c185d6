"""Typed configuration: one dataclass per stage, defaults in one place.

Every setting has exactly one default, here. `configs/*.toml` are presets that override some of them,
packaged with reenact and loaded by name with `Config.from_preset` (`--preset NAME`, or a `.toml` file);
`--set section.key=value` overrides one setting on the command line. Unknown sections or keys are an
error that names them, so a typo never silently does nothing.

Adding a stage: write its dataclass (a docstring line per field, checks in `__post_init__`) and add
it as a field of `Config`; the loader needs no change.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from reenact.codecs import CODEC_NAMES, SOURCE_CODEC
from reenact.errors import ReenactError
from reenact.timecode import check_timecode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
MAX_CRF = 51
SOURCE_TIMECODE = "source"
"""`video.timecode` value meaning "the source's own start timecode"."""
PRESETS_PACKAGE = "reenact.configs"
"""Where the packaged presets live (the repository's `configs/` folder)."""
DEFAULT_PRESET = "default"
QUALITY_FOLDER = "quality"
"""Subfolder of the presets holding the quality levels (`configs/quality/<level>.toml`)."""
QUALITY_LEVELS = ("fast", "balanced", "best")
"""Compute budgets of `--quality`: a layer under the preset (see `load_config`)."""
DEFAULT_QUALITY = "balanced"
# Command-line defaults kept here, not beside the torch code that uses them (`reenact.generator_source`,
# `reenact.workspace`, `reenact.demo`), so that `reenact --help` shows them without importing torch.
DEFAULT_GENERATOR = "stylegan2-ffhq-1024"
DEFAULT_WORKDIR = Path("reenact-work")
DEMO_FRAMES = 32
"""Frames per demo clip (1.3 s at 25 fps): long enough to see the expression come and go."""


@dataclass
class VideoConfig:
    """Encoding of every video we write: the codec (like the source's by default), x264/x265 quality, the
    start timecode."""

    crf: int = 14
    """Constant rate factor, 0 (lossless) .. 51; lower is better quality and bigger files."""
    preset: str = "medium"
    """x264 speed/size trade-off, `ultrafast` .. `veryslow`."""
    pix_fmt: Literal["yuv420p", "yuv444p"] = "yuv420p"
    """Chroma of an H.264/H.265 output (at the source's bit depth); yuv420p plays everywhere."""
    codec: str = SOURCE_CODEC
    """Output codec (`reenact.codecs`): `source` (the source's own where the container holds it, else the
    container's default), h264, h265, prores, prores4444, dnxhr (its profile as the source), dnxhr_hq,
    dnxhr_hqx, dnxhr_444, ffv1, or png, tiff, dpx, exr, exr_half (image sequences)."""
    timecode: str = SOURCE_TIMECODE
    """Start timecode of the output: `source` (the source's own, moved to a slice's start; none when it
    has none) or HH:MM:SS:FF."""
    alpha: bool = False
    """Embed the face matte (the paste-back's blend weights) as the output's alpha channel; only codecs
    with alpha (prores4444, ffv1, png, tiff, dpx, exr) take it."""

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= MAX_CRF:
            raise ReenactError(f"video.crf must be in 0..{MAX_CRF}, got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ReenactError(f"video.preset must be one of {', '.join(X264_PRESETS)}; got {self.preset!r}")
        if self.codec not in CODEC_NAMES:
            raise ReenactError(f"video.codec must be one of {', '.join(CODEC_NAMES)}; got {self.codec!r}")
        if self.timecode != SOURCE_TIMECODE:
            check_timecode(self.timecode)


BUILTIN_LANDMARK_BACKENDS = ("dlib", "fan")
LANDMARK_FILE_SUFFIXES = (".json", ".npz")
FACE_DESCRIPTORS = ("auto", "dlib", "pixels")
"""Choices of `faces.descriptor`."""


@dataclass
class FacesConfig:
    """Face detection, 68-point landmarks, tracking of one face and scene-cut detection."""

    landmarks: str = "dlib"
    """Landmark source: `dlib` (offline), `fan` (face-alignment) or the path of a sidecar `.json`/`.npz`."""
    dlib_detector: Literal["hog", "cnn"] = "hog"
    """dlib face detector: `hog` (fast, frontal) or `cnn` (mmod, slower on CPU, more poses)."""
    detect_max_side: int = 640
    """Faces are detected on a copy whose longest side is at most this many pixels (0 = full size)."""
    upsample: int = 0
    """Times dlib upsamples the detection copy (each finds faces half as big, 4x slower)."""
    min_score: float = 0.0
    """Detections scoring below this are dropped (dlib HOG: SVM margin; cnn/fan: confidence)."""
    fan_device: str = "auto"
    """Torch device of the FAN backend: `auto` (the run's `--device`), or e.g. `cpu` or `cuda`."""
    fan_detector: Literal["sfd", "blazeface", "dlib"] = "sfd"
    """Face detector the FAN backend uses (a face-alignment detector name)."""
    max_jump: float = 0.5
    """Largest move of the tracked face's box centre from one found frame to the next, in face sizes."""
    max_scale_change: float = 1.5
    """Largest change of the tracked face's box size between found frames (ratio, > 1)."""
    scene_cuts: bool = True
    """Detect scene cuts; tracks and smoothing restart at each cut."""
    cut_threshold: float = 0.35
    """Colour-histogram (Bhattacharyya) distance between consecutive frames that counts as a cut, 0..1."""
    cut_side: int = 64
    """Frames are shrunk to this longest side before their histograms are compared."""
    descriptor: Literal["auto", "dlib", "pixels"] = "auto"
    """What tells people apart (`reenact people`): `dlib` (its 128-d face recognition descriptor, for real
    faces), `pixels` (the aligned crop's pixels, for the synthetic world's faces, which no recogniser
    knows) or `auto` (dlib, unless the landmarks come from a sidecar file: pixels)."""

    def __post_init__(self) -> None:
        if self.landmarks not in BUILTIN_LANDMARK_BACKENDS and not self.landmarks.lower().endswith(
            LANDMARK_FILE_SUFFIXES
        ):
            raise ReenactError(
                f"faces.landmarks must be dlib, fan or a .json/.npz landmarks file; got {self.landmarks!r}"
            )
        if self.detect_max_side < 0:
            raise ReenactError(f"faces.detect_max_side must be >= 0, got {self.detect_max_side}")
        if self.upsample < 0:
            raise ReenactError(f"faces.upsample must be >= 0, got {self.upsample}")
        if self.max_jump <= 0:
            raise ReenactError(f"faces.max_jump must be > 0, got {self.max_jump}")
        if self.max_scale_change <= 1:
            raise ReenactError(f"faces.max_scale_change must be > 1, got {self.max_scale_change}")
        if not 0 < self.cut_threshold <= 1:
            raise ReenactError(f"faces.cut_threshold must be in (0, 1], got {self.cut_threshold}")
        if self.cut_side < 8:
            raise ReenactError(f"faces.cut_side must be >= 8, got {self.cut_side}")
        if self.descriptor not in FACE_DESCRIPTORS:
            raise ReenactError(
                f"faces.descriptor must be one of {', '.join(FACE_DESCRIPTORS)}; got {self.descriptor!r}"
            )


@dataclass
class AlignConfig:
    """FFHQ-style aligned crops: quad per frame, temporal smoothing, crop resolution."""

    resolution: int = 1024
    """Side of the square aligned crop in pixels (the generator's resolution)."""
    filter: Literal["loess", "robust", "gaussian", "savgol", "one_euro", "none"] = "loess"
    """Temporal filter of the quad (centre and axes): `loess` (robust local quadratic fit in a Gaussian
    window: zero-phase, follows fast turns, down-weights outlier frames), `robust` (Gaussian that
    down-weights outlier frames), `gaussian` (STIT's), `savgol` (Savitzky-Golay), `one_euro` (adaptive,
    run forward and backward) or `none`; benchmarks/bench_smoothing.py and compare_filters.py compare them."""
    sigma: float = 1.5
    """Gaussian and robust filters: standard deviation in frames."""
    robust_iterations: int = 3
    """Robust and loess filters: reweighting iterations (0 = no outlier down-weighting)."""
    loess_sigma: float = 2.5
    """Local polynomial (loess) filter: Gaussian window width in frames."""
    loess_order: int = 2
    """Local polynomial (loess) filter: polynomial degree (2 follows a turn's curvature)."""
    savgol_window: int = 15
    """Savitzky-Golay filter: window length in frames (odd)."""
    savgol_order: int = 2
    """Savitzky-Golay filter: polynomial order (< window)."""
    one_euro_min_cutoff: float = 0.02
    """One-Euro filter: cutoff frequency when the face is still, in cycles per frame (lower = smoother)."""
    one_euro_beta: float = 5.0
    """One-Euro filter: how fast the cutoff rises with speed (quad sizes per frame); higher = less lag."""
    one_euro_derivative_cutoff: float = 0.1
    """One-Euro filter: cutoff of the speed estimate, in cycles per frame."""
    max_gap: int = 5
    """Runs of frames without a face (inside a shot) up to this length are interpolated; longer stay empty."""
    border: Literal["reflect", "replicate", "constant"] = "reflect"
    """How the crop is filled where the quad leaves the frame (FFHQ reflects)."""

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise ReenactError(f"align.resolution must be >= 8, got {self.resolution}")
        if self.sigma <= 0:
            raise ReenactError(f"align.sigma must be > 0, got {self.sigma}")
        if self.savgol_window < 3 or self.savgol_window % 2 == 0:
            raise ReenactError(f"align.savgol_window must be an odd number >= 3, got {self.savgol_window}")
        if not 0 <= self.savgol_order < self.savgol_window:
            raise ReenactError(f"align.savgol_order must be in 0..savgol_window-1, got {self.savgol_order}")
        for name in ("one_euro_min_cutoff", "one_euro_derivative_cutoff"):
            if getattr(self, name) <= 0:
                raise ReenactError(f"align.{name} must be > 0, got {getattr(self, name)}")
        if self.one_euro_beta < 0:
            raise ReenactError(f"align.one_euro_beta must be >= 0, got {self.one_euro_beta}")
        if self.loess_sigma <= 0:
            raise ReenactError(f"align.loess_sigma must be > 0, got {self.loess_sigma}")
        if self.loess_order < 0:
            raise ReenactError(f"align.loess_order must be >= 0, got {self.loess_order}")
        if self.robust_iterations < 0:
            raise ReenactError(f"align.robust_iterations must be >= 0, got {self.robust_iterations}")
        if self.max_gap < 0:
            raise ReenactError(f"align.max_gap must be >= 0, got {self.max_gap}")


@dataclass
class CompositeConfig:
    """Pasting the rendered face back: mask, feather, colour match, optional Poisson blending."""

    feather: float = 0.04
    """Width of the mask's soft edge, as a fraction of the crop resolution."""
    forehead: float = 0.3
    """Mask extension above the brows, as a fraction of the brow-to-chin distance."""
    color_match: bool = True
    """Move the rendered face's per-channel mean/std (over the mask) to the original frame's."""
    color_space: Literal["lab", "rgb"] = "lab"
    """Colour space of the colour match."""
    poisson: bool = False
    """Poisson (gradient-domain) blending inside the mask's bounding box before the alpha blend."""

    def __post_init__(self) -> None:
        if not 0 < self.feather <= 0.5:
            raise ReenactError(f"composite.feather must be in (0, 0.5], got {self.feather}")
        if not 0 <= self.forehead <= 1:
            raise ReenactError(f"composite.forehead must be in 0..1, got {self.forehead}")


@dataclass
class InvertConfig:
    """W+ inversion of a clip (Image2StyleGAN loss, Adam or L-BFGS), warm-started from frame to frame."""

    space: Literal["w+", "w"] = "w+"
    """Latent space optimised: `w+` (one w per generator layer) or `w` (one w shared by all layers)."""
    mode: Literal["warm", "cold"] = "warm"
    """`warm`: frame 0 from w_avg with `first_steps`, later frames from their neighbour with `warm_steps`;
    `cold`: every frame from w_avg with `first_steps` (the slow baseline)."""
    optimiser: Literal["adam", "lbfgs"] = "adam"
    """`adam`: Image2StyleGAN's optimiser, with stylegan2-ada's learning-rate ramps (the reference).
    `lbfgs`: limited-memory BFGS with a strong-Wolfe line search, one frame at a time (`batch_size` 1).
    The loss is deterministic (fixed noise), so the line search can use it; on the synthetic world 30
    iterations fit as well as 200 Adam steps with a sixth of the renders (`benchmarks/bench_optimisers.py`).
    Not yet measured on FFHQ with the perceptual loss. The step budgets count its iterations; the
    learning rates and the plateau stop are Adam's (L-BFGS stops on its own tolerances)."""
    first_steps: int = 1000
    """Most optimiser steps for a frame started from w_avg."""
    warm_steps: int = 40
    """Most optimiser steps for a frame warm-started from its neighbour."""
    batch_size: int = 4
    """Frames optimised at once: warm Adam keeps this many consecutive frames in flight, each entering
    from its predecessor (`reenact.invert.AdamWindow`); cold runs and the first frame use batches.
    It shares generator calls only: a larger one renders more images per call, not more per frame."""
    learning_rate: float = 0.01
    """Adam learning rate on the latents for runs started from w_avg (Image2StyleGAN: 0.01)."""
    warm_learning_rate: float = 0.01
    """Adam learning rate for warm-started frames (they also inherit the neighbour's Adam moments).
    Lower rates give smoother pivots but lower PSNR; benchmarks/bench_invert.py measures both."""
    perceptual_weight: float = 1.0
    """Weight of the perceptual (VGG16 feature) term."""
    spread_weight: float = 0.0
    """Weight of the W+ layers' spread about their mean (`invert.layer_spread`, mean square in w units), a
    pull towards W that keeps a target's fit where the driver's offsets act as on its true code, and makes
    chains started afresh (at cuts, in segments) land together. Applied to the clips a run renders, never
    to a driver's (`pipeline.clip_settings`): a driver's expression lives on some layers, and the pull
    would spread it over all of them. benchmarks/bench_chain_starts.py --spread-weight measures it."""
    mse_weight: float = 1.0
    """Weight of the pixel MSE term (images in [-1, 1])."""
    plateau_window: int = 50
    """Early stop: steps over which a frame's loss improvement is measured (0 = never stop early); a warm
    frame stops on its own, a batch when its summed loss plateaus."""
    plateau_tolerance: float = 1e-3
    """Early stop when the loss fell by less than this fraction over `plateau_window` steps."""
    predict: float = 0.5
    """Warm Adam: a frame's start is its predecessor's latents plus this fraction of the last step between
    two finished neighbours (0 = the predecessor's latents as they are; 1 overshoots when the motion
    turns). `benchmarks/bench_budget.py --set invert.predict=0` measures what it buys."""
    start_samples: int = 0
    """Where a run from scratch starts: 0 = `w_avg` (Image2StyleGAN, stylegan2-ada's projector); N > 0 =
    the closest (pixel MSE) of N seeded random samples `mapping(z)`, one batched render, for generators
    whose `w_avg` renders an atypical image and sits in a poor basin (the synthetic world's random one)."""
    start_seed: int = 0
    """Seed of the `start_samples` z draws (inversion stays reproducible bit for bit)."""
    segment_frames: int = 64
    """Warm mode: frames per inversion segment, a resumable part and what one rank takes at a time, a
    multiple of `key_stride`. Every segment is a chain from the key chain's pivot of its first frame,
    registered to the key chain; a clip's segments are its own, never the ranks'."""
    key_stride: int = 16
    """Warm mode: frames between two key frames of the coarse chain that segments start from and are
    registered to (`stages.keys`): short enough that the chain follows the face."""
    key_steps: int = 160
    """Warm mode: most optimiser steps for each key frame after a run's first (`stages.keys`): a step of the
    key chain spans `key_stride` frames of motion, not one, and every pivot of the run is registered to
    these: with a warm frame's budget they fit worse, and so do the registered pivots
    (`benchmarks/bench_registration.py`). The quality levels keep it at four warm budgets."""
    refit_steps: int = 0
    """Warm mode: most optimiser steps that refit every pivot of a chain after it is registered to the key
    chain (`stages.keys.invert_chain`), from the registered pivot (0 = keep the registered pivots). The
    registration's correction moves a pivot along directions the picture barely shows, but not none: with
    L-BFGS on faces it costs fit that the refit wins back (`benchmarks/bench_registration.py`; the
    `face-world` preset refits). With Adam (the default) it starts without moments; on the random world its
    effect on the output was mixed (`benchmarks/bench_budget.py --set invert.refit_steps=10`, docs/cost.md)
    and on FFHQ it is unmeasured, so it is off by default."""

    def __post_init__(self) -> None:
        for name in ("first_steps", "warm_steps", "key_steps", "batch_size", "segment_frames", "key_stride"):
            if getattr(self, name) < 1:
                raise ReenactError(f"invert.{name} must be >= 1, got {getattr(self, name)}")
        if self.refit_steps < 0:
            raise ReenactError(f"invert.refit_steps must be >= 0, got {self.refit_steps}")
        if self.segment_frames % self.key_stride != 0:
            raise ReenactError(
                f"invert.segment_frames ({self.segment_frames}) must be a multiple of invert.key_stride "
                f"({self.key_stride}): every segment starts and ends on a key frame"
            )
        if self.optimiser == "lbfgs" and self.batch_size != 1:
            raise ReenactError(
                f"invert.optimiser = 'lbfgs' fits one frame at a time: set invert.batch_size = 1 "
                f"(got {self.batch_size})"
            )
        for name in ("learning_rate", "warm_learning_rate"):
            if getattr(self, name) <= 0:
                raise ReenactError(f"invert.{name} must be > 0, got {getattr(self, name)}")
        if self.perceptual_weight < 0 or self.mse_weight < 0:
            raise ReenactError("invert.perceptual_weight and invert.mse_weight must be >= 0")
        if self.spread_weight < 0:
            raise ReenactError(f"invert.spread_weight must be >= 0, got {self.spread_weight}")
        if self.perceptual_weight == 0 and self.mse_weight == 0:
            raise ReenactError("invert: perceptual_weight and mse_weight cannot both be 0")
        if self.start_samples < 0:
            raise ReenactError(f"invert.start_samples must be >= 0, got {self.start_samples}")
        if self.plateau_window < 0:
            raise ReenactError(f"invert.plateau_window must be >= 0, got {self.plateau_window}")
        if not 0 <= self.plateau_tolerance < 1:
            raise ReenactError(f"invert.plateau_tolerance must be in [0, 1), got {self.plateau_tolerance}")
        if not 0 <= self.predict <= 1:
            raise ReenactError(f"invert.predict must be in [0, 1], got {self.predict}")


@dataclass
class MetricsConfig:
    """`reenact evaluate`: identity consistency (TL-ID/TG-ID), PSNR and LPIPS against the source clip."""

    lpips_net: Literal["alex", "vgg"] = "alex"
    """LPIPS backbone: `alex` (the lpips authors' choice for evaluation) or `vgg`."""
    tg_max_frames: int = 1000
    """TG-ID compares all frame pairs among at most this many evenly spaced frames with a face."""
    psnr_max_db: float = 100.0
    """PSNR of identical frames (infinite in theory) is reported as this many dB."""

    def __post_init__(self) -> None:
        if self.tg_max_frames < 2:
            raise ReenactError(f"metrics.tg_max_frames must be >= 2, got {self.tg_max_frames}")
        if self.psnr_max_db <= 0:
            raise ReenactError(f"metrics.psnr_max_db must be > 0, got {self.psnr_max_db}")


@dataclass
class PTIConfig:
    """Pivotal tuning (PTI, Roich et al. 2021): ONE pass of tuning the synthesis weights over a whole clip."""

    learning_rate: float = 3e-4
    """Adam learning rate on the synthesis weights (PTI: 3e-4), constant over the run."""
    batch_size: int = 4
    """(frame, pivot) pairs per step, drawn as seeded shuffled passes over the clip."""
    base_steps: int = 200
    """Steps for a single frame (PTI: 350 per image); a clip of N frames gets base_steps * sqrt(N)."""
    max_steps: int = 1200
    """Upper bound of the step budget (long clips add little that their first seconds do not show)."""
    l2_weight: float = 1.0
    """Weight of the pixel MSE term (images in [-1, 1]; PTI: 1)."""
    lpips_weight: float = 1.0
    """Weight of the LPIPS term (PTI: 1); unused when no LPIPS module is given."""
    lpips_net: Literal["alex", "vgg"] = "alex"
    """LPIPS backbone of the tuning loss and the regulariser (PTI: alex)."""
    locality_weight: float = 0.1
    """Weight of the locality regulariser (PTI: 0.1; 0 = off): G_tuned must equal G_orig near the pivots."""
    locality_interval: int = 1
    """The regulariser is applied every this many steps (PTI: 1)."""
    locality_samples: int = 1
    """Regularisation points per regularised step (PTI: 1)."""
    locality_radius: float = 1.0
    """Distance of a regularisation point from its pivot, towards a sampled w, in units of W's RMS spread
    per layer (PTI's alpha = 30 over 18 x 512 coordinates, about 7 per layer in FFHQ units)."""
    locality_truncation: float = 0.5
    """Truncation psi of the sampled w that gives the direction (PTI: 0.5)."""
    target_psnr: float = 0.0
    """Stop early once the clip's running mean PSNR (dB) reaches this (0 = always run the full budget)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (when a checkpoint file is given)."""
    seed: int = 0
    """Seed of the batch order and the regulariser's samples (a resumed run draws the same ones)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "base_steps", "max_steps", "locality_interval", "locality_samples"):
            if getattr(self, name) < 1:
                raise ReenactError(f"pti.{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_every < 1:
            raise ReenactError(f"pti.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.max_steps < self.base_steps:
            raise ReenactError(
                f"pti.max_steps ({self.max_steps}) must be >= pti.base_steps ({self.base_steps})"
            )
        if self.learning_rate <= 0:
            raise ReenactError(f"pti.learning_rate must be > 0, got {self.learning_rate}")
        for name in ("l2_weight", "lpips_weight", "locality_weight", "target_psnr"):
            if getattr(self, name) < 0:
                raise ReenactError(f"pti.{name} must be >= 0, got {getattr(self, name)}")
        if self.l2_weight == 0 and self.lpips_weight == 0:
            raise ReenactError("pti: l2_weight and lpips_weight cannot both be 0")
        if self.locality_radius <= 0:
            raise ReenactError(f"pti.locality_radius must be > 0, got {self.locality_radius}")
        if not 0 < self.locality_truncation <= 1:
            raise ReenactError(f"pti.locality_truncation must be in (0, 1], got {self.locality_truncation}")


EDIT_LAYER_SPEC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789,+- ")


@dataclass
class EditConfig:
    """Latent edits (`reenact.edit`): expression transfer, attribute directions, morphing."""

    layers: str = "expression"
    """W+ layers the driver's expression moves: a preset (expression, expression+pose, pose, color, all)
    or indices/ranges like "4-7" or "2,4,6-8" (see `reenact.edit.LAYER_PRESETS`)."""
    strength: float = 1.0
    """Scale of the transferred expression deltas (0 = target unchanged, 1 = the driver's own amount)."""
    reference: int | Literal["auto"] = "auto"
    """The driver's neutral frame that deltas are measured from: a frame index, or `auto` to pick it
    (`reenact.edit.neutral_frame`)."""
    sigma: float = 1.0
    """Temporal Gaussian smoothing of the deltas, standard deviation in frames (0 = none)."""
    min_component: float = 0.0
    """Per-layer soft threshold of the deltas, as a fraction of that layer's largest delta (0 = off)."""
    driver_base: Literal["pivots", "w"] = "pivots"
    """Where the driver's offsets are read: `pivots`, its W+ pivots; `w`, its neutral frame fitted in W (one
    w on every layer, `base_steps`), then each frame's expression layers alone fitted from there
    (`expression_steps`), every other layer held (`reenact.stages.expression`). A W+ pivot fits the picture
    along directions it barely shows, and offsets measured there draw other things on the target; a base
    in W keeps them where the expression layers act as on a face's true code (docs/face-world.md)."""
    base_steps: int = 300
    """`driver_base = "w"`: most optimiser steps of the neutral frame's fit in W (from the start point)."""
    expression_steps: int = 100
    """`driver_base = "w"`: most optimiser steps of each driver frame's expression layers, from the base."""
    length_policy: Literal["loop", "pingpong", "cut", "hold"] = "hold"
    """Driver shorter than the target: hold its last frame, loop it, play it back and forth (pingpong),
    or cut the output to the driver's length."""
    direction_layers: str = "all"
    """W+ layers an attribute direction (`--direction`) moves; InterFaceGAN/e4e edit all of them."""
    morph_frames: int = 60
    """Frames of a `reenact morph` video, both end faces included."""
    morph_ease: bool = True
    """Ease the morph in and out (smoothstep) instead of moving at constant speed."""

    def __post_init__(self) -> None:
        for name in ("layers", "direction_layers"):
            spec = getattr(self, name)
            if not spec.strip() or not set(spec.lower()) <= EDIT_LAYER_SPEC_CHARS:
                raise ReenactError(f"edit.{name} must be a preset name or ranges like 4-7, got {spec!r}")
        if isinstance(self.reference, int) and self.reference < 0:
            raise ReenactError(f"edit.reference must be a frame index >= 0 or 'auto', got {self.reference}")
        if self.sigma < 0:
            raise ReenactError(f"edit.sigma must be >= 0, got {self.sigma}")
        if not 0 <= self.min_component < 1:
            raise ReenactError(f"edit.min_component must be in [0, 1), got {self.min_component}")
        if self.morph_frames < 2:
            raise ReenactError(f"edit.morph_frames must be >= 2, got {self.morph_frames}")
        for name in ("base_steps", "expression_steps"):
            if getattr(self, name) < 1:
                raise ReenactError(f"edit.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class Config:
    """All settings of all stages; each field is one section of a TOML preset."""

    video: VideoConfig = field(default_factory=VideoConfig)
    faces: FacesConfig = field(default_factory=FacesConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    invert: InvertConfig = field(default_factory=InvertConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    pti: PTIConfig = field(default_factory=PTIConfig)
    edit: EditConfig = field(default_factory=EditConfig)

    @classmethod
    def from_preset(
        cls,
        preset: str | Path = DEFAULT_PRESET,
        *,
        overrides: Sequence[str] = (),
        quality: str = DEFAULT_QUALITY,
    ) -> Config:
        """A packaged preset by name (`preset_names()`) or a `.toml` file over the `quality` level's budgets,
        then `section.key=value` items. The `default` preset is the defaults themselves (its file mirrors
        them), so it leaves the quality level's budgets in place."""
        path = None if str(preset) == DEFAULT_PRESET else preset_path(preset)
        return load_config(path, overrides, quality=quality)

    def with_values(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some settings replaced, e.g. `with_values(edit={"strength": 0.5})`, checked like a
        preset's (unknown keys and bad values are a `ReenactError`)."""
        data = config_to_dict(self)
        for section, values in sections.items():
            if section not in data:
                raise ReenactError(f"unknown config section: {section}")
            data[section].update(values)
        return config_from_dict(data)


def preset_names() -> list[str]:
    """Names of the presets packaged with reenact (`configs/*.toml`)."""
    return sorted(
        Path(entry.name).stem
        for entry in resources.files(PRESETS_PACKAGE).iterdir()
        if entry.name.endswith(".toml")
    )


def preset_path(preset: str | Path) -> Path:
    """The file of a packaged preset name, or `preset` itself when it is a `.toml` path."""
    if str(preset).lower().endswith(".toml"):
        return Path(preset)
    packaged = resources.files(PRESETS_PACKAGE) / f"{preset}.toml"
    if not packaged.is_file():
        raise ReenactError(
            f"unknown preset {str(preset)!r}; use one of {', '.join(preset_names())} or a .toml file"
        )
    return Path(str(packaged))


def quality_path(level: str) -> Path:
    """The file of a quality level (`QUALITY_LEVELS`)."""
    if level not in QUALITY_LEVELS:
        raise ReenactError(f"unknown quality {level!r}; use one of {', '.join(QUALITY_LEVELS)}")
    return Path(str(resources.files(PRESETS_PACKAGE) / QUALITY_FOLDER / f"{level}.toml"))


def quality_layer(level: str) -> dict[str, Any]:
    """The settings a quality level names, by section: only what it changes from the defaults."""
    return _read_toml(quality_path(level))


def load_config(
    path: Path | str | None = None, overrides: Sequence[str] = (), *, quality: str = DEFAULT_QUALITY
) -> Config:
    """Defaults, then the `quality` level's budgets, then the TOML file at `path` (if given: what it sets
    wins over the quality level), then `section.key=value` overrides."""
    data = quality_layer(quality)
    if path is not None:
        _merge(data, _read_toml(Path(path)))
    for item in overrides:
        keys, value = parse_override(item)
        _set_nested(data, keys, value)
    return config_from_dict(data)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a `Config` from nested mappings; unknown keys and wrong types raise `ReenactError`."""
    return _build(Config, data, prefix="")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (for manifests and `--json` output)."""
    return dataclasses.asdict(config)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse `section.key=value`; the value is read as a TOML value, else taken as a string."""
    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name or any(not part for part in name.split(".")):
        raise ReenactError(f"--set expects section.key=value, got {item!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name.split("."), value


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReenactError(f"config file not found: {path}")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ReenactError(f"config file {path} is not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Put `layer`'s settings into `base`, section by section (a layer's value replaces base's)."""
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ReenactError(f"cannot set {'.'.join(keys)}: {key} is a value, not a section")
        node = child
    node[keys[-1]] = value


def _build(cls: type, data: Mapping[str, Any], *, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ReenactError(f"{prefix.rstrip('.') or 'config'} must be a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(prefix + key for key in unknown)
        raise ReenactError(f"unknown config key: {names} (known: {', '.join(sorted(known))})")
    kwargs = {key: _coerce(hints[key], value, name=prefix + key) for key, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, *, name: str) -> Any:
    """Check `value` against the annotation `tp`, converting where TOML is looser than Python."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, prefix=name + ".")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name=name)
            except ReenactError as exc:
                errors.append(str(exc))
        raise ReenactError(errors[0] if errors else f"{name}: bad value {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ReenactError(f"{name} must be one of {choices}; got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ReenactError(f"{name} must be a list, got {value!r}")
        args = get_args(tp)
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, name=name) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ReenactError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReenactError(f"{name} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReenactError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ReenactError(f"{name} must be a string, got {value!r}")
        return value
    raise ReenactError(f"{name}: unsupported setting type {tp!r}")
