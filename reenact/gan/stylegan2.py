"""StyleGAN2 generator (config F) in plain PyTorch: no compiled ops, any power-of-two resolution.

Semantics follow NVlabs stylegan2-ada-pytorch `training/networks.py` (mapping network with equalized
learning rate and `w_avg`, modulated/demodulated convolutions, per-layer noise, [1,3,3,1] FIR resampling,
'skip' ToRGB architecture). Module, parameter and buffer names are the official ones
(`mapping.fc0.weight`, `synthesis.b64.conv0.affine.bias`, `synthesis.b4.const`, ...), so an official
`G_ema` state dict loads key for key; `reenact.gan.checkpoints` maps rosinality's layout onto them.

Two deliberate differences from the official module, both for pipelines that fine-tune G:
- `w_avg` is only updated by an explicit `MappingNetwork.track_w_avg(w)` call, never as a side effect of
  `train()` mode (pivotal tuning must not drift the truncation centre);
- the output image is returned unclamped (nominally in [-1, 1], as the official G) so gradients flow;
  `reenact.imaging.images_to_uint8` clamps for display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from reenact.errors import ReenactError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11 on

NoiseMode = Literal["const", "random", "none"]

LRELU_SLOPE = 0.2  # leaky ReLU negative slope used throughout StyleGAN2
LRELU_GAIN = math.sqrt(2.0)  # 'lrelu' def_gain: keeps activations at unit variance
DEMOD_EPS = 1e-8  # epsilon inside the demodulation rsqrt
PIXEL_NORM_EPS = 1e-8  # epsilon of normalize_2nd_moment on z
FIRST_RESOLUTION = 4  # the constant input's size
UPSAMPLE_FACTOR = 2  # each synthesis block doubles the resolution
MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024
FFHQ_W_DIM = 512
"""Width of the FFHQ generators' W space, which every published FFHQ direction file lives in."""


class NetworkConfig:
    """What a StyleGAN2 network's config dataclass shares (it has `channel_base`, `channel_max` and
    `resample_filter` fields): channels per resolution, and a plain dict to store and read it back."""

    channel_base: int
    channel_max: int
    resample_filter: tuple[int, ...]
    kind: ClassVar[str] = "network"
    """What the config is of, for its errors."""

    def channels(self, resolution: int) -> int:
        """Feature channels of the block at `resolution`."""
        return min(self.channel_base // resolution, self.channel_max)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # a dataclass: every subclass is one
        data["resample_filter"] = list(self.resample_filter)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ReenactError(f"{cls.kind} config has unknown fields {unknown}")
        values = dict(data)
        if "resample_filter" in values:
            values["resample_filter"] = tuple(values["resample_filter"])
        return cls(**values)


@dataclass(frozen=True)
class GeneratorConfig(NetworkConfig):
    """Architecture of a StyleGAN2 generator ('skip' ToRGB, unconditional). Validated on creation."""

    kind: ClassVar[str] = "generator"

    z_dim: int = 512
    """Input latent (Z) size."""
    w_dim: int = 512
    """Intermediate latent (W) size."""
    resolution: int = 1024
    """Output image size in pixels, a power of two in 4..1024."""
    img_channels: int = 3
    """Output colour channels."""
    channel_base: int = 32768
    """Channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Upper bound on the channels of any synthesis layer."""
    mapping_layers: int = 8
    """Fully connected layers in the mapping network."""
    mapping_lr_multiplier: float = 0.01
    """Equalized learning-rate multiplier of the mapping layers."""
    w_avg_beta: float = 0.995
    """Decay of the moving average of W (used by `track_w_avg`)."""
    conv_clamp: float | None = None
    """Clamp synthesis activations to +-conv_clamp (official FFHQ pickles use 256); None disables."""
    resample_filter: tuple[int, ...] = field(default=(1, 3, 3, 1))
    """1-D low-pass FIR filter for upsampling; its outer product is normalised to sum 1."""

    def __post_init__(self) -> None:
        if self.resolution < MIN_RESOLUTION or self.resolution > MAX_RESOLUTION:
            raise ReenactError(
                f"generator resolution {self.resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}"
            )
        if self.resolution & (self.resolution - 1) != 0:
            raise ReenactError(f"generator resolution {self.resolution} is not a power of two")
        for name in ("z_dim", "w_dim", "img_channels", "channel_base", "channel_max", "mapping_layers"):
            if getattr(self, name) < 1:
                raise ReenactError(f"generator config: {name} must be >= 1, got {getattr(self, name)}")
        if self.channel_base // self.resolution < 1:
            raise ReenactError(
                f"generator config: channel_base {self.channel_base} gives 0 channels at {self.resolution} px"
            )
        if self.mapping_lr_multiplier <= 0.0:
            raise ReenactError("generator config: mapping_lr_multiplier must be > 0")
        if not 0.0 <= self.w_avg_beta < 1.0:
            raise ReenactError("generator config: w_avg_beta must be in [0, 1)")
        if self.conv_clamp is not None and self.conv_clamp <= 0:
            raise ReenactError("generator config: conv_clamp must be > 0 or None")
        if len(self.resample_filter) < 2 or sum(self.resample_filter) == 0:
            raise ReenactError("generator config: resample_filter needs >= 2 taps and a non-zero sum")
        object.__setattr__(self, "resample_filter", tuple(int(tap) for tap in self.resample_filter))

    @property
    def log2_resolution(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def block_resolutions(self) -> list[int]:
        """Resolutions of the synthesis blocks: 4, 8, ..., resolution."""
        return [2**i for i in range(2, self.log2_resolution + 1)]

    @property
    def num_ws(self) -> int:
        """Number of W+ entries: one per conv layer plus the final ToRGB (18 at 1024 px)."""
        return 2 * self.log2_resolution - 2


def ffhq_config_f(resolution: int = 1024) -> GeneratorConfig:
    """The official FFHQ config F (channel_base 32768, channel_max 512, 8 mapping layers)."""
    return GeneratorConfig(resolution=resolution)


def tiny(resolution: int = 32) -> GeneratorConfig:
    """A small generator for tests and the synthetic demo world (fast on CPU)."""
    return GeneratorConfig(
        z_dim=32,
        w_dim=32,
        resolution=resolution,
        channel_base=16 * resolution,
        channel_max=32,
        mapping_layers=2,
    )


# ---------------------------------------------------------------------------------------------------
# Pure functions


def setup_filter(taps: Sequence[int]) -> torch.Tensor:
    """2-D FIR filter from 1-D taps: outer product normalised to sum 1 ([K, K], float32)."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def normalize_2nd_moment(x: torch.Tensor, *, dim: int = 1, eps: float = PIXEL_NORM_EPS) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, convolve with 2-D FIR `f`, downsample; as NVIDIA's upfirdn2d.

    x: [N, C, H, W]; f: [K, K]; padding (x0, x1, y0, y1), negative values crop. True convolution
    (the filter is flipped), `gain` is applied as f * gain (2-D filter).
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    pad_x0, pad_x1, pad_y0, pad_y1 = padding
    x = F.pad(x, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    x = x[
        :,
        :,
        max(-pad_y0, 0) : x.shape[2] - max(-pad_y1, 0),
        max(-pad_x0, 0) : x.shape[3] - max(-pad_x1, 0),
    ]
    kernel = (f * gain).flip([0, 1]).to(dtype=x.dtype)
    kernel = kernel[None, None].repeat(channels, 1, 1, 1)  # [C, 1, K, K]
    x = F.conv2d(x, kernel, groups=channels)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, *, up: int = UPSAMPLE_FACTOR) -> torch.Tensor:
    """Upsample by `up` with FIR filter `f` (official upfirdn2d.upsample2d, padding 0)."""
    taps = f.shape[-1]
    pad0 = (taps + up - 1) // 2
    pad1 = (taps - up) // 2
    return upfirdn2d(x, f, up=up, padding=(pad0, pad1, pad0, pad1), gain=up**2)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Modulated convolution as scale-conv-scale (equal to the official fused form, batch friendly).

    x: [N, I, H, W]; weight: [O, I, k, k]; styles: [N, I]; noise broadcastable to the output.
    With up=2 the conv is a stride-2 transposed conv followed by the FIR filter (3x3 kernel, 4 taps).
    """
    batch = x.shape[0]
    out_channels, in_channels, kernel_h, kernel_w = weight.shape
    dtype = x.dtype
    dcoefs = None
    if demodulate:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)  # [N, O, I, k, k]
        dcoefs = (w.float().square().sum(dim=[2, 3, 4]) + DEMOD_EPS).rsqrt()  # [N, O]
    x = x * styles.to(dtype).reshape(batch, in_channels, 1, 1)
    w_conv = weight.to(dtype)
    if up == 1:
        x = F.conv2d(x, w_conv, padding=kernel_h // 2)
    else:
        if resample_filter is None:
            raise ValueError("upsampling modulated conv needs a resample filter")
        taps = resample_filter.shape[-1]
        x = F.conv_transpose2d(x, w_conv.transpose(0, 1), stride=up)
        # Padding of conv2d_resample(up=up, padding=k//2) after the transposed conv.
        pad0 = kernel_w // 2 + (taps + up - 1) // 2 - (kernel_w - 1)
        pad1 = kernel_w // 2 + (taps - up) // 2 - (kernel_w - up)
        x = upfirdn2d(x, resample_filter, padding=(pad0, pad1, pad0, pad1), gain=up**2)
    if dcoefs is not None:
        x = x * dcoefs.to(x.dtype).reshape(batch, out_channels, 1, 1)
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def bias_act(x: torch.Tensor, bias: torch.Tensor, *, lrelu: bool, clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, optionally leaky-ReLU with gain sqrt(2), optionally clamp."""
    x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ---------------------------------------------------------------------------------------------------
# Layers (official names)


class FullyConnectedLayer(nn.Module):
    """Equalized-lr linear layer: stored weight ~ N(0, 1/lr^2), used as weight * lr / sqrt(in)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lrelu: bool = False,
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.lrelu = lrelu
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain
        if not self.lrelu:
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, lrelu=True)


class MappingNetwork(nn.Module):
    """z [N, z_dim] -> ws [N, num_ws, w_dim], with truncation towards the tracked `w_avg`."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.z_dim = config.z_dim
        self.w_dim = config.w_dim
        self.num_ws = config.num_ws
        self.num_layers = config.mapping_layers
        self.w_avg_beta = config.w_avg_beta
        for idx in range(config.mapping_layers):
            in_features = config.z_dim if idx == 0 else config.w_dim
            layer = FullyConnectedLayer(
                in_features, config.w_dim, lrelu=True, lr_multiplier=config.mapping_lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([config.w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        x = normalize_2nd_moment(z.to(torch.float32))  # [N, z_dim]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [N, w_dim]
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            return self.truncate(ws, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return ws

    def truncate(
        self, ws: torch.Tensor, *, truncation_psi: float, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """Pull ws [N, num_ws, w_dim] towards w_avg by psi (only the first `truncation_cutoff` entries)."""
        w_avg = self.w_avg.to(ws.dtype)
        cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
        truncated = w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return torch.cat([truncated, ws[:, cutoff:]], dim=1)

    @torch.no_grad()
    def track_w_avg(self, w: torch.Tensor) -> None:
        """Update the moving average of W with a batch w [N, w_dim] (what official training does)."""
        self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsampling), noise, bias, leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        up: int,
        resample_filter: torch.Tensor,
        conv_clamp: float | None,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", resample_filter.clone())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: NoiseMode) -> torch.Tensor:
        styles = self.affine(w)  # [N, in_channels]
        noise = None
        if noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(shape, device=x.device, dtype=torch.float32) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength  # [R, R]
        x = modulated_conv2d(
            x, self.weight, styles, up=self.up, resample_filter=self.resample_filter, noise=noise
        )
        return bias_act(x, self.bias, lrelu=True, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, *, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [N, in_channels]
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, lrelu=False, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const | conv0 with 2x up), conv1, ToRGB added to the upsampled skip image."""

    def __init__(self, config: GeneratorConfig, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.is_first = resolution == FIRST_RESOLUTION
        out_channels = config.channels(resolution)
        resample_filter = setup_filter(config.resample_filter)
        self.register_buffer("resample_filter", resample_filter.clone())
        if self.is_first:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                config.channels(resolution // UPSAMPLE_FACTOR),
                out_channels,
                w_dim=config.w_dim,
                resolution=resolution,
                up=UPSAMPLE_FACTOR,
                resample_filter=resample_filter,
                conv_clamp=config.conv_clamp,
            )
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim=config.w_dim,
            resolution=resolution,
            up=1,
            resample_filter=resample_filter,
            conv_clamp=config.conv_clamp,
        )
        self.torgb = ToRGBLayer(
            out_channels, config.img_channels, w_dim=config.w_dim, conv_clamp=config.conv_clamp
        )
        self.num_conv = 1 if self.is_first else 2

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, *, noise_mode: NoiseMode
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # ws: [N, num_conv + 1, w_dim]
        if self.is_first:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])  # [N, C, 4, 4]
            x = self.conv1(x, ws[:, 0], noise_mode=noise_mode)
        else:
            assert x is not None
            x = self.conv0(x, ws[:, 0], noise_mode=noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode=noise_mode)
        y = self.torgb(x, ws[:, self.num_conv]).float()  # [N, 3, R, R]
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] (or one w [N, w_dim] for all layers) -> images [N, 3, R, R]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.w_dim = config.w_dim
        self.num_ws = config.num_ws
        self.block_resolutions = config.block_resolutions
        for res in self.block_resolutions:
            setattr(self, f"b{res}", SynthesisBlock(config, res))

    def forward(self, ws: torch.Tensor, *, noise_mode: NoiseMode = "const") -> torch.Tensor:
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"ws must be [N, {self.num_ws}, {self.w_dim}] or [N, {self.w_dim}], got {list(ws.shape)}"
            )
        ws = ws.to(torch.float32)
        x: torch.Tensor | None = None
        img: torch.Tensor | None = None
        w_idx = 0
        for res in self.block_resolutions:
            block: SynthesisBlock = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + 1)
            x, img = block(x, img, block_ws, noise_mode=noise_mode)
            w_idx += block.num_conv
        assert img is not None
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: `G(z)`, `G.mapping(z)`, `G.synthesis(ws)`; config in `G.config`."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.w_dim = config.w_dim
        self.num_ws = config.num_ws
        self.resolution = config.resolution
        self.synthesis = SynthesisNetwork(config)
        self.mapping = MappingNetwork(config)

    def forward(
        self,
        z: torch.Tensor,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
    ) -> torch.Tensor:
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)  # [N, 3, R, R]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable-parameter elements (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
