"""The registry of known weight files: where each comes from and how to recognise a good copy.

Checksums: only published or independently recorded ones are listed. Where none is public the entry
says `sha256=None` and its `note` says so; torchvision and face-alignment embed a sha256 *prefix* in
their filenames, which is checked (`sha256_prefix`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from reenact.errors import ReenactError
from reenact.weights.formats import FORMAT_CHECKS

if TYPE_CHECKING:
    from reenact.backbones import BackboneArch, LpipsNet

WeightKind = Literal["generator", "backbone", "lpips", "landmarks", "direction"]

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
    """Key of the format check run on import/fetch (`reenact.weights.formats.FORMAT_CHECKS`)."""
    urls: tuple[str, ...]
    """Direct download URLs, tried in order; empty when the file needs a manual download."""
    page: str
    """Human-readable page that documents the file."""
    sha256: str | None
    """Full sha256 where publicly known, else None (the note says why)."""
    sha256_prefix: str | None
    """Leading hex digits of the sha256 that the upstream filename embeds (torch hub convention)."""
    size: int | None
    """Exact size in bytes where a source states it (checked on import and fetch), else None."""
    license: str
    citation: str
    note: str = ""
    approx_size: int | None = None
    """Approximate size in bytes where no source states the exact one (shown with "~"; never checked)."""
    size_source: str = ""
    """Where the size (exact or approximate) comes from."""
    package_copy: tuple[str, str] | None = None
    """(package, path inside it) where an installed Python package ships this very file; the loaders use
    that copy before the cache's."""
    in_torch_hub: bool = False
    """The loader (face-alignment) reads the file by its upstream name from `<torch hub dir>/checkpoints`,
    not from the cache."""


BACKBONE_ENTRY_NAMES: dict[BackboneArch, str] = {"vgg16": "vgg16", "alexnet": "alexnet"}
"""Registry names of torchvision's ImageNet weights, by architecture."""
LPIPS_ENTRY_PREFIX = "lpips-"
"""LPIPS heads are registered as `lpips-<net>` (`lpips-vgg`, `lpips-alex`)."""

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
VGG16_BYTES = 553_433_881
"""torch hub's download logs of vgg16-397923af.pth ("553433881/553433881")."""
ALEXNET_BYTES = 244_408_911
"""The Content-Length of alexnet-owt-7be5be79.pth, as download records quote it."""
S3FD_BYTES = 89_843_225
"""The Git LFS pointer of a Hugging Face copy of s3fd-619a316812.pth whose sha256 starts with 619a316812."""
BYTES_PER_MB = 1_000_000
"""Hugging Face pages give sizes in decimal megabytes; approximate sizes taken from them are MB * this."""
STYLEGAN2_1024_PKL_APPROX_BYTES = 382 * BYTES_PER_MB
STYLEGAN2_512_PKL_APPROX_BYTES = 364 * BYTES_PER_MB
STYLEGAN2_256_PKL_APPROX_BYTES = 357 * BYTES_PER_MB
ROSINALITY_FFHQ_APPROX_BYTES = 381 * BYTES_PER_MB
FAN_APPROX_BYTES = 96 * BYTES_PER_MB
"""Approximate sizes (never checked): no source states the exact ones; each entry's `size_source` says
which published copy they come from."""
BYTES_PER_KIB = 1024
BYTES_PER_MIB = 1024 * 1024
LPIPS_PACKAGE = "lpips"
"""The pip package that ships the LPIPS v0.1 heads as `weights/v0.1/<net>.pth`."""
FACE_WORLD_NAME = "face-world"
"""Registry name of reenact's own face world: a 64 px StyleGAN2 trained here (docs/face-world.md)."""
FACE_WORLD_FILE = "weights/face_world/generator.safetensors"
"""Where the `reenact` package ships the face world's generator."""
FACE_WORLD_SHA256 = "692a3dfa158eabe5d41c3182357c47c2518abb4b3090f4c9359f9428848912d8"
FACE_WORLD_BYTES = 5_548_072
"""The shipped file's sha256 and size (tests/test_weights.py checks them against the file)."""
DIFFAUGMENT_CITATION = (
    "Zhao et al., Differentiable Augmentation for Data-Efficient GAN Training, NeurIPS 2020"
)
PINNED_FILE_SIZE = "the file at the pinned commit"
"""`size_source` of the direction files: their sizes are those of the files at the commits in their URLs."""


def format_size(size: int) -> str:
    """A byte count for people: KiB below one MiB, else MiB with one decimal."""
    if size < BYTES_PER_MIB:
        return f"{size / BYTES_PER_KIB:.1f} KiB"
    return f"{size / BYTES_PER_MIB:.1f} MiB"


def expected_size_text(entry: WeightEntry) -> str:
    """The entry's download size for people: exact ("527.8 MiB") or approximate ("~364 MiB")."""
    if entry.size is not None:
        return format_size(entry.size)
    if entry.approx_size is None:
        raise ValueError(f"{entry.name}: no size, exact or approximate")
    return f"~{entry.approx_size / BYTES_PER_MIB:.0f} MiB"


def backbone_entry_name(arch: BackboneArch) -> str:
    """Registry name of torchvision's ImageNet weights for `arch`."""
    return BACKBONE_ENTRY_NAMES[arch]


def lpips_heads_entry_name(net: LpipsNet) -> str:
    """Registry name of the LPIPS v0.1 linear heads for `net`."""
    return f"{LPIPS_ENTRY_PREFIX}{net}"


def _generators() -> list[WeightEntry]:
    ada_page = "https://github.com/NVlabs/stylegan2-ada-pytorch#using-networks-from-python"
    ngc_page = "https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/stylegan2"

    def nvidia(
        name: str, filename: str, url: str, page: str, note: str, approx_size: int, size_source: str
    ) -> WeightEntry:
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
            approx_size=approx_size,
            size_source=size_source,
        )

    hf_1024 = "Hugging Face copy DragGan/DragGan-Models stylegan2-ffhq1024x1024.pkl: 382 MB"
    no_exact = "no exact size published"

    return [
        nvidia(
            "stylegan2-ffhq-1024",
            "ffhq.pkl",
            f"{NVIDIA_ADA_CDN}/ffhq.pkl",
            ada_page,
            "stylegan2-ada-pytorch FFHQ 1024x1024 generator (network pickle)",
            STYLEGAN2_1024_PKL_APPROX_BYTES,
            f"approximate: stylegan2-ada-pytorch's 1024x1024 pickles are 382 MB on Hugging Face copies "
            f"(aaronb/StyleGAN2-pkl ada/metfaces.pkl; {hf_1024}); {no_exact}",
        ),
        nvidia(
            "stylegan2-ffhq-1024-ngc",
            "stylegan2-ffhq-1024x1024.pkl",
            f"{NGC_STYLEGAN2}/stylegan2-ffhq-1024x1024.pkl",
            ngc_page,
            "official StyleGAN2 config-f FFHQ 1024x1024 on NVIDIA NGC (stylegan2-ada/stylegan3 pickle)",
            STYLEGAN2_1024_PKL_APPROX_BYTES,
            f"approximate: {hf_1024}; {no_exact}",
        ),
        nvidia(
            "stylegan2-ffhq-512-ngc",
            "stylegan2-ffhq-512x512.pkl",
            f"{NGC_STYLEGAN2}/stylegan2-ffhq-512x512.pkl",
            ngc_page,
            "official StyleGAN2 FFHQ 512x512 on NVIDIA NGC",
            STYLEGAN2_512_PKL_APPROX_BYTES,
            "approximate: Hugging Face copy DragGan/DragGan-Models stylegan2-ffhq-512x512.pkl: 364 MB; "
            + no_exact,
        ),
        nvidia(
            "stylegan2-ffhq-256-ngc",
            "stylegan2-ffhq-256x256.pkl",
            f"{NGC_STYLEGAN2}/stylegan2-ffhq-256x256.pkl",
            ngc_page,
            "official StyleGAN2 FFHQ 256x256 on NVIDIA NGC",
            STYLEGAN2_256_PKL_APPROX_BYTES,
            "approximate: NVIDIA's StyleGAN2 256x256 pickles of the same config are 357 MB on Hugging Face "
            f"(DragGan/DragGan-Models stylegan2-lhq-256x256.pkl); {no_exact}",
        ),
        nvidia(
            "stylegan2-ffhq-256-paper",
            "ffhq-res256-mirror-paper256-noaug.pkl",
            f"{NVIDIA_ADA_CDN}/transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",
            ada_page,
            "stylegan2-ada-pytorch transfer-learning source net, FFHQ 256x256 (paper256 config)",
            STYLEGAN2_256_PKL_APPROX_BYTES,
            "approximate upper bound: 256x256 config-f pickles are 357 MB and the paper256 config has fewer "
            f"channels at high resolutions, so this file is smaller; {no_exact}",
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
            approx_size=ROSINALITY_FFHQ_APPROX_BYTES,
            size_source=(
                "approximate: Hugging Face copy ethanNeuralImage/inversion_testing "
                "pretrained_models/stylegan2-ffhq-config-f.pt (g, d and g_ema): 381 MB; copies holding "
                "only g_ema are 133 MB; no exact size published"
            ),
        ),
    ]


def _face_world() -> list[WeightEntry]:
    """reenact's own generator, shipped in the package: no download, a checksum fixed here."""
    return [
        WeightEntry(
            name=FACE_WORLD_NAME,
            filename="generator.safetensors",
            kind="generator",
            file_format="reenact-safetensors",
            urls=(),
            page="docs/face-world.md in reenact's repository (ships inside the package)",
            sha256=FACE_WORLD_SHA256,
            sha256_prefix=None,
            size=FACE_WORLD_BYTES,
            size_source="the file in the package",
            license=(
                "weights trained by reenact on the face clips and photos of its test data (MIT, Apache-2.0 "
                "and public-domain sources; docs/face-world.md lists them); not a face model for production"
            ),
            citation=f"{STYLEGAN2_CITATION}; {DIFFAUGMENT_CITATION}",
            note="64 px, trained on a 2-core CPU in 2 hours; its own preset: --preset face-world",
            package_copy=("reenact", FACE_WORLD_FILE),
        )
    ]


def _backbones() -> list[WeightEntry]:
    torchvision_page = "https://pytorch.org/vision/stable/models.html"
    common = {
        "kind": "backbone",
        "page": torchvision_page,
        "sha256": None,
        "license": "BSD-3-Clause (torchvision); ImageNet-trained weights",
        "note": NO_SHA_TORCHVISION,
    }
    return [
        WeightEntry(
            name=backbone_entry_name("vgg16"),
            filename="vgg16-397923af.pth",
            file_format="torchvision-vgg16",
            urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
            sha256_prefix="397923af",
            size=VGG16_BYTES,
            size_source="torch hub download logs: 553433881/553433881 bytes",
            citation=(
                "Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, "
                "ICLR 2015"
            ),
            **common,
        ),
        WeightEntry(
            name=backbone_entry_name("alexnet"),
            filename="alexnet-owt-7be5be79.pth",
            file_format="torchvision-alexnet",
            urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            sha256_prefix="7be5be79",
            size=ALEXNET_BYTES,
            size_source="HTTP Content-Length of the download URL, as quoted in public download records",
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
        "size_source": "the RECORD of the lpips 0.1.4 wheel on PyPI",
    }
    return [
        WeightEntry(
            name=lpips_heads_entry_name("vgg"),
            filename="vgg.pth",
            file_format="lpips-heads-vgg",
            urls=(f"{raw}/vgg.pth",),
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            size=LPIPS_VGG_BYTES,
            package_copy=(LPIPS_PACKAGE, "weights/v0.1/vgg.pth"),
            **common,
        ),
        WeightEntry(
            name=lpips_heads_entry_name("alex"),
            filename="alex.pth",
            file_format="lpips-heads-alex",
            urls=(f"{raw}/alex.pth",),
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            size=LPIPS_ALEX_BYTES,
            package_copy=(LPIPS_PACKAGE, "weights/v0.1/alex.pth"),
            **common,
        ),
    ]


def _landmarks() -> list[WeightEntry]:
    page = "https://github.com/1adrianb/face-alignment"
    common = {
        "kind": "landmarks",
        "page": page,
        "sha256": None,
        "license": "BSD-3-Clause (face-alignment)",
        "note": NO_SHA_FAN,
        "in_torch_hub": True,
    }
    fan_size = {
        "size": None,
        "approx_size": FAN_APPROX_BYTES,
        "size_source": (
            "approximate: a 2DFAN-4 state dict on Hugging Face (public-data/ibug-face-alignment "
            "fan/2dfan4.pth) is 95.6 MB; no exact size published"
        ),
    }
    return [
        WeightEntry(
            name="fan-2d",
            filename="2DFAN4-11f355bf06.pth.tar",
            file_format="fan-state-dict",
            urls=(f"{FAN_SITE}/2DFAN4-11f355bf06.pth.tar",),
            sha256_prefix="11f355bf06",
            citation=FAN_CITATION,
            **fan_size,
            **common,
        ),
        WeightEntry(
            name="fan-2d-torchscript",
            filename="2DFAN4-cd938726ad.zip",
            file_format="fan-torchscript",
            urls=(f"{FAN_SITE}/2DFAN4-cd938726ad.zip",),
            sha256_prefix="cd938726ad",
            citation=FAN_CITATION,
            **{**fan_size, "size_source": "approximate: the same network as fan-2d, saved as TorchScript"},
            **{**common, "note": f"TorchScript FAN of face-alignment 1.3-1.4; {NO_SHA_FAN}"},
        ),
        WeightEntry(
            name="s3fd",
            filename="s3fd-619a316812.pth",
            file_format="s3fd-state-dict",
            urls=(f"{FAN_SITE}/s3fd-619a316812.pth",),
            sha256_prefix="619a316812",
            citation="Zhang et al., S3FD: Single Shot Scale-invariant Face Detector, ICCV 2017",
            size=S3FD_BYTES,
            size_source=(
                "Git LFS pointer of the Hugging Face copy camenduru/Wav2Lip checkpoints/s3fd-619a316812.pth"
            ),
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
            size_source=PINNED_FILE_SIZE,
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
            size_source=PINNED_FILE_SIZE,
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
            size_source=PINNED_FILE_SIZE,
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
            size_source=PINNED_FILE_SIZE,
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
        if (entry.size is None) == (entry.approx_size is None) or not entry.size_source:
            raise ValueError(f"{entry.name}: give an exact or an approximate size, and its source")
        registry[entry.name] = entry
    return registry


_REGISTRY: dict[str, WeightEntry] = _build_registry(
    _generators() + _face_world() + _backbones() + _lpips_heads() + _landmarks() + _directions()
)


def all_entries() -> dict[str, WeightEntry]:
    """All known weight files by name (a copy: the registry itself is fixed)."""
    return dict(_REGISTRY)


def get_entry(name: str) -> WeightEntry:
    """The entry called `name`; `ReenactError` with the closest names otherwise."""
    entries = all_entries()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ReenactError(f"unknown weight file {name!r}{hint}; `reenact weights list` shows all")
