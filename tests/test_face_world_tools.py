"""The face world's scripts: the dataset's sources from MANIFEST.tsv, and the training script's options."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from reenact.files import save_arrays
from reenact.gan.checkpoints import load_generator
from reenact.train import CHECKPOINT_NAME, GENERATOR_NAME
from tests.conftest import REPO_ROOT, manifest_rows, testdata_file

TOOLS = REPO_ROOT / "tools"
TOY_SIDE = 16


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sources_are_the_manifest_files_with_human_faces() -> None:
    manifest = testdata_file("MANIFEST.tsv")
    sources = load_tool("build_face_data").manifest_sources(manifest.parent)
    names = {source.path.name for source in sources}
    rows = {row["file"]: row for row in manifest_rows()}
    assert "lp_source_s25_png_as_jpg.jpg" not in names  # a dog
    assert "imageio_cockatoo.mp4" not in names and "jsonize_iphone_rotated.mov" not in names
    assert {"lp_driving_d0.mp4", "facerec_two_people.jpg", "ghost_2person.mp4"} <= names
    for source in sources:
        row = rows[source.path.name]
        assert source.licence == row["license"] and row["commit"] in source.origin


def run_train_tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(TOOLS / "train_face_world.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_train_tool_takes_every_setting_and_exports_the_ema_generator(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (8, TOY_SIDE, TOY_SIDE, 3), dtype=np.uint8)
    data = save_arrays(tmp_path / "faces-16.npz", train=images)
    run = tmp_path / "run"
    small = ["--z-dim", "8", "--w-dim", "8", "--channel-base", "128", "--channel-max", "8", "--batch", "4"]
    result = run_train_tool(
        "--data",
        str(data),
        "--run",
        str(run),
        "--steps",
        "2",
        "--threads",
        "1",
        *small,
        "--face-check-every",
        "0",
        "--mirror",
        "false",
        "--ema-rampup",
        "none",
        "--betas",
        "0,0.9",
    )
    assert result.returncode == 0, result.stderr
    assert "step 2 after" in result.stdout
    state = torch.load(run / CHECKPOINT_NAME, weights_only=True)
    config = json.loads(state["config"])
    assert config["mirror"] is False and config["ema_rampup"] is None and config["betas"] == [0.0, 0.9]
    assert config["resolution"] == TOY_SIDE and state["step"] == 2
    assert load_generator(run / GENERATOR_NAME).resolution == TOY_SIDE

    refused = run_train_tool("--data", str(data), "--run", str(run), *small, "--batch", "6")
    assert refused.returncode == 1 and refused.stderr == "error: training: batch 6 must be a multiple of 4\n"
