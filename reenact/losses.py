"""Image losses for inversion and tuning: LPIPS without torchvision, the Image2StyleGAN perceptual loss, MSE.

The networks (`reenact.backbones`) take their weights as file paths: the caller finds them, usually with
`reenact.weights.backbone_path(arch)` and `reenact.weights.lpips_heads_path(net)`, whose errors say how
to get a missing file. This module knows nothing of the weight cache. Random backbone weights exist for
tests only and must be asked for with `random_backbone=True`.

All losses take images in [-1, 1], shape [N, 3, H, W], and return one value per image, shape [N].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reenact.backbones import (
    LPIPS_ARCH,
    LPIPS_CHANNELS,
    LPIPS_TAPS,
    RGB_CHANNELS,
    BackboneArch,
    FeatureExtractor,
    LpipsNet,
    load_lpips_heads,
    load_torchvision_features,
)

IMAGE_NDIM = 4
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""lpips' ScalingLayer: ImageNet mean/std rewritten for inputs in [-1, 1], rounded as lpips rounds them."""
LPIPS_EPS = 1e-10
"""lpips' `normalize_tensor` epsilon."""

IMAGE2STYLEGAN_ARCH: BackboneArch = "vgg16"
"""Image2StyleGAN's perceptual loss runs on VGG16 (its weights: `reenact.weights.backbone_path(...)`)."""
IMAGE2STYLEGAN_TAPS = (1, 3, 13, 20)
"""VGG16 conv1_1, conv1_2, conv3_2, conv4_2 (after their ReLU): Abdal et al., Image2StyleGAN, ICCV 2019."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def init_random_backbone(net: FeatureExtractor, *, seed: int) -> None:
    """Seeded Kaiming-normal convolutions (torchvision's VGG init), zero biases: for tests only."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.features:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                std = (2.0 / fan_out) ** 0.5
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                module.bias.zero_()


def load_backbone(
    arch: BackboneArch,
    *,
    taps: tuple[int, ...],
    backbone_weights: Path | None = None,
    random_backbone: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> FeatureExtractor:
    """A frozen feature extractor in eval mode, with the torchvision weights in `backbone_weights`.

    Random weights only with `random_backbone=True` (tests). Passing both or neither is a programming
    error (`ValueError`): a missing file is the caller's `ReenactError` to raise, e.g. through
    `reenact.weights.backbone_path(arch)`, never a silent random stand-in.
    """
    if random_backbone == (backbone_weights is not None):
        raise ValueError("pass either backbone_weights or random_backbone=True, not both or neither")
    net = FeatureExtractor(arch, taps=taps)
    if backbone_weights is None:
        init_random_backbone(net, seed=seed)
    else:
        load_torchvision_features(net, Path(backbone_weights))
    net.requires_grad_(False)
    return net.eval().to(device=device, dtype=dtype)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != IMAGE_NDIM or x.shape[1] != RGB_CHANNELS or x.shape != y.shape:
        raise ValueError(
            f"expected two [N, 3, H, W] images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def normalize_channels(features: torch.Tensor) -> torch.Tensor:
    """Unit length along channels, as lpips' `normalize_tensor`: [N, C, H, W] -> [N, C, H, W]."""
    norm = features.pow(2).sum(dim=1, keepdim=True).sqrt()
    return features / (norm + LPIPS_EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al., CVPR 2018) on VGG16 or AlexNet features, torchvision-free.

    `heads_path`: the v0.1 linear-head file for `net`; `backbone_weights` / `random_backbone` as in
    `load_backbone`. Backbone in `dtype`; channel normalisation, heads and the result in float32.
    """

    def __init__(
        self,
        *,
        net: LpipsNet = "vgg",
        heads_path: Path,
        backbone_weights: Path | None = None,
        random_backbone: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        arch = LPIPS_ARCH[net]
        self.backbone = load_backbone(
            arch,
            taps=LPIPS_TAPS[arch],
            backbone_weights=backbone_weights,
            random_backbone=random_backbone,
            seed=seed,
            device=device,
            dtype=dtype,
        )
        heads = load_lpips_heads(Path(heads_path), LPIPS_CHANNELS[arch])
        self.lins = nn.ModuleList()
        for head in heads:
            lin = nn.Conv2d(head.shape[1], 1, kernel_size=1, bias=False)
            lin.weight.data.copy_(head)
            self.lins.append(lin)
        self.lins.requires_grad_(False)
        self.lins.to(device=device, dtype=torch.float32)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT, device=device, dtype=dtype).view(1, -1, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE, device=device, dtype=dtype).view(1, -1, 1, 1))
        self.eval()

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-layer LPIPS terms: two [N, 3, H, W] images in [-1, 1] -> [N, num_layers]."""
        _check_pair(x, y)
        both = torch.cat([x, y]).to(self.shift.dtype)  # [2N, 3, H, W]: one backbone pass
        features = self.backbone((both - self.shift) / self.scale)
        terms = []
        for feature, lin in zip(features, self.lins, strict=True):
            fx, fy = normalize_channels(feature.float()).chunk(2)  # [N, C, H', W'] each
            terms.append(lin((fx - fy).pow(2)).mean(dim=(1, 2, 3)))  # [N]
        return torch.stack(terms, dim=1)  # [N, num_layers]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of each image pair: [N, 3, H, W] x2 in [-1, 1] -> [N]."""
        return self.layer_distances(x, y).sum(dim=1)


class Image2StyleGANPerceptual(nn.Module):
    """Image2StyleGAN's perceptual loss on ImageNet-normalised input.

    Sum over VGG16 conv1_1, conv1_2, conv3_2, conv4_2 (post-ReLU) of the mean squared feature
    difference, λ_j / N_j ‖F_j(x) − F_j(y)‖² with λ_j = 1 (Abdal et al., ICCV 2019, eq. 2).
    `backbone_weights` / `random_backbone` as in `load_backbone` (a VGG16 file).
    """

    def __init__(
        self,
        *,
        backbone_weights: Path | None = None,
        random_backbone: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.backbone = load_backbone(
            IMAGE2STYLEGAN_ARCH,
            taps=IMAGE2STYLEGAN_TAPS,
            backbone_weights=backbone_weights,
            random_backbone=random_backbone,
            seed=seed,
            device=device,
            dtype=dtype,
        )
        self.register_buffer(
            "mean", torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(IMAGENET_STD, device=device, dtype=dtype).view(1, -1, 1, 1))
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] x2 in [-1, 1] -> [N]."""
        _check_pair(x, y)
        both = (torch.cat([x, y]).to(self.mean.dtype) + 1) / 2  # [2N, 3, H, W] in [0, 1]
        features = self.backbone((both - self.mean) / self.std)
        total = torch.zeros(x.shape[0], device=x.device, dtype=torch.float32)
        for feature in features:
            fx, fy = feature.float().chunk(2)
            total = total + (fx - fy).pow(2).mean(dim=(1, 2, 3))
        return total


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image (Image2StyleGAN's pixel term λ_mse / N ‖x − y‖²): [N, C, H, W] -> [N]."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} and {tuple(y.shape)}")
    return F.mse_loss(x.float(), y.float(), reduction="none").flatten(1).mean(dim=1)


def weighted_image_loss(
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    pixel_weight: float,
    perceptual: nn.Module | None,
    perceptual_weight: float,
) -> torch.Tensor:
    """`pixel_weight * MSE + perceptual_weight * perceptual` per image, in float32: [N, 3, H, W] x2 -> [N].

    The loss of inversion (Image2StyleGAN) and of pivotal tuning (PTI) alike; the perceptual term is
    skipped when there is no network or its weight is 0.
    """
    loss = pixel_weight * mse(images, targets)
    if perceptual is not None and perceptual_weight > 0:
        loss = loss + perceptual_weight * perceptual(images, targets).float()
    return loss
