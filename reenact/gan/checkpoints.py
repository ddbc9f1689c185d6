"""Load StyleGAN2 generators from the files users have, by content, without ever running their code.

Formats (see `detect_format`):
- "stylegan2-ada-pkl": NVlabs stylegan2-ada-pytorch / stylegan3 network pickles (`{'G', 'D', 'G_ema', ...}`).
  Networks in them are `torch_utils.persistence` records whose class would be re-created by exec'ing
  embedded source code. A restricted unpickler replaces them with inert `PersistentRecord`s (state dict
  and `init_kwargs` captured, the source never executed) and refuses every global outside a small
  allow-list (tensor/storage rebuild functions, OrderedDict, EasyDict, numpy scalars).
- "rosinality-pt": rosinality/stylegan2-pytorch checkpoints (`{'g_ema': state_dict, ...}`), read with
  `torch.load(weights_only=True)` and mapped key by key onto the official layout.
- "reenact-safetensors": our own format, how tuned generators are saved: one safetensors file whose
  metadata holds the `GeneratorConfig` as JSON. Exact round trip.

Internal names are the official stylegan2-ada-pytorch ones; `ada_key_map` and `rosinality_key_map` are
the explicit, complete maps from both official layouts.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reenact.errors import ReenactError
from reenact.files import check_unpacked_size, read_safetensors, save_tensors
from reenact.gan.stylegan2 import UPSAMPLE_FACTOR, Generator, GeneratorConfig, setup_filter

CheckpointFormat = Literal["stylegan2-ada-pkl", "rosinality-pt", "reenact-safetensors"]

SAFETENSORS_FORMAT_NAME = "reenact-generator"
SAFETENSORS_FORMAT_VERSION = "1"
LEGACY_TORCH_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")  # torch.save (legacy) pickle header
PICKLE_PROTO_OPCODE = 0x80
MAX_PICKLE_PROTOCOL = 5
ROSINALITY_LR_MULTIPLIER = 0.01  # rosinality's lr_mlp default (config F); not stored in its checkpoints
W_AVG_NUM_SAMPLES = 10_000  # z samples to estimate w_avg when a rosinality file has no latent_avg
W_AVG_SEED = 0
GENERATOR_MAX_BYTES = 4 << 30
"""Largest unpacked rosinality checkpoint (config F with discriminator and EMA copy is about 1 GB)."""
FILTER_ATOL = 1e-6


# ---------------------------------------------------------------------------------------------------
# Format detection


def detect_format(path: str | Path) -> CheckpointFormat:
    """Identify a generator file by its bytes (never its extension); ReenactError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ReenactError(f"generator file not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(16)
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 0 < header_len < path.stat().st_size:
            return "reenact-safetensors"
    if head.startswith(b"PK\x03\x04"):
        if _is_torch_zip(path):
            return "rosinality-pt"
        raise ReenactError(f"{path}: a zip file but not a torch checkpoint (no data.pkl inside)")
    if head.startswith(LEGACY_TORCH_MAGIC):
        return "rosinality-pt"
    if len(head) >= 2 and head[0] == PICKLE_PROTO_OPCODE and 2 <= head[1] <= MAX_PICKLE_PROTOCOL:
        return "stylegan2-ada-pkl"
    raise ReenactError(
        f"{path}: not a generator file reenact can read (expected a stylegan2-ada/stylegan3 .pkl, "
        "a rosinality .pt or a reenact .safetensors)"
    )


def _is_torch_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


# ---------------------------------------------------------------------------------------------------
# Restricted unpickling of stylegan2-ada / stylegan3 pickles


@dataclass
class PersistentRecord:
    """Inert stand-in for a `torch_utils.persistence` object: its class name and pickled state only."""

    class_name: str
    state: dict[str, Any]
    module_src_sha256: str  # identifies the embedded source; the source itself is never executed

    @property
    def init_args(self) -> tuple[Any, ...]:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return _plain(self.state.get("_init_kwargs", {}))

    def child(self, name: str) -> PersistentRecord | None:
        child = self.state.get("_modules", {}).get(name)
        return child if isinstance(child, PersistentRecord) else None


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Replacement for torch_utils.persistence._reconstruct_persistent_obj that never execs."""
    if not isinstance(meta, dict):
        raise _PickleRefused("a persistent record whose meta is not a dict")
    if meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise _PickleRefused(f"a persistent record of unsupported type {meta.get('type')!r}")
    state = meta.get("state")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise _PickleRefused("a persistent record whose state is not a dict")
    source = meta.get("module_src", "")
    digest = hashlib.sha256(source.encode("utf-8") if isinstance(source, str) else b"").hexdigest()
    return PersistentRecord(class_name=meta["class_name"], state=dict(state), module_src_sha256=digest)


class _EasyDict(dict):
    """Data-only stand-in for dnnlib.util.EasyDict."""


@dataclass
class _NumpyDType:
    """Stand-in for numpy.dtype while unpickling: keeps the type code, byte order from state."""

    code: str
    align: Any = False
    copy: Any = True
    byteorder: str = "="
    extra: tuple[Any, ...] = field(default=())

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], str):
            self.byteorder = state[1]

    def to_numpy(self) -> np.dtype:
        if not re.fullmatch(r"[fiub]\d{1,2}", self.code):
            raise _PickleRefused(f"a numpy value of dtype {self.code!r}")
        order = self.byteorder if self.byteorder in "<>=|" else "="
        return np.dtype(order + self.code if order != "|" else self.code)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy.core.multiarray.scalar replacement: decode a numeric scalar to a Python number."""
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise _PickleRefused("a numpy scalar with unexpected arguments")
    return np.frombuffer(data, dtype=dtype.to_numpy())[0].item()


class _NumpyArrayStub:
    """Stand-in for a pickled numpy array: decoded to an ndarray from its raw bytes (numeric only)."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _PickleRefused("a numpy array with unexpected state")
        _version, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _NumpyDType) or not isinstance(raw, bytes):
            raise _PickleRefused("a numpy array of object dtype")
        array = np.frombuffer(raw, dtype=dtype.to_numpy()).copy()
        self.array = array.reshape(shape, order="F" if is_fortran else "C")


_NDARRAY_SENTINEL = object()


def _numpy_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _NumpyArrayStub:
    if cls is not _NDARRAY_SENTINEL:
        raise _PickleRefused("a numpy array subclass")
    return _NumpyArrayStub()


def _load_storage_from_bytes(data: Any) -> Any:
    """torch.storage._load_from_bytes replacement: the bytes are a legacy torch.save of one storage."""
    if not isinstance(data, bytes):
        raise _PickleRefused("a torch storage that is not bytes")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _PickleRefused(f"a torch storage that torch's weights-only loader refused ({error})") from error
    if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
        raise _PickleRefused("a torch storage record that holds something else")
    return storage


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
        raise _PickleRefused("a tensor whose storage is not a torch storage")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise _PickleRefused("a tensor with malformed size/stride")
    requires_grad = bool(rest[0]) if rest else False
    return torch._utils._rebuild_tensor_v2(
        storage, storage_offset, size, stride, requires_grad, OrderedDict()
    )


def _rebuild_parameter(data: Any, requires_grad: Any, *_hooks_and_state: Any) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise _PickleRefused("a parameter that does not hold a tensor")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or not isinstance(args, tuple):
        raise _PickleRefused("a tensor rebuilt by an unexpected function")
    if new_type is not _TENSOR_TYPE_TOKEN:
        raise _PickleRefused("a tensor subclass")
    return func(*args)


class _PickleRefused(Exception):
    """Raised inside the unpickler; turned into a ReenactError naming the file."""


# Tensor classes only appear as the `new_type` argument of _rebuild_from_type_v2: inert, non-callable tokens
# (the real classes would let a pickle allocate arbitrary tensors by calling them).
_TENSOR_TYPE_TOKEN = object()
_TENSOR_TYPES: dict[str, Any] = {
    "torch.Tensor": _TENSOR_TYPE_TOKEN,
    "torch.nn.parameter.Parameter": _TENSOR_TYPE_TOKEN,
}

# The complete allow-list: "module.name" -> the (inert or checked) object the unpickler gets instead.
_ALLOWED_GLOBALS: dict[str, Any] = {
    "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
    "dnnlib.util.EasyDict": _EasyDict,
    "dnnlib.EasyDict": _EasyDict,
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.storage._load_from_bytes": _load_storage_from_bytes,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.dtype": _NumpyDType,
    "numpy.core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy._core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy.ndarray": _NDARRAY_SENTINEL,
    **_TENSOR_TYPES,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and no persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key not in _ALLOWED_GLOBALS:
            raise _PickleRefused(f"'{key}', which is not on the allow-list")
        return _ALLOWED_GLOBALS[key]

    def persistent_load(self, pid: Any) -> Any:
        raise _PickleRefused(f"a persistent id {str(pid)[:60]!r}")


def read_network_pickle(path: str | Path) -> Any:
    """Unpickle a stylegan2-ada/stylegan3 network pickle safely; networks come back as PersistentRecords."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _RestrictedUnpickler(handle).load()
    except _PickleRefused as refusal:
        raise ReenactError(
            f"refusing to load {path}: the pickle asks for {refusal}; only StyleGAN network pickles are "
            "accepted and no code from them is ever run"
        ) from None
    except ReenactError:
        raise
    except Exception as error:  # malformed pickles raise a zoo of types; all mean "not readable"
        raise ReenactError(f"cannot read {path} as a StyleGAN network pickle: {error}") from None


def _plain(value: Any) -> Any:
    """EasyDicts/OrderedDicts/tuples -> plain dicts/lists for config parsing."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def flatten_record(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """State dict (persistent parameters and buffers) of a PersistentRecord tree, official key names."""
    state = record.state
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.get("_parameters", {}).items():
        if value is not None:
            tensors[prefix + name] = value.detach()
    skip = set(state.get("_non_persistent_buffers_set", set()))
    for name, value in state.get("_buffers", {}).items():
        if value is not None and name not in skip:
            tensors[prefix + name] = value.detach()
    for name, child in state.get("_modules", {}).items():
        if isinstance(child, PersistentRecord):
            tensors.update(flatten_record(child, prefix=f"{prefix}{name}."))
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise ReenactError(f"network pickle entry {key} is not a tensor")
    return tensors


_ADA_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
# Speed/precision options of the official code that do not change the function computed in fp32.
_IGNORED_SYNTHESIS_KWARGS = {"num_fp16_res", "fp16_channels_last", "fused_modconv_default"}


def config_from_ada_kwargs(init_args: tuple[Any, ...], init_kwargs: dict[str, Any]) -> GeneratorConfig:
    """GeneratorConfig from the official Generator's constructor arguments (as stored in the pickle)."""
    kwargs = dict(zip(_ADA_GENERATOR_ARGS, _plain(list(init_args)), strict=False))
    kwargs.update(init_kwargs)
    if kwargs.get("c_dim", 0) != 0:
        raise ReenactError(f"conditional generators (c_dim={kwargs['c_dim']}) are not supported")
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    synthesis = dict(kwargs.get("synthesis_kwargs") or {})
    # The stylegan3 repo's StyleGAN2 Generator takes its synthesis arguments at the top level.
    top_level = set(kwargs) - {*_ADA_GENERATOR_ARGS, "mapping_kwargs", "synthesis_kwargs"}
    synthesis.update({key: kwargs[key] for key in top_level})
    w_dim = int(kwargs["w_dim"])
    expected = {
        "architecture": "skip",
        "use_noise": True,
        "activation": "lrelu",
        "kernel_size": 3,
    }
    for key, value in expected.items():
        if key in synthesis and synthesis[key] != value:
            raise ReenactError(f"unsupported generator: synthesis {key}={synthesis[key]!r} (need {value!r})")
    if mapping.get("activation", "lrelu") != "lrelu" or mapping.get("layer_features") not in (None, w_dim):
        raise ReenactError("unsupported generator: mapping network is not config F (activation/layer width)")
    known_synthesis = {"channel_base", "channel_max", "conv_clamp", "resample_filter", *expected}
    unknown = set(synthesis) - known_synthesis - _IGNORED_SYNTHESIS_KWARGS
    unknown |= set(mapping) - {"num_layers", "lr_multiplier", "w_avg_beta", "activation", "layer_features"}
    unknown -= {"embed_features"}  # unused without labels
    if unknown:
        raise ReenactError(
            f"unsupported generator arguments {sorted(unknown)} (a StyleGAN3 or modified generator?)"
        )
    defaults = GeneratorConfig()
    return GeneratorConfig(
        z_dim=int(kwargs["z_dim"]),
        w_dim=w_dim,
        resolution=int(kwargs["img_resolution"]),
        img_channels=int(kwargs.get("img_channels", defaults.img_channels)),
        channel_base=int(synthesis.get("channel_base", defaults.channel_base)),
        channel_max=int(synthesis.get("channel_max", defaults.channel_max)),
        mapping_layers=int(mapping.get("num_layers", defaults.mapping_layers)),
        mapping_lr_multiplier=float(mapping.get("lr_multiplier", defaults.mapping_lr_multiplier)),
        w_avg_beta=float(mapping.get("w_avg_beta", defaults.w_avg_beta)),
        conv_clamp=None if synthesis.get("conv_clamp") is None else float(synthesis["conv_clamp"]),
        resample_filter=tuple(synthesis.get("resample_filter", defaults.resample_filter)),
    )


def ada_key_map(config: GeneratorConfig) -> dict[str, str]:
    """Complete map from the official stylegan2-ada-pytorch G_ema keys to ours (the same names)."""
    names: list[str] = []
    for res in config.block_resolutions:
        block = f"synthesis.b{res}"
        names.append(f"{block}.resample_filter")
        if res == config.block_resolutions[0]:
            names.append(f"{block}.const")
        for layer in ["conv1"] if res == config.block_resolutions[0] else ["conv0", "conv1"]:
            for leaf in ("weight", "bias", "noise_strength", "noise_const", "resample_filter"):
                names.append(f"{block}.{layer}.{leaf}")
            names += [f"{block}.{layer}.affine.weight", f"{block}.{layer}.affine.bias"]
        names += [f"{block}.torgb.{leaf}" for leaf in ("weight", "bias", "affine.weight", "affine.bias")]
    names.append("mapping.w_avg")
    for idx in range(config.mapping_layers):
        names += [f"mapping.fc{idx}.weight", f"mapping.fc{idx}.bias"]
    return {name: name for name in names}


def _generator_record(data: Any, path: Path) -> PersistentRecord:
    if not isinstance(data, dict) or "G_ema" not in data:
        raise ReenactError(f"{path}: a pickle but not a StyleGAN network pickle (no 'G_ema' entry)")
    record = data["G_ema"]
    if not isinstance(record, PersistentRecord) or record.class_name != "Generator":
        raise ReenactError(f"{path}: 'G_ema' is not a persistent Generator network")
    synthesis = record.child("synthesis")
    if synthesis is None:
        raise ReenactError(f"{path}: 'G_ema' has no synthesis network")
    if "input" in synthesis.state.get("_modules", {}):
        raise ReenactError(f"{path}: a StyleGAN3 (alias-free) generator; reenact needs a StyleGAN2 generator")
    return record


def generator_from_ada_pickle(path: str | Path, *, device: str | torch.device = "cpu") -> Generator:
    """Load `G_ema` of a stylegan2-ada-pytorch / stylegan3-repo StyleGAN2 pickle (no code executed)."""
    path = Path(path)
    record = _generator_record(read_network_pickle(path), path)
    config = config_from_ada_kwargs(record.init_args, record.init_kwargs)
    official = flatten_record(record)
    key_map = ada_key_map(config)
    ours = {key_map[key]: value for key, value in official.items() if key in key_map}
    unexpected = sorted(set(official) - set(key_map))
    return _build(config, ours, path=path, unexpected=unexpected, device=device)


# ---------------------------------------------------------------------------------------------------
# rosinality


def rosinality_key_map(config: GeneratorConfig) -> dict[str, str]:
    """Complete map from rosinality `g_ema` parameter/noise keys to ours.

    Not in the map (verified instead): rosinality's `*.conv.blur.kernel` and `to_rgbs.*.upsample.kernel`
    buffers (the FIR filter times 4). Ours not in the map: `*.resample_filter` (from the config) and
    `mapping.w_avg` (the checkpoint's `latent_avg`, or estimated).
    """
    key_map: dict[str, str] = {}
    for idx in range(config.mapping_layers):
        key_map[f"style.{idx + 1}.weight"] = f"mapping.fc{idx}.weight"
        key_map[f"style.{idx + 1}.bias"] = f"mapping.fc{idx}.bias"
    key_map["input.input"] = "synthesis.b4.const"

    def styled_conv(source: str, target: str) -> None:
        key_map[f"{source}.conv.weight"] = f"{target}.weight"
        key_map[f"{source}.conv.modulation.weight"] = f"{target}.affine.weight"
        key_map[f"{source}.conv.modulation.bias"] = f"{target}.affine.bias"
        key_map[f"{source}.noise.weight"] = f"{target}.noise_strength"
        key_map[f"{source}.activate.bias"] = f"{target}.bias"

    def to_rgb(source: str, target: str) -> None:
        key_map[f"{source}.conv.weight"] = f"{target}.weight"
        key_map[f"{source}.conv.modulation.weight"] = f"{target}.affine.weight"
        key_map[f"{source}.conv.modulation.bias"] = f"{target}.affine.bias"
        key_map[f"{source}.bias"] = f"{target}.bias"

    styled_conv("conv1", "synthesis.b4.conv1")
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    key_map["noises.noise_0"] = "synthesis.b4.conv1.noise_const"
    for block_idx, res in enumerate(config.block_resolutions[1:]):
        styled_conv(f"convs.{2 * block_idx}", f"synthesis.b{res}.conv0")
        styled_conv(f"convs.{2 * block_idx + 1}", f"synthesis.b{res}.conv1")
        to_rgb(f"to_rgbs.{block_idx}", f"synthesis.b{res}.torgb")
        key_map[f"noises.noise_{2 * block_idx + 1}"] = f"synthesis.b{res}.conv0.noise_const"
        key_map[f"noises.noise_{2 * block_idx + 2}"] = f"synthesis.b{res}.conv1.noise_const"
    return key_map


def rosinality_filter_keys(config: GeneratorConfig) -> list[str]:
    """rosinality buffers that hold the (scaled) FIR filter: checked, not loaded."""
    keys = []
    for block_idx in range(len(config.block_resolutions) - 1):
        keys.append(f"convs.{2 * block_idx}.conv.blur.kernel")
        keys.append(f"to_rgbs.{block_idx}.upsample.kernel")
    return keys


def _rosinality_config(state: dict[str, torch.Tensor], path: Path) -> GeneratorConfig:
    try:
        mapping_layers = sum(1 for key in state if re.fullmatch(r"style\.\d+\.weight", key))
        w_dim, z_dim = state["style.1.weight"].shape
        num_blocks = sum(1 for key in state if re.fullmatch(r"to_rgbs\.\d+\.bias", key))
        resolution = 2 ** (num_blocks + 2)
        channels = {4: int(state["input.input"].shape[1])}
        for block_idx in range(num_blocks):
            channels[2 ** (block_idx + 3)] = int(state[f"convs.{2 * block_idx}.conv.weight"].shape[1])
    except (KeyError, IndexError, ValueError) as error:
        raise ReenactError(
            f"{path}: 'g_ema' is not a rosinality StyleGAN2 generator (missing {error})"
        ) from None
    channel_max = max(channels.values())
    channel_base = channels[resolution] * resolution
    config = GeneratorConfig(
        z_dim=int(z_dim),
        w_dim=int(w_dim),
        resolution=resolution,
        channel_base=channel_base,
        channel_max=channel_max,
        mapping_layers=mapping_layers,
        mapping_lr_multiplier=ROSINALITY_LR_MULTIPLIER,
    )
    derived = {res: config.channels(res) for res in channels}
    if derived != channels:
        raise ReenactError(f"{path}: channel layout {channels} does not follow min(base // res, max)")
    return config


def generator_from_rosinality(path: str | Path, *, device: str | torch.device = "cpu") -> Generator:
    """Load `g_ema` from a rosinality checkpoint with torch's weights-only loader."""
    path = Path(path)
    check_unpacked_size(path, limit=GENERATOR_MAX_BYTES, what="generator checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe content"
        raise ReenactError(
            f"refusing to load {path}: torch's weights-only loader rejected it ({first_line})"
        ) from None
    except Exception as error:
        raise ReenactError(f"cannot read {path} as a torch checkpoint: {error}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("g_ema"), dict):
        raise ReenactError(
            f"{path}: a torch checkpoint without a 'g_ema' state dict (not rosinality StyleGAN2)"
        )
    state: dict[str, torch.Tensor] = checkpoint["g_ema"]
    config = _rosinality_config(state, path)
    key_map = rosinality_key_map(config)
    filter_keys = rosinality_filter_keys(config)
    expected_filter = setup_filter(config.resample_filter) * UPSAMPLE_FACTOR**2
    for key in filter_keys:
        kernel = state.get(key)
        if (
            kernel is None
            or kernel.shape != expected_filter.shape
            or not torch.allclose(kernel.float(), expected_filter, atol=FILTER_ATOL)
        ):
            raise ReenactError(f"{path}: {key} is not the [1,3,3,1] blur filter; unsupported generator")
    reference = Generator(config).state_dict()
    ours: dict[str, torch.Tensor] = {}
    for source, target in key_map.items():
        if source in state:
            ours[target] = state[source].reshape(reference[target].shape)
    unexpected = sorted(set(state) - set(key_map) - set(filter_keys))
    for key, value in reference.items():
        if key.endswith("resample_filter"):
            ours[key] = value
    latent_avg = checkpoint.get("latent_avg")
    has_latent_avg = isinstance(latent_avg, torch.Tensor) and latent_avg.numel() == config.w_dim
    # rosinality's g_ema has no w_avg: use the checkpoint's latent_avg, else estimate it below.
    ours["mapping.w_avg"] = (
        latent_avg.reshape(config.w_dim).float() if has_latent_avg else reference["mapping.w_avg"]
    )
    G = _build(config, ours, path=path, unexpected=unexpected, device=device)
    if not has_latent_avg:
        estimate_w_avg(G, num_samples=W_AVG_NUM_SAMPLES, seed=W_AVG_SEED)
    return G


@torch.no_grad()
def estimate_w_avg(G: Generator, *, num_samples: int, seed: int, batch_size: int = 1000) -> None:
    """Set G.mapping.w_avg to the mean of W over `num_samples` seeded z (rosinality's `mean_latent`)."""
    rng = torch.Generator().manual_seed(seed)
    device = G.mapping.w_avg.device
    total = torch.zeros(G.w_dim, dtype=torch.float64, device=device)
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        z = torch.randn([count, G.z_dim], generator=rng).to(device)
        total += G.mapping(z)[:, 0].double().sum(dim=0)
    G.mapping.w_avg.copy_((total / num_samples).float())


# ---------------------------------------------------------------------------------------------------
# Our format


def save_generator(G: Generator, path: str | Path) -> Path:
    """Save G as safetensors with its GeneratorConfig as JSON metadata (exact round trip), atomically."""
    metadata = {
        "format": SAFETENSORS_FORMAT_NAME,
        "format_version": SAFETENSORS_FORMAT_VERSION,
        "config": json.dumps(G.config.to_dict(), sort_keys=True),
    }
    return save_tensors(path, G.state_dict(), metadata=metadata)


def generator_from_safetensors(path: str | Path, *, device: str | torch.device = "cpu") -> Generator:
    path = Path(path)
    try:
        tensors, metadata = read_safetensors(path)
    except Exception as error:
        raise ReenactError(f"cannot read {path} as safetensors: {error}") from None
    if metadata.get("format") != SAFETENSORS_FORMAT_NAME:
        raise ReenactError(f"{path}: a safetensors file without a reenact generator config")
    if metadata.get("format_version") != SAFETENSORS_FORMAT_VERSION:
        raise ReenactError(f"{path}: generator format version {metadata.get('format_version')} is unknown")
    config = GeneratorConfig.from_dict(json.loads(metadata["config"]))
    return _build(config, tensors, path=path, unexpected=[], device=device)


# ---------------------------------------------------------------------------------------------------
# Common


def _build(
    config: GeneratorConfig,
    tensors: dict[str, torch.Tensor],
    *,
    path: Path,
    unexpected: list[str],
    device: str | torch.device,
) -> Generator:
    """Create a Generator and fill every parameter and buffer; strict on names and shapes."""
    G = Generator(config)
    reference = G.state_dict()
    missing = sorted(set(reference) - set(tensors))
    unexpected = sorted(set(unexpected) | (set(tensors) - set(reference)))
    if missing or unexpected:
        raise ReenactError(
            f"{path}: generator layout mismatch: missing {len(missing)} {missing[:3]}, "
            f"unexpected {len(unexpected)} {unexpected[:3]}"
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(reference[key].shape):
            raise ReenactError(
                f"{path}: {key} has shape {list(value.shape)}, expected {list(reference[key].shape)}"
            )
    G.load_state_dict({key: value.float() for key, value in tensors.items()}, strict=True)
    return G.eval().requires_grad_(False).to(device)


_LOADERS: dict[str, Callable[..., Generator]] = {
    "stylegan2-ada-pkl": generator_from_ada_pickle,
    "rosinality-pt": generator_from_rosinality,
    "reenact-safetensors": generator_from_safetensors,
}


def load_generator(path: str | Path, *, device: str | torch.device = "cpu") -> Generator:
    """Load a generator from any supported file (format detected from content), in eval mode, no grads."""
    fmt = detect_format(path)
    G = _LOADERS[fmt](path, device=device)
    if not all(math.isfinite(float(p.abs().max())) for p in G.parameters()):
        raise ReenactError(f"{path}: the generator holds NaN or infinite weights")
    return G
