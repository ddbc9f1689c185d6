"""Workspace: stage keys change exactly with what a result depends on; results appear atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.device import resolve_device, resolve_runtime
from reenact.errors import ReenactError
from reenact.files import load_arrays, read_safetensors, save_arrays, save_tensors
from reenact.workspace import MANIFEST, Workspace, stage_key, tensor_digest


def test_key_depends_on_every_part_and_not_on_order() -> None:
    base = stage_key("invert", {"input": "abc", "config": {"lr": 0.01, "steps": 100}})
    same = stage_key("invert", {"config": {"steps": 100, "lr": 0.01}, "input": "abc"})
    assert base == same
    assert stage_key("invert", {"input": "abd", "config": {"lr": 0.01, "steps": 100}}) != base
    assert stage_key("invert", {"input": "abc", "config": {"lr": 0.02, "steps": 100}}) != base
    assert stage_key("tune", {"input": "abc", "config": {"lr": 0.01, "steps": 100}}) != base


def test_input_digest_follows_content_not_name(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "work")
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"same bytes")
    second.write_bytes(b"same bytes")
    assert workspace.input_digest(first) == workspace.input_digest(second)
    second.write_bytes(b"other bytes")
    os.utime(second, ns=(1, 1))  # a new mtime: the remembered hash must not be reused
    assert workspace.input_digest(first) != workspace.input_digest(second)
    # A fresh Workspace object reads the remembered hashes from disk.
    assert Workspace(tmp_path / "work").input_digest(first) == workspace.input_digest(first)


def test_build_is_atomic_and_failures_leave_nothing(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    key = stage_key("align", {"input": "x"})
    scratch = workspace.scratch(key)
    (scratch / "checkpoint").write_text("half-way")
    with pytest.raises(RuntimeError), workspace.build(key) as directory:
        (directory / "result.txt").write_text("partial")
        raise RuntimeError("interrupted")
    assert not workspace.done(key)
    assert not workspace.path(key).exists()
    assert (scratch / "checkpoint").exists(), "an interrupted run keeps its scratch for resuming"
    assert [p.name for p in (tmp_path / "align").iterdir()] == [scratch.name]

    with workspace.build(key, summary={"frames": 3}) as directory:
        (directory / "result.txt").write_text("done")
    assert workspace.done(key)
    assert (workspace.path(key) / "result.txt").read_text() == "done"
    assert (workspace.path(key) / MANIFEST).is_file()
    assert workspace.manifest(key)["summary"] == {"frames": 3}
    assert not scratch.exists(), "scratch is removed once the result exists"


def test_tensor_and_array_round_trip(tmp_path: Path) -> None:
    tensors = {"ws": torch.randn(3, 4, 5), "frames": torch.arange(3), "scalar": torch.tensor(2.0)}
    loaded, _ = read_safetensors(save_tensors(tmp_path / "t.safetensors", tensors))
    assert all(torch.equal(tensors[name], loaded[name]) for name in tensors)
    assert tensor_digest(tensors) == tensor_digest(loaded)
    assert tensor_digest({**tensors, "ws": tensors["ws"] + 1e-6}) != tensor_digest(tensors)
    arrays = load_arrays(save_arrays(tmp_path / "a.npz", quads=np.ones((2, 4, 2))))
    assert arrays["quads"].shape == (2, 4, 2)


def test_workdir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReenactError, match="not a folder"):
        Workspace(tmp_path / "file")


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ReenactError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(ReenactError, match="--device"):
        resolve_device("tpu")
    assert resolve_runtime("cpu").autocast_dtype is None, "fp32 on CPU by default"
    assert resolve_runtime("cpu", precision="bf16").autocast_dtype == torch.bfloat16
    with pytest.raises(ReenactError, match="--precision"):
        resolve_runtime("cpu", precision="fp8")


def test_atomic_files_get_the_mode_of_an_ordinary_new_file(tmp_path: Path) -> None:
    """A file written through a temporary (a contact sheet, a report) is readable like any new file under
    the umask, not private to its writer as `mkstemp` makes it."""
    import os
    import stat

    from reenact.files import write_text_atomic

    old = os.umask(0o022)
    try:
        written = write_text_atomic(tmp_path / "report.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o644, oct(mode)
