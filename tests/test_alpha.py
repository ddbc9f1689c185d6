"""`--alpha` (#26): the face matte embedded as the output's alpha channel, exactly at the alpha's depth,
with the source's codes kept outside the changed pixels on a lossless output; refused in one line for a
codec without alpha."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from reenact import video
from reenact.config import VideoConfig
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import SyntheticConfig, make_world, write_world
from reenact.video import CONVERSION_REACH
from reenact_cli.main import run
from tests.mastering import decoded_planes, write_deep_clip
from tests.videotools import frame_times

FACE = (slice(20, 70), slice(100, 160))
"""The rows and columns a test "face" changes."""
TEN_BIT_FULL = 1023


def weights_for(shape: tuple[int, int], index: int) -> np.ndarray:
    """[H, W] float32 blend weights: a ramp over `FACE` (0 outside it), different in every frame."""
    weights = np.zeros(shape, np.float32)
    rows, columns = FACE
    height, width = rows.stop - rows.start, columns.stop - columns.start
    weights[FACE] = np.linspace(0.05, 1.0, height * width).reshape(height, width) ** (1 + index % 3)
    return weights


def write_with_alpha(source: Path, output: Path, *, codec: str) -> list[np.ndarray]:
    """Every frame of `source` with `FACE` inverted, written to `output` in `codec` with `weights_for` as
    alpha; returns the weights."""
    reader = video.VideoReader(source)
    written = []
    config = VideoConfig(codec=codec, alpha=True)
    with video.VideoWriter(output, like=reader.info, config=config) as writer:
        for frame in reader.frames(native=True):
            image = frame.image.copy()
            image[FACE] = np.iinfo(np.uint16).max - image[FACE]
            weights = weights_for(image.shape[:2], frame.index)
            writer.write(image, pts=frame.pts, source=frame, alpha=weights)
            written.append(weights)
    return written


def test_ffv1_with_alpha_keeps_the_source_codes_and_holds_the_matte(tmp_path: Path) -> None:
    """A 10-bit 4:2:2 FFV1 source into FFV1 with alpha: yuva422p10le, the same timestamps, alpha the
    weights' 10-bit codes exactly, the source's codes everywhere the frame was not changed (luma), and
    beyond the conversion's reach of the change (the half-width chroma)."""
    source = write_deep_clip(tmp_path / "src.mkv", encoder="ffv1", pix_fmt="yuv422p10le", audio_tracks=0)
    output = tmp_path / "out.mkv"
    weights = write_with_alpha(source, output, codec="ffv1")
    assert video.probe(output).pix_fmt == "yuva422p10le"
    assert frame_times(output) == frame_times(source)
    changed = np.zeros(weights[0].shape, bool)
    changed[FACE] = True
    grown = cv2.dilate(changed.astype(np.uint8), np.ones((2 * CONVERSION_REACH + 1,) * 2, np.uint8)) > 0
    chroma_changed = grown.reshape(grown.shape[0], -1, 2).any(axis=2)  # [H, W / 2]: 4:2:2
    for index, (ours, theirs) in enumerate(zip(decoded_planes(source), decoded_planes(output), strict=True)):
        assert np.array_equal(theirs[3], np.rint(weights[index] * TEN_BIT_FULL)), f"frame {index}: alpha"
        for plane in range(3):
            kept = ~changed if plane == 0 else ~chroma_changed
            assert np.array_equal(ours[plane][kept], theirs[plane][kept]), f"frame {index} plane {plane}"
        assert not np.array_equal(ours[0][FACE], theirs[0][FACE])


def test_prores4444_with_alpha_holds_the_matte(tmp_path: Path) -> None:
    """ProRes 4444 with alpha: decoded as 12-bit yuva444, its alpha the weights' 10-bit codes (the
    samples prores_ks takes) exactly."""
    source = write_deep_clip(
        tmp_path / "src.mov",
        encoder="prores_ks",
        pix_fmt="yuv422p10le",
        options={"profile": "3"},
        audio_tracks=0,
    )
    output = tmp_path / "out.mov"
    weights = write_with_alpha(source, output, codec="prores4444")
    assert video.probe(output).pix_fmt == "yuva444p12le"
    for index, planes in enumerate(decoded_planes(output)):
        alpha = planes[3] >> 2  # 12-bit decoded -> the 10-bit codes encoded
        assert np.array_equal(alpha, np.rint(weights[index] * TEN_BIT_FULL)), f"frame {index}: alpha"


def test_without_a_matte_the_alpha_is_zero(tmp_path: Path) -> None:
    """A frame written with no matte (no face pasted) is all transparent: the matte is 0 there."""
    source = write_deep_clip(tmp_path / "src.mkv", encoder="ffv1", pix_fmt="yuv422p10le", audio_tracks=0)
    output = tmp_path / "out.mkv"
    reader = video.VideoReader(source)
    with video.VideoWriter(output, like=reader.info, config=VideoConfig(codec="ffv1", alpha=True)) as writer:
        for picture in reader.pictures():
            writer.write_picture(picture)
    assert all(not planes[3].any() for planes in decoded_planes(output))


@pytest.mark.parametrize(
    ("output_name", "codec", "message"),
    [
        ("out.mp4", "h264", "--alpha: h264 has no alpha channel; use prores4444, ffv1, png, tiff, dpx, exr"),
        ("out.mov", "prores", "--alpha: prores has no alpha channel"),
        ("out.mkv", "h265", "--alpha: h265 has no alpha channel"),
    ],
)
def test_alpha_into_a_codec_without_one_is_one_line_before_any_work(
    output_name: str, codec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    args = files.transfer_args(tmp_path / output_name, generator=generator)
    common = ["--preset", "synthetic", "--workdir", str(tmp_path / "work"), "--quiet"]
    capsys.readouterr()
    assert run([*args, *common, "--codec", codec, "--alpha"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / output_name).exists()
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.safetensors"))


def ramp(shape: tuple[int, int], index: int) -> np.ndarray:
    """[H, W] float32 weights from 0 to 1 over the whole frame, a different curve in every frame."""
    return (np.linspace(0.0, 1.0, shape[0] * shape[1]).reshape(shape) ** (1 + index)).astype(np.float32)


@pytest.mark.parametrize(
    ("suffix", "pix_fmt", "alpha_bits"),
    [(".png", "rgba64be", 16), (".tif", "rgba64le", 16), (".dpx", "rgba64le", 16), (".exr", "gbrapf32le", 0)],
)
def test_image_sequences_with_alpha_hold_the_matte(
    suffix: str, pix_fmt: str, alpha_bits: int, tmp_path: Path
) -> None:
    """A 10-bit DPX sequence into PNG/TIFF/DPX/EXR with alpha: RGBA (DPX at 16 bits, the only depth it
    holds RGBA at above 8), the colour exactly the source's, alpha the weights at its depth (EXR: the
    float weights themselves)."""
    from tests.test_sequence_input import write_sequence

    pattern = write_sequence(tmp_path / "in", suffix=".dpx", frames=2)
    output = tmp_path / "out" / f"%04d{suffix}"
    reader = video.VideoReader(pattern, fps=Fraction(25))
    frames = list(reader.frames(native=True))
    config = VideoConfig(codec="source", alpha=True)
    with video.open_writer(output, like=reader.info, config=config) as writer:
        for frame in frames:
            writer.write(frame.image, pts=frame.pts, alpha=ramp(frame.image.shape[:2], frame.index))
    for frame in frames:
        with av.open(str(tmp_path / "out" / f"{1001 + frame.index:04d}{suffix}")) as container:
            picture = next(container.decode(video=0))
        assert picture.format.name == pix_fmt
        weights = ramp(frame.image.shape[:2], frame.index)
        if alpha_bits:
            rgba = picture.reformat(format="rgba64le").to_ndarray()  # [H, W, 4]
            assert np.array_equal(rgba[..., :3], frame.image), f"frame {frame.index}: colour"
            assert np.array_equal(rgba[..., 3], np.rint(weights * ((1 << alpha_bits) - 1))), (
                f"frame {frame.index}"
            )
        else:
            alpha = np.frombuffer(picture.planes[3], np.float32).reshape(picture.height, -1)[
                :, : picture.width
            ]
            assert np.array_equal(alpha, weights), f"frame {frame.index}: alpha"
