"""StyleGAN2 discriminator ('resnet' architecture, unconditional) for training reenact's own generator.

Semantics follow NVlabs stylegan2-ada-pytorch `training/networks.py` (`Discriminator`,
`DiscriminatorBlock`, `MinibatchStdLayer`, `DiscriminatorEpilogue`): equalized learning rate on every
layer, [1,3,3,1] FIR low-pass before each 2x downsampling, residual blocks whose two branches are scaled
by sqrt(1/2), minibatch standard deviation before the last convolution. Module and parameter names are
the official ones (`b64.conv0.weight`, `b4.fc.weight`, ...). The layers reuse `reenact.gan.stylegan2`'s
maths (`FullyConnectedLayer`, `bias_act`, `upfirdn2d`, `setup_filter`).

It exists only to train a generator (`reenact.train`); inference never needs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reenact.errors import ReenactError
from reenact.gan.stylegan2 import (
    FIRST_RESOLUTION,
    MAX_RESOLUTION,
    FullyConnectedLayer,
    NetworkConfig,
    bias_act,
    setup_filter,
    upfirdn2d,
)

DOWNSAMPLE_FACTOR = 2
"""Each discriminator block halves the resolution."""
RESIDUAL_GAIN = math.sqrt(0.5)
"""Both branches of a residual block are scaled by this, so their sum keeps unit variance."""
MBSTD_EPS = 1e-8
"""Epsilon inside the minibatch standard deviation's square root."""
MIN_D_RESOLUTION = 8
"""The smallest image a discriminator takes: one block down to the 4x4 epilogue."""


@dataclass(frozen=True)
class DiscriminatorConfig(NetworkConfig):
    """Architecture of a StyleGAN2 'resnet' discriminator. Validated on creation."""

    kind: ClassVar[str] = "discriminator"

    resolution: int = 64
    """Input image size in pixels, a power of two in 8..1024."""
    img_channels: int = 3
    """Input colour channels."""
    channel_base: int = 32768
    """Channels at resolution r are min(channel_base // r, channel_max), as in the generator."""
    channel_max: int = 512
    """Upper bound on the channels of any layer."""
    mbstd_group_size: int = 4
    """Samples per minibatch-stddev group (the batch must divide into groups of this size, or be smaller)."""
    mbstd_channels: int = 1
    """Feature channels the minibatch-stddev layer appends (0 disables it)."""
    resample_filter: tuple[int, ...] = field(default=(1, 3, 3, 1))
    """1-D low-pass FIR filter applied before each downsampling."""

    def __post_init__(self) -> None:
        power_of_two = self.resolution & (self.resolution - 1) == 0
        if not (MIN_D_RESOLUTION <= self.resolution <= MAX_RESOLUTION and power_of_two):
            raise ReenactError(
                f"discriminator resolution {self.resolution} is not a power of two in "
                f"{MIN_D_RESOLUTION}..{MAX_RESOLUTION}"
            )
        for name in ("img_channels", "channel_base", "channel_max", "mbstd_group_size"):
            if getattr(self, name) < 1:
                raise ReenactError(f"discriminator config: {name} must be >= 1, got {getattr(self, name)}")
        if self.mbstd_channels < 0:
            raise ReenactError("discriminator config: mbstd_channels must be >= 0")
        if self.channel_base // self.resolution < 1:
            raise ReenactError(
                f"discriminator config: channel_base {self.channel_base} gives 0 channels at "
                f"{self.resolution} px"
            )
        if self.mbstd_channels and self.channels(FIRST_RESOLUTION) % self.mbstd_channels:
            raise ReenactError("discriminator config: mbstd_channels must divide the 4x4 channels")
        object.__setattr__(self, "resample_filter", tuple(int(tap) for tap in self.resample_filter))

    @property
    def block_resolutions(self) -> list[int]:
        """Resolutions of the downsampling blocks: resolution, resolution / 2, ..., 8."""
        log2 = int(math.log2(self.resolution))
        return [2**i for i in range(log2, 2, -1)]


# ---------------------------------------------------------------------------------------------------
# Pure functions


def downsample_padding(taps: int, kernel_size: int) -> tuple[int, int]:
    """Padding (before, after) of the FIR pass ahead of a stride-2 conv (official conv2d_resample)."""
    pad = kernel_size // 2
    before = pad + (taps - DOWNSAMPLE_FACTOR + 1) // 2
    after = pad + (taps - DOWNSAMPLE_FACTOR) // 2
    return before, after


def minibatch_stddev(x: torch.Tensor, *, group_size: int, num_channels: int) -> torch.Tensor:
    """Append the standard deviation over minibatch groups as `num_channels` extra feature maps.

    x: [N, C, H, W] -> [N, C + num_channels, H, W]. Samples n and n + k * (N / G) share a group (the
    official grouping); N must be a multiple of the group size G = min(group_size, N).
    """
    batch, channels, height, width = x.shape
    group = min(group_size, batch)
    if batch % group:
        raise ValueError(f"minibatch-stddev: batch {batch} is not a multiple of the group size {group}")
    y = x.reshape(group, -1, num_channels, channels // num_channels, height, width)  # [G, n, F, c, H, W]
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + MBSTD_EPS).sqrt()  # [n, F, c, H, W]
    y = y.mean(dim=[2, 3, 4]).reshape(-1, num_channels, 1, 1)  # [n, F, 1, 1]
    y = y.repeat(group, 1, height, width)  # [N, F, H, W]
    return torch.cat([x, y], dim=1)


# ---------------------------------------------------------------------------------------------------
# Layers (official names)


class Conv2dLayer(nn.Module):
    """Equalized-lr conv (weight used as weight / sqrt(fan_in)), optional FIR + 2x downsampling, bias,
    optional leaky ReLU (gain sqrt(2)); `gain` scales the output, as the official layer's `gain`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        lrelu: bool,
        bias: bool = True,
        down: int = 1,
        resample_filter: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if down not in (1, DOWNSAMPLE_FACTOR):
            raise ValueError(f"Conv2dLayer supports down 1 or {DOWNSAMPLE_FACTOR}, got {down}")
        if down > 1 and resample_filter is None:
            raise ValueError("a downsampling conv needs a resample filter")
        self.lrelu = lrelu
        self.down = down
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        if resample_filter is not None:
            self.register_buffer("resample_filter", resample_filter.clone())

    def forward(self, x: torch.Tensor, *, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.down == 1:
            x = F.conv2d(x, w, padding=self.kernel_size // 2)
        elif self.kernel_size == 1:  # official fast path: low-pass and subsample, then the 1x1 conv
            before, after = downsample_padding(self.resample_filter.shape[-1], 1)
            x = upfirdn2d(x, self.resample_filter, down=self.down, padding=(before, after, before, after))
            x = F.conv2d(x, w)
        else:  # low-pass with the padding of the whole op, then a stride-2 conv
            before, after = downsample_padding(self.resample_filter.shape[-1], self.kernel_size)
            x = upfirdn2d(x, self.resample_filter, padding=(before, after, before, after))
            x = F.conv2d(x, w, stride=self.down)
        if self.bias is not None:
            x = bias_act(x, self.bias, lrelu=self.lrelu)
        elif self.lrelu:
            raise ValueError("a conv without bias is linear here (the residual skip)")
        return x * gain if gain != 1.0 else x


class DiscriminatorBlock(nn.Module):
    """One resolution: (FromRGB if first), conv0, conv1 with 2x down, plus a 1x1 residual skip."""

    def __init__(self, config: DiscriminatorConfig, resolution: int, *, first: bool) -> None:
        super().__init__()
        self.resolution = resolution
        self.first = first
        channels = config.channels(resolution)
        out_channels = config.channels(resolution // DOWNSAMPLE_FACTOR)
        resample_filter = setup_filter(config.resample_filter)
        if first:
            self.fromrgb = Conv2dLayer(config.img_channels, channels, kernel_size=1, lrelu=True)
        self.conv0 = Conv2dLayer(channels, channels, kernel_size=3, lrelu=True)
        self.conv1 = Conv2dLayer(
            channels,
            out_channels,
            kernel_size=3,
            lrelu=True,
            down=DOWNSAMPLE_FACTOR,
            resample_filter=resample_filter,
        )
        self.skip = Conv2dLayer(
            channels,
            out_channels,
            kernel_size=1,
            lrelu=False,
            bias=False,
            down=DOWNSAMPLE_FACTOR,
            resample_filter=resample_filter,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, 3, R, R] images for the first block, else [N, C, R, R] features
        if self.first:
            x = self.fromrgb(x)
        y = self.skip(x, gain=RESIDUAL_GAIN)  # [N, C', R/2, R/2]
        x = self.conv0(x)
        x = self.conv1(x, gain=RESIDUAL_GAIN)
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch stddev, 3x3 conv, fully connected, one logit per image."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        channels = config.channels(FIRST_RESOLUTION)
        self.mbstd_group_size = config.mbstd_group_size
        self.mbstd_channels = config.mbstd_channels
        self.conv = Conv2dLayer(channels + config.mbstd_channels, channels, kernel_size=3, lrelu=True)
        self.fc = FullyConnectedLayer(channels * FIRST_RESOLUTION**2, channels, lrelu=True)
        self.out = FullyConnectedLayer(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C, 4, 4]
        if self.mbstd_channels:
            x = minibatch_stddev(x, group_size=self.mbstd_group_size, num_channels=self.mbstd_channels)
        x = self.conv(x)
        x = self.fc(x.flatten(1))  # [N, C]
        return self.out(x)  # [N, 1]


class Discriminator(nn.Module):
    """images [N, 3, R, R] (nominally in [-1, 1]) -> logits [N, 1]; config in `D.config`."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.resolution = config.resolution
        self.block_resolutions = config.block_resolutions
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(config, res, first=res == config.resolution))
        self.b4 = DiscriminatorEpilogue(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expected = (self.config.img_channels, self.resolution, self.resolution)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be [N, {', '.join(map(str, expected))}], got {list(images.shape)}")
        x = images.to(torch.float32)
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
        return self.b4(x)  # [N, 1]
