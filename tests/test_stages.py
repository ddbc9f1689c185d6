"""The stage shape: parts, resume, cache; one artifact store for `align` and `transfer`; the chosen face
everywhere; one preset for every synthetic run; progress in logs."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reenact import video
from reenact.config import Config
from reenact.errors import ReenactError
from reenact.faces.landmarks import make_backend
from reenact.progress import SILENT
from reenact.renders import NONE, Renders
from reenact.stages.base import FrameRange, Need, StageJob, run_stage, run_stages, split_range
from reenact.synthetic import SyntheticConfig, make_world, measured_settings, synthetic_settings, write_world
from reenact.workspace import Workspace, stage_key
from reenact_cli.main import run
from reenact_cli.progress import LineProgress
from tests.conftest import testdata_file
from tests.test_pipeline import record_written_frames

# ------------------------------------------------------------------------------------- the runner


class SquaresStage:
    """A toy stage: the squares of 0..n-1, by parts; fails once at `fail_at` to show resuming."""

    name = "squares"

    def __init__(self, n: int, *, part: int, fail_at: int | None = None) -> None:
        self.n, self.part, self.fail_at = n, part, fail_at
        self.key = stage_key("squares", {"n": n})
        self.computed: list[FrameRange] = []

    def ranges(self) -> list[FrameRange]:
        return split_range(FrameRange(0, self.n), size=self.part)

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        if frames.start == self.fail_at:
            (part / "half.npy").write_text("half-written")
            raise KeyboardInterrupt
        self.computed.append(frames)
        np.save(part / "values.npy", np.arange(frames.start, frames.stop) ** 2)
        return NONE

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        values = np.concatenate([np.load(part / "values.npy") for part in parts])
        np.save(directory / "values.npy", values)
        return {"total": int(values.sum())}

    def load(self, directory: Path) -> np.ndarray:
        return np.load(directory / "values.npy")


def test_stage_resumes_at_the_first_missing_part_and_is_cached_after(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    interrupted = SquaresStage(10, part=3, fail_at=6)
    with pytest.raises(KeyboardInterrupt):
        run_stage(workspace, interrupted)
    assert interrupted.computed == [FrameRange(0, 3), FrameRange(3, 6)]
    assert not workspace.done(interrupted.key)

    again = SquaresStage(10, part=3)
    outcome = run_stage(workspace, again)
    assert again.computed == [FrameRange(6, 9), FrameRange(9, 10)], "finished parts are not redone"
    assert (outcome.resumed, outcome.computed, outcome.cached) == (2, 2, False)
    np.testing.assert_array_equal(outcome.result, np.arange(10) ** 2)
    assert workspace.manifest(again.key)["summary"] == {"total": int((np.arange(10) ** 2).sum())}

    third = SquaresStage(10, part=3)
    cached = run_stage(workspace, third)
    assert cached.cached and third.computed == []
    np.testing.assert_array_equal(cached.result, outcome.result)


class SumsStage:
    """A toy stage that needs another's result (the squares) and sums them: a stage with a need."""

    name = "sums"

    def __init__(self, squares: SquaresStage, *, tag: str = "") -> None:
        self.squares = Need[np.ndarray](StageJob(squares, name="squares", detail=str))
        self.needs = [self.squares]
        self.key = stage_key("sums", {"squares": squares.key.digest, "tag": tag})

    def ranges(self) -> list[FrameRange]:
        return [FrameRange(0, 1)]

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        np.save(part / "sum.npy", np.array([self.squares.get().sum()]))
        return NONE

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        np.save(directory / "sum.npy", np.load(parts[0] / "sum.npy"))
        return {}

    def load(self, directory: Path) -> int:
        return int(np.load(directory / "sum.npy")[0])


def test_the_runner_resolves_a_stages_needs_only_when_it_computes(tmp_path: Path) -> None:
    """A need is run (once for two stages that share it) before the stages that compute, and reported
    with the first; a cached stage never runs its need, and a stage never runs one itself."""
    workspace = Workspace(tmp_path)
    squares = SquaresStage(6, part=4)
    first, second = SumsStage(squares, tag="a"), SumsStage(squares, tag="b")
    outcomes = run_stages(workspace, [first, second])
    assert [outcome.result for outcome in outcomes] == [55, 55]
    assert squares.computed == [FrameRange(0, 4), FrameRange(4, 6)], "the shared need is computed once"
    assert [len(outcome.needs) for outcome in outcomes] == [1, 0]
    need, need_run = outcomes[0].needs[0]
    assert need is first.squares and not need_run.cached

    fresh = SquaresStage(6, part=4)
    cached = SumsStage(fresh, tag="a")
    (outcome,) = run_stages(workspace, [cached])
    assert outcome.cached and not cached.squares.resolved and fresh.computed == []
    with pytest.raises(ReenactError, match="not resolved"):
        cached.squares.get()


# ------------------------------------------------------------------------------------- synthetic runs


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory):
    return write_world(make_world(SyntheticConfig(num_frames=8)), tmp_path_factory.mktemp("world"))


def test_transfer_reuses_what_align_computed(world_files, tmp_path: Path, capsys) -> None:
    workdir = str(tmp_path / "work")
    target, landmarks = str(world_files.target_video), str(world_files.target_landmarks)
    assert run(["align", target, "--landmarks", landmarks, "--workdir", workdir, "--json"]) == 0
    capsys.readouterr()
    args = [
        "transfer", target, str(world_files.driver_video), "-o", str(tmp_path / "out.mp4"),
        "--generator", "random:tiny", "--target-landmarks", landmarks,
        "--driver-landmarks", str(world_files.driver_landmarks), "--workdir", workdir, "--json",
    ]  # fmt: skip
    assert run(args) == 0
    captured = capsys.readouterr()
    stages = {stage["name"]: stage["cached"] for stage in json.loads(captured.out)["stages"]}
    assert stages["tar-align"] is True and stages["dri-align"] is False, stages
    line = next(line for line in captured.err.splitlines() if line.startswith("tar-align"))
    assert "cached" in line


def test_random_generator_and_demo_run_with_the_one_synthetic_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reenact import demo, pipeline
    from reenact.device import resolve_runtime
    from reenact_cli.common import RunOptions
    from reenact_cli.pipeline_cmds import make_context

    seen: list[Config] = []

    class Stop(Exception):
        pass

    def capture(*args: object, context: pipeline.RunContext, **kwargs: object) -> None:
        seen.append(context.settings)
        raise Stop

    monkeypatch.setattr(demo.pipeline, "transfer", capture)
    with pytest.raises(Stop):
        demo.run_demo(tmp_path / "demo", runtime=resolve_runtime("cpu"), num_frames=4, world_name="random")
    options = RunOptions(generator="random:tiny", device="cpu", workdir=tmp_path / "w", quiet=True)
    implicit = make_context(options)
    explicit = make_context(dataclasses.replace(options, preset="synthetic"))
    assert implicit.settings == explicit.settings == synthetic_settings()
    assert seen[0] == measured_settings(), "the demo measures a 4:4:4 output"
    assert seen[0].video.pix_fmt != synthetic_settings().video.pix_fmt == "yuv420p", "random:* plays anywhere"
    assert synthetic_settings() != Config(), "the preset changes settings"


# ------------------------------------------------------------------------------------- face choice

TWO_PEOPLE = "facerec_two_people.jpg"
BOX_MARGIN = 0.75
"""The paste mask (face, forehead, feathered edge) may reach this many face sizes past the detector's box."""


def faces_by_size(image: np.ndarray) -> list[np.ndarray]:
    """The face boxes (x0, y0, x1, y1) the pipeline's default detector finds in an image, largest first."""
    detections = make_backend(Config().faces).detect(image)
    return [d.box for d in sorted(detections, key=lambda d: d.size, reverse=True)]


def changed_box(frames: list[np.ndarray], original: np.ndarray) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of every pixel any frame changed."""
    changed = np.zeros(original.shape[:2], dtype=bool)
    for frame in frames:
        changed |= (frame != original).any(axis=2)
    assert changed.any(), "nothing was pasted"
    ys, xs = np.nonzero(changed)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def inside(box: np.ndarray, outer: np.ndarray, *, margin: float) -> bool:
    size = max(outer[2] - outer[0], outer[3] - outer[1])
    grown = outer + np.array([-1, -1, 1, 1]) * margin * size
    return bool((box[:2] >= grown[:2]).all() and (box[2:] <= grown[2:]).all())


def overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def _transfer_written(
    target: Path, driver: Path, tmp_path: Path, capsys, monkeypatch, *face: str
) -> list[np.ndarray]:
    written = record_written_frames(monkeypatch)
    output = tmp_path / f"out{len(list(tmp_path.glob('out*')))}.mp4"
    args = ["transfer", str(target), str(driver), "-o", str(output), "--generator", "random:tiny"]
    code = run([*args, *face, "--workdir", str(tmp_path / "work"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    monkeypatch.undo()
    return written


def test_face_index_and_face_at_choose_the_face_that_is_reenacted(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = testdata_file(TWO_PEOPLE)
    image = next(iter(video.VideoReader(photo).frames(upright=True))).image
    largest, second = faces_by_size(image)[:2]
    driver = photo  # a still driver: one output frame, the photo with the chosen face re-rendered

    default = changed_box(_transfer_written(photo, driver, tmp_path, capsys, monkeypatch), image)
    assert inside(default, largest, margin=BOX_MARGIN) and not overlaps(default, second)

    by_index = _transfer_written(photo, driver, tmp_path, capsys, monkeypatch, "--face-index", "1")
    box = changed_box(by_index, image)
    assert inside(box, second, margin=BOX_MARGIN), (box, second)
    assert not overlaps(box, largest), "the largest face was touched"

    centre = (second[:2] + second[2:]) / 2
    at = f"{centre[0]:.0f},{centre[1]:.0f}"
    by_point = _transfer_written(photo, driver, tmp_path, capsys, monkeypatch, "--face-at", at)
    assert all(np.array_equal(a, b) for a, b in zip(by_point, by_index, strict=True))


GHOST_FRAMES = 6


def test_face_index_on_a_clip_with_two_people(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = testdata_file("ghost_2person.mp4")
    reader = video.VideoReader(source)
    clip = tmp_path / "two.mp4"
    with video.VideoWriter(clip, like=reader.info, config=Config().video, upright_frames=True) as writer:
        for frame in reader.frames(upright=True):
            if frame.index >= GHOST_FRAMES:
                break
            writer.write(frame.image, pts=frame.pts)
    frames = [frame.image for frame in video.VideoReader(clip).frames(upright=True)]
    faces = faces_by_size(frames[0])
    assert len(faces) >= 2, "the test clip shows two people"
    written = _transfer_written(clip, clip, tmp_path, capsys, monkeypatch, "--face-index", "1")
    assert len(written) == GHOST_FRAMES
    changed = np.zeros(frames[0].shape[:2], dtype=bool)
    for out, original in zip(written, frames, strict=True):
        changed |= (out != original).any(axis=2)
    ys, xs = np.nonzero(changed)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
    assert inside(box, faces[1], margin=BOX_MARGIN), (box, faces[1])
    assert not overlaps(box, faces[0]), "the largest face was touched"


# ------------------------------------------------------------------------------------- progress


def test_log_progress_is_one_line_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(t) for t in range(10_000))
    monkeypatch.setattr("reenact_cli.progress.time.monotonic", lambda: next(clock))
    stream = io.StringIO()
    progress = LineProgress(stream, interval=100.0)
    with progress.task("invert", total=1000, unit="frame") as task:
        for _ in range(1000):
            task.advance()  # one clock second per step
    progress.note("tar-invert   12.0 s  mean PSNR 40 dB")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1000 // 100 + 1, lines
    assert lines[0].startswith("  invert 100/1000 frames") and lines[-1].startswith("tar-invert")
    assert SILENT.task("x", total=1, unit="frame").advance() is None


# ------------------------------------------------------------------------------------- edit and morph

MIN_EDIT_CHANGE = 2.0
"""Mean absolute change (levels) in the pasted face that a strong direction must make."""


def test_edit_moves_the_face_along_a_direction_and_reuses_the_clip(
    world_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from reenact import pipeline
    from reenact.device import resolve_runtime
    from reenact.directions import Direction
    from reenact.generator_source import load_generator_spec

    runtime = resolve_runtime("cpu")
    workspace = Workspace(tmp_path / "work")
    context = pipeline.make_context(
        workspace=workspace,
        source=load_generator_spec("random:tiny", device=runtime.device),
        settings=synthetic_settings(),
        runtime=runtime,
    )
    w_dim = context.source.generator.w_dim
    direction = Direction(name="test", vector=torch.ones(1, w_dim), source_format="memory")
    outputs = {}
    reports = {}
    for strength in (0.0, 2.0):
        written = record_written_frames(monkeypatch)
        reports[strength] = pipeline.edit_video(
            world_files.target_video,
            tmp_path / f"edit{strength}.mp4",
            directions=[(direction, strength)],
            context=context,
            landmarks=str(world_files.target_landmarks),
        )
        monkeypatch.undo()
        outputs[strength] = np.stack(written).astype(np.int16)
    change = np.abs(outputs[2.0] - outputs[0.0])  # [T, H, W, 3]
    moved = change.any(axis=(0, 3))
    assert change[:, moved].mean() > MIN_EDIT_CHANGE, "the direction moved nothing"
    assert moved.mean() < 1 / 2, "the edit reached far outside the face"
    again = {stage.name: stage.cached for stage in reports[2.0].stages}
    assert again == {
        "inp-people": True,
        "inp-align": True,
        "inp-invert": True,
        "inp-tune": True,
        "render": False,
        "encode": False,
    }


def test_morph_length_comes_from_the_settings(tmp_path: Path, capsys) -> None:
    from reenact.config import EditConfig

    first, second = testdata_file("facerec_obama-1080p.jpg"), testdata_file("imageio_astronaut.png")
    common = ["--generator", "random:tiny", "--workdir", str(tmp_path / "work"), "--quiet"]
    assert run(["morph", str(first), str(second), "-o", str(tmp_path / "a.mp4"), *common]) == 0
    assert (
        run(["morph", str(first), str(second), "-o", str(tmp_path / "b.mp4"), "--frames", "5", *common]) == 0
    )
    capsys.readouterr()
    assert video.probe(tmp_path / "a.mp4").frame_count == EditConfig().morph_frames
    frames = [frame.image.astype(np.int16) for frame in video.VideoReader(tmp_path / "b.mp4").frames()]
    assert len(frames) == 5
    assert np.abs(frames[0] - frames[-1]).mean() > MIN_EDIT_CHANGE, "the morph ends where it starts"
