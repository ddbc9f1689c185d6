"""`--start/--duration`: TIME parsing, the window of a clip, and the slice a command writes (frames,
timestamps and audio exact on a real clip)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from reenact import metrics, timeline, video
from reenact.demo import decode
from reenact.errors import UsageError
from reenact.faces.align import warp_to_frame
from reenact.stages import align as align_stage
from reenact.stages.invert import Pivots
from reenact_cli.main import run
from tests.conftest import testdata_file
from tests.test_pipeline import World, _make_world, _transfer, record_written_frames
from tests.videotools import frame_times, psnr

MIN_SLICE_PSNR_DB = 40.0
"""What a re-encode keeps of every frame (tests/test_video.py's bar)."""
AUDIO_CLIP = "retalk_face2.mp4"
"""25 fps, 125 frames, AAC 44.1 kHz whose packets do not line up with the frames."""
VFR_CLIP = "retalk_face1_vfr.mp4"
TEST_PART_FRAMES = 4
"""Alignment parts of 4 frames, so the synthetic clip (16 frames) has several and a slice covers some."""


# ------------------------------------------------------------------------------------------ TIME


@pytest.mark.parametrize(
    ("text", "value", "in_frames"),
    [
        ("12.5", Fraction(25, 2), False),
        ("0", Fraction(0), False),
        ("1:02.5", Fraction(125, 2), False),
        ("00:01:02.500", Fraction(125, 2), False),
        ("1:00:00", Fraction(3600), False),
        ("150f", Fraction(150), True),
        (" 7F ", Fraction(7), True),
    ],
)
def test_parse_time_accepts_the_documented_formats(text: str, value: Fraction, in_frames: bool) -> None:
    parsed = timeline.parse_time(text, option="--start")
    assert (parsed.value, parsed.in_frames) == (value, in_frames)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not a time"),
        ("abc", "not a time"),
        ("-1", "negative"),
        ("1.5f", "not a time"),
        ("1:2:3:4", "not a time"),
        ("1:75", "below 60"),
        ("1:75:00", "below 60"),
        ("1e3", "not a time"),
        ("f", "not a time"),
    ],
)
def test_parse_time_refuses_what_is_not_a_time(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        timeline.parse_time(text, option="--start")


def test_an_empty_duration_is_refused() -> None:
    with pytest.raises(UsageError, match="longer than 0"):
        timeline.parse_slice("1", "0")
    with pytest.raises(UsageError, match="longer than 0"):
        timeline.parse_slice(None, "0f")
    assert timeline.parse_slice(None, None) is None


def _window(start: str | None, duration: str | None) -> timeline.Window:
    """A clip of 10 frames, every 40 ms (pts in 1/1000 s, starting at 200), ending at 600."""
    request = timeline.parse_slice(start, duration)
    assert request is not None
    pts = list(range(200, 600, 40))
    return timeline.resolve_window(request, pts=pts, end_pts=600, time_base=Fraction(1, 1000), name="c.mp4")


def test_a_window_holds_the_frames_shown_in_start_to_start_plus_duration() -> None:
    # time 0 is the first frame (pts 200); [0.08, 0.2) holds the frames at 80, 120, 160 ms
    window = _window("0.08", "0.12")
    assert (window.first, window.stop, window.start_pts, window.stop_pts) == (2, 5, 280, 400)
    assert (_window("0.081", "0.12").first, _window("0.081", "0.12").stop) == (3, 6)  # a frame starts after
    assert (_window("2f", "3f").first, _window("2f", "3f").stop) == (2, 5)
    assert (_window("2f", None).first, _window("2f", None).stop, _window("2f", None).stop_pts) == (2, 10, 600)
    assert (_window(None, "0.04").first, _window(None, "0.04").stop) == (0, 1)
    assert _window("0.3", "99").stop == 10  # a duration past the end stops at the end


@pytest.mark.parametrize(
    ("start", "duration", "says"),
    [
        ("0.4", None, r"--start 0.4 is past the end of c.mp4 \(0:00.4, 10 frames\)"),
        ("10f", None, "past the end"),
        ("0:02:00", "1", "past the end"),
        ("0.01", "0.02", "holds no frame"),
    ],
)
def test_a_window_outside_the_clip_is_a_usage_error(start: str, duration: str | None, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        _window(start, duration)


def test_cli_exits_2_for_a_bad_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = testdata_file(AUDIO_CLIP)
    for args in (["--start", "soon"], ["--start", "0:10:00"], ["--duration", "0"]):
        code = run(["reencode", str(source), "-o", str(tmp_path / "out.mp4"), *args])
        assert code == 2, args
    assert (
        "--start 0:10:00 is past the end of retalk_face2.mp4 (0:05.0, 125 frames)" in capsys.readouterr().err
    )
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------------------ real clips


def _audio_packets(path: Path) -> list[tuple[int, bytes]]:
    """(pts, payload) of every audio packet, straight from the container."""
    with av.open(str(path)) as container:
        return [
            (packet.pts, bytes(packet))
            for packet in container.demux(container.streams.audio[0])
            if packet.size
        ]


def _slice_audio(source: Path, *, start_s: Fraction, stop_s: Fraction) -> list[tuple[int, bytes]]:
    """What a slice's audio must be: the source's packets that start in [start_s, stop_s), byte for byte,
    their pts moved back by start_s (in audio ticks)."""
    with av.open(str(source)) as container:
        rate = container.streams.audio[0].time_base
    shift = round(start_s / rate)
    return [(pts - shift, data) for pts, data in _audio_packets(source) if start_s <= pts * rate < stop_s]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])]


def test_reencode_a_slice_keeps_its_frames_timestamps_and_audio_exactly(tmp_path: Path) -> None:
    source = testdata_file(AUDIO_CLIP)
    output = tmp_path / "slice.mp4"
    assert run(["reencode", str(source), "-o", str(output), "--start", "1", "--duration", "2", "-q"]) == 0

    times = frame_times(source)
    shown = [time - times[0] for time in times]
    inside = [index for index, time in enumerate(shown) if 1 <= time < 3]
    first = inside[0]
    assert len(inside) == 50  # 25 fps x 2 s
    out_times = frame_times(output)
    assert out_times == [times[index] - times[first] for index in inside]  # exact, and from 0

    source_frames, out_frames = _frames(source), _frames(output)
    matched = [psnr(out_frames[k], source_frames[first + k]) for k in range(len(inside))]
    early = [psnr(out_frames[k], source_frames[first + k - 1]) for k in range(len(inside))]
    late = [psnr(out_frames[k], source_frames[first + k + 1]) for k in range(len(inside))]
    assert min(matched) >= MIN_SLICE_PSNR_DB
    assert np.mean(matched) > max(np.mean(early), np.mean(late)) + 1.0  # the right frames, not a neighbour

    expected = _slice_audio(source, start_s=times[first], stop_s=times[inside[-1] + 1])
    assert _audio_packets(output) == expected  # byte-equal, the packets that start inside, shifted exactly
    assert len(expected) == 86

    window = video.slice_window(source, timeline.parse_slice("1", "2"))
    length, pairs = metrics.paired_frames(output, source, window=window)  # `evaluate --start 1 --duration 2`
    assert length == 50
    assert min(psnr(out, ref) for out, ref in pairs) >= MIN_SLICE_PSNR_DB


def test_reencode_a_vfr_slice_by_frames_keeps_each_frames_duration(tmp_path: Path) -> None:
    source = testdata_file(VFR_CLIP)
    output = tmp_path / "slice.mp4"
    assert run(["reencode", str(source), "-o", str(output), "--start", "31f", "--duration", "40f", "-q"]) == 0
    times = frame_times(source)
    assert frame_times(output) == [time - times[31] for time in times[31:71]]
    assert video.probe(output).vfr


# ------------------------------------------------------------------------------------------ the pipeline


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _make_world(tmp_path_factory.mktemp("slice-world"))


def _align(world: World, workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    args = [str(world.files.target_video), "--landmarks", str(world.files.target_landmarks)]
    args += ["--preset", "synthetic", "--workdir", str(workdir), "--json", "--quiet", *extra]
    assert run(["align", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_sliced_transfer_writes_the_slice_and_a_full_alignment_reuses_its_detection(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(align_stage, "ALIGN_PART_FRAMES", TEST_PART_FRAMES)
    written = record_written_frames(monkeypatch)
    workdir, output, target = world.root / "slice-work", world.root / "slice.mp4", world.files.target_video
    summary = _transfer(world, capsys, output, "--start", "0.16", "--duration", "0.32", workdir=workdir)

    first, stop = 4, 12  # 25 fps: the frames shown in [0.16, 0.48) s
    assert summary["frames"] == stop - first and summary["slice"] == "frames 4-11 (0.160-0.480 s)"
    times = frame_times(target)
    assert frame_times(output) == [time - times[first] for time in times[first:stop]]
    assert _audio_packets(output) == _slice_audio(target, start_s=times[first], stop_s=times[stop])
    assert _audio_packets(output)  # the world's clip has sound, and the slice some of it
    clip, resolution = world.files.world.target, world.files.world.config.resolution
    source_frames = decode(target)
    assert len(written) == stop - first
    for offset, image in enumerate(written):  # the background is the slice's own frame, not a neighbour
        index = first + offset
        square = warp_to_frame(
            np.ones((resolution, resolution), np.float32), clip.matrices[index], image.shape
        )
        outside = square == 0
        assert np.array_equal(image[outside], source_frames[index][outside]), f"slice frame {offset}"

    whole = _align(world, workdir, capsys)  # parts [4, 8) and [8, 12) were detected by the slice
    assert (whole["cached"], whole["resumed_parts"], whole["computed_parts"]) == (False, 2, 2)
    assert whole["frames"] == len(times)
    again = _align(world, workdir, capsys, "--start", "4f", "--duration", "8f")  # the slice's own result
    assert again["cached"] and again["frames"] == stop - first

    sliced = [
        str(target),
        "--generator",
        str(world.generator),
        "--landmarks",
        str(world.files.target_landmarks),
    ]
    sliced += ["--preset", "synthetic", "--workdir", str(workdir), "--json", "--quiet", "--start", "4f"]
    assert run(["invert", *sliced, "--duration", "8f"]) == 0  # the same slice: the transfer's pivots
    inverted = json.loads(capsys.readouterr().out)
    assert all(stage["cached"] for stage in inverted["stages"]), inverted["stages"]
    location = next(stage["location"] for stage in inverted["stages"] if stage["name"] == "inp-invert")
    assert len(Pivots.load(Path(location)).frames) == stop - first


def test_sliced_edit_writes_the_slice_from_time_zero(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from reenact import pipeline
    from reenact.device import resolve_runtime
    from reenact.directions import Direction
    from reenact.generator_source import load_generator_spec
    from reenact.synthetic import synthetic_settings
    from reenact.workspace import Workspace

    runtime = resolve_runtime("cpu")
    context = pipeline.make_context(
        workspace=Workspace(world.root / "edit-work"),
        source=load_generator_spec(str(world.generator), device=runtime.device),
        settings=synthetic_settings(),
        runtime=runtime,
    )
    direction = Direction(
        name="test", vector=torch.ones(1, context.source.generator.w_dim), source_format="memory"
    )
    target, output = world.files.target_video, world.root / "edit-slice.mp4"
    window = video.slice_window(target, timeline.parse_slice("10f", None))  # frames 10 to the end (15)
    assert window is not None and (window.first, window.stop) == (10, 16)
    report = pipeline.edit_video(
        target,
        output,
        directions=[(direction, 1.0)],
        context=context,
        landmarks=str(world.files.target_landmarks),
        window=window,
    )
    times = frame_times(target)
    assert report.frames == 6 and frame_times(output) == [time - times[10] for time in times[10:]]
    assert _audio_packets(output) == _slice_audio(target, start_s=times[10], stop_s=window.stop_s)
