"""The ending's hand-over from render to paste-back: a bounded queue in memory (never more than its batches
wait), the crops taken where they were rendered (no host copy on the way to the torch paste-back), the
frames of the stored (disk) path bit for bit, and a failure on either side that stops both and leaves
no output and no renders."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reenact import composite_torch, pipeline, video
from reenact.device import resolve_runtime
from reenact.faces.track import FaceTrack
from reenact.generator_source import load_generator_spec
from reenact.stages import render
from reenact.stages.align import ClipAlignment
from reenact.stages.base import Work, run_stage
from reenact.stages.output import composite_frames
from reenact.stages.render import (
    Batches,
    CropBatch,
    RenderCancelled,
    RenderStage,
    RenderStream,
    main_share,
    render_batches,
)
from reenact.synthetic import SyntheticConfig, make_world, synthetic_settings, write_world
from reenact.workspace import Workspace
from tests.test_pipeline import fail_writes_after, record_written_frames

WAIT_S = 30.0
"""Longest wait for the other side of the queue: past it, the test calls it a hang."""
SETTLE_S = 0.3
"""Time given to a producer to run ahead of a consumer that takes nothing (it takes microseconds a batch)."""
CAPACITY = 2
BATCHES = 12
BATCH = 3
"""The stand-in render: `BATCHES` batches of `BATCH` crops, at most `CAPACITY` of them waiting."""
SMALL_BATCH = 3
"""Latents per generator call in the pipeline tests: the synthetic world's 8 frames make 3 batches."""
FAIL_AFTER_FRAMES = 3
"""Frames a failing encode writes before it fails."""
FRAME_SIDE = 48
"""The hand-off test's frames [48, 48, 3], with the 32 px crop in their middle."""


def numbered(count: int, *, size: int, made: list[int], closed: threading.Event | None = None) -> Batches:
    """A stand-in render, as fast as it goes: batch k's crops [n, 2, 2, 3] are all k; `made` gets each
    batch's start as it is handed over, `closed` is set when the render is stopped or ends."""
    try:
        for number, start in enumerate(range(0, count, size)):
            made.append(start)
            yield CropBatch(start, np.full((min(size, count - start), 2, 2, 3), number, dtype=np.uint8))
    finally:
        if closed is not None:
            closed.set()


def within(seconds: float, action: Callable[[], Any]) -> BaseException | None:
    """Run `action` in a thread; its error (None when it returned). A run past `seconds` fails the test."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a hang"
    return errors[0] if errors else None


def render_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("render")]


# ------------------------------------------------------------------------------------- the queue


def test_the_queue_holds_at_most_its_capacity_while_paste_back_lags() -> None:
    made: list[int] = []
    count = BATCHES * BATCH
    stream = RenderStream(lambda: numbered(count, size=BATCH, made=made), count=count, capacity=CAPACITY)
    with stream:
        deadline = time.monotonic() + WAIT_S
        while len(made) <= CAPACITY and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(SETTLE_S)  # an unbounded queue would have taken every batch by now
        assert len(made) == CAPACITY + 1, f"{len(made)} batches rendered ahead of paste-back"
        seen = [int(stream.crop(slot)[0, 0, 0]) for slot in range(count)]
    assert seen == [slot // BATCH for slot in range(count)]
    assert stream.peak == CAPACITY


def test_slots_are_read_in_order_and_a_cut_output_stops_the_render() -> None:
    """A slot asked for again (a frame past the alignment's end) is served; the rest of a cut output's
    latents are not rendered: leaving the block stops the render, which is no error."""
    made: list[int] = []
    closed = threading.Event()
    count = BATCHES * BATCH
    with RenderStream(
        lambda: numbered(count, size=BATCH, made=made, closed=closed), count=count, capacity=CAPACITY
    ) as stream:
        assert int(stream.crop(BATCH)[0, 0, 0]) == 1
        assert int(stream.crop(BATCH)[0, 0, 0]) == 1
        with pytest.raises(IndexError, match="internal error"):
            stream.crop(0)  # its batch is gone: paste-back reads in order
    assert closed.is_set() and not stream._thread.is_alive()
    assert len(made) <= 2 + CAPACITY + 1, made


# ------------------------------------------------------------------------------------- failures


def test_a_failed_render_is_paste_backs_error_and_the_thread_ends() -> None:
    made: list[int] = []

    def failing() -> Batches:
        yield from numbered(BATCH, size=BATCH, made=made)
        raise OSError(28, "No space left on device")

    def consume() -> None:
        with RenderStream(failing, count=BATCHES * BATCH, capacity=CAPACITY) as stream:
            for slot in range(len(stream)):
                stream.crop(slot)

    error = within(WAIT_S, consume)
    assert isinstance(error, OSError) and "No space" in str(error)
    assert not render_threads()


@pytest.mark.parametrize("blocked", [True, False], ids=["render-waiting", "render-working"])
def test_a_failed_paste_back_stops_the_render(blocked: bool) -> None:
    """Whether the render waits for room in the queue or is in the middle of a batch, a failing consumer
    stops it at its next batch; the failure is the consumer's own."""
    made: list[int] = []
    closed, working = threading.Event(), threading.Event()

    def slow() -> Batches:  # one batch, then a long one that ends when it sees the consumer gone
        try:
            yield CropBatch(0, np.zeros((BATCH, 2, 2, 3), dtype=np.uint8))
            working.set()
            closed.wait(SETTLE_S)
            while True:
                made.append(len(made))
                yield CropBatch(BATCH * len(made), np.zeros((BATCH, 2, 2, 3), dtype=np.uint8))
        finally:
            closed.set()

    def consume() -> None:
        produce = (
            (lambda: numbered(BATCHES * BATCH, size=BATCH, made=made, closed=closed)) if blocked else slow
        )
        with RenderStream(produce, count=BATCHES * BATCH, capacity=CAPACITY) as stream:
            stream.crop(0)
            if blocked:
                while len(made) <= CAPACITY + 1:
                    time.sleep(0.01)
            else:
                working.wait(WAIT_S)
            raise ValueError("the encoder failed")

    error = within(WAIT_S, consume)
    assert isinstance(error, ValueError), error
    assert closed.is_set() and not render_threads()
    assert len(made) < BATCHES, "the render went on after paste-back failed"


def test_render_cancelled_is_what_a_render_sees_once_paste_back_left() -> None:
    stream = RenderStream(lambda: numbered(1, size=1, made=[]), count=1)
    with stream:
        stream.crop(0)
    with pytest.raises(RenderCancelled):
        stream._put(CropBatch(1, np.zeros((1, 2, 2, 3), dtype=np.uint8)))


# ------------------------------------------------------------------------------------- on the device


def passing_alignment(frames: int, *, resolution: int) -> ClipAlignment:
    """Frames [48, 48, 3] whose crop is their middle `resolution` px, with no landmarks (ellipse masks)."""
    shift = (FRAME_SIDE - resolution) / 2
    matrix = np.array([[1.0, 0.0, -shift], [0.0, 1.0, -shift], [0.0, 0.0, 1.0]])  # [3, 3] frame -> crop
    track = FaceTrack(
        points=np.full((frames, 68, 2), np.nan),
        boxes=np.full((frames, 4), np.nan),
        scores=np.full(frames, np.nan),
        found=np.zeros(frames, dtype=bool),
        segments=[(0, frames)],
    )
    quads = np.zeros((frames, 4, 2))
    return ClipAlignment(
        track=track,
        quads_raw=quads,
        quads=quads,
        matrices=np.repeat(matrix[None], frames, 0),
        resolution=resolution,
    )


def test_crops_reach_the_torch_paste_back_as_rendered_without_a_host_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hand-off of a CUDA run, on the CPU: the render's tensors go through the queue and
    `composite_frames` to the torch paste-back as views of the batch the generator made, on its device,
    and nothing converts them to NumPy on the way."""
    runtime = resolve_runtime("cpu")
    generator = load_generator_spec("random:tiny", device="cpu").generator
    count = 2 * render.RENDER_BATCH + 1
    with torch.no_grad():
        z = torch.randn(count, generator.z_dim, generator=torch.Generator().manual_seed(0))  # [N, z_dim]
        latents = generator.mapping(z)  # [N, num_ws, w_dim]
    rendered: list[torch.Tensor] = []
    real_render = render.render_batch

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        rendered.append(real_render(*args, **kwargs))
        return rendered[-1]

    received: list[Any] = []

    def torch_paste_back(frame: np.ndarray, crop: Any, **kwargs: Any) -> np.ndarray:
        received.append((crop, str(kwargs["device"])))
        return frame

    def no_host_copy(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a rendered crop went to the host")

    monkeypatch.setattr(render, "render_batch", recording)
    monkeypatch.setattr(composite_torch, "composite_face_torch", torch_paste_back)
    monkeypatch.setattr(torch.Tensor, "numpy", no_host_copy)
    monkeypatch.setattr(torch.Tensor, "__array__", no_host_copy)
    frames = (
        video.Frame(
            image=np.zeros((FRAME_SIDE, FRAME_SIDE, 3), np.uint8),
            pts=index,
            time_base=Fraction(1, 25),
            index=index,
        )
        for index in range(count)
    )
    work = Work()
    with RenderStream(
        lambda: render_batches(generator, latents, stop=count, runtime=runtime, work=work), count=count
    ) as crops:
        outputs = list(
            composite_frames(
                frames,
                alignment=passing_alignment(count, resolution=generator.resolution),
                crops=crops,
                slots=np.arange(count),
                settings=synthetic_settings(),
                device="cuda",
            )
        )
    monkeypatch.undo()
    assert len(outputs) == len(received) == count and work.renders.forward == count
    for slot, (crop, device) in enumerate(received):
        batch = rendered[slot // render.RENDER_BATCH]  # [B, R, R, 3] uint8, as the generator left it
        assert isinstance(crop, torch.Tensor) and crop.device == runtime.device and device == "cuda"
        assert crop.untyped_storage().data_ptr() == batch.untyped_storage().data_ptr(), "a copy"
        assert torch.equal(crop, batch[slot % render.RENDER_BATCH])


# ------------------------------------------------------------------------------------- the pipeline


class Ending:
    """A synthetic transfer whose stages before the ending are cached: each call runs the ending alone."""

    def __init__(self, root: Path) -> None:
        self.files = write_world(make_world(SyntheticConfig(num_frames=8)), root / "world")
        self.root = root
        self.source = load_generator_spec("random:tiny", device="cpu")

    def transfer(self, output: str, *, workdir: str = "work") -> pipeline.RunReport:
        context = pipeline.make_context(
            workspace=Workspace(self.root / workdir),
            source=self.source,
            settings=synthetic_settings(),
            runtime=resolve_runtime("cpu"),
        )
        return pipeline.transfer(
            self.files.target_video,
            self.files.driver_video,
            self.root / output,
            context=context,
            target_landmarks=str(self.files.target_landmarks),
            driver_landmarks=str(self.files.driver_landmarks),
            overwrite=True,
        )


@pytest.fixture(scope="module")
def ending(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ending, list[np.ndarray], dict[str, Any]]:
    """The clean run (in batches of `SMALL_BATCH`): its written frames and its ending's arguments."""
    world = Ending(tmp_path_factory.mktemp("ending"))
    captured: dict[str, Any] = {}
    real = pipeline.render_and_encode

    def capturing(generator: Any, latents: Any, **kwargs: Any) -> pipeline.RunReport:
        captured.update(generator=generator, latents=latents, **kwargs)
        return real(generator, latents, **kwargs)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(render, "RENDER_BATCH", SMALL_BATCH)
        monkeypatch.setattr(pipeline, "render_and_encode", capturing)
        written = record_written_frames(monkeypatch)
        world.transfer("clean.mp4")
    return world, written, captured


def test_the_queue_gives_the_stored_paths_frames_bit_for_bit(ending, tmp_path: Path) -> None:
    """The frames written through the queue are those pasted back from the same crops stored losslessly
    in the workspace and read back (how the other ranks of a group hand theirs over)."""
    _, written, captured = ending
    assert len(written) == 8
    stage = RenderStage(
        captured["generator"],
        captured["latents"],
        generator_digest=captured["generator_digest"],
        runtime=resolve_runtime("cpu"),
        ranks=range(1),
    )
    store = run_stage(Workspace(tmp_path / "disk"), stage).result
    from_disk = [image for _, image, _ in captured["composite"](store)]
    assert len(from_disk) == len(written)
    for index, (queued, stored) in enumerate(zip(written, from_disk, strict=True)):
        assert np.array_equal(queued, stored), f"frame {index} differs from the stored path's"


def assert_nothing_left(world: Ending, output: str) -> None:
    assert not (world.root / output).exists(), "a failed run left an output that looks finished"
    assert not list(world.root.glob(f".{Path(output).stem}*")), "a failed run left its partial output"
    assert not (world.root / "work" / "render").exists(), "renders went to the workspace"
    assert not render_threads(), "the render thread outlived the run"


def test_a_failed_encode_stops_the_render_and_leaves_no_output(ending, monkeypatch) -> None:
    world, clean, _ = ending
    monkeypatch.setattr(render, "RENDER_BATCH", SMALL_BATCH)
    fail_writes_after(monkeypatch, FAIL_AFTER_FRAMES)
    error = within(WAIT_S, lambda: world.transfer("failed-encode.mp4"))
    assert isinstance(error, OSError) and "No space" in str(error), error
    assert_nothing_left(world, "failed-encode.mp4")
    monkeypatch.undo()
    again = record_written_frames(monkeypatch)
    report = world.transfer("after-encode.mp4")
    assert not {stage.name: stage.cached for stage in report.stages}["render"], "renders were stored"
    assert len(again) == len(clean) and all(np.array_equal(a, b) for a, b in zip(again, clean, strict=True))


def test_a_failed_render_stops_the_encode_and_leaves_no_output(ending, monkeypatch) -> None:
    world, _, _ = ending
    monkeypatch.setattr(render, "RENDER_BATCH", SMALL_BATCH)
    real_render = render.render_batch
    calls: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(render, "render_batch", failing)
    error = within(WAIT_S, lambda: world.transfer("failed-render.mp4"))
    assert isinstance(error, RuntimeError) and "out of memory" in str(error), error
    assert_nothing_left(world, "failed-render.mp4")


# ------------------------------------------------------------------------------------- a group's shares


@pytest.mark.parametrize(("count", "ranks"), [(1, 2), (8, 2), (100, 3), (1000, 8), (7, 1)])
def test_the_main_rank_renders_its_share_and_the_other_ranks_the_rest(count: int, ranks: int) -> None:
    share = main_share(count, ranks=ranks)
    assert 0 < share <= count and (ranks > 1 or share == count)
    if share == count:
        return
    generator = load_generator_spec("random:tiny", device="cpu").generator
    rest = render.latent_rows(
        torch.arange(count, dtype=torch.float32)[:, None, None].expand(-1, 1, 2), start=share
    )
    assert torch.equal(rest[0 : len(rest)][:, 0, 0], torch.arange(share, count, dtype=torch.float32))
    stage = RenderStage(
        generator, rest, generator_digest="g", runtime=resolve_runtime("cpu"), ranks=range(1, ranks)
    )
    owners = stage.owners
    assert owners == sorted(owners) and set(owners) == set(range(1, min(ranks, len(rest) + 1)))
    frames = [sum(len(frames) for frames, owner in zip(stage.ranges(), owners, strict=True) if owner == rank)
              for rank in range(1, ranks)]  # fmt: skip
    assert max(frames) <= share + render.RENDER_PART, (share, frames)
