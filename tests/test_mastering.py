"""Mastering-grade video in and out (#26, video files): depth, codec, chroma, colour tags, range, timecode
and every audio track kept through `reencode` and `transfer`; a lossless output carries the source's exact
codes wherever the paste-back left the frame alone. Sources are made here, with noise in their low bits,
so an 8-bit step anywhere shows."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from reenact import video
from reenact.codecs import CODECS, choose_codec, pixel_format
from reenact.composite import face_mask
from reenact.config import VideoConfig
from reenact.errors import ReenactError
from reenact.faces.align import warp_to_frame
from reenact.gan.checkpoints import save_generator
from reenact.stages.align import ClipAlignment
from reenact.synthetic import SyntheticConfig, make_world, synthetic_settings, write_world
from reenact.timecode import parse_timecode
from reenact.video import CONVERSION_REACH, MATTE_LEVELS
from reenact_cli.main import run
from tests.mastering import (
    BT709,
    SOURCE_TIMECODE,
    audio_digests,
    decoded_planes,
    deep_frame,
    ffv1_copy,
    mean_luma,
    mean_luma_error,
    write_deep_clip,
)
from tests.test_pipeline import paste_regions
from tests.videotools import frame_times

PRORES_HQ = {"profile": "3"}
DNXHR_HQX = {"profile": "dnxhr_hqx"}
SOURCES = {
    "prores.mov": ("prores_ks", "yuv422p10le", PRORES_HQ),
    "dnxhr.mxf": ("dnxhd", "yuv422p10le", DNXHR_HQX),
    "ffv1.mkv": ("ffv1", "yuv422p10le", {}),
    "ffv1-rgb.mkv": ("ffv1", "gbrp10le", {}),
}
"""Deep sources by file name: encoder, pixel format, options."""
MAX_PRORES_ERROR = 0.4
"""Mean luma error (10-bit codes) of a ProRes or ProRes 4444 re-encode of a ProRes source; through 8-bit
RGB it is 0.57 (measured 0.23 and 0.25 on these sources)."""
MAX_DNXHR_ERROR = 0.6
"""The same for DNxHR HQX of a DNxHR source: 0.78 through 8-bit RGB (measured 0.45)."""
MAX_X26X_ERROR = 1.5
"""H.264/H.265 at the default quality (lossy: measured 1.26 and 1.18; no bound an 8-bit step would cross)."""
ROUND_TRIPS = [
    # source, --codec, output, codec, pix_fmt, largest mean luma error (0: bit-exact, every plane)
    ("prores.mov", None, "out.mov", "prores", "yuv422p10le", MAX_PRORES_ERROR),
    ("prores.mov", "prores4444", "out.mov", "prores", "yuv444p12le", MAX_PRORES_ERROR),
    ("prores.mov", "ffv1", "out.mkv", "ffv1", "yuv422p10le", 0),
    ("prores.mov", "h264", "out.mov", "h264", "yuv420p10le", MAX_X26X_ERROR),
    ("prores.mov", "h265", "out.mkv", "hevc", "yuv420p10le", MAX_X26X_ERROR),
    ("dnxhr.mxf", None, "out.mxf", "dnxhd", "yuv422p10le", MAX_DNXHR_ERROR),
    ("dnxhr.mxf", "dnxhr", "out.mov", "dnxhd", "yuv422p10le", MAX_DNXHR_ERROR),
    ("ffv1.mkv", None, "out.mkv", "ffv1", "yuv422p10le", 0),
    ("ffv1-rgb.mkv", None, "out.mkv", "ffv1", "gbrp10le", 0),
]
CHAINED_PASSES = 3
DEEP_TARGET_FORMAT = "yuv422p10le"
MAX_DRIFT_PER_PASS = 0.05
"""Change of the mean luma level per ProRes pass, in 10-bit codes (a biased conversion moves it by whole
codes)."""


def deep_source(directory: Path, name: str, *, audio_tracks: int = 2) -> Path:
    encoder, pix_fmt, options = SOURCES[name]
    return write_deep_clip(
        directory / name, encoder=encoder, pix_fmt=pix_fmt, options=options, audio_tracks=audio_tracks
    )


@pytest.mark.parametrize(("name", "codec", "output_name", "codec_name", "pix_fmt", "max_error"), ROUND_TRIPS)
def test_reencode_round_trip_keeps_depth_tags_timecode_and_audio(
    name: str,
    codec: str | None,
    output_name: str,
    codec_name: str,
    pix_fmt: str,
    max_error: float,
    tmp_path: Path,
) -> None:
    """Frame count, pts, bit depth, chroma, colour tags, range, timecode and both audio tracks survive a
    `reencode`; a lossless output has the source's codes bit for bit, a lossy one keeps its low bits
    better than any path through 8-bit RGB could."""
    source = deep_source(tmp_path, name)
    output = tmp_path / output_name
    args = ["reencode", str(source), "-o", str(output), "--quiet"] + (["--codec", codec] if codec else [])
    assert run(args) == 0
    before, after = video.probe(source), video.probe(output)
    assert (after.video_codec, after.pix_fmt) == (codec_name, pix_fmt)
    assert after.bit_depth >= before.bit_depth == 10
    assert after.frame_count == before.frame_count and frame_times(output) == frame_times(source)
    assert (after.color_primaries, after.color_trc, after.colorspace) == (BT709, BT709, BT709)
    assert after.full_range == before.full_range is False
    assert after.timecode == before.timecode == SOURCE_TIMECODE
    assert len(audio_digests(source)) == 2 and audio_digests(output) == audio_digests(source)
    if max_error == 0:
        for index, (ours, theirs) in enumerate(
            zip(decoded_planes(source), decoded_planes(output), strict=True)
        ):
            assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)), f"frame {index}"
    else:
        assert mean_luma_error(source, output) < max_error


SEQUENCE_FORMATS = [
    # source, output pattern, decoded pixel format, exact against
    ("ffv1.mkv", "seq/%04d.png", "rgb48be", "rgb"),
    ("ffv1.mkv", "seq/%04d.tif", "rgb48le", "rgb"),
    ("ffv1-rgb.mkv", "seq/%04d.dpx", "gbrp10le", "codes"),
]


@pytest.mark.parametrize(("name", "pattern", "pix_fmt", "exact"), SEQUENCE_FORMATS)
def test_reencode_to_an_image_sequence_keeps_every_frame_at_its_depth(
    name: str, pattern: str, pix_fmt: str, exact: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 10-bit source into a PNG/TIFF/DPX pattern: its folder made, one file a frame numbered from 1, each
    the source's 16-bit RGB exactly (PNG, TIFF), or its very 10-bit RGB codes (DPX of an RGB source); the
    audio's absence said in one line."""
    source = deep_source(tmp_path, name, audio_tracks=1)
    capsys.readouterr()
    assert run(["reencode", str(source), "-o", str(tmp_path / pattern), "--quiet"]) == 0
    assert "holds no audio" in capsys.readouterr().err
    files = sorted((tmp_path / "seq").iterdir())
    frames = list(video.VideoReader(source).frames(native=True))
    assert [path.name for path in files] == [f"{number:04d}{Path(pattern).suffix}" for number in range(1, 7)]
    for path, frame, planes in zip(files, frames, decoded_planes(source), strict=True):
        with av.open(str(path)) as image:
            decoded = next(image.decode(video=0))
            assert decoded.format.name == pix_fmt
            if exact == "rgb":
                assert np.array_equal(decoded.reformat(format="rgb48le").to_ndarray(), frame.image), path.name
            else:
                ours = decoded_planes(path)[0]
                assert all(np.array_equal(a, b) for a, b in zip(ours, planes, strict=True)), path.name


def test_chained_prores_reencodes_drift_less_than_an_8_bit_step(tmp_path: Path) -> None:
    """Three ProRes passes in a row: each pass moves the luma by less than `MAX_PRORES_ERROR` codes (what
    a single pass through 8-bit RGB costs) and shifts its mean level by less than `MAX_DRIFT_PER_PASS`."""
    paths = [deep_source(tmp_path, "prores.mov", audio_tracks=0)]
    for index in range(CHAINED_PASSES):
        paths.append(tmp_path / f"pass{index + 1}.mov")
        assert run(["reencode", str(paths[-2]), "-o", str(paths[-1]), "--quiet"]) == 0
    per_pass = [mean_luma_error(a, b) for a, b in itertools.pairwise(paths)]
    drift = np.diff([mean_luma(path) for path in paths])
    print(
        "ProRes passes, 10-bit luma codes: mean |change| per pass",
        np.round(per_pass, 3),
        "mean level drift per pass",
        np.round(drift, 4),
        "mean |change| after three",
        round(mean_luma_error(paths[0], paths[-1]), 3),
    )
    assert max(per_pass) < MAX_PRORES_ERROR
    assert np.abs(drift).max() < MAX_DRIFT_PER_PASS


def test_a_slice_moves_the_timecode_and_timecode_overrides(tmp_path: Path) -> None:
    source = deep_source(tmp_path, "ffv1.mkv", audio_tracks=1)
    sliced = tmp_path / "slice.mkv"
    assert run(["reencode", str(source), "-o", str(sliced), "--start", "2f", "--quiet"]) == 0
    assert video.probe(sliced).timecode == "01:00:00:02"
    stamped = tmp_path / "stamped.mov"
    args = ["reencode", str(source), "-o", str(stamped), "--codec", "prores", "--timecode", "10:00:00:00"]
    assert run([*args, "--quiet"]) == 0
    assert video.probe(stamped).timecode == "10:00:00:00"


def test_drop_frame_timecode_counts_as_smpte() -> None:
    """29.97 fps drop-frame: frame numbers 0 and 1 are skipped each minute except every tenth."""
    start = parse_timecode("00:00:59;29", fps=29.97)
    assert str(start.moved(1)) == "00:01:00;02"
    assert str(parse_timecode("00:09:59;29", fps=29.97).moved(1)) == "00:10:00;00"
    assert parse_timecode("01:00:00:00", fps=25).frames == 90_000


BAD_CHOICES = [
    (["--codec", "vp9"], "out.mkv", "video.codec must be one of", 2),
    (["--codec", "prores"], "out.mp4", "prores cannot be written to .mp4", 1),
    (["--codec", "ffv1"], "out.mov", "ffv1 cannot be written to .mov", 1),
    (["--codec", "dnxhr_hq"], "out.mov", "10-bit samples and dnxhr_hq holds at most 8 bits", 1),
    ([], "out.avi", "unsupported output type '.avi'", 1),
    (["--timecode", "1:00"], "out.mkv", "is not HH:MM:SS:FF", 2),
    (["--timecode", "00:00:00:25"], "out.mkv", "out of range at 25 frames per second", 1),
    ([], "out.png", "an image sequence output needs one frame number in its file name", 1),
    ([], "%d_%d.png", "an image sequence output needs one frame number in its file name", 1),
    (["--codec", "dpx"], "out.mkv", "dpx cannot be written to .mkv", 1),
]


@pytest.mark.parametrize(("extra", "output_name", "message", "code"), BAD_CHOICES)
def test_bad_output_choices_are_one_line_before_any_work(
    extra: list[str],
    output_name: str,
    message: str,
    code: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = deep_source(tmp_path, "ffv1.mkv", audio_tracks=0)
    capsys.readouterr()
    assert run(["reencode", str(source), "-o", str(tmp_path / output_name), *extra]) == code
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ffv1.mkv"]


def test_mxf_refuses_audio_it_cannot_hold_before_any_work(tmp_path: Path) -> None:
    source = deep_source(tmp_path, "ffv1.mkv", audio_tracks=0)
    like = replace(video.probe(source), has_audio=True, audio_codec="aac")
    with pytest.raises(ReenactError, match="MXF holds PCM audio only"):
        video.output_format(tmp_path / "out.mxf", like=like, config=VideoConfig())


@pytest.mark.parametrize(
    ("trc", "primaries", "message"),
    [(16, 9, "PQ (SMPTE ST 2084) transfer and BT.2020 primaries"), (18, 1, "HLG"), (1, 12, "Display P3")],
)
def test_hdr_and_wide_gamut_are_refused_for_a_paste_in_one_line(
    trc: int, primaries: int, message: str, tmp_path: Path
) -> None:
    info = replace(video.probe(deep_source(tmp_path, "ffv1.mkv", audio_tracks=0)), color_trc=trc)
    with pytest.raises(ReenactError, match=re.escape(message)):
        video.check_face_colour(replace(info, color_primaries=primaries))
    video.check_face_colour(replace(info, color_trc=BT709, color_primaries=BT709))


def test_dnxhr_refuses_a_frame_smaller_than_it_encodes(tmp_path: Path) -> None:
    source = write_deep_clip(tmp_path / "small.mkv", encoder="ffv1", pix_fmt="yuv422p10le", size=(128, 96))
    with pytest.raises(ReenactError, match="dnxhr_hqx encodes frames of at least 256x120"):
        video.output_format(tmp_path / "out.mov", like=video.probe(source), config=VideoConfig(codec="dnxhr"))


def test_the_default_codec_is_the_source_family_where_the_container_holds_it() -> None:
    def chosen(codec: str, pix_fmt: str, container: str, requested: str = "source") -> str:
        return choose_codec(requested, source_codec=codec, source_pix_fmt=pix_fmt, container=container).name

    assert chosen("prores", "yuv422p10le", "mov") == "prores"
    assert chosen("prores", "yuv444p12le", "mov") == "prores4444"
    assert chosen("prores", "yuv422p10le", "mp4") == "h264"  # mp4 holds no ProRes
    assert chosen("h264", "yuv420p", "mov") == "h264"
    assert chosen("dnxhd", "yuv422p", "mxf") == "dnxhr_hq"
    assert chosen("mpeg4", "yuv420p", "matroska") == "h264"
    assert pixel_format(CODECS["h264"], source_pix_fmt="yuv422p10le", x26x_pix_fmt="yuv420p") == "yuv420p10le"
    assert pixel_format(CODECS["h264"], source_pix_fmt="yuv420p", x26x_pix_fmt="yuv420p") == "yuv420p"
    assert pixel_format(CODECS["ffv1"], source_pix_fmt="gbrp12le", x26x_pix_fmt="yuv420p") == "gbrp12le"


def test_an_8_bit_rgb_source_reencodes_into_ffv1_with_every_code_kept(tmp_path: Path) -> None:
    """An 8-bit RGB FFV1 source (`bgr0`, every code 0-255 in every channel) into FFV1: FFmpeg 8's FFV1
    takes no 8-bit planar RGB, so the output is 10-bit planar RGB holding each code exactly."""
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = np.stack([ramp, ramp.T, 255 - ramp], axis=-1)  # [16, 16, 3]: every code in every channel
    source, output = tmp_path / "rgb.mkv", tmp_path / "out.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.pix_fmt, stream.width, stream.height = "bgr0", 16, 16
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.roll(image, index, axis=0), format="rgb24").reformat(
                format="bgr0"
            )
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert run(["reencode", str(source), "-o", str(output), "--quiet"]) == 0
    info = video.probe(output)
    assert (info.video_codec, info.chroma) == ("ffv1", "rgb")
    with av.open(str(source)) as ours, av.open(str(output)) as theirs:
        pairs = zip(ours.decode(video=0), theirs.decode(video=0), strict=True)
        for a, b in pairs:
            assert np.array_equal(a.to_ndarray(format="rgb24"), b.to_ndarray(format="rgb24"))


# ----------------------------------------------------------------------------- transfer, paste-back


def deep_copy_of(clip: Path, destination: Path) -> Path:
    """`clip` (8-bit) as 10-bit 4:2:2 FFV1 with noise in every sample's low bits, same timing: a
    ProRes-like layout whose chroma a round trip through RGB does not give back exactly."""
    rng = np.random.default_rng(3)

    def noisy(frame: av.VideoFrame) -> av.VideoFrame:
        rgb = frame.to_ndarray(format="rgb48le").astype(np.int64)
        values = np.clip(rgb + rng.integers(-512, 512, rgb.shape), 0, 65535).astype(np.uint16)
        return av.VideoFrame.from_ndarray(values, format="rgb48le").reformat(
            format=DEEP_TARGET_FORMAT, dst_colorspace=BT709
        )

    return ffv1_copy(clip, destination, pix_fmt=DEEP_TARGET_FORMAT, picture=noisy)


def test_transfer_into_a_10_bit_lossless_source_keeps_every_code_outside_the_paste_mask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A transfer on a 10-bit FFV1 target writes 10-bit FFV1 (its own codec) whose codes equal the
    target's exactly wherever the paste mask is 0 (the luma; the half-width chroma beyond the reach of
    the RGB -> YUV conversion's filter, `CONVERSION_REACH`), and differ inside it (the new face). Its
    `--matte` holds each frame's blend weights (the face mask warped into the frame), frame for frame at
    the output's timestamps, and is 0 wherever the output's luma is the target's."""
    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    target = deep_copy_of(files.target_video, tmp_path / "target.mkv")
    output, matte = tmp_path / "out.mkv", tmp_path / "matte.mkv"
    args = files.transfer_args(output, generator=generator)
    args[1] = str(target)
    common = ["--preset", "synthetic", "--workdir", str(tmp_path / "work"), "--quiet", "--json"]
    assert run([*args, *common, "--matte", str(matte)]) == 0
    summary = json.loads(capsys.readouterr().out)
    info = video.probe(output)
    assert (info.video_codec, info.pix_fmt, info.bit_depth) == ("ffv1", DEEP_TARGET_FORMAT, 10)
    assert frame_times(output) == frame_times(target)
    source_planes, output_planes = decoded_planes(target), decoded_planes(output)
    regions = paste_regions(summary, source_planes[0][0].shape, settings=synthetic_settings())
    weights = blend_weights_of(summary, source_planes[0][0].shape)
    mattes = [planes[0] for planes in decoded_planes(matte)]
    assert frame_times(matte) == frame_times(output) and video.probe(matte).pix_fmt == "gray16le"
    assert len(source_planes) == len(output_planes) == len(regions) == len(mattes)
    for index, (ours, theirs, region) in enumerate(zip(source_planes, output_planes, regions, strict=True)):
        assert region.any(), f"frame {index} has no face"
        assert np.array_equal(mattes[index], np.rint(weights[index] * MATTE_LEVELS)), f"frame {index}: matte"
        assert np.array_equal(ours[0][mattes[index] == 0], theirs[0][mattes[index] == 0])
        grown = cv2.dilate(region.astype(np.uint8), np.ones((2 * CONVERSION_REACH + 1,) * 2, np.uint8)) > 0
        chroma_region = grown.reshape(grown.shape[0], -1, 2).any(axis=2)  # [H, W / 2]: 4:2:2
        for plane, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            outside = ~region if plane == 0 else ~chroma_region
            assert np.array_equal(a[outside], b[outside]), (
                f"frame {index} plane {plane}: codes changed outside"
            )
        assert not np.array_equal(ours[0][region], theirs[0][region]), f"frame {index}: no new face"


def test_an_exr_matte_holds_the_blend_weights_themselves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--matte matte/%06d.exr` writes one float EXR per output frame, numbered from 1, holding the
    paste-back's blend weights as floats: nearer them than the 16-bit codes of the other mattes can be."""
    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    output, folder = tmp_path / "out.mp4", tmp_path / "matte"
    args = files.transfer_args(output, generator=generator)
    common = ["--preset", "synthetic", "--workdir", str(tmp_path / "work"), "--quiet", "--json"]
    assert run([*args, *common, "--matte", str(folder / "%06d.exr")]) == 0
    summary = json.loads(capsys.readouterr().out)
    shape = video.probe(files.target_video)
    weights = blend_weights_of(summary, (shape.height, shape.width))
    written = sorted(folder.iterdir())
    assert [path.name for path in written] == [f"{index:06d}.exr" for index in range(1, len(weights) + 1)]
    float_error, code_error = 0.0, 0.0
    for path, expected in zip(written, weights, strict=True):
        with av.open(str(path)) as container:
            matte = next(container.decode(video=0)).to_ndarray()
        assert matte.dtype == np.float32 and matte.shape == expected.shape
        assert np.array_equal(matte == 0, expected == 0), f"{path.name}: the matte's zeros moved"
        float_error = max(float_error, float(np.abs(matte - expected).max()))
        code_error = max(
            code_error, float(np.abs(np.rint(expected * MATTE_LEVELS) / MATTE_LEVELS - expected).max())
        )
    print(f"largest error: float matte {float_error:.2e}, 16-bit codes {code_error:.2e}")
    assert float_error < code_error / 10, (float_error, code_error)


def blend_weights_of(summary: dict, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Per frame, the paste-back's blend weights [H, W] in 0..1, from the run's stored alignment: the face
    mask warped into the whole frame (bilinear), clipped."""
    location = next(stage["location"] for stage in summary["stages"] if stage["name"] == "tar-align")
    alignment = ClipAlignment.load(Path(location))
    weights = []
    for index in range(alignment.num_frames):
        points = alignment.track.points[index] if alignment.track.found[index] else None
        mask = face_mask(
            points,
            matrix=alignment.matrices[index],
            resolution=alignment.resolution,
            config=synthetic_settings().composite,
        )
        alpha = warp_to_frame(mask, alignment.matrices[index], shape, interpolation=cv2.INTER_LINEAR)
        weights.append(np.clip(alpha, 0.0, 1.0))
    return weights


def test_deep_frames_reach_the_writer_unrounded(tmp_path: Path) -> None:
    """`VideoReader.frames(native=True)` of a 10-bit source gives uint16 RGB whose low byte is not empty
    (an 8-bit step would leave it a multiple of 257); analysis frames stay uint8."""
    source = deep_source(tmp_path, "ffv1.mkv", audio_tracks=0)
    reader = video.VideoReader(source)
    deep = next(iter(reader.frames(native=True)))
    assert deep.image.dtype == np.uint16 and deep.decoded is not None
    assert np.mean(deep.image % 257 != 0) > 0.5
    assert next(iter(reader.frames())).image.dtype == np.uint8
    assert (
        deep_frame(256, 120, "yuv422p10le", index=0, rng=np.random.default_rng(0)).format.name
        == "yuv422p10le"
    )


@pytest.mark.parametrize(
    ("matte_name", "message"),
    [
        ("matte.avi", "give a .mkv path (FFV1 video, 16-bit) or a .png/.tif (16-bit) or .exr (float)"),
        ("matte.png", "needs one frame number in its file name"),
        ("out.mkv", "is the output itself"),
    ],
)
def test_a_bad_matte_path_is_one_line_before_any_work(
    matte_name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    args = files.transfer_args(tmp_path / "out.mkv", generator=generator)
    common = ["--preset", "synthetic", "--workdir", str(tmp_path / "work"), "--quiet"]
    capsys.readouterr()
    assert run([*args, *common, "--matte", str(tmp_path / matte_name)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.safetensors"))
    assert not (tmp_path / "out.mkv").exists()
