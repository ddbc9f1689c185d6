"""Image losses for inversion and tuning: LPIPS without torchvision, the Image2StyleGAN perceptual loss, MSE.

The VGG16 and AlexNet feature extractors are plain torch whose state-dict keys are torchvision's
(`features.0.weight`, …), so torchvision's own files (`vgg16-397923af.pth`,
`alexnet-owt-7be5be79.pth`) load with `load_state_dict(strict=True)` once the classifier keys are
dropped. LPIPS's linear heads are read from the weight files the `lpips` package ships, located
without importing it (it imports torchvision). Backbone weights come from the weight registry; random
backbone weights exist for tests only and must be asked for with `random_backbone=True`.

All losses take images in [-1, 1], shape [N, 3, H, W], and return one value per image, shape [N].
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reenact.errors import ReenactError

BackboneArch = Literal["vgg16", "alexnet"]
LpipsNet = Literal["vgg", "alex"]

RGB_CHANNELS = 3
IMAGE_NDIM = 4
POOL = "M"
VGG16_CONFIG: tuple[int | str, ...] = (
    *(64, 64, POOL),
    *(128, 128, POOL),
    *(256, 256, 256, POOL),
    *(512, 512, 512, POOL),
    *(512, 512, 512, POOL),
)
"""torchvision `vgg.py` cfgs["D"]: conv widths, POOL for a 2x2 max-pool; the order fixes the key indices."""

TORCHVISION_NUM_PARAMS: dict[BackboneArch, int] = {"vgg16": 138_357_544, "alexnet": 61_100_840}
"""Parameter counts of the full torchvision models (features + classifier), from torchvision's metadata."""
BACKBONE_WEIGHT_NAMES: dict[BackboneArch, str] = {"vgg16": "vgg16", "alexnet": "alexnet"}
"""Registry names (`reenact.weights`) of torchvision's ImageNet weights."""

LPIPS_ARCH: dict[LpipsNet, BackboneArch] = {"vgg": "vgg16", "alex": "alexnet"}
LPIPS_TAPS: dict[BackboneArch, tuple[int, ...]] = {
    "vgg16": (3, 8, 15, 22, 29),  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    "alexnet": (1, 4, 7, 9, 11),  # relu1 .. relu5
}
"""Indices into `features` whose outputs LPIPS compares (the lpips package's slice ends)."""
LPIPS_CHANNELS: dict[BackboneArch, tuple[int, ...]] = {
    "vgg16": (64, 128, 256, 512, 512),
    "alexnet": (64, 192, 384, 256, 256),
}
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""lpips' ScalingLayer: ImageNet mean/std rewritten for inputs in [-1, 1], rounded as lpips rounds them."""
LPIPS_EPS = 1e-10
"""lpips' `normalize_tensor` epsilon."""
LPIPS_VERSION = "0.1"

IMAGE2STYLEGAN_TAPS = (1, 3, 13, 20)
"""VGG16 conv1_1, conv1_2, conv3_2, conv4_2 (after their ReLU): Abdal et al., Image2StyleGAN, ICCV 2019."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg16_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_channels = RGB_CHANNELS
    for width in VGG16_CONFIG:
        if width == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(width, int)
            layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = width
    return layers


def _alexnet_layers() -> list[nn.Module]:
    """torchvision `alexnet.py` `AlexNet.features`, layer for layer."""
    return [
        nn.Conv2d(RGB_CHANNELS, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    ]


class FeatureExtractor(nn.Module):
    """torchvision's `features` stack of VGG16 or AlexNet, returning the activations at `taps`.

    The ReLUs are not in-place, so every tapped activation stays intact; layers past the last tap
    are kept (for strict loading) but not run.
    """

    def __init__(self, arch: BackboneArch, *, taps: tuple[int, ...]) -> None:
        super().__init__()
        layers = _vgg16_layers() if arch == "vgg16" else _alexnet_layers()
        if not taps or min(taps) < 0 or max(taps) >= len(layers):
            raise ValueError(f"taps {taps} outside the {len(layers)} layers of {arch}")
        self.arch = arch
        self.taps = tuple(sorted(taps))
        self.features = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[N, 3, H, W] normalised images -> one [N, C_k, H_k, W_k] activation per tap."""
        outputs = []
        hidden = images
        for index, layer in enumerate(self.features):
            hidden = layer(hidden)
            if index in self.taps:
                outputs.append(hidden)
            if index == self.taps[-1]:
                break
        return outputs


def torchvision_feature_shapes(arch: BackboneArch) -> dict[str, tuple[int, ...]]:
    """`features.*` key -> shape of torchvision's state dict for `arch` (built on the meta device)."""
    with torch.device("meta"):
        net = FeatureExtractor(arch, taps=(0,))
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


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


def load_torchvision_features(net: FeatureExtractor, path: Path) -> None:
    """Load a torchvision state dict (classifier keys dropped) strictly into `net`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or unsafe file: refuse, never execute
        raise ReenactError(f"cannot read {path} as a torch state dict ({type(exc).__name__})") from None
    features = {key: value for key, value in state.items() if not key.startswith("classifier.")}
    try:
        net.load_state_dict(features, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)
        raise ReenactError(
            f"{path} does not hold torchvision {net.arch} features: {first_line.strip()}"
        ) from None


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
    """A frozen feature extractor in eval mode.

    Weights: `backbone_weights` if given, else the registry's cached torchvision file (a
    `ReenactError` saying how to get it when missing). Random weights only with `random_backbone=True`.
    """
    if random_backbone and backbone_weights is not None:
        raise ValueError("pass either backbone_weights or random_backbone=True, not both")
    net = FeatureExtractor(arch, taps=taps)
    if random_backbone:
        init_random_backbone(net, seed=seed)
    else:
        if backbone_weights is None:
            from reenact.weights import weight_path

            backbone_weights = weight_path(BACKBONE_WEIGHT_NAMES[arch])
        load_torchvision_features(net, Path(backbone_weights))
    net.requires_grad_(False)
    return net.eval().to(device=device, dtype=dtype)


def lpips_heads_path(net: LpipsNet) -> Path:
    """The LPIPS v0.1 linear-head file for `net`: the installed `lpips` package's own file (found
    without importing the package), else the weight cache's `lpips-<net>` (`ReenactError` if neither).
    """
    spec = importlib.util.find_spec("lpips")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
        if path.is_file():
            return path
    from reenact.weights import weight_path

    return weight_path(f"lpips-{net}")


def load_lpips_heads(path: Path, channels: tuple[int, ...]) -> list[torch.Tensor]:
    """The 1x1 head weights `lin{k}.model.1.weight`, each [1, C_k, 1, 1], checked against `channels`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or unsafe file: refuse, never execute
        raise ReenactError(f"cannot read LPIPS heads {path} ({type(exc).__name__})") from None
    heads = []
    for index, num_channels in enumerate(channels):
        key = f"lin{index}.model.1.weight"
        expected = (1, num_channels, 1, 1)
        if key not in state or tuple(state[key].shape) != expected:
            raise ReenactError(
                f"{path} is not an LPIPS head file for these features: {key} should be {expected}"
            )
        heads.append(state[key].float())
    return heads


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

    Backbone in `dtype`; channel normalisation, heads and the result in float32.
    """

    def __init__(
        self,
        *,
        net: LpipsNet = "vgg",
        backbone_weights: Path | None = None,
        random_backbone: bool = False,
        heads_path: Path | None = None,
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
        heads = load_lpips_heads(heads_path or lpips_heads_path(net), LPIPS_CHANNELS[arch])
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
            "vgg16",
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
