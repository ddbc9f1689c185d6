"""The weight registry and cache: which files the pipeline needs, where they live, how they get there.

Every stage asks for its file with `weight_path(name)`: it returns the cached path or raises a
`ReenactError` that says which file is missing, where to get it and how to put it in place
(`reenact weights import FILE --as NAME` or `reenact weights fetch NAME`). Nothing ever falls back
to random weights.

Cache layout: `<cache>/weights/<name>/<filename>` where `<cache>` is `$REENACT_HOME`, else
`$XDG_CACHE_HOME/reenact`, else `~/.cache/reenact`. Next to each file a `<filename>.sha256`
sidecar records the checksum it had when it came in, so `verify()` catches later corruption even for
files whose checksum nobody published.

Checksums: only published or independently recorded ones are listed. Where none is public the
entry says `sha256=None` and its `note` says so; torchvision and face-alignment embed a sha256
*prefix* in their filenames, which is checked (`sha256_prefix`).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reenact.errors import ReenactError

if TYPE_CHECKING:
    import numpy as np

WeightKind = Literal["generator", "backbone", "lpips", "landmarks", "direction"]
VerifyStatus = Literal["ok", "corrupt", "unchecked"]

W_DIM = 512
"""Width of the StyleGAN2 FFHQ W space every direction file lives in."""
MAX_DIRECTION_DIMS = 3
"""Directions are (512,), (1, 512) or per-layer (1, L, 512)."""
NUM_FAN_LANDMARKS = 68
FAN_LAST_HOURGLASS = 3
"""face-alignment's 2DFAN4 has four hourglass stacks, `l0` .. `l3`; the last head gives the landmarks."""
HASH_CHUNK_BYTES = 1 << 20
DOWNLOAD_CHUNK_BYTES = 1 << 16
DOWNLOAD_TIMEOUT_S = 30.0
HTTP_PARTIAL_CONTENT = 206
HTTP_RANGE_NOT_SATISFIABLE = 416
PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".sha256"

NVIDIA_NC_LICENSE = "NVIDIA Source Code License-NC (non-commercial research use)"
STYLEGAN2_CITATION = (
    "Karras et al., Analyzing and Improving the Image Quality of StyleGAN, CVPR 2020; "
    "Karras et al., Training Generative Adversarial Networks with Limited Data, NeurIPS 2020"
)
INTERFACEGAN_CITATION = (
    "Shen et al., InterFaceGAN: Interpreting the Disentangled Face Representation Learned by GANs, TPAMI 2020"
)
E4E_CITATION = "Tov et al., Designing an Encoder for StyleGAN Image Manipulation (e4e), SIGGRAPH 2021"
PTI_CITATION = "Roich et al., Pivotal Tuning for Latent-based Editing of Real Images, TOG 2022"
GANSPACE_CITATION = "Härkönen et al., GANSpace: Discovering Interpretable GAN Controls, NeurIPS 2020"
FAN_CITATION = (
    "Bulat and Tzimiropoulos, How far are we from solving the 2D & 3D Face Alignment problem?, ICCV 2017"
)

INTERFACEGAN_COMMIT = "303a28a3184646075e9e3bec1fc64b441a4be7f0"
PTI_COMMIT = "da94d59d15d94822e95840ab5a0aa9ba1a19c851"
GANINVERTER_COMMIT = "e3d5d4d2"
"""Only the abbreviated commit is recorded for GANInverter; GitHub resolves it in `raw` URLs."""
NVIDIA_ADA_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
NGC_STYLEGAN2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
FAN_SITE = "https://www.adrianbulat.com/downloads/python-fan"


@dataclass(frozen=True)
class WeightEntry:
    """One known weight file: where it comes from and how to recognise a good copy."""

    name: str
    """Registry name used on the command line and by `weight_path`."""
    filename: str
    """The file's upstream name; also used to recognise a file on `import`."""
    kind: WeightKind
    file_format: str
    """Key of the format check run on import/fetch (see `FORMAT_CHECKS`)."""
    urls: tuple[str, ...]
    """Direct download URLs, tried in order; empty when the file needs a manual download."""
    page: str
    """Human-readable page that documents the file."""
    sha256: str | None
    """Full sha256 where publicly known, else None (the note says why)."""
    sha256_prefix: str | None
    """Leading hex digits of the sha256 that the upstream filename embeds (torch hub convention)."""
    size: int | None
    """Exact size in bytes where known."""
    license: str
    citation: str
    note: str = ""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-checking one cached file."""

    name: str
    path: Path
    status: VerifyStatus
    detail: str


# ---------------------------------------------------------------------------------------------------
# Format checks: each raises ReenactError saying what is wrong with the file.


def _load_torch(path: Path) -> object:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file is refused, not executed
        raise ReenactError(
            f"{path} is not a plain tensor file torch can load safely ({type(exc).__name__})"
        ) from None


def _check_generator(expected: str) -> Callable[[Path], None]:
    """Generator files must be of the expected format AND load through the safe loader in full:
    sniffing the header alone would let a hostile pickle into the cache."""

    def check(path: Path) -> None:
        from reenact.gan.checkpoints import detect_format, load_generator  # lazy: torch-heavy

        found = detect_format(path)  # raises ReenactError for files it cannot read
        if found != expected:
            raise ReenactError(f"{path} is a {found} file, expected {expected}")
        load_generator(path)  # restricted unpickler / weights_only: refuses anything off the allow-list

    return check


def _check_state_dict_shapes(path: Path, expected: Mapping[str, tuple[int, ...]], *, what: str) -> dict:
    state = _load_torch(path)
    if not isinstance(state, Mapping):
        raise ReenactError(f"{path} is not a {what} state dict (got {type(state).__name__})")
    for key, shape in expected.items():
        if key not in state:
            raise ReenactError(f"{path} is not a {what} state dict: key {key!r} missing")
        if tuple(state[key].shape) != shape:
            raise ReenactError(
                f"{path} is not a {what} state dict: {key} has shape {tuple(state[key].shape)}, not {shape}"
            )
    return dict(state)


def _check_torchvision(arch: Literal["vgg16", "alexnet"]) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from reenact.losses import TORCHVISION_NUM_PARAMS, torchvision_feature_shapes

        state = _check_state_dict_shapes(path, torchvision_feature_shapes(arch), what=f"torchvision {arch}")
        has_classifier = any(key.startswith("classifier.") for key in state)
        num_params = sum(int(value.numel()) for value in state.values())
        if has_classifier and num_params != TORCHVISION_NUM_PARAMS[arch]:
            raise ReenactError(
                f"{path} has {num_params} parameters, torchvision's {arch} has {TORCHVISION_NUM_PARAMS[arch]}"
            )

    return check


def _check_lpips_heads(arch: Literal["vgg16", "alexnet"]) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from reenact.losses import LPIPS_CHANNELS, load_lpips_heads

        load_lpips_heads(path, LPIPS_CHANNELS[arch])

    return check


def _check_fan_state_dict(path: Path) -> None:
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        f"l{FAN_LAST_HOURGLASS}.weight": (NUM_FAN_LANDMARKS, 256, 1, 1),
    }
    _check_state_dict_shapes(path, expected, what="face-alignment 2DFAN4")


def _check_fan_torchscript(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise ReenactError(f"{path} is not a zip archive (face-alignment's TorchScript FAN is one)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(name.endswith("/data.pkl") for name in names) or not any("/code/" in name for name in names):
        raise ReenactError(f"{path} is a zip archive but not a TorchScript module (no data.pkl and code/)")


def _check_s3fd(path: Path) -> None:
    expected = {"conv1_1.weight": (64, 3, 3, 3), "conv7_2_mbox_loc.weight": (4, 256, 3, 3)}
    _check_state_dict_shapes(path, expected, what="face-alignment S3FD")


def _check_direction_shape(path: Path, shape: tuple[int, ...], values_finite: bool) -> None:
    if not shape or shape[-1] != W_DIM or len(shape) > MAX_DIRECTION_DIMS or any(dim < 1 for dim in shape):
        raise ReenactError(
            f"{path} is not a W-space direction: shape {shape}, expected (1, {W_DIM}) or (1, L, {W_DIM})"
        )
    if not values_finite:
        raise ReenactError(f"{path} holds non-finite values")


def load_float_npy(path: Path) -> np.ndarray:
    """A floating-point `.npy` array (no pickles), or `ReenactError` naming the file."""
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ReenactError(f"{path} is not a NumPy .npy array ({exc})") from None
    if not np.issubdtype(array.dtype, np.floating):
        raise ReenactError(f"{path} holds {array.dtype}, expected a floating-point direction")
    return array


def _check_direction_npy(path: Path) -> None:
    import numpy as np

    array = load_float_npy(path)
    _check_direction_shape(path, tuple(array.shape), bool(np.isfinite(array).all()))


def _check_direction_pt(path: Path) -> None:
    import torch

    tensor = _load_torch(path)
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise ReenactError(f"{path} is not a floating-point tensor file")
    _check_direction_shape(path, tuple(tensor.shape), bool(torch.isfinite(tensor).all()))


def _check_ganspace(path: Path) -> None:
    state = _load_torch(path)
    if not isinstance(state, Mapping) or set(state) != {"mean", "comp", "std"}:
        raise ReenactError(f"{path} is not a GANSpace PCA file (a dict of mean, comp, std)")
    num_components = state["comp"].shape[0]
    expected = {"mean": (1, W_DIM), "comp": (num_components, 1, W_DIM), "std": (num_components,)}
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ReenactError(
                f"{path}: GANSpace {key} has shape {tuple(state[key].shape)}, expected {shape}"
            )


FORMAT_CHECKS: dict[str, Callable[[Path], None]] = {
    "stylegan2-pkl": _check_generator("stylegan2-ada-pkl"),
    "rosinality-pt": _check_generator("rosinality-pt"),
    "torchvision-vgg16": _check_torchvision("vgg16"),
    "torchvision-alexnet": _check_torchvision("alexnet"),
    "lpips-heads-vgg": _check_lpips_heads("vgg16"),
    "lpips-heads-alex": _check_lpips_heads("alexnet"),
    "fan-state-dict": _check_fan_state_dict,
    "fan-torchscript": _check_fan_torchscript,
    "s3fd-state-dict": _check_s3fd,
    "direction-npy": _check_direction_npy,
    "direction-pt": _check_direction_pt,
    "ganspace-pca": _check_ganspace,
}


def check_format(entry: WeightEntry, path: Path) -> None:
    """Raise `ReenactError` unless `path` is a file of `entry`'s format."""
    FORMAT_CHECKS[entry.file_format](path)


# ---------------------------------------------------------------------------------------------------
# The registry.

NO_SHA_NVIDIA = "sha256 not published by NVIDIA; the sidecar records the hash on import"
NO_SHA_TORCHVISION = (
    "full sha256 not published; the filename embeds its first 8 hex digits, which are checked"
)
NO_SHA_FAN = "full sha256 not published; the filename embeds its first 10 hex digits, which are checked"

# InterFaceGAN++ boundaries for StyleGAN2 FFHQ W: (CelebA attribute, sha256 of the .npy at the commit).
INTERFACEGAN_PP_BOUNDARIES = (
    ("5_o_Clock_Shadow", "7c9b9c6e74bce49564a87f0463686c432db06ab6213078c560e402474974b49f"),
    ("Arched_Eyebrows", "8cd1bf47301e200570b9c5d427cfd491dfcd35579f55b681bb7518d8f9869238"),
    ("Attractive", "64db52fa2bc8ad853d09828b846beafa34010530417e56127919d6cf64b49ff9"),
    ("Bags_Under_Eyes", "2a21c46eefb3b04bf792c4445c55985fa0639ad52b013100d3ad3e938ff93585"),
    ("Bald", "76b53f684ab05a593d6d06350991baf925e56e885b382f71ff186b08ca071b44"),
    ("Bangs", "ee7ec9eff330b526341bc297309d9abd4eab08a12d3a8622fd2193de0ce56769"),
    ("Big_Lips", "d932a4f377929f891fc47ca02b92d227ce244e066ff27a7fc3c7a9ceffd81a86"),
    ("Big_Nose", "e3f26fab63116e4898520c09df555ee178646e75ec2fc87c5083144257c4f015"),
    ("Black_Hair", "be50ddefd9b9936a64aae3d4ec52543469c3863a10c57ddad5273bed12354607"),
    ("Blond_Hair", "6192265fe60ba4fecb4d8cfdb18ac659746f2c9062ee4a7f2fc3f74e80ff4681"),
    ("Brown_Hair", "6ee7520fbabf999505d0fc06302002de08a2ab5bb1ced93c6848ebd09e207494"),
    ("Bushy_Eyebrows", "1af12fc84b998303e17923d39e3e27de881da872be1677898a57c64081fc53dd"),
    ("Chubby", "f53fab18a91cc07a286c90fd6eac0eee53eb1527ea4c07884c0dd9f0383dff23"),
    ("Double_Chin", "60e6e6cf22eb4de67aaf657d8828e4542a2f1ba1f827f2757a522814210edb79"),
    ("Eyeglasses", "a4eea94997f6e23b45fd3151b2829da551fb42d1827cff8461be79cf9274de4b"),
    ("Goatee", "e2507daf80af3afd5e8d7da5dfb55bdb9ca5ac392010ced5c811e7a18f2089d3"),
    ("Gray_Hair", "16b4ef19019cd3012e64ba631d5d3d00df265a891c2c533c69187c7e6253f8f5"),
    ("Heavy_Makeup", "a74d5a0a68ffedee92528fa235d746d4d353524c77e537fd3aa0a61cfaade3db"),
    ("High_Cheekbones", "04079afe7eaf2d613c02ee00981baed223b19b4d8718f3736d4bc767635e33d8"),
    ("Male", "180e40636d196836e7c141331a693ddf8556caa058dae89dfd8341e779b84380"),
    ("Mouth_Slightly_Open", "ad3d92eba684c42ffa10010b8f73a8922eac7d7f7e3db6899b0f6d14d9af9c41"),
    ("Mustache", "f5ce0c25543db0c3926c009289e642da4a1cbdf40bc87042332ae313f5ddafa2"),
    ("Narrow_Eyes", "85648d0994e01a39a199296091c0ea788ac3270383098b1845843357e1c5e7b1"),
    ("No_Beard", "b378d23b2d7e01b3a74909293e75d1f927b90b0904ecf1dbd9edab82ab83acee"),
    ("Oval_Face", "d56548907c91bbef9b69c3cf3d7ce5e010eefb77f29f10c56bb33bfa4ab524b9"),
    ("Pale_Skin", "1034a9aa27aaf00e97eab8be220bc7861a4109abd070b418560a91a9e3f2248a"),
    ("Pointy_Nose", "ec2035156dede94a8bccb8283b2672be72709d9717b4aa93e5ede063d4073381"),
    ("Receding_Hairline", "9c8d17e8d8794b51cf1a6782e926e61af498f10d7051b6c8d81289c5bfeb7ff3"),
    ("Rosy_Cheeks", "dcf8d4985fa67299ed67233906a65de6d8ba5f7114c6d6370f77ee8477a2c7bd"),
    ("Sideburns", "4414b24b953a67a0798f2e9ebf417ae5c0793d5b8993970a69af2637a314614b"),
    ("Smiling", "46da261091bee338eb6ba765016327893170fb741eac2287d8b29261a6d61a98"),
    ("Straight_Hair", "addbda9223a7019cb7185b6e2f288e611185b368444aa6829361c9bfe377da6e"),
    ("Wavy_Hair", "2c2834a419139c6317eca7cb473e49835424acf7d82a0db339097ee5bfedf62a"),
    ("Wearing_Earrings", "c722ed004377625f6e42b876db9fd35c12f4bc2f25f680b39b61550967f6e1c3"),
    ("Wearing_Hat", "98f1b684c4a1d4047c3cc9fa824d521fe33e9f323dbed40929a495fd9db0b9c2"),
    ("Wearing_Lipstick", "b6d332e3cd7a6424df5354b23a6b322a7845c4e1673f5091ae5bdabf0e092088"),
    ("Wearing_Necklace", "3b87e23e3d20cd2a0456a4070124a7e0e31a97a5e4ab79193572f0c29b50ddb6"),
    ("Wearing_Necktie", "13cabff61c486e69864321eba2448e6d59c7874995782b5700eb08e24e1dc392"),
    ("Young", "5e41d8fba84f3753190f1f703b32c407e893e7edcea94877c7123481ce6eb446"),
)
INTERFACEGAN_NPY_BYTES = 2176
"""A (1, 512) float32 .npy: 128-byte header + 2048 bytes of data."""
DIRECTION_PT_BYTES = 2808
GANINVERTER_POSE_BYTES = 37624
GANSPACE_PCA_BYTES = 167562
LPIPS_VGG_BYTES = 7289
LPIPS_ALEX_BYTES = 6009


def _generators() -> list[WeightEntry]:
    ada_page = "https://github.com/NVlabs/stylegan2-ada-pytorch#using-networks-from-python"
    ngc_page = "https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/stylegan2"

    def nvidia(name: str, filename: str, url: str, page: str, note: str) -> WeightEntry:
        return WeightEntry(
            name=name,
            filename=filename,
            kind="generator",
            file_format="stylegan2-pkl",
            urls=(url,),
            page=page,
            sha256=None,
            sha256_prefix=None,
            size=None,
            license=NVIDIA_NC_LICENSE,
            citation=STYLEGAN2_CITATION,
            note=f"{note}; {NO_SHA_NVIDIA}",
        )

    return [
        nvidia(
            "stylegan2-ffhq-1024",
            "ffhq.pkl",
            f"{NVIDIA_ADA_CDN}/ffhq.pkl",
            ada_page,
            "stylegan2-ada-pytorch FFHQ 1024x1024 generator (network pickle)",
        ),
        nvidia(
            "stylegan2-ffhq-1024-ngc",
            "stylegan2-ffhq-1024x1024.pkl",
            f"{NGC_STYLEGAN2}/stylegan2-ffhq-1024x1024.pkl",
            ngc_page,
            "official StyleGAN2 config-f FFHQ 1024x1024 on NVIDIA NGC (stylegan2-ada/stylegan3 pickle)",
        ),
        nvidia(
            "stylegan2-ffhq-512-ngc",
            "stylegan2-ffhq-512x512.pkl",
            f"{NGC_STYLEGAN2}/stylegan2-ffhq-512x512.pkl",
            ngc_page,
            "official StyleGAN2 FFHQ 512x512 on NVIDIA NGC",
        ),
        nvidia(
            "stylegan2-ffhq-256-ngc",
            "stylegan2-ffhq-256x256.pkl",
            f"{NGC_STYLEGAN2}/stylegan2-ffhq-256x256.pkl",
            ngc_page,
            "official StyleGAN2 FFHQ 256x256 on NVIDIA NGC",
        ),
        nvidia(
            "stylegan2-ffhq-256-paper",
            "ffhq-res256-mirror-paper256-noaug.pkl",
            f"{NVIDIA_ADA_CDN}/transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",
            ada_page,
            "stylegan2-ada-pytorch transfer-learning source net, FFHQ 256x256 (paper256 config)",
        ),
        WeightEntry(
            name="stylegan2-ffhq-1024-rosinality",
            filename="stylegan2-ffhq-config-f.pt",
            kind="generator",
            file_format="rosinality-pt",
            urls=(),
            page="https://github.com/rosinality/stylegan2-pytorch#pretrained-checkpoints",
            sha256=None,
            sha256_prefix=None,
            size=None,
            license=NVIDIA_NC_LICENSE,
            citation=STYLEGAN2_CITATION,
            note=(
                "official config-f FFHQ weights converted to rosinality's format (Google Drive link in "
                "the README, or convert_weight.py on stylegan2-ffhq-config-f.pkl); no direct URL, "
                "no published sha256"
            ),
        ),
    ]


def _backbones() -> list[WeightEntry]:
    torchvision_page = "https://pytorch.org/vision/stable/models.html"
    common = {
        "kind": "backbone",
        "page": torchvision_page,
        "sha256": None,
        "size": None,
        "license": "BSD-3-Clause (torchvision); ImageNet-trained weights",
        "note": NO_SHA_TORCHVISION,
    }
    return [
        WeightEntry(
            name="vgg16",
            filename="vgg16-397923af.pth",
            file_format="torchvision-vgg16",
            urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
            sha256_prefix="397923af",
            citation=(
                "Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, "
                "ICLR 2015"
            ),
            **common,
        ),
        WeightEntry(
            name="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            file_format="torchvision-alexnet",
            urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            sha256_prefix="7be5be79",
            citation=(
                "Krizhevsky, One weird trick for parallelizing convolutional neural networks, arXiv 1404.5997"
            ),
            **common,
        ),
    ]


def _lpips_heads() -> list[WeightEntry]:
    """LPIPS v0.1 linear heads: read from the installed `lpips` package, else from the cache."""
    raw = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1"
    common = {
        "kind": "lpips",
        "page": "https://github.com/richzhang/PerceptualSimilarity",
        "sha256_prefix": None,
        "license": "BSD-2-Clause (lpips)",
        "citation": (
            "Zhang et al., The Unreasonable Effectiveness of Deep Features as a Perceptual Metric, CVPR 2018"
        ),
        "note": "sha256 and size as listed in the RECORD of the lpips 0.1.4 wheel on PyPI",
    }
    return [
        WeightEntry(
            name="lpips-vgg",
            filename="vgg.pth",
            file_format="lpips-heads-vgg",
            urls=(f"{raw}/vgg.pth",),
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            size=LPIPS_VGG_BYTES,
            **common,
        ),
        WeightEntry(
            name="lpips-alex",
            filename="alex.pth",
            file_format="lpips-heads-alex",
            urls=(f"{raw}/alex.pth",),
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            size=LPIPS_ALEX_BYTES,
            **common,
        ),
    ]


def _landmarks() -> list[WeightEntry]:
    page = "https://github.com/1adrianb/face-alignment"
    common = {
        "kind": "landmarks",
        "page": page,
        "sha256": None,
        "size": None,
        "license": "BSD-3-Clause (face-alignment)",
        "note": NO_SHA_FAN,
    }
    return [
        WeightEntry(
            name="fan-2d",
            filename="2DFAN4-11f355bf06.pth.tar",
            file_format="fan-state-dict",
            urls=(f"{FAN_SITE}/2DFAN4-11f355bf06.pth.tar",),
            sha256_prefix="11f355bf06",
            citation=FAN_CITATION,
            **common,
        ),
        WeightEntry(
            name="fan-2d-torchscript",
            filename="2DFAN4-cd938726ad.zip",
            file_format="fan-torchscript",
            urls=(f"{FAN_SITE}/2DFAN4-cd938726ad.zip",),
            sha256_prefix="cd938726ad",
            citation=FAN_CITATION,
            **{**common, "note": f"TorchScript FAN of face-alignment 1.3-1.4; {NO_SHA_FAN}"},
        ),
        WeightEntry(
            name="s3fd",
            filename="s3fd-619a316812.pth",
            file_format="s3fd-state-dict",
            urls=(f"{FAN_SITE}/s3fd-619a316812.pth",),
            sha256_prefix="619a316812",
            citation="Zhang et al., S3FD: Single Shot Scale-invariant Face Detector, ICCV 2017",
            **common,
        ),
    ]


def _directions() -> list[WeightEntry]:
    interfacegan_raw = f"https://raw.githubusercontent.com/genforce/interfacegan/{INTERFACEGAN_COMMIT}/boundaries/stylegan2_ffhq_w"
    pti_raw = f"https://raw.githubusercontent.com/danielroich/PTI/{PTI_COMMIT}/editings"
    ganinverter_raw = f"https://raw.githubusercontent.com/caopulan/GANInverter/{GANINVERTER_COMMIT}/editing/interfacegan_directions"
    entries = [
        WeightEntry(
            name=f"interfacegan-{attribute.lower().replace('_', '-')}",
            filename=f"boundary_{attribute}.npy",
            kind="direction",
            file_format="direction-npy",
            urls=(f"{interfacegan_raw}/boundary_{attribute}.npy",),
            page="https://github.com/genforce/interfacegan",
            sha256=sha256,
            sha256_prefix=None,
            size=INTERFACEGAN_NPY_BYTES,
            license="MIT",
            citation=INTERFACEGAN_CITATION,
            note=f"InterFaceGAN++ boundary '{attribute}' for StyleGAN2 FFHQ W, shape (1, 512)",
        )
        for attribute, sha256 in INTERFACEGAN_PP_BOUNDARIES
    ]

    def e4e(name: str, filename: str, sha256: str, urls: tuple[str, ...], note: str) -> WeightEntry:
        return WeightEntry(
            name=name,
            filename=filename,
            kind="direction",
            file_format="direction-pt",
            urls=urls,
            page="https://github.com/danielroich/PTI",
            sha256=sha256,
            sha256_prefix=None,
            size=DIRECTION_PT_BYTES,
            license="MIT",
            citation=f"{INTERFACEGAN_CITATION}; {E4E_CITATION}",
            note=note,
        )

    entries += [
        e4e(
            "e4e-age",
            "age.pt",
            "50074516b1629707d89b5e43d6b8abd1792212fa3b961a87a11323d6a5222ae0",
            (f"{pti_raw}/interfacegan_directions/age.pt", f"{ganinverter_raw}/age.pt"),
            "InterFaceGAN age direction from e4e (1, 512), as shipped by PTI and GANInverter",
        ),
        e4e(
            "e4e-smile",
            "smile.pt",
            "817a7e732b59dee9eba862bec8bd7e8373568443bc9f9731a21cf9b0356f0653",
            (f"{pti_raw}/interfacegan_directions/smile.pt", f"{ganinverter_raw}/smile.pt"),
            "InterFaceGAN smile direction from e4e (1, 512), as shipped by PTI and GANInverter",
        ),
        e4e(
            "e4e-rotation",
            "rotation.pt",
            "9ef9787ac6b7b37940e47fef22e78cbbe5aeae2e566c0b391bf279f3264b1d1c",
            (f"{pti_raw}/interfacegan_directions/rotation.pt",),
            "InterFaceGAN head-rotation direction (1, 512), as shipped by PTI",
        ),
        WeightEntry(
            name="ganinverter-pose",
            filename="pose.pt",
            kind="direction",
            file_format="direction-pt",
            urls=(f"{ganinverter_raw}/pose.pt",),
            page="https://github.com/caopulan/GANInverter",
            sha256="736e0eacc8488fa0b020a2e7bd256b957284c364191dfea693705e5d06d43e7d",
            sha256_prefix=None,
            size=GANINVERTER_POSE_BYTES,
            license="MIT",
            citation=INTERFACEGAN_CITATION,
            note="InterFaceGAN pose direction per W+ layer (1, 18, 512), as shipped by GANInverter",
        ),
        WeightEntry(
            name="ganspace-ffhq-pca",
            filename="ffhq_pca.pt",
            kind="direction",
            file_format="ganspace-pca",
            urls=(f"{pti_raw}/ganspace_pca/ffhq_pca.pt",),
            page="https://github.com/danielroich/PTI",
            sha256="4d7f9df1c96180d9026b9cb8d04753579fbf385f321a9d0e263641601c5e5d36",
            sha256_prefix=None,
            size=GANSPACE_PCA_BYTES,
            license="MIT",
            citation=f"{GANSPACE_CITATION}; {PTI_CITATION}",
            note="GANSpace PCA of the FFHQ W space: mean (1, 512), comp (80, 1, 512), std (80,)",
        ),
    ]
    return entries


def _build_registry(entries: Iterable[WeightEntry]) -> dict[str, WeightEntry]:
    registry: dict[str, WeightEntry] = {}
    for entry in entries:
        if entry.name in registry:
            raise ValueError(f"duplicate weight name {entry.name}")
        if entry.file_format not in FORMAT_CHECKS:
            raise ValueError(f"{entry.name}: unknown format check {entry.file_format}")
        registry[entry.name] = entry
    return registry


_REGISTRY: dict[str, WeightEntry] = _build_registry(
    _generators() + _backbones() + _lpips_heads() + _landmarks() + _directions()
)


def registry() -> dict[str, WeightEntry]:
    """All known weight files by name (a copy: the registry itself is fixed)."""
    return dict(_REGISTRY)


def get_entry(name: str) -> WeightEntry:
    """The entry called `name`; `ReenactError` with the closest names otherwise."""
    entries = registry()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ReenactError(f"unknown weight file {name!r}{hint}; `reenact weights list` shows all")


# ---------------------------------------------------------------------------------------------------
# The cache.


def cache_dir() -> Path:
    """`$REENACT_HOME`, else `$XDG_CACHE_HOME/reenact`, else `~/.cache/reenact` (read on every call)."""
    home = os.environ.get("REENACT_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "reenact"
    return Path.home() / ".cache" / "reenact"


def weights_dir() -> Path:
    return cache_dir() / "weights"


def cached_file(name: str) -> Path:
    """Where the file for `name` lives in the cache (whether or not it is there)."""
    entry = get_entry(name)
    return weights_dir() / entry.name / entry.filename


def is_cached(name: str) -> bool:
    return cached_file(name).is_file()


def _how_to_get(entry: WeightEntry) -> str:
    if entry.urls:
        return (
            f"download {entry.urls[0]} and run `reenact weights import FILE --as {entry.name}`, "
            f"or `reenact weights fetch {entry.name}`"
        )
    return f"get it from {entry.page} and run `reenact weights import FILE --as {entry.name}`"


def weight_path(name: str) -> Path:
    """The cached file for `name`; `ReenactError` saying how to get it when it is missing.

    Cheap: checks existence and, where known, the size; `verify()` does the full checksum.
    """
    entry = get_entry(name)
    path = cached_file(name)
    if not path.is_file():
        raise ReenactError(f"missing weight file {entry.filename} ({entry.name}): {_how_to_get(entry)}")
    if entry.size is not None and path.stat().st_size != entry.size:
        raise ReenactError(
            f"weight file {path} ({entry.name}) has {path.stat().st_size} bytes, expected {entry.size}: "
            f"run `reenact weights fetch {entry.name}` or import a good copy"
        )
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _record_checksum(path: Path, digest: str) -> None:
    sidecar = _sidecar(path)
    tmp = sidecar.with_name(sidecar.name + f".tmp-{os.getpid()}")
    tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(tmp, sidecar)


def _recorded_checksum(path: Path) -> str | None:
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        return None
    fields = sidecar.read_text().split()
    return fields[0] if fields else None


def checksum_problem(entry: WeightEntry, digest: str, size: int) -> str | None:
    """Why a file with this sha256 and size cannot be `entry`, or None when it matches what is known."""
    if entry.sha256 is not None and digest != entry.sha256:
        return f"sha256 {digest} differs from the published {entry.sha256}"
    if entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix):
        return f"sha256 {digest[:16]}… does not start with {entry.sha256_prefix} (from its upstream filename)"
    if entry.size is not None and size != entry.size:
        return f"size {size} bytes differs from the known {entry.size}"
    return None


def _identify(path: Path, digest: str) -> WeightEntry:
    entries = list(registry().values())
    by_checksum = [entry for entry in entries if entry.sha256 == digest]
    if len(by_checksum) == 1:
        return by_checksum[0]
    by_name = [entry for entry in entries if entry.filename == path.name]
    if len(by_name) == 1:
        return by_name[0]
    candidates = by_checksum or by_name
    listed = f" (it could be {', '.join(entry.name for entry in candidates)})" if candidates else ""
    raise ReenactError(
        f"cannot tell which weight file {path} is{listed}: "
        f"run `reenact weights import {path} --as NAME` (names: `reenact weights list`)"
    )


def import_file(path: Path | str, *, name: str | None = None) -> Path:
    """Copy a weight file the user downloaded into the cache, after checking it really is that file.

    The entry is `name`, else the one whose sha256 or upstream filename matches. A file whose
    checksum, size or format does not match is refused; the copy is atomic.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ReenactError(f"file not found: {source}")
    digest = sha256_file(source)
    entry = get_entry(name) if name is not None else _identify(source, digest)
    problem = checksum_problem(entry, digest, source.stat().st_size)
    if problem is not None:
        raise ReenactError(f"refusing to import {source} as {entry.name}: {problem}")
    try:
        check_format(entry, source)
    except ReenactError as exc:
        raise ReenactError(f"refusing to import {source} as {entry.name}: {exc}") from None
    dest = cached_file(entry.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _record_checksum(dest, digest)
    return dest


# ---------------------------------------------------------------------------------------------------
# Download.


class _DownloadError(Exception):
    """A network problem with one URL (the caller tries the next, then reports them all)."""


def _download(
    url: str, part: Path, *, label: str, expected_size: int | None, progress: bool, timeout_s: float
) -> None:
    """Download `url` into `part`, resuming from what `part` already holds when the server allows it."""
    from tqdm import tqdm

    from reenact import __version__

    start = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and start > expected_size:
        part.unlink()
        start = 0
    headers = {"User-Agent": f"reenact/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == HTTP_RANGE_NOT_SATISFIABLE and start:
            return  # the part file already holds the whole file; the checksum decides
        raise _DownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _DownloadError(str(reason)) from None
    with response:
        content_range = response.headers.get("Content-Range", "")
        resumed = (
            start > 0
            and response.status == HTTP_PARTIAL_CONTENT
            and content_range.startswith(f"bytes {start}-")
        )
        if not resumed:
            start = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else expected_size
        try:
            with (
                part.open("ab" if resumed else "wb") as out,
                tqdm(
                    total=total,
                    initial=start,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=label,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as exc:
            raise _DownloadError(
                f"connection broke off ({exc}); the partial file is kept for resuming"
            ) from None


def fetch(
    name: str, *, progress: bool = True, force: bool = False, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download the file for `name` into the cache (resuming a `.part` file), check it, move it in place.

    Returns the cached path. A file already cached and matching what is known is kept unless `force`.
    """
    entry = get_entry(name)
    dest = cached_file(name)
    if dest.is_file() and not force:
        problem = checksum_problem(entry, sha256_file(dest), dest.stat().st_size)
        if problem is None:
            return dest
    if not entry.urls:
        raise ReenactError(
            f"{entry.filename} ({entry.name}) has no direct download URL: get it from {entry.page} "
            f"and run `reenact weights import FILE --as {entry.name}`"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    failures = []
    for url in entry.urls:
        try:
            _download(
                url,
                part,
                label=entry.filename,
                expected_size=entry.size,
                progress=progress,
                timeout_s=timeout_s,
            )
            break
        except _DownloadError as exc:
            failures.append(f"{url} ({exc})")
    else:
        raise ReenactError(
            f"cannot download {entry.filename} ({entry.name}) from {'; '.join(failures)}: "
            f"get the file another way and run `reenact weights import FILE --as {entry.name}`"
        )
    digest = sha256_file(part)
    problem = checksum_problem(entry, digest, part.stat().st_size)
    if problem is None:
        try:
            check_format(entry, part)
        except ReenactError as exc:
            problem = str(exc)
    if problem is not None:
        part.unlink()
        raise ReenactError(
            f"downloaded {entry.filename} ({entry.name}) is not the expected file: {problem}; "
            f"removed it, run `reenact weights fetch {entry.name}` again"
        )
    os.replace(part, dest)
    _record_checksum(dest, digest)
    return dest


# ---------------------------------------------------------------------------------------------------
# Verification.


def verify_entry(name: str) -> VerifyResult | None:
    """Re-check the cached file for `name` (None when it is not cached)."""
    entry = get_entry(name)
    path = cached_file(name)
    if not path.is_file():
        return None
    digest = sha256_file(path)
    problem = checksum_problem(entry, digest, path.stat().st_size)
    if problem is not None:
        return VerifyResult(entry.name, path, "corrupt", problem)
    recorded = _recorded_checksum(path)
    if recorded is not None and recorded != digest:
        return VerifyResult(
            entry.name, path, "corrupt", f"sha256 {digest} differs from {recorded} recorded on import"
        )
    if entry.sha256 is not None:
        return VerifyResult(entry.name, path, "ok", "sha256 matches the published value")
    if recorded is not None:
        return VerifyResult(entry.name, path, "ok", "sha256 matches the one recorded on import")
    try:
        check_format(entry, path)
    except ReenactError as exc:
        return VerifyResult(entry.name, path, "corrupt", str(exc))
    return VerifyResult(entry.name, path, "unchecked", "no reference sha256; the format check passed")


def verify() -> list[VerifyResult]:
    """Recompute the checksums of every cached file; corrupt ones come back with status "corrupt"."""
    results = (verify_entry(name) for name in registry())
    return [result for result in results if result is not None]
