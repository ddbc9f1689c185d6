"""LPIPS without torchvision, the Image2StyleGAN perceptual loss and MSE.

No ImageNet weights can be downloaded here, so the backbones run with seeded random weights
(asked for explicitly with `random_backbone=True`); the LPIPS linear heads are the real ones shipped
with the `lpips` package (found by `reenact.weights.lpips_heads_path`). The reference implementation
below is written from the published sources (torchvision `models/vgg.py` and `models/alexnet.py`,
lpips `lpips/lpips.py`), with functional ops, independently of `reenact.losses`.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reenact.backbones import FeatureExtractor
from reenact.errors import ReenactError
from reenact.losses import LPIPS, Image2StyleGANPerceptual, load_backbone, mse
from reenact.weights import lpips_heads_path

# --- torchvision's layers, from pytorch/vision torchvision/models/vgg.py (cfgs["D"], make_layers,
# VGG.classifier) and torchvision/models/alexnet.py (AlexNet.features, AlexNet.classifier).
# ("conv", index, in, out, kernel, stride, padding) | ("relu", index) | ("pool", index, kernel, stride)
VGG16_FEATURES = [
    ("conv", 0, 3, 64, 3, 1, 1), ("relu", 1), ("conv", 2, 64, 64, 3, 1, 1), ("relu", 3), ("pool", 4, 2, 2),
    ("conv", 5, 64, 128, 3, 1, 1), ("relu", 6), ("conv", 7, 128, 128, 3, 1, 1), ("relu", 8),
    ("pool", 9, 2, 2),
    ("conv", 10, 128, 256, 3, 1, 1), ("relu", 11), ("conv", 12, 256, 256, 3, 1, 1), ("relu", 13),
    ("conv", 14, 256, 256, 3, 1, 1), ("relu", 15), ("pool", 16, 2, 2),
    ("conv", 17, 256, 512, 3, 1, 1), ("relu", 18), ("conv", 19, 512, 512, 3, 1, 1), ("relu", 20),
    ("conv", 21, 512, 512, 3, 1, 1), ("relu", 22), ("pool", 23, 2, 2),
    ("conv", 24, 512, 512, 3, 1, 1), ("relu", 25), ("conv", 26, 512, 512, 3, 1, 1), ("relu", 27),
    ("conv", 28, 512, 512, 3, 1, 1), ("relu", 29), ("pool", 30, 2, 2),
]  # fmt: skip
VGG16_CLASSIFIER = {
    "classifier.0": (4096, 512 * 7 * 7),
    "classifier.3": (4096, 4096),
    "classifier.6": (1000, 4096),
}
ALEXNET_FEATURES = [
    ("conv", 0, 3, 64, 11, 4, 2), ("relu", 1), ("pool", 2, 3, 2),
    ("conv", 3, 64, 192, 5, 1, 2), ("relu", 4), ("pool", 5, 3, 2),
    ("conv", 6, 192, 384, 3, 1, 1), ("relu", 7), ("conv", 8, 384, 256, 3, 1, 1), ("relu", 9),
    ("conv", 10, 256, 256, 3, 1, 1), ("relu", 11), ("pool", 12, 3, 2),
]  # fmt: skip
ALEXNET_CLASSIFIER = {
    "classifier.1": (4096, 256 * 6 * 6),
    "classifier.4": (4096, 4096),
    "classifier.6": (1000, 4096),
}
TORCHVISION = {
    "vgg16": (VGG16_FEATURES, VGG16_CLASSIFIER, 138_357_544),
    "alexnet": (ALEXNET_FEATURES, ALEXNET_CLASSIFIER, 61_100_840),
}
# --- lpips/lpips.py and lpips/pretrained_networks.py: slice ends, channels, ScalingLayer.
LPIPS_SLICE_ENDS = {"vgg": (3, 8, 15, 22, 29), "alex": (1, 4, 7, 9, 11)}
LPIPS_CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
LPIPS_ARCH = {"vgg": "vgg16", "alex": "alexnet"}
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
IMAGE2STYLEGAN_RELUS = (1, 3, 13, 20)  # after conv1_1, conv1_2, conv3_2, conv4_2
SIZE = 32
REPO_ROOT = Path(__file__).resolve().parents[1]


def torchvision_state_dict(arch: str, *, seed: int) -> dict[str, torch.Tensor]:
    """torchvision's exact keys and shapes: random features, a stride-0 classifier (keeps the file tiny)."""
    features, classifier, _ = TORCHVISION[arch]
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for layer in features:
        if layer[0] == "conv":
            _, index, c_in, c_out, kernel, _, _ = layer
            state[f"features.{index}.weight"] = (
                torch.randn(c_out, c_in, kernel, kernel, generator=generator) * 0.05
            )
            state[f"features.{index}.bias"] = torch.randn(c_out, generator=generator) * 0.01
    for key, (rows, cols) in classifier.items():
        state[f"{key}.weight"] = torch.zeros(1).expand(rows, cols)
        state[f"{key}.bias"] = torch.zeros(1).expand(rows)
    return state


def reference_features(
    state: dict[str, torch.Tensor], arch: str, images: torch.Tensor, taps: tuple[int, ...]
) -> list[torch.Tensor]:
    features, _, _ = TORCHVISION[arch]
    outputs, hidden = [], images
    for layer in features:
        kind, index = layer[0], layer[1]
        if kind == "conv":
            _, _, _, _, _, stride, padding = layer
            weight, bias = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
            hidden = F.conv2d(hidden, weight, bias, stride=stride, padding=padding)
        elif kind == "relu":
            hidden = F.relu(hidden)
        else:
            hidden = F.max_pool2d(hidden, kernel_size=layer[2], stride=layer[3])
        if index in taps:
            outputs.append(hidden)
        if index == max(taps):
            break
    return outputs


def reference_lpips(
    state: dict[str, torch.Tensor], net: str, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    heads = torch.load(lpips_heads_path(net), map_location="cpu", weights_only=True)
    taps = LPIPS_SLICE_ENDS[net]
    fx = reference_features(state, LPIPS_ARCH[net], (x - SHIFT) / SCALE, taps)
    fy = reference_features(state, LPIPS_ARCH[net], (y - SHIFT) / SCALE, taps)
    total = torch.zeros(x.shape[0])
    for k, (a, b) in enumerate(zip(fx, fy, strict=True)):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total += F.conv2d((a - b) ** 2, heads[f"lin{k}.model.1.weight"]).mean(dim=(1, 2, 3))
    return total


def random_lpips(net: str, **options: object) -> LPIPS:
    """LPIPS with the package's real heads and a seeded random backbone (tests only)."""
    return LPIPS(net=net, heads_path=lpips_heads_path(net), random_backbone=True, **options)


def images(seed: int, n: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, SIZE, SIZE, generator=generator) * 2 - 1  # [N, 3, H, W] in [-1, 1]


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_heads_are_the_package_files(net: str) -> None:
    imported_before = "lpips" in sys.modules
    path = lpips_heads_path(net)
    assert path.parts[-3:] == ("weights", "v0.1", f"{net}.pth")
    assert ("lpips" in sys.modules) == imported_before  # found without importing the package
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = random_lpips(net)
    assert len(model.lins) == len(LPIPS_CHANNELS[net])
    for k, channels in enumerate(LPIPS_CHANNELS[net]):
        assert model.lins[k].weight.shape == (1, channels, 1, 1)
        assert torch.equal(model.lins[k].weight, saved[f"lin{k}.model.1.weight"].float())


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_torchvision_state_dict_loads_strictly(net: str, tmp_path: Path) -> None:
    arch = LPIPS_ARCH[net]
    state = torchvision_state_dict(arch, seed=1)
    assert sum(value.numel() for value in state.values()) == TORCHVISION[arch][2]  # torchvision's num_params
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    backbone = load_backbone(arch, taps=LPIPS_SLICE_ENDS[net], backbone_weights=path)
    own = backbone.state_dict()
    assert set(own) == {key for key in state if key.startswith("features.")}
    for key, value in own.items():
        assert torch.equal(value, state[key])
    assert not any(parameter.requires_grad for parameter in backbone.parameters())


def test_state_dict_with_a_wrong_shape_is_refused(tmp_path: Path) -> None:
    state = torchvision_state_dict("alexnet", seed=1)
    state["features.3.weight"] = state["features.3.weight"][:, :32]
    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    with pytest.raises(ReenactError, match=r"features\.3\.weight"):
        load_backbone("alexnet", taps=(1,), backbone_weights=path)


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_matches_the_published_formula(net: str, tmp_path: Path) -> None:
    """Taps, scaling constants, channel normalisation, heads and spatial mean against the reference."""
    state = torchvision_state_dict(LPIPS_ARCH[net], seed=2)
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    model = LPIPS(net=net, backbone_weights=path, heads_path=lpips_heads_path(net))
    x, y = images(3), images(4)
    expected = reference_lpips(state, net, x, y)
    got = model(x, y)
    assert got.shape == (2,)
    assert float(expected.min()) > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("net", "dtype"), [("vgg", torch.float32), ("alex", torch.float32), ("alex", torch.bfloat16)]
)
def test_lpips_zero_symmetric_monotone(net: str, dtype: torch.dtype) -> None:
    model = random_lpips(net, seed=5, dtype=dtype)
    x = images(6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(model(x, x), torch.zeros(2))
    y = (x + 0.3 * noise).clamp(-1, 1)
    torch.testing.assert_close(model(x, y), model(y, x), rtol=1e-5, atol=1e-7)
    distances = torch.stack(
        [model(x, (x + level * noise).clamp(-1, 1)) for level in (0.02, 0.05, 0.1, 0.2, 0.4)]
    )
    assert bool((distances[1:] > distances[:-1] * 1.05).all()), distances  # [levels, N] strictly growing


def test_lpips_bfloat16_close_to_float32() -> None:
    x, y = images(8), images(9)
    full = random_lpips("alex", seed=3)(x, y)
    half = random_lpips("alex", seed=3, dtype=torch.bfloat16)(x, y)
    torch.testing.assert_close(half, full, rtol=0.05, atol=0.0)


def test_gradients_reach_the_input_only() -> None:
    model = random_lpips("alex")
    x = images(10).requires_grad_(True)
    model(x, images(11)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(parameter.grad is None for parameter in model.parameters())


def test_random_weights_never_stand_in_silently() -> None:
    """A loss gets its backbone file or an explicit `random_backbone=True`: anything else is a bug."""
    heads = lpips_heads_path("vgg")
    with pytest.raises(ValueError, match="not both or neither"):
        LPIPS(net="vgg", heads_path=heads)
    with pytest.raises(ValueError, match="not both or neither"):
        Image2StyleGANPerceptual()
    with pytest.raises(ValueError, match="not both"):
        LPIPS(net="vgg", heads_path=heads, random_backbone=True, backbone_weights=Path("x.pth"))


def test_feature_taps_have_the_lpips_shapes() -> None:
    x = torch.zeros(1, 3, 64, 64)
    vgg = FeatureExtractor("vgg16", taps=LPIPS_SLICE_ENDS["vgg"])
    assert [tuple(f.shape[1:]) for f in vgg(x)] == [
        (64, 64, 64),
        (128, 32, 32),
        (256, 16, 16),
        (512, 8, 8),
        (512, 4, 4),
    ]
    alex = FeatureExtractor("alexnet", taps=LPIPS_SLICE_ENDS["alex"])
    assert [tuple(f.shape[1:]) for f in alex(x)] == [
        (64, 15, 15),
        (192, 7, 7),
        (384, 3, 3),
        (256, 3, 3),
        (256, 3, 3),
    ]


def test_image2stylegan_perceptual_matches_the_paper_layers(tmp_path: Path) -> None:
    state = torchvision_state_dict("vgg16", seed=13)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    loss = Image2StyleGANPerceptual(backbone_weights=path)
    x, y = images(14), images(15)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    fx = reference_features(state, "vgg16", ((x + 1) / 2 - mean) / std, IMAGE2STYLEGAN_RELUS)
    fy = reference_features(state, "vgg16", ((y + 1) / 2 - mean) / std, IMAGE2STYLEGAN_RELUS)
    expected = sum((a - b).pow(2).mean(dim=(1, 2, 3)) for a, b in zip(fx, fy, strict=True))
    torch.testing.assert_close(loss(x, y), expected, rtol=1e-4, atol=1e-7)
    assert torch.equal(loss(x, x), torch.zeros(2))


def test_mse_per_image() -> None:
    x, y = images(16), images(17)
    expected = torch.tensor([((x[i] - y[i]) ** 2).mean().item() for i in range(2)])
    torch.testing.assert_close(mse(x, y), expected)
    assert math.isclose(float(mse(x, x + 0.5).mean()), 0.25, rel_tol=1e-6)


def assert_parity_with(lpips: types.ModuleType, *, seed: int) -> None:
    """Our LPIPS equals `lpips.LPIPS` given the same random backbone weights, for both backbones."""
    for net in ("vgg", "alex"):
        ours = random_lpips(net, seed=seed)
        theirs = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        own = ours.backbone.state_dict()
        # lpips keys are "slice<k>.<torchvision index>.weight": the index maps straight onto ours.
        theirs.net.load_state_dict(
            {key: own[f"features.{key.split('.', 1)[1]}"] for key in theirs.net.state_dict()}
        )
        x, y = images(seed + 1), images(seed + 2)
        with torch.no_grad():
            expected = theirs(x, y).flatten()
        assert float(expected.min()) > 0
        torch.testing.assert_close(ours(x, y), expected, rtol=1e-5, atol=1e-7)


def test_parity_with_the_lpips_package() -> None:
    """Same random backbone weights in lpips.LPIPS and ours: same distances (skips without torchvision)."""
    try:
        import lpips
    except Exception as exc:  # lpips imports torchvision, which cannot be imported on the CPU build machine
        pytest.skip(f"lpips cannot be imported here ({type(exc).__name__})")
    assert_parity_with(lpips, seed=21)


def stub_torchvision() -> types.ModuleType:
    """A stand-in `torchvision` whose models are our extractors' `features` (random weights only)."""

    def model(arch: str) -> object:
        def build(pretrained: bool = False) -> types.SimpleNamespace:
            assert not pretrained, "the stub has no ImageNet weights"
            return types.SimpleNamespace(features=FeatureExtractor(arch, taps=(0,)).features)

        return build

    package = types.ModuleType("torchvision")
    package.models = types.ModuleType("torchvision.models")
    package.models.vgg16 = model("vgg16")
    package.models.alexnet = model("alexnet")
    return package


def test_parity_with_lpips_code_on_a_stub_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lpips package's own slicing, scaling, normalisation and heads, with torchvision stubbed out.

    Runs everywhere (unlike the test above); the stub only supplies the layer stack, whose
    torchvision fidelity the strict-loading and reference tests check.
    """
    if "lpips" in sys.modules:
        pytest.skip("lpips already imported with the real torchvision")
    stub = stub_torchvision()
    monkeypatch.setitem(sys.modules, "torchvision", stub)
    monkeypatch.setitem(sys.modules, "torchvision.models", stub.models)
    try:
        import lpips

        assert_parity_with(lpips, seed=31)
    finally:
        for name in [name for name in sys.modules if name == "lpips" or name.startswith("lpips.")]:
            del sys.modules[name]
