"""Video I/O: re-encoding every real test clip keeps frames, timestamps, orientation and audio."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from reenact import video
from reenact.config import VideoConfig
from reenact.errors import ReenactError
from reenact_cli.main import run
from tests.conftest import manifest_rows, testdata_file
from tests.videotools import (
    HARD_SOURCES,
    HardSource,
    audio_digest,
    audio_start,
    frame_times,
    psnr,
    write_hard_source,
    write_preroll_clip,
)

MIN_REENCODE_PSNR_DB = 40.0
VIDEO_CLIPS = [row["file"] for row in manifest_rows() if row["container"] == "mov"] or ["retalk_face2.mp4"]
STILLS = [row["file"] for row in manifest_rows() if row["role"].startswith("still")] or [
    "imageio_astronaut.png"
]


def _manifest(name: str) -> dict[str, str]:
    return next(row for row in manifest_rows() if row["file"] == name)


@pytest.mark.parametrize("name", VIDEO_CLIPS)
def test_reencode_keeps_frames_timestamps_orientation_audio(name: str, tmp_path: Path) -> None:
    source = testdata_file(name)
    output = tmp_path / "out.mp4"
    assert run(["reencode", str(source), "-o", str(output)]) == 0

    assert frame_times(output) == frame_times(source)  # exact: same count, same pts (VFR included)
    before, after = video.probe(source), video.probe(output)
    assert (after.rotation, after.display_width, after.display_height) == (
        before.rotation,
        before.display_width,
        before.display_height,
    )
    assert audio_digest(output) == audio_digest(source)
    if before.colorspace != video.UNSPECIFIED_COLOR:  # colour tags carried, so players show the same colours
        assert (after.colorspace, after.color_primaries, after.color_trc) == (
            before.colorspace,
            before.color_primaries,
            before.color_trc,
        )

    with video.VideoReader(source) as a, video.VideoReader(output) as b:
        scores = [psnr(fa.image, fb.image) for fa, fb in zip(a.frames(), b.frames(), strict=True)]
    assert np.mean(scores) >= MIN_REENCODE_PSNR_DB, f"mean PSNR {np.mean(scores):.2f} dB"


@pytest.mark.parametrize("recipe", HARD_SOURCES, ids=lambda recipe: recipe.name)
def test_default_encode_keeps_40_db_on_hard_sources(recipe: HardSource, tmp_path: Path) -> None:
    """Noisy MPEG-4 Part 2, VP9 and 240 fps sources: the hardest to re-encode faithfully."""
    source = write_hard_source(recipe, testdata_file(recipe.clip), tmp_path)
    output = tmp_path / "out.mp4"
    assert run(["reencode", str(source), "-o", str(output), "--quiet"]) == 0
    assert frame_times(output) == frame_times(source)
    with video.VideoReader(source) as a, video.VideoReader(output) as b:
        scores = [psnr(fa.image, fb.image) for fa, fb in zip(a.frames(), b.frames(), strict=True)]
    assert np.mean(scores) >= MIN_REENCODE_PSNR_DB, f"mean PSNR {np.mean(scores):.2f} dB"


@pytest.mark.parametrize("name", VIDEO_CLIPS)
def test_probe_json_matches_manifest(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = testdata_file(name)
    assert run(["probe", str(source), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    row = _manifest(name)
    assert info["frame_count"] == int(row["frames"])
    assert (info["width"], info["height"]) == (int(row["width"]), int(row["height"]))
    assert info["rotation"] == int(row["rotation"])
    assert info["vfr"] == (row["vfr"] == "yes")
    assert info["has_audio"] == (row["audio"] != "none")
    assert info["fps_nominal"] == pytest.approx(float(row["fps_nominal"]), abs=0.01)
    assert info["fps_avg"] == pytest.approx(float(row["fps_avg"]), rel=0.01)
    assert info["duration_s"] == pytest.approx(float(row["duration_s"]), abs=0.1)
    for key in ("display_width", "display_height", "video_codec", "audio_codec", "time_base", "pix_fmt"):
        assert key in info


def test_rotated_clip_reads_upright(tmp_path: Path) -> None:
    source = testdata_file("jsonize_iphone_rotated.mov")
    with video.VideoReader(source) as reader:
        coded = next(iter(reader.frames()))
        upright = next(iter(reader.frames(upright=True)))
    assert coded.image.shape == (320, 568, 3)
    assert upright.image.shape == (568, 320, 3)
    # rotation -90: the player turns the picture clockwise
    assert np.array_equal(upright.image, np.rot90(coded.image, -1))
    assert np.array_equal(video.to_coded(upright.image, -90), coded.image)


@pytest.mark.parametrize("name", STILLS)
def test_still_image_is_a_one_frame_clip(name: str, tmp_path: Path) -> None:
    source = testdata_file(name)
    info = video.probe(source)
    assert info.is_image and info.frame_count == 1
    with video.VideoReader(source) as reader:
        frames = list(reader.frames())
    assert len(frames) == 1
    assert frames[0].image.shape == (info.height, info.width, 3)
    output = tmp_path / "still.mp4"
    assert run(["reencode", str(source), "-o", str(output)]) == 0
    assert len(frame_times(output)) == 1


@pytest.mark.parametrize("size", [(410, 412), (411, 411), (413, 200)])
def test_odd_frame_sizes_are_padded_not_cropped(size: tuple[int, int], tmp_path: Path) -> None:
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    period = 23.0  # smooth content: any one-pixel shift of the picture would cost many dB
    frames = [
        (
            127.5
            + 100.0
            * np.stack(
                [np.sin((xs + 3 * t) / period), np.cos(ys / period), np.sin((xs + ys) / (2 * period))],
                axis=-1,
            )
        ).astype(np.uint8)
        for t in range(4)
    ]
    output = tmp_path / "odd.mp4"
    like = video.new_video_info(width=width, height=height, fps=25)
    with video.VideoWriter(output, like=like, config=VideoConfig()) as writer:
        for t, frame in enumerate(frames):
            writer.write(frame, pts=t)
    assert writer.padded == (width % 2 == 1 or height % 2 == 1)
    info = video.probe(output)
    assert (info.width, info.height) == (width + width % 2, height + height % 2)
    with video.VideoReader(output) as reader:
        decoded = [f.image[:height, :width] for f in reader.frames()]
    assert len(decoded) == len(frames)
    assert min(psnr(a, b) for a, b in zip(frames, decoded, strict=True)) >= MIN_REENCODE_PSNR_DB


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    output = tmp_path / "half.mp4"
    like = video.new_video_info(width=64, height=64, fps=25)
    with (
        pytest.raises(RuntimeError, match="boom"),
        video.VideoWriter(output, like=like, config=VideoConfig()) as w,
    ):
        w.write(np.zeros((64, 64, 3), np.uint8), pts=0)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_timestamps_must_increase(tmp_path: Path) -> None:
    like = video.new_video_info(width=64, height=64, fps=25)
    with (
        pytest.raises(ValueError, match="pts must increase"),
        video.VideoWriter(tmp_path / "x.mp4", like=like, config=VideoConfig()) as writer,
    ):
        writer.write(np.zeros((64, 64, 3), np.uint8), pts=5)
        writer.write(np.zeros((64, 64, 3), np.uint8), pts=5)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_its_input_or_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "clip.mp4"
    shutil.copy(testdata_file("lp_driving_d0.mp4"), source)
    original = source.read_bytes()
    assert run(["reencode", str(source), "-o", str(source), "--overwrite"]) == 1
    assert "refusing to write over the input" in capsys.readouterr().err
    assert source.read_bytes() == original

    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    assert run(["reencode", str(source), "-o", str(existing)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
    assert run(["reencode", str(source), "-o", str(existing), "--overwrite"]) == 0
    assert len(frame_times(existing)) == len(frame_times(source))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "existing.mp4"]


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    return {"text": text, "empty": empty, "directory": folder, "missing": tmp_path / "missing.mp4"}


@pytest.mark.parametrize("kind", ["text", "empty", "directory", "missing"])
@pytest.mark.parametrize("command", ["reencode", "probe"])
def test_bad_input_gives_one_error_line(
    kind: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _bad_inputs(tmp_path)[kind]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = [command, str(source)] + (["-o", str(out_dir / "out.mp4")] if command == "reencode" else [])
    assert run(args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
def test_truncated_clip_fails_cleanly_or_reports_lost_frames(
    faststart: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "retalk_face2.mp4"
    source = testdata_file(name)
    if faststart:  # our own output has its index first, so a cut copy still decodes up to the cut
        source = tmp_path.parent / f"{tmp_path.name}-faststart.mp4"
        assert run(["reencode", str(testdata_file(name)), "-o", str(source), "--overwrite"]) == 0
        capsys.readouterr()
    data = source.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.4)])
    output = tmp_path / "out.mp4"
    code = run(["reencode", str(truncated), "-o", str(output)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 1:
        assert captured.err.strip().startswith("error: ") and len(captured.err.strip().splitlines()) == 1
        assert not output.exists()
    else:
        assert code == 0
        written = len(frame_times(output))
        expected = len(frame_times(testdata_file(name)))
        assert faststart and 0 < written < expected
        assert f"{expected - written} of" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) in (["truncated.mp4"], ["out.mp4", "truncated.mp4"])


def test_probe_counts_what_a_cut_file_delivers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "retalk_face2.mp4"
    source = tmp_path / "faststart.mp4"  # index first, so a cut copy still decodes up to the cut
    assert run(["reencode", str(testdata_file(name)), "-o", str(source), "--quiet"]) == 0
    data = source.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.4)])
    full, cut = video.probe(source), video.probe(truncated)
    with video.VideoReader(truncated) as reader:
        decoded = sum(1 for _ in reader.frames())
    assert 0 < cut.frame_count == decoded < full.frame_count
    assert cut.frames_announced == full.frame_count and cut.frames_missing == full.frame_count - decoded
    assert not cut.vfr and cut.fps_avg == pytest.approx(full.fps_avg, rel=1e-3)
    assert cut.duration_s == pytest.approx(decoded / full.fps_avg, abs=1e-3)
    capsys.readouterr()
    assert run(["probe", str(truncated)]) == 0
    expected = f"{cut.frames_missing} of {full.frame_count} announced frames do not decode"
    assert expected in capsys.readouterr().out


PREROLL_FRAMES = 8
SHOWN_FRAMES = 68


def test_pre_roll_frames_are_not_counted_as_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "preroll.mp4"
    write_preroll_clip(source, preroll=PREROLL_FRAMES, frames=SHOWN_FRAMES)
    info = video.probe(source)
    assert info.frame_count == info.frames_announced == SHOWN_FRAMES
    assert info.duration_s == pytest.approx(SHOWN_FRAMES / info.fps_avg) and info.fps_avg == pytest.approx(25)
    output = tmp_path / "out.mp4"
    assert run(["reencode", str(source), "-o", str(output), "--quiet"]) == 0
    assert "could not be decoded" not in capsys.readouterr().err
    assert frame_times(output) == frame_times(source) and len(frame_times(output)) == SHOWN_FRAMES


MKV_PRECISION_S = Fraction(1, 1000)
"""Matroska stores whole milliseconds: a timestamp is as exact as it can be within one (it was off by
23-69 ms when the muxer shifted every stream to make the audio priming non-negative)."""


@pytest.mark.parametrize("name", ["retalk_face2.mp4", "lp_source_s18.mp4"])
def test_mkv_output_keeps_every_timestamp(name: str, tmp_path: Path) -> None:
    """B-frame delay and audio priming are kept as negative timestamps, not shifted onto every stream."""
    source = testdata_file(name)
    output = tmp_path / "out.mkv"
    assert run(["reencode", str(source), "-o", str(output), "--quiet"]) == 0
    before, after = frame_times(source), frame_times(output)
    assert len(before) == len(after)
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) <= MKV_PRECISION_S
    assert abs(audio_start(output) - audio_start(source)) <= MKV_PRECISION_S
    assert audio_digest(output) == audio_digest(source)


def test_unsupported_output_type_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["reencode", str(testdata_file("lp_driving_d0.mp4")), "-o", str(tmp_path / "x.gif")]) == 1
    assert "unsupported output type" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_new_video_info_round_trip(tmp_path: Path) -> None:
    output = tmp_path / "made.mp4"
    like = video.new_video_info(width=96, height=64, fps=30)
    with video.VideoWriter(output, like=like, config=VideoConfig()) as writer:
        for t in range(10):
            writer.write(np.full((64, 96, 3), 20 * t, np.uint8), pts=t)
    assert frame_times(output) == [Fraction(t, 30) for t in range(10)]
    with pytest.raises(ReenactError, match="already exists"):
        video.VideoWriter(output, like=like, config=VideoConfig())
