"""No stage holds the clip: a transfer's peak memory does not grow with the clip's length.

The synthetic world at 100 and at 400 frames, transferred with a 256 px random generator and every step
count cut to one, so only the data path counts. A whole-clip buffer of float crops anywhere (decoded,
warped, on the device) costs about 0.8 MB per frame at 256 px, 240 MB between the two runs; streaming
keeps the difference within the runs' own noise.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from reenact.synthetic import SyntheticConfig, make_world, write_world
from tests.proctools import peak_bytes, start

SHORT_FRAMES, LONG_FRAMES = 100, 400
GENERATOR = "random:tiny-256"
MINIMAL_STEPS = (
    "invert.first_steps=1",
    "invert.warm_steps=1",
    "pti.base_steps=1",
    "pti.max_steps=1",
)
MAX_GROWTH_BYTES = 128 << 20
"""Allowed peak growth from the short to the long clip. A whole-clip buffer of float crops adds ~240 MB;
two runs of one length differ by up to ~100 MB (allocator reuse, and how the background render and
paste-back interleave), so a tighter bound would fail at random. Whole-table reads of the stored and
computed tables, and whole-table writes of latents, are caught exactly by
`test_no_stage_reads_or_writes_a_whole_table`."""
RUN_TIMEOUT_S = 600
TABLE_FRAMES = 600
"""Longer than two latent batches and than `MAX_ROWS_PER_READ`, so that a read of the whole clip, or of
two batches at once, shows."""
MAX_ROWS_PER_READ = 300
"""A batch (`reenact.latents.LATENT_BATCH`, 256 rows) and the smoothing kernel's reach on both sides."""


def transfer_peak(frames: int, root: Path) -> int:
    files = write_world(make_world(SyntheticConfig(num_frames=frames)), root / f"world{frames}")
    args = [
        "transfer", str(files.target_video), str(files.driver_video), "-o", str(root / f"out{frames}.mp4"),
        "--generator", GENERATOR, "--target-landmarks", str(files.target_landmarks),
        "--driver-landmarks", str(files.driver_landmarks), "--workdir", str(root / f"work{frames}"),
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    for setting in MINIMAL_STEPS:
        args += ["--set", setting]
    peak_file = root / f"peak{frames}"
    # the generator's construction (the random one calibrates on a batch of renders) is the same at any
    # length and would hide the data path's growth under its own peak: count from the context on
    process = start(args, peak_file=peak_file, reset_after_context=True)
    _, err = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, err
    return peak_bytes(peak_file)


@pytest.mark.slow  # two whole transfers, of 100 and of 400 frames
def test_peak_memory_does_not_grow_with_the_clip(tmp_path: Path) -> None:
    short, long = (transfer_peak(frames, tmp_path) for frames in (SHORT_FRAMES, LONG_FRAMES))
    growth = long - short
    assert growth < MAX_GROWTH_BYTES, (
        f"peak {short / 2**20:.0f} MB at {SHORT_FRAMES} frames, {long / 2**20:.0f} MB at {LONG_FRAMES}: "
        f"+{growth / 2**20:.0f} MB"
    )


def test_each_input_is_probed_once_and_decoded_once_per_stage_that_needs_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long file's packets are read once per run; its pixels once by each stage that needs them
    (target: people's detection and their description frames, crops, paste-back; driver: the people's
    two, crops)."""
    from reenact import video
    from reenact_cli.main import run

    files = write_world(make_world(SyntheticConfig(num_frames=8)), tmp_path / "world")
    probes: Counter[str] = Counter()
    decodes: Counter[str] = Counter()
    packet_times, frames = video._packet_times, video.VideoReader.frames

    def counted_packet_times(container, stream):
        probes[Path(container.name).name] += 1
        return packet_times(container, stream)

    def counted_frames(self, **kwargs):
        decodes[self.path.name] += 1
        return frames(self, **kwargs)

    monkeypatch.setattr(video, "_packet_times", counted_packet_times)
    monkeypatch.setattr(video.VideoReader, "frames", counted_frames)
    args = [
        "transfer", str(files.target_video), str(files.driver_video), "-o", str(tmp_path / "out.mp4"),
        "--generator", "random:tiny", "--target-landmarks", str(files.target_landmarks),
        "--driver-landmarks", str(files.driver_landmarks), "--workdir", str(tmp_path / "work"), "--quiet",
    ]  # fmt: skip
    assert run(args) == 0
    target, driver = files.target_video.name, files.driver_video.name
    assert probes[target] == probes[driver] == 1, probes
    assert (decodes[target], decodes[driver]) == (4, 3), decodes


def test_batches_become_float32_on_their_device() -> None:
    from reenact.device import to_device

    batch = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    moved = to_device(batch, torch.device("cpu"))
    assert moved.dtype == torch.float32 and torch.equal(moved, batch.float())


@pytest.mark.gpu
def test_batches_reach_the_gpu_through_pinned_memory() -> None:
    from reenact.device import to_device

    batch = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    moved = to_device(batch, torch.device("cuda"))
    torch.cuda.synchronize()
    assert moved.device.type == "cuda" and moved.dtype == torch.float32
    assert torch.equal(moved.cpu(), batch.float())


def test_no_stage_reads_or_writes_a_whole_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored tables (crops, pivots, rendered crops) and computed latents (offsets, transferred latents)
    are read a batch at a time, and latent tables written as the inversion finishes their rows (key
    chains: a run of the inversion; pivots: a segment, once registered to the key chain): on a clip far
    longer than any batch or segment, no read or write asks for the clip."""
    import numpy as np

    from reenact.config import InvertConfig
    from reenact.files import ImageParts, RowParts, RowWriter
    from reenact.latents import ComputedLatents
    from reenact_cli.main import run

    files = write_world(make_world(SyntheticConfig(num_frames=TABLE_FRAMES)), tmp_path / "world")
    largest: Counter[str] = Counter()
    read, read_images, compute = RowParts.read, ImageParts.read, ComputedLatents.__getitem__
    save, write = np.save, RowWriter.write

    def counted_read(self, rows):
        largest["stored"] = max(largest["stored"], len(rows))
        return read(self, rows)

    def counted_read_images(self, rows):
        largest["images"] = max(largest["images"], len(rows))
        return read_images(self, rows)

    def counted_compute(self, index):
        out = compute(self, index)
        largest["computed"] = max(largest["computed"], len(out))
        return out

    def counted_save(file, array, **kwargs):
        if np.ndim(array) == 3 and np.shape(array)[1:] != (68, 2):  # a latent table, not the track's points
            largest["written"] = max(largest["written"], len(array))
        return save(file, array, **kwargs)

    def counted_write(self, block):
        largest["written"] = max(largest["written"], len(block) if np.ndim(block) == 3 else 1)
        return write(self, block)

    monkeypatch.setattr(RowParts, "read", counted_read)
    monkeypatch.setattr(ImageParts, "read", counted_read_images)
    monkeypatch.setattr(ComputedLatents, "__getitem__", counted_compute)
    monkeypatch.setattr(np, "save", counted_save)
    monkeypatch.setattr(RowWriter, "write", counted_write)
    args = [
        "transfer", str(files.target_video), str(files.driver_video), "-o", str(tmp_path / "out.mp4"),
        "--generator", "random:tiny", "--target-landmarks", str(files.target_landmarks),
        "--driver-landmarks", str(files.driver_landmarks), "--workdir", str(tmp_path / "work"), "--quiet",
    ]  # fmt: skip
    for setting in MINIMAL_STEPS:
        args += ["--set", setting]
    assert run(args) == 0
    assert set(largest) == {"stored", "images", "computed", "written"}, "the transfer read no table"
    assert max(largest["stored"], largest["images"], largest["computed"]) <= MAX_ROWS_PER_READ, largest
    assert InvertConfig().segment_frames < TABLE_FRAMES, "the clip must be longer than a segment"
    assert largest["written"] <= InvertConfig().segment_frames, largest  # one registered segment


def test_the_alignment_lets_its_landmark_backend_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar's backend holds the whole file's points (1 KiB a frame): once the clip is aligned it goes,
    though the stage stays referenced while the clip is inverted and tuned."""
    import gc
    import weakref

    from reenact.config import Config
    from reenact.device import resolve_runtime
    from reenact.pipeline import RunContext, align_clip
    from reenact.stages import align
    from reenact.workspace import Workspace

    files = write_world(make_world(SyntheticConfig(num_frames=8)), tmp_path / "world")
    backends: list[weakref.ref[object]] = []
    make_backend = align.make_backend

    def recorded_backend(*args, **kwargs):
        backend = make_backend(*args, **kwargs)
        backends.append(weakref.ref(backend))
        return backend

    monkeypatch.setattr(align, "make_backend", recorded_backend)
    context = RunContext(
        workspace=Workspace(tmp_path / "work"), settings=Config(), runtime=resolve_runtime("cpu")
    )
    alignment, stage = align_clip(
        files.target_video, context=context, resolution=64, landmarks=str(files.target_landmarks)
    )
    gc.collect()
    assert alignment.num_frames == 8 and stage.key is not None
    assert len(backends) == 1 and backends[0]() is None, "the aligned clip's stage still holds its backend"
