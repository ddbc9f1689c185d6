"""Format checks: is this file really a generator, a torchvision backbone, LPIPS heads, a FAN, a direction?

A file is checked before it enters the cache (import, fetch) and again by `verify` when no reference
checksum exists. Every check raises `ReenactError` saying what is wrong with the file; nothing in a file
is ever executed (torch files load with `weights_only=True`, pickles through the restricted unpickler).

This is also the one home of the direction-file readers (`load_float_npy`, `direction_vector`,
`ganspace_components`): `reenact.directions` loads directions through them, so a file the cache
accepts is a file the loader accepts, with the same error texts.

torch, NumPy and the networks are imported inside the checks and readers, not here: the registry
imports this module, and `reenact weights list` answers without torch.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reenact.errors import ReenactError
from reenact.files import check_unpacked_size

if TYPE_CHECKING:
    import numpy as np
    import torch

    from reenact.backbones import BackboneArch, LpipsNet
    from reenact.weights.registry import WeightEntry

PER_LAYER_NDIM = 3
"""A per-layer direction is (1, L, 512); single ones are (512,) or (1, 512)."""
VECTOR_NDIM = 2
"""Directions come out of the readers as [1 or L, 512]."""
GANSPACE_KEYS = frozenset({"mean", "comp", "std"})
NUM_FAN_LANDMARKS = 68
FAN_LAST_HOURGLASS = 3
"""face-alignment's 2DFAN4 has four hourglass stacks, `l0` .. `l3`; the last head gives the landmarks."""


# ---------------------------------------------------------------------------------------------------
# Readers shared with the loaders.


DIRECTION_MAX_BYTES = 16 << 20
"""Largest unpacked direction file (the published ones are a few hundred KB at most)."""
STATE_DICT_MAX_BYTES = 2 << 30
"""Largest unpacked network file (VGG16 is about 530 MB)."""


def load_torch_file(path: Path, *, limit: int, what: str) -> object:
    """`torch.load(weights_only=True)` on the CPU, or `ReenactError` naming the file (never executes it).

    A file that unpacks to more than `limit` bytes is refused before it is read (`what` names the kind).
    """
    import torch

    check_unpacked_size(path, limit=limit, what=what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file is refused, not executed
        raise ReenactError(
            f"{path} is not a plain tensor file torch can load safely ({type(exc).__name__})"
        ) from None


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


def direction_vector(path: Path, loaded: object) -> torch.Tensor:
    """A loaded direction as [1, 512] or [L, 512] float32 on the CPU; `ReenactError` naming `path` otherwise.

    Accepts (512,), (1, 512), (L, 512) and (1, L, 512) floating-point, finite tensors.
    """
    import torch

    from reenact.gan.stylegan2 import FFHQ_W_DIM

    if not isinstance(loaded, torch.Tensor):
        raise ReenactError(
            f"{path} holds a {type(loaded).__name__}, expected a (1, {FFHQ_W_DIM}) direction tensor "
            "or a GANSpace dict of mean, comp, std"
        )
    shape = tuple(loaded.shape)
    array = loaded
    if array.ndim == PER_LAYER_NDIM and shape[0] == 1:
        array = array[0]
    elif array.ndim == 1:
        array = array[None]
    if array.ndim != VECTOR_NDIM or array.shape[-1] != FFHQ_W_DIM or array.shape[0] < 1:
        raise ReenactError(
            f"{path} is not a W-space direction: shape {shape}, "
            f"expected (1, {FFHQ_W_DIM}) or (1, L, {FFHQ_W_DIM})"
        )
    if not array.is_floating_point():
        raise ReenactError(f"{path} holds {array.dtype}, expected a floating-point direction")
    if not bool(torch.isfinite(array).all()):
        raise ReenactError(f"{path} holds non-finite values")
    return array.detach().to(dtype=torch.float32, device="cpu").contiguous()


def is_ganspace(loaded: object) -> bool:
    """Whether a loaded `.pt` is a GANSpace PCA dict (it has mean, comp and std)."""
    return isinstance(loaded, Mapping) and set(loaded) >= GANSPACE_KEYS


def ganspace_components(path: Path, loaded: object) -> tuple[torch.Tensor, torch.Tensor]:
    """A GANSpace PCA dict's components [K, 512] and their standard deviations [K], checked."""
    import torch

    from reenact.gan.stylegan2 import FFHQ_W_DIM

    if not (isinstance(loaded, Mapping) and set(loaded) >= GANSPACE_KEYS):
        raise ReenactError(f"{path} is not a GANSpace PCA file (a dict of mean, comp, std)")
    mean, comp, std = loaded["mean"], loaded["comp"], loaded["std"]
    if not (isinstance(comp, torch.Tensor) and isinstance(std, torch.Tensor)):
        raise ReenactError(f"{path}: GANSpace comp and std must be tensors")
    num_components = comp.shape[0] if comp.ndim else 0
    if tuple(comp.shape[1:]) not in ((1, FFHQ_W_DIM), (FFHQ_W_DIM,)) or tuple(std.shape) != (num_components,):
        raise ReenactError(
            f"{path}: GANSpace comp {tuple(comp.shape)} / std {tuple(std.shape)}, "
            f"expected (K, 1, {FFHQ_W_DIM}) / (K,)"
        )
    mean_shape = tuple(mean.shape) if isinstance(mean, torch.Tensor) else None
    if mean_shape not in ((1, FFHQ_W_DIM), (FFHQ_W_DIM,)):
        raise ReenactError(f"{path}: GANSpace mean has shape {mean_shape}, expected (1, {FFHQ_W_DIM})")
    return comp.reshape(num_components, FFHQ_W_DIM), std


# ---------------------------------------------------------------------------------------------------
# Checks by format.


def _check_generator(expected: str) -> Callable[[Path], None]:
    """Generator files must be of the expected format AND load through the safe loader in full:
    sniffing the header alone would let a hostile pickle into the cache."""

    def check(path: Path) -> None:
        from reenact.gan.checkpoints import detect_format, load_generator

        found = detect_format(path)  # raises ReenactError for files it cannot read
        if found != expected:
            raise ReenactError(f"{path} is a {found} file, expected {expected}")
        load_generator(path)  # restricted unpickler / weights_only: refuses anything off the allow-list

    return check


def _check_state_dict_shapes(path: Path, expected: Mapping[str, tuple[int, ...]], *, what: str) -> dict:
    state = load_torch_file(path, limit=STATE_DICT_MAX_BYTES, what=f"{what} state dict")
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


def _check_torchvision(arch: BackboneArch) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from reenact.backbones import TORCHVISION_NUM_PARAMS, torchvision_feature_shapes

        state = _check_state_dict_shapes(path, torchvision_feature_shapes(arch), what=f"torchvision {arch}")
        has_classifier = any(key.startswith("classifier.") for key in state)
        num_params = sum(int(value.numel()) for value in state.values())
        if has_classifier and num_params != TORCHVISION_NUM_PARAMS[arch]:
            raise ReenactError(
                f"{path} has {num_params} parameters, torchvision's {arch} has {TORCHVISION_NUM_PARAMS[arch]}"
            )

    return check


def _check_lpips_heads(net: LpipsNet) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        from reenact.backbones import LPIPS_ARCH, LPIPS_CHANNELS, load_lpips_heads

        load_lpips_heads(path, LPIPS_CHANNELS[LPIPS_ARCH[net]])

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


def _check_direction_npy(path: Path) -> None:
    import numpy as np
    import torch

    direction_vector(path, torch.from_numpy(np.array(load_float_npy(path))))


def _check_direction_pt(path: Path) -> None:
    direction_vector(path, load_torch_file(path, limit=DIRECTION_MAX_BYTES, what="direction file"))


def _check_ganspace(path: Path) -> None:
    ganspace_components(path, load_torch_file(path, limit=DIRECTION_MAX_BYTES, what="direction file"))


FORMAT_CHECKS: dict[str, Callable[[Path], None]] = {
    "stylegan2-pkl": _check_generator("stylegan2-ada-pkl"),
    "rosinality-pt": _check_generator("rosinality-pt"),
    "reenact-safetensors": _check_generator("reenact-safetensors"),
    "torchvision-vgg16": _check_torchvision("vgg16"),
    "torchvision-alexnet": _check_torchvision("alexnet"),
    "lpips-heads-vgg": _check_lpips_heads("vgg"),
    "lpips-heads-alex": _check_lpips_heads("alex"),
    "fan-state-dict": _check_fan_state_dict,
    "fan-torchscript": _check_fan_torchscript,
    "s3fd-state-dict": _check_s3fd,
    "direction-npy": _check_direction_npy,
    "direction-pt": _check_direction_pt,
    "ganspace-pca": _check_ganspace,
}
"""Format key (`WeightEntry.file_format`) -> its check."""


def check_format(entry: WeightEntry, path: Path) -> None:
    """Raise `ReenactError` unless `path` is a file of `entry`'s format."""
    FORMAT_CHECKS[entry.file_format](path)
