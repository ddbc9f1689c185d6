"""Faces move into a source's colour and back (`reenact.colour`, #26 item 4): the conversions checked
against the colour science they stand on, and a transfer into a BT.601 / gamma 2.8 clip against the truth."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from reenact import video
from reenact.colour import (
    BT709_PRIMARIES,
    FACE_COLOUR,
    PRIMARIES,
    TRANSFERS,
    UNSPECIFIED,
    SourceColour,
    decode_transfer,
    encode_transfer,
    from_face_space,
    primaries_matrix,
    rgb_to_xyz,
    to_face_space,
)
from reenact.demo import decode, face_psnr
from reenact.errors import ReenactError
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import (
    SyntheticConfig,
    make_world,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)
from reenact_cli.main import run
from tests.mastering import ffv1_copy

PACKED_RGB = "bgr0"
"""8-bit RGB as FFV1 takes it (no conversion through YUV)."""
BT601 = SourceColour(primaries=6, transfer=5)
"""SMPTE 170M primaries with a gamma 2.8 curve: far enough from BT.709 that a missed conversion shows."""
CURVE_FOOT = 1e-3
"""Light below which curve steps are not compared (every breakpoint lies above it)."""
MAX_CURVE_STEP = 1e-3
"""The largest code step between light samples 1e-5 apart above `CURVE_FOOT` (a smooth curve: 3e-4 at
most; pieces that miss each other by a code in 1000 fail)."""
SKIN = np.array([[224, 172, 150], [180, 120, 100], [120, 80, 64], [250, 220, 200]], dtype=np.uint8)
"""Face-like colours, inside BT.709's gamut: a round trip keeps them to a level."""


def xy(xyz: np.ndarray) -> np.ndarray:
    return xyz[:2] / xyz.sum()


@pytest.mark.parametrize("primaries", sorted(set(PRIMARIES) - {BT709_PRIMARIES}))
def test_a_sources_primaries_land_on_their_chromaticities(primaries: int) -> None:
    """Each primary of the source, moved into linear BT.709 and measured with BT.709's own matrix, has
    the source's chromaticity (white adapted where the whites differ: then white stays white)."""
    matrix = primaries_matrix(primaries)
    source = PRIMARIES[primaries][1]
    same_white = source[3] == PRIMARIES[BT709_PRIMARIES][1][3]
    assert np.allclose(matrix @ np.ones(3), np.ones(3), atol=1e-9), "white must stay white"
    if same_white:
        for channel in range(3):
            measured = xy(rgb_to_xyz(PRIMARIES[BT709_PRIMARIES][1]) @ matrix[:, channel])
            assert np.allclose(measured, source[channel], atol=1e-9), (channel, measured)
    assert not np.allclose(matrix, np.eye(3), atol=1e-3), "a different gamut must move colours"


@pytest.mark.parametrize("transfer", sorted(TRANSFERS))
def test_every_transfer_curve_is_continuous_monotone_and_inverted_exactly(transfer: int) -> None:
    light = np.linspace(0.0, 1.0, 100_001)
    codes = encode_transfer(light, transfer)
    assert codes[0] == pytest.approx(0.0, abs=1e-12) and codes[-1] == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.diff(codes) > 0), "not monotone"
    steps = np.diff(codes)[light[1:] >= CURVE_FOOT]  # a pure power's slope has no bound at 0
    assert steps.max() < MAX_CURVE_STEP, "a jump: a piecewise curve's pieces do not meet"
    assert np.allclose(decode_transfer(codes, transfer), light, atol=1e-9)


def test_bt709_and_untagged_sources_are_not_converted() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    for colour in (FACE_COLOUR, SourceColour(), SourceColour(primaries=UNSPECIFIED, transfer=6)):
        assert not colour.needs_conversion and colour.key() is None
        assert to_face_space(image, colour) is image and from_face_space(image, colour) is image


def test_faces_go_into_a_bt601_source_and_back_to_a_level_on_the_host_and_on_torch() -> None:
    face = to_face_space(SKIN, BT601)
    assert np.abs(face.astype(int) - SKIN).max() > 10, "gamma 2.8 codes are not BT.709's"
    back = from_face_space(face, BT601)
    assert np.abs(back.astype(int) - SKIN).max() <= 1
    on_torch = from_face_space(torch.from_numpy(face), BT601)
    assert isinstance(on_torch, torch.Tensor) and np.abs(on_torch.numpy().astype(int) - back).max() <= 1


@pytest.mark.parametrize(
    ("primaries", "transfer", "message"),
    [
        (9, 1, "BT.2020 primaries"),
        (1, 16, "PQ (SMPTE ST 2084) transfer"),
        (10, 1, "AVCOL_PRI 10 primaries"),
        (1, 9, "AVCOL_TRC 9 transfer"),
    ],
)
def test_colours_a_face_cannot_hold_are_refused(primaries: int, transfer: int, message: str) -> None:
    info = replace(_info(), color_primaries=primaries, color_trc=transfer)
    with pytest.raises(ReenactError, match=re.escape(message)):
        video.check_face_colour(info)
    video.check_face_colour(replace(info, color_primaries=6, color_trc=5))  # BT.601, gamma 2.8: converted


def _info() -> video.VideoInfo:
    return video.new_video_info(width=16, height=16, fps=25)


def tagged_copy(clip: Path, destination: Path, colour: SourceColour) -> Path:
    """`clip`'s frames moved into `colour` (`from_face_space`: the world's BT.709 pictures as such a
    camera would have coded them), lossless RGB FFV1 tagged with it, same timing."""

    def coded(frame: av.VideoFrame) -> av.VideoFrame:
        rgb = from_face_space(frame.to_ndarray(format="rgb24"), colour)
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=PACKED_RGB)

    return ffv1_copy(
        clip,
        destination,
        pix_fmt=PACKED_RGB,
        picture=coded,
        primaries=colour.primaries,
        transfer=colour.transfer,
    )


@pytest.mark.slow
def test_a_transfer_into_a_bt601_gamma_28_clip_matches_the_truth_in_its_colour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The synthetic world's target coded as a BT.601 / gamma 2.8 camera would (lossless, tagged): the
    transfer, moved back into BT.709, matches the truth as closely as the same clip coded and tagged as
    BT.709 does (within 1 dB); the same codes untagged (so nothing is converted) fall far short."""
    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    truth, regions = true_transfer_frames(files.world, composite=synthetic_settings().composite, ref=0)
    scores = {}
    clips = {
        "bt709": tagged_copy(files.target_video, tmp_path / "bt709.mkv", FACE_COLOUR),
        "bt601": tagged_copy(files.target_video, tmp_path / "bt601.mkv", BT601),
    }
    clips["untagged"] = untagged_copy(clips["bt601"], tmp_path / "untagged.mkv")
    for name, target in clips.items():
        output = tmp_path / f"{name}-out.mkv"
        args = files.transfer_args(output, generator=generator)
        args[1] = str(target)
        common = ["--preset", "synthetic", "--workdir", str(tmp_path / f"work-{name}"), "--quiet"]
        assert run([*args, *common]) == 0, capsys.readouterr().err
        frames = decode(output)  # the codes as the camera coded them: back into BT.709 to compare
        scores[name] = face_psnr(
            to_face_space(frames, FACE_COLOUR if name == "bt709" else BT601), truth, regions
        )
    print("face PSNR against the truth (BT.709):", {name: round(value, 2) for name, value in scores.items()})
    assert scores["bt601"] >= scores["bt709"] - 1.0, scores
    assert scores["untagged"] < scores["bt601"] - 1.0, scores


def untagged_copy(clip: Path, destination: Path) -> Path:
    """`clip` with its colour tags dropped (the same codes)."""

    def untagged(frame: av.VideoFrame) -> av.VideoFrame:
        picture = frame.reformat(format=PACKED_RGB)
        picture.color_primaries = picture.color_trc = UNSPECIFIED
        return picture

    return ffv1_copy(clip, destination, pix_fmt=PACKED_RGB, picture=untagged)
