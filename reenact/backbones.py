"""The VGG16 and AlexNet feature stacks the losses run on, and the layouts of their weight files.

Shared by `reenact.losses` (which runs the networks) and `reenact.weights.formats` (which checks a file
before it enters the cache), so neither of those has to import the other.

The feature extractors are plain torch whose state-dict keys are torchvision's (`features.0.weight`, …),
so torchvision's own files (`vgg16-397923af.pth`, `alexnet-owt-7be5be79.pth`) load with
`load_state_dict(strict=True)` once the classifier keys are dropped. LPIPS's linear heads are the
`lin{k}.model.1.weight` tensors of the `lpips` package's v0.1 files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from reenact.errors import ReenactError
from reenact.files import check_unpacked_size

BackboneArch = Literal["vgg16", "alexnet"]
LpipsNet = Literal["vgg", "alex"]

BACKBONE_MAX_BYTES = 2 << 30
"""Largest unpacked backbone or LPIPS head file (torchvision's VGG16 is about 530 MB)."""
RGB_CHANNELS = 3
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

LPIPS_VERSION = "0.1"
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
"""Channels of the tapped activations, one LPIPS head per tap."""


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


def read_state_dict(path: Path, *, what: str) -> Mapping[str, torch.Tensor]:
    """A tensors-only torch file (`weights_only`: nothing in it is executed) that must be a mapping;
    a `ReenactError` saying the file is not `what` otherwise."""
    check_unpacked_size(path, limit=BACKBONE_MAX_BYTES, what=what.removeprefix("a ").removeprefix("an "))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or unsafe file: refuse, never execute
        raise ReenactError(f"cannot read {path} as {what} ({type(exc).__name__})") from None
    if not isinstance(state, Mapping):
        raise ReenactError(f"{path} is not {what} (got {type(state).__name__})")
    return state


def load_torchvision_features(net: FeatureExtractor, path: Path) -> None:
    """Load a torchvision state dict (classifier keys dropped) strictly into `net`."""
    state = read_state_dict(path, what="a torch state dict")
    features = {key: value for key, value in state.items() if not key.startswith("classifier.")}
    try:
        net.load_state_dict(features, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)
        raise ReenactError(
            f"{path} does not hold torchvision {net.arch} features: {first_line.strip()}"
        ) from None


def load_lpips_heads(path: Path, channels: tuple[int, ...]) -> list[torch.Tensor]:
    """The 1x1 head weights `lin{k}.model.1.weight`, each [1, C_k, 1, 1], checked against `channels`."""
    state = read_state_dict(path, what="an LPIPS head file")
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
