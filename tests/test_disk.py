"""The workspace a long shot can afford: crops stored losslessly compressed and read back bit for bit in
any order, a budget of bytes per frame, and renders that never enter it in one process (an interrupted
encode renders them again, to the same frames); a group's stored renders leave once their encode
succeeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reenact import video
from reenact.files import ImageParts, ImageWriter, image_count, read_images
from reenact.synthetic import SyntheticConfig, make_world, synthetic_settings, write_world
from reenact.workspace import Workspace, stage_key

WORKSPACE_BUDGET_BYTES = 1.5 * 2**20
"""Workspace bytes per frame a 1024 px run may spend (issue 24): raw uint8 crops spend 6 MiB."""
CROPS_PER_FRAME = 2
"""Crops stored per output frame: the target's and the driver's."""
BUDGET_RESOLUTION = 1024
REAL_CLIP = "retalk_face2.mp4"
REAL_FRAMES = 6
"""Frames of the real clip cropped for the budget test."""
FACE_REGION = 0.8
"""Share of the real clip's (square) frame a crop covers, as an FFHQ crop around its face does."""
FAIL_AFTER_FRAMES = 3
"""Frames an interrupted encode writes before it fails."""


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory):
    return write_world(make_world(SyntheticConfig(num_frames=8)), tmp_path_factory.mktemp("world"))


def write_part(path: Path, images: np.ndarray) -> None:
    with ImageWriter(path, rows=len(images), image_shape=images.shape[1:], level=1) as out:
        for image in images:
            out.write(image)


def test_stored_images_read_back_bit_for_bit_in_any_order(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    noise = generator.integers(0, 256, size=(5, 16, 12, 3), dtype=np.uint8)  # incompressible
    smooth = np.broadcast_to(np.arange(16, dtype=np.uint8)[None, :, None, None], (4, 16, 12, 3)).copy()
    write_part(tmp_path / "crops-00000000-00000005.pngs", noise)
    write_part(tmp_path / "crops-00000005-00000009.pngs", smooth)
    table = ImageParts(tmp_path, prefix="crops-", suffix=".pngs")
    everything = np.concatenate([noise, smooth])  # [9, 16, 12, 3]
    assert len(table) == len(everything) and table.row_shape == (16, 12, 3)
    order = generator.permutation(len(everything))
    assert np.array_equal(table.read(order), everything[order])
    assert np.array_equal(read_images(table.files[1], 2), smooth[2])
    with pytest.raises(IndexError):
        table.read(np.array([len(everything)]))


def test_an_unfinished_image_part_is_refused(tmp_path: Path) -> None:
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    with (
        pytest.raises(ValueError, match="2 of 3"),
        ImageWriter(tmp_path / "short.pngs", rows=3, image_shape=(8, 8, 3), level=1) as out,
    ):
        out.write(images[:2])
    with pytest.raises(ValueError, match="not a complete"):
        image_count(tmp_path / "short.pngs")  # no footer: a writer that died leaves no readable part


def test_real_crops_at_1024_px_fit_the_budget_stored_as_the_crops_stage_stores_them(tmp_path: Path) -> None:
    from reenact.faces.align import warp_to_crop
    from reenact.stages.crops import CROP_PNG_LEVEL
    from tests.conftest import testdata_file

    reader = video.VideoReader(testdata_file(REAL_CLIP))
    images = [frame.image for frame, _ in zip(reader.frames(upright=True), range(REAL_FRAMES), strict=False)]
    height, width = images[0].shape[:2]
    side = FACE_REGION * min(height, width)
    scale = BUDGET_RESOLUTION / side
    matrix = np.array(
        [
            [scale, 0.0, -scale * (width - side) / 2],
            [0.0, scale, -scale * (height - side) / 2],
            [0.0, 0.0, 1.0],
        ]
    )  # [3, 3] frame -> crop
    crops = np.stack([warp_to_crop(image, matrix, BUDGET_RESOLUTION) for image in images])  # [n, R, R, 3]
    path = tmp_path / "crops.pngs"
    with ImageWriter(path, rows=len(crops), image_shape=crops.shape[1:], level=CROP_PNG_LEVEL) as out:
        out.write(crops)
    assert np.array_equal(read_images(path, np.arange(len(crops))), crops)
    per_frame = path.stat().st_size / len(crops) * CROPS_PER_FRAME
    assert per_frame < WORKSPACE_BUDGET_BYTES, per_frame / 2**20
    assert crops[0].nbytes * CROPS_PER_FRAME > WORKSPACE_BUDGET_BYTES  # raw storage would not fit


def test_renders_never_reach_the_workspace(world_files, tmp_path: Path) -> None:
    """One process hands its renders to paste-back in memory (`stages.render`): none is written, even
    for a moment."""
    from reenact import pipeline
    from reenact.device import resolve_runtime
    from reenact.generator_source import load_generator_spec
    from reenact.workspace_cache import entries

    context = pipeline.make_context(
        workspace=Workspace(tmp_path / "work"),
        source=load_generator_spec("random:tiny", device="cpu"),
        settings=synthetic_settings(),
        runtime=resolve_runtime("cpu"),
    )
    pipeline.transfer(
        world_files.target_video,
        world_files.driver_video,
        tmp_path / "out.mp4",
        context=context,
        target_landmarks=str(world_files.target_landmarks),
        driver_landmarks=str(world_files.driver_landmarks),
    )
    stages = {entry.stage for entry in entries(tmp_path / "work")}
    assert stages == {"people", "align", "crops", "keys", "invert", "tune"}, stages
    assert not (tmp_path / "work" / "render").exists(), "renders were written"


def test_an_interrupted_encode_leaves_no_renders_and_the_next_run_renders_the_same_frames(
    world_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reenact import pipeline
    from reenact.device import resolve_runtime
    from reenact.generator_source import load_generator_spec
    from reenact.workspace_cache import entries
    from tests.test_pipeline import fail_writes_after, record_written_frames

    def transfer(output: str) -> pipeline.RunReport:
        context = pipeline.make_context(
            workspace=Workspace(tmp_path / "work"),
            source=load_generator_spec("random:tiny", device="cpu"),
            settings=synthetic_settings(),
            runtime=resolve_runtime("cpu"),
        )
        return pipeline.transfer(
            world_files.target_video,
            world_files.driver_video,
            tmp_path / output,
            context=context,
            target_landmarks=str(world_files.target_landmarks),
            driver_landmarks=str(world_files.driver_landmarks),
            overwrite=True,
        )

    clean = record_written_frames(monkeypatch)
    transfer("clean.mp4")
    monkeypatch.undo()
    fail_writes_after(monkeypatch, FAIL_AFTER_FRAMES)
    with pytest.raises(OSError, match="No space"):
        transfer("out.mp4")
    monkeypatch.undo()
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".out*"))
    assert "render" not in {entry.stage for entry in entries(tmp_path / "work")}
    again = record_written_frames(monkeypatch)
    report = transfer("out.mp4")
    stages = {stage.name: stage.cached for stage in report.stages}
    assert not stages["render"] and all(
        cached for name, cached in stages.items() if name not in ("render", "encode")
    )
    assert len(again) == len(clean) and all(np.array_equal(a, b) for a, b in zip(again, clean, strict=True))


def test_a_result_another_process_uses_is_dropped_only_once_it_lets_go(tmp_path: Path) -> None:
    workspace, other = Workspace(tmp_path / "work"), Workspace(tmp_path / "work")  # another rank's
    key = stage_key("render", {"n": 1})
    with workspace.build(key) as directory:
        (directory / "values.txt").write_text("1")
    workspace.hold(key)
    other.hold(key)
    assert not workspace.drop(key) and workspace.done(key)
    other.release(key)
    assert workspace.drop(key) and not workspace.path(key).exists()
    assert not [path for path in (tmp_path / "work" / "render").iterdir() if path.is_dir()]
