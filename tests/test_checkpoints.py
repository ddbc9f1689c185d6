"""Checkpoint loading: official key maps, round trips through all three formats, refusal of unsafe files.

The test writes every file itself: a rosinality `{'g_ema': state_dict}` checkpoint (with an independent
re-implementation of rosinality's forward pass as the numerical reference) and a stylegan2-ada network
pickle made of `torch_utils.persistence`-style records whose embedded source would create a marker file.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import subprocess
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reenact.errors import ReenactError
from reenact.gan.checkpoints import (
    ada_key_map,
    detect_format,
    load_generator,
    read_network_pickle,
    rosinality_filter_keys,
    rosinality_key_map,
    save_generator,
)
from reenact.gan.stylegan2 import Generator, GeneratorConfig, ffhq_config_f, tiny
from reenact_cli.main import EXIT_ERROR, run
from tests.gantools import FIXTURE, official_layout, randomized_generator

ROUND_TRIP_TOL = 1e-5
SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------------
# Key maps against the official 1024 config-F layouts


def test_ada_key_map_is_complete_and_shape_exact() -> None:
    config = ffhq_config_f(1024)
    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in Generator(config).state_dict().items()}
    official = official_layout("stylegan2_ada_pytorch")
    key_map = ada_key_map(config)
    assert set(key_map) == set(official)
    assert set(key_map.values()) == set(ours)
    assert all(ours[key_map[name]] == shape for name, shape in official.items())


def test_rosinality_key_map_is_complete_and_shape_exact() -> None:
    config = ffhq_config_f(1024)
    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in Generator(config).state_dict().items()}
    official = official_layout("rosinality")
    key_map = rosinality_key_map(config)
    filters = rosinality_filter_keys(config)
    # Every rosinality key is either mapped or a filter buffer that is checked instead.
    assert set(key_map) | set(filters) == set(official)
    assert not set(key_map) & set(filters)
    # Every one of ours comes from rosinality except the FIR filters (config) and w_avg (latent_avg).
    derived = {k for k in ours if k.endswith("resample_filter")} | {"mapping.w_avg"}
    assert set(key_map.values()) == set(ours) - derived
    assert len(set(key_map.values())) == len(key_map)
    for name, target in key_map.items():
        # Same elements, rosinality only adds leading singleton dims.
        assert math.prod(official[name]) == math.prod(ours[target]), name
        assert [d for d in official[name] if d != 1] == [d for d in ours[target] if d != 1], name
    params = {e["name"] for e in json.loads(FIXTURE.read_text())["rosinality"] if e["kind"] == "parameter"}
    assert sum(math.prod(official[n]) for n in params) == sum(math.prod(ours[key_map[n]]) for n in params)


# ---------------------------------------------------------------------------------------------------
# reenact safetensors


def test_safetensors_round_trip_is_exact(tmp_path: Path) -> None:
    G = randomized_generator(tiny(32))
    path = save_generator(G, tmp_path / "tuned.bin")  # any extension: detected by content
    assert detect_format(path) == "reenact-safetensors"
    loaded = load_generator(path, device="cpu")
    assert loaded.config == G.config
    original = G.state_dict()
    assert all(torch.equal(value, original[key]) for key, value in loaded.state_dict().items())
    ws = G.mapping(torch.randn(2, G.z_dim))
    assert torch.equal(loaded.synthesis(ws), G.synthesis(ws))


# ---------------------------------------------------------------------------------------------------
# rosinality


def rosinality_state_dict(G: Generator) -> dict[str, torch.Tensor]:
    """Written by the test from rosinality's model.py layout (not with the library's export)."""
    cfg = G.config
    sd = {k: v.detach().clone() for k, v in G.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(cfg.mapping_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]
    blur = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur = torch.outer(blur, blur) / 64.0 * 4.0  # make_kernel(k) * factor**2

    def styled(dst: str, src: str, upsample: bool) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        if upsample:
            out[f"{dst}.conv.blur.kernel"] = blur.clone()

    def rgb(dst: str, src: str, upsample: bool) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        if upsample:
            out[f"{dst}.upsample.kernel"] = blur.clone()

    styled("conv1", "synthesis.b4.conv1", upsample=False)
    rgb("to_rgb1", "synthesis.b4.torgb", upsample=False)
    out["noises.noise_0"] = sd["synthesis.b4.conv1.noise_const"][None, None]
    for k, res in enumerate(cfg.block_resolutions[1:]):
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", upsample=True)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", upsample=False)
        rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", upsample=True)
        out[f"noises.noise_{2 * k + 1}"] = sd[f"synthesis.b{res}.conv0.noise_const"][None, None]
        out[f"noises.noise_{2 * k + 2}"] = sd[f"synthesis.b{res}.conv1.noise_const"][None, None]
    return out


def _rosinality_upfirdn(
    x: torch.Tensor, kernel: torch.Tensor, *, up: int, pad: tuple[int, int]
) -> torch.Tensor:
    """rosinality's upfirdn2d_native: zero-insert, pad (pad0, pad1), convolve with the flipped kernel."""
    n, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros(n, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def rosinality_forward(sd: dict[str, torch.Tensor], latent: torch.Tensor) -> torch.Tensor:
    """Independent re-implementation of rosinality `Generator.forward` (latents in, stored noise)."""

    def linear(x: torch.Tensor, prefix: str, *, lr_mul: float = 1.0, act: bool = False) -> torch.Tensor:
        weight = sd[f"{prefix}.weight"]
        out = F.linear(x, weight * (lr_mul / math.sqrt(weight.shape[1])))
        out = out + sd[f"{prefix}.bias"] * lr_mul
        return F.leaky_relu(out, 0.2) * SQRT2 if act else out

    def modconv(x: torch.Tensor, prefix: str, style: torch.Tensor, *, demod: bool, up: bool) -> torch.Tensor:
        batch, in_ch, h, w = x.shape
        weight = sd[f"{prefix}.weight"]  # [1, O, I, k, k]
        out_ch, k = weight.shape[1], weight.shape[-1]
        s = linear(style, f"{prefix}.modulation").view(batch, 1, in_ch, 1, 1)
        weight = weight / math.sqrt(in_ch * k * k) * s
        if demod:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, out_ch, 1, 1, 1)
        x = x.reshape(1, batch * in_ch, h, w)
        if up:
            weight = weight.transpose(1, 2).reshape(batch * in_ch, out_ch, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            out = out.view(batch, out_ch, *out.shape[2:])
            return _rosinality_upfirdn(out, sd[f"{prefix}.blur.kernel"], up=1, pad=(1, 1))
        out = F.conv2d(x, weight.reshape(batch * out_ch, in_ch, k, k), padding=k // 2, groups=batch)
        return out.view(batch, out_ch, h, w)

    def styled(
        x: torch.Tensor, prefix: str, style: torch.Tensor, noise: torch.Tensor, up: bool
    ) -> torch.Tensor:
        out = modconv(x, f"{prefix}.conv", style, demod=True, up=up)
        out = out + sd[f"{prefix}.noise.weight"] * noise
        return F.leaky_relu(out + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * SQRT2

    def to_rgb(x: torch.Tensor, prefix: str, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = modconv(x, f"{prefix}.conv", style, demod=False, up=False) + sd[f"{prefix}.bias"]
        if skip is not None:
            out = out + _rosinality_upfirdn(skip, sd[f"{prefix}.upsample.kernel"], up=2, pad=(2, 1))
        return out

    x = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    x = styled(x, "conv1", latent[:, 0], sd["noises.noise_0"], up=False)
    skip = to_rgb(x, "to_rgb1", latent[:, 1], None)
    i = 1
    num_blocks = sum(1 for key in sd if re.fullmatch(r"to_rgbs\.\d+\.bias", key))
    for k in range(num_blocks):
        x = styled(x, f"convs.{2 * k}", latent[:, i], sd[f"noises.noise_{2 * k + 1}"], up=True)
        x = styled(x, f"convs.{2 * k + 1}", latent[:, i + 1], sd[f"noises.noise_{2 * k + 2}"], up=False)
        skip = to_rgb(x, f"to_rgbs.{k}", latent[:, i + 2], skip)
        i += 2
    return skip


def rosinality_mapping(sd: dict[str, torch.Tensor], z: torch.Tensor, n_mlp: int) -> torch.Tensor:
    x = z * torch.rsqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        weight = sd[f"style.{i}.weight"]
        out = F.linear(x, weight * (0.01 / math.sqrt(weight.shape[1])))
        x = F.leaky_relu(out + sd[f"style.{i}.bias"] * 0.01, 0.2) * SQRT2
    return x


@pytest.mark.parametrize("legacy", [False, True])
def test_rosinality_round_trip_matches_reference_forward(tmp_path: Path, legacy: bool) -> None:
    G = randomized_generator(tiny(32))
    sd = rosinality_state_dict(G)
    path = tmp_path / "550000.pkl"  # misleading extension on purpose
    torch.save(
        {"g_ema": sd, "latent_avg": G.mapping.w_avg.clone(), "args": {"size": 32}},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    assert detect_format(path) == "rosinality-pt"
    loaded = load_generator(path)
    assert loaded.config == G.config
    assert torch.equal(loaded.mapping.w_avg, G.mapping.w_avg)
    z = torch.randn(3, G.z_dim)
    ws = G.mapping(z)
    assert torch.allclose(loaded.mapping(z), ws, atol=ROUND_TRIP_TOL)
    assert torch.allclose(rosinality_mapping(sd, z, G.config.mapping_layers), ws[:, 0], atol=ROUND_TRIP_TOL)
    ws = ws + 0.5 * torch.randn_like(ws)  # distinct per-layer styles, so a layer-order slip shows
    ours = loaded.synthesis(ws, noise_mode="const")
    reference = rosinality_forward(sd, ws)
    assert (ours - reference).abs().max() <= ROUND_TRIP_TOL
    assert (ours - G.synthesis(ws, noise_mode="const")).abs().max() <= ROUND_TRIP_TOL


def test_rosinality_without_latent_avg_estimates_it(tmp_path: Path) -> None:
    G = randomized_generator(tiny(16))
    path = tmp_path / "g.pt"
    torch.save({"g_ema": rosinality_state_dict(G)}, path)
    loaded = load_generator(path)
    with torch.no_grad():
        mean_w = G.mapping(torch.randn(20_000, G.z_dim))[:, 0].mean(0)
    spread = G.mapping(torch.randn(100, G.z_dim))[:, 0].std(0).mean()
    assert (loaded.mapping.w_avg - mean_w).abs().max() < 0.05 * spread
    assert not torch.allclose(loaded.mapping.w_avg, G.mapping.w_avg)  # the random one was not kept


def test_rosinality_missing_keys_and_wrong_blur_are_refused(tmp_path: Path) -> None:
    G = randomized_generator(tiny(16))
    sd = rosinality_state_dict(G)
    broken = dict(sd)
    del broken["convs.1.activate.bias"]
    torch.save({"g_ema": broken}, tmp_path / "missing.pt")
    with pytest.raises(ReenactError, match="missing 1"):
        load_generator(tmp_path / "missing.pt")
    sd["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    torch.save({"g_ema": sd}, tmp_path / "blur.pt")
    with pytest.raises(ReenactError, match="blur"):
        load_generator(tmp_path / "blur.pt")
    torch.save({"g": sd}, tmp_path / "nog.pt")
    with pytest.raises(ReenactError, match="g_ema"):
        load_generator(tmp_path / "nog.pt")


# ---------------------------------------------------------------------------------------------------
# stylegan2-ada network pickles (torch_utils.persistence records)


def payload_source(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('code from the pickle ran')\n"


class _Mimic:
    """Fake `torch_utils.persistence` and `dnnlib.util` modules, installed only while writing."""

    def __init__(self, marker: Path) -> None:
        def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:  # what the official one does
            namespace: dict[str, Any] = {}
            exec(meta["module_src"], namespace)
            return meta

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"

        class EasyDict(dict):
            pass

        EasyDict.__module__ = "dnnlib.util"
        EasyDict.__qualname__ = "EasyDict"
        self.reconstruct = _reconstruct_persistent_obj
        self.easydict = EasyDict
        self.source = payload_source(marker)
        self.modules = {
            "torch_utils": types.ModuleType("torch_utils"),
            "torch_utils.persistence": types.ModuleType("torch_utils.persistence"),
            "dnnlib": types.ModuleType("dnnlib"),
            "dnnlib.util": types.ModuleType("dnnlib.util"),
        }
        self.modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
        self.modules["torch_utils"].persistence = self.modules["torch_utils.persistence"]
        self.modules["dnnlib.util"].EasyDict = EasyDict
        self.modules["dnnlib"].util = self.modules["dnnlib.util"]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)

    def generator_kwargs(self, config: GeneratorConfig) -> dict[str, Any]:
        return {
            "z_dim": config.z_dim,
            "c_dim": 0,
            "w_dim": config.w_dim,
            "img_resolution": config.resolution,
            "img_channels": config.img_channels,
            "mapping_kwargs": self.easydict(num_layers=config.mapping_layers),
            "synthesis_kwargs": self.easydict(
                channel_base=config.channel_base,
                channel_max=config.channel_max,
                num_fp16_res=4,
                conv_clamp=config.conv_clamp,
                architecture="skip",
            ),
        }

    def dumps(self, snapshot: dict[str, Any], G: Generator) -> bytes:
        mimic = self

        class PersistencePickler(pickle.Pickler):
            def reducer_override(self, obj: Any) -> Any:
                if not isinstance(obj, nn.Module):
                    return NotImplemented
                state = {
                    "training": False,
                    "_parameters": OrderedDict(obj._parameters),
                    "_buffers": OrderedDict(obj._buffers),
                    "_non_persistent_buffers_set": set(),
                    "_backward_hooks": OrderedDict(),
                    "_forward_hooks": OrderedDict(),
                    "_modules": OrderedDict(obj._modules),
                    "_init_args": (),
                    "_init_kwargs": mimic.generator_kwargs(G.config) if isinstance(obj, Generator) else {},
                }
                if hasattr(obj, "weight_gain"):
                    state["weight_gain"] = np.float64(obj.weight_gain)  # as official (np.sqrt)
                meta = {
                    "type": "class",
                    "version": 6,
                    "module_src": mimic.source,
                    "class_name": type(obj).__name__,
                    "state": state,
                }
                return (mimic.reconstruct, (meta,))

        buffer = io.BytesIO()
        PersistencePickler(buffer, protocol=4).dump(snapshot)
        return buffer.getvalue()


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER_code_ran"
    yield path
    assert not path.exists(), "code embedded in a checkpoint was executed"


def write_ada_pickle(G: Generator, path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write G as an official-style network pickle, and prove its embedded source is live."""
    mimic = _Mimic(marker)
    with monkeypatch.context() as patch:
        mimic.install(patch)
        snapshot = {
            "G": G,
            "D": None,
            "G_ema": G,
            "augment_pipe": None,
            "training_set_kwargs": mimic.easydict(resolution=G.config.resolution, xflip=True),
        }
        data = mimic.dumps(snapshot, G)
        path.write_bytes(data)
        pickle.loads(data)  # control: an ordinary unpickler runs the embedded source
        assert marker.exists()
        marker.unlink()
    assert "torch_utils.persistence" not in sys.modules


def test_ada_pickle_loads_without_running_embedded_code(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    G = randomized_generator(GeneratorConfig(**{**tiny(32).to_dict(), "conv_clamp": 256.0}))
    path = tmp_path / "network-snapshot.pt"  # misleading extension on purpose
    write_ada_pickle(G, path, marker, monkeypatch)
    assert detect_format(path) == "stylegan2-ada-pkl"
    loaded = load_generator(path)
    assert not marker.exists()
    assert loaded.config == G.config
    assert loaded.config.conv_clamp == 256.0
    ws = G.mapping(torch.randn(3, G.z_dim)) + 0.5 * torch.randn(3, G.num_ws, G.w_dim)
    assert (loaded.synthesis(ws) - G.synthesis(ws)).abs().max() <= ROUND_TRIP_TOL
    assert torch.equal(loaded.mapping.w_avg, G.mapping.w_avg)
    record = read_network_pickle(path)["G_ema"]
    assert record.class_name == "Generator"
    assert record.child("mapping").state["_modules"]["fc0"].state["weight_gain"] == pytest.approx(
        G.mapping.fc0.weight_gain
    )


def test_ada_pickle_through_safetensors_is_exact(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    G = randomized_generator(tiny(16))
    write_ada_pickle(G, tmp_path / "net.pkl", marker, monkeypatch)
    from_pickle = load_generator(tmp_path / "net.pkl")
    again = load_generator(save_generator(from_pickle, tmp_path / "net.safetensors"))
    ws = G.mapping(torch.randn(2, G.z_dim))
    assert torch.equal(again.synthesis(ws), from_pickle.synthesis(ws))


# ---------------------------------------------------------------------------------------------------
# Malicious files


class _Evil:
    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


def _evil_payloads(marker: Path) -> dict[str, bytes]:
    touch = f"touch {marker}"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    wrap = lambda evil: pickle.dumps({"G_ema": evil, "G": None}, protocol=4)  # noqa: E731
    return {
        "os.system": wrap(_Evil(os.system, (touch,))),
        "builtins.eval": wrap(_Evil(eval, (code,))),
        "builtins.exec": wrap(_Evil(exec, (code,))),
        "subprocess.Popen": wrap(_Evil(subprocess.Popen, (["touch", str(marker)],))),
        "unknown module": b"\x80\x04}(\x8c\x05G_ema\x8c\x10reenact_evil_mod\x8c\x03run\x93)R\x85u.",
        "protocol-0 GLOBAL": b"cposix\nsystem\n(V" + touch.encode() + b"\ntR.",
    }


@pytest.mark.parametrize(
    "kind", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "unknown module"]
)
def test_malicious_pickles_are_refused_without_side_effects(tmp_path: Path, marker: Path, kind: str) -> None:
    path = tmp_path / "ffhq.pkl"
    path.write_bytes(_evil_payloads(marker)[kind])
    with pytest.raises(ReenactError, match="refusing to load") as info:
        load_generator(path)
    message = str(info.value)
    assert str(path) in message and "allow-list" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "kind", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "unknown module"]
)
def test_malicious_generator_import_exits_1_without_side_effects(
    tmp_path: Path,
    marker: Path,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the CLI: `reenact weights import evil.pkl --as <generator>` is one error line, exit 1."""
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "home"))
    path = tmp_path / "ffhq.pkl"
    path.write_bytes(_evil_payloads(marker)[kind])
    assert run(["weights", "import", str(path), "--as", "stylegan2-ffhq-1024"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    assert not marker.exists()
    assert not list((tmp_path / "home").rglob("*.pkl")), "nothing may be copied into the cache"


def test_old_protocol_pickle_is_not_even_unpickled(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "ffhq.pkl"
    path.write_bytes(_evil_payloads(marker)["protocol-0 GLOBAL"])
    with pytest.raises(ReenactError, match="not a generator file"):
        load_generator(path)


def test_unknown_module_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(_evil_payloads(tmp_path / "m")["unknown module"])
    with pytest.raises(ReenactError, match=r"reenact_evil_mod\.run"):
        load_generator(path)
    assert "reenact_evil_mod" not in sys.modules


def test_malicious_rosinality_checkpoint_is_refused(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": _Evil(os.system, (f"touch {marker}",))}, path)
    assert detect_format(path) == "rosinality-pt"
    with pytest.raises(ReenactError, match="refusing to load"):
        load_generator(path)


def test_callable_smuggled_into_an_allowed_rebuild_is_refused(tmp_path: Path, marker: Path) -> None:
    # A torch rebuild function is allowed, but not with a callable smuggled in as its argument.
    payload = pickle.dumps(
        {"G_ema": _Evil(torch._utils._rebuild_parameter, (_Evil(os.system, ("true",)), False))}
    )
    path = tmp_path / "smuggle.pkl"
    path.write_bytes(payload)
    with pytest.raises(ReenactError, match=r"posix\.system.*allow-list"):
        load_generator(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"hello, I am a text file\n", "not a generator file"),
        (b"", "not a generator file"),
        (b"PK\x03\x04garbage", "not a torch checkpoint"),
        (b"\x80\x04\x95garbage", "cannot read"),
    ],
)
def test_unrecognised_files_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(ReenactError, match=match):
        load_generator(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReenactError, match="not found"):
        detect_format(tmp_path / "nope.pkl")


def test_stylegan3_record_is_refused(tmp_path: Path) -> None:
    from reenact.gan.checkpoints import PersistentRecord, _generator_record

    synthesis = PersistentRecord("SynthesisNetwork", {"_modules": {"input": None, "L0_36_512": None}}, "")
    record = PersistentRecord("Generator", {"_modules": {"synthesis": synthesis}}, "")
    with pytest.raises(ReenactError, match="StyleGAN3"):
        _generator_record({"G_ema": record}, tmp_path / "sg3.pkl")


def test_tensor_classes_are_tokens_not_callables(tmp_path: Path) -> None:
    # `torch.Tensor` may appear (as a type tag for tensors with Python state) but never be called:
    # calling it would let a pickle allocate tensors of any size.
    path = tmp_path / "alloc.pkl"
    path.write_bytes(b"\x80\x04\x8c\x05torch\x94\x8c\x06Tensor\x94\x93K\x05\x85R.")
    with pytest.raises(ReenactError, match="cannot read"):
        read_network_pickle(path)
    tensor = torch.randn(3)
    tensor.note = "python state forces the _rebuild_from_type_v2 path"
    path.write_bytes(pickle.dumps({"G_ema": tensor, "p": nn.Parameter(torch.ones(2))}))
    data = read_network_pickle(path)
    assert torch.equal(data["G_ema"], tensor) and isinstance(data["p"], nn.Parameter)


def test_config_from_both_official_kwarg_layouts() -> None:
    from reenact.gan.checkpoints import config_from_ada_kwargs

    common = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 256, "img_channels": 3}
    synthesis = {"channel_base": 16384, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256}
    ada = config_from_ada_kwargs(
        (), {**common, "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": synthesis}
    )
    # stylegan3 repo's networks_stylegan2.Generator(..., mapping_kwargs, **synthesis_kwargs)
    sg3 = config_from_ada_kwargs(
        (),
        {
            **common,
            "mapping_kwargs": {"num_layers": 2},
            **synthesis,
            "fused_modconv_default": "inference_only",
        },
    )
    assert ada == sg3
    assert (ada.resolution, ada.channel_base, ada.mapping_layers, ada.conv_clamp) == (256, 16384, 2, 256.0)
    with pytest.raises(ReenactError, match="conditional"):
        config_from_ada_kwargs((), {**common, "c_dim": 10})
    with pytest.raises(ReenactError, match="architecture"):
        config_from_ada_kwargs((), {**common, "synthesis_kwargs": {"architecture": "resnet"}})
    with pytest.raises(ReenactError, match="magnitude_ema_beta"):
        config_from_ada_kwargs((), {**common, "magnitude_ema_beta": 0.999})
