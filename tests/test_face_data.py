"""The face world's training set: held-out blocks, every k-th frame, crops by reenact's own stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reenact.device import resolve_runtime
from reenact.errors import ReenactError
from reenact.face_data import (
    MANIFEST_NAME,
    MIN_FRAMES_TO_HOLD_OUT,
    FaceSource,
    build_face_dataset,
    dataset_name,
    load_face_dataset,
    split_frames,
)
from reenact.faces.landmarks import DlibLandmarks
from reenact.sampling import FaceCounter
from reenact.workspace import Workspace
from tests.conftest import testdata_file


def test_held_out_frames_are_the_last_block_then_every_kth() -> None:
    frames = np.arange(100, 200)
    train, held = split_frames(frames, every=3, held_out_share=0.1)
    assert list(held) == list(range(190, 200, 3))
    assert list(train) == list(range(100, 190, 3))
    assert set(train).isdisjoint(held) and train.max() < held.min()


def test_short_tracks_and_photos_give_everything_to_training() -> None:
    frames = np.arange(MIN_FRAMES_TO_HOLD_OUT - 1)
    train, held = split_frames(frames, every=1, held_out_share=0.5)
    assert list(train) == list(frames) and len(held) == 0
    train, held = split_frames(np.array([0]), every=2, held_out_share=0.1)
    assert list(train) == [0] and len(held) == 0


def test_photos_become_aligned_crops_with_a_manifest(tmp_path: Path) -> None:
    """Two photos with three people and one photo of a dog: three FFHQ crops in which dlib finds a face
    again, the dog recorded as skipped, each file's licence and hash in the manifest."""
    people, dog = testdata_file("facerec_two_people.jpg"), testdata_file("lp_source_s25_png_as_jpg.jpg")
    obama = testdata_file("facerec_obama-1080p.jpg")
    sources = [
        FaceSource(path=people, licence="MIT", origin="two"),
        FaceSource(path=dog, licence="MIT", origin="dog"),
        FaceSource(path=obama, licence="MIT", origin="obama"),
    ]
    out = tmp_path / "data"
    manifest = build_face_dataset(
        sources,
        out_dir=out,
        workspace=Workspace(tmp_path / "work"),
        runtime=resolve_runtime("cpu"),
        resolutions=(64, 128),
    )
    assert json.loads((out / MANIFEST_NAME).read_text()) == manifest
    assert manifest["counts"] == {"64": {"train": 3, "held_out": 0}, "128": {"train": 3, "held_out": 0}}
    files = {entry["file"]: entry for entry in manifest["sources"]}
    assert files[dog.name]["skipped"] == "no face found" and files[dog.name]["people"] == []
    assert len(files[people.name]["people"]) == 2 and files[people.name]["licence"] == "MIT"
    assert len(files[obama.name]["sha256"]) == 64
    crops = load_face_dataset(out / dataset_name(128))
    assert crops.shape == (3, 128, 128, 3) and crops.dtype == np.uint8
    assert load_face_dataset(out / dataset_name(64), split="held_out").shape == (0, 64, 64, 3)
    detector = DlibLandmarks(upsample=1)
    assert all(len(detector.detect(crop)) == 1 for crop in crops)  # an aligned face fills the crop
    # The figure training logs: dlib finds every real 64 px face once upscaled, and none in noise.
    counter = FaceCounter()
    assert counter.rate(load_face_dataset(out / dataset_name(64))) == 1.0
    noise = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert counter.rate(noise) == 0.0


def test_load_face_dataset_refuses_what_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(ReenactError, match="not found"):
        load_face_dataset(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", train=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ReenactError, match="no 'held_out' split"):
        load_face_dataset(tmp_path / "other.npz", split="held_out")
    with pytest.raises(ReenactError, match="not uint8"):
        load_face_dataset(tmp_path / "other.npz")
