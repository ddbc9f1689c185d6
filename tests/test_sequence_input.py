"""Image sequences as input (#26): printf patterns and folders of numbered PNG/TIFF/DPX frames, read
through the one reader (`video.VideoReader`), timed by `--fps`, their first frame number kept; gaps, mixed
sizes and a missing `--fps` refused in one line before any output. Sources are made here with content in
every bit of their samples, so an 8-bit step anywhere shows."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from reenact import video
from reenact.codecs import CODECS
from reenact.video import MATTE_LEVELS
from reenact_cli.main import run
from tests.test_mastering import blend_weights_of
from tests.videotools import frame_times

FIRST = 1001
HIGHLIGHT = 4.5
"""A float plate's value above 1.0 (scene light), which a 16-bit path would clip to 1."""
"""First frame number of the test sequences (a common VFX start)."""
FRAMES = 5
SIZE = (48, 32)
"""Width and height of the test frames."""
FPS = 25
START_TIMECODE = "00:00:40:01"
"""Frame 1001 counted at 25 fps."""
SEED = 11
BT709_MATRIX = 1
"""FFmpeg's AVCOL_SPC_BT709."""
FORMATS = {
    # extension: (encoder, pixel format the file is written in, bits of its samples)
    ".png": ("png", "rgb48be", 16),
    ".tif": ("tiff", "rgb48le", 16),
    ".dpx": ("dpx", "gbrp10le", 10),
}


def deep_image(index: int, *, bits: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """[H, W, 3] uint16 RGB at `bits` bits (scaled to 16 as FFmpeg's RGB48 holds them): a ramp that moves
    with `index`, with noise in every bit below the top 8, so no 8-bit step can give it back."""
    width, height = size
    rng = np.random.default_rng(SEED + index)
    ramp = np.linspace(0, (1 << bits) - 1, width * height * 3).reshape(height, width, 3)
    codes = (ramp + rng.integers(0, 1 << (bits - 8), ramp.shape) + index * 7) % (1 << bits)
    return (codes.astype(np.uint16) << (16 - bits)) | (codes.astype(np.uint16) >> (2 * bits - 16))


def write_image(path: Path, image: np.ndarray, *, suffix: str) -> None:
    """One frame file in the format of `suffix` (`FORMATS`), straight from PyAV's encoder."""
    encoder, pix_fmt, _ = FORMATS[suffix]
    frame = av.VideoFrame.from_ndarray(image, format="rgb48le").reformat(format=pix_fmt)
    context = av.CodecContext.create(encoder, "w")
    context.width, context.height, context.pix_fmt = image.shape[1], image.shape[0], pix_fmt
    context.time_base = Fraction(1, FPS)
    path.write_bytes(b"".join(bytes(packet) for packet in context.encode(frame)))


def write_sequence(folder: Path, *, suffix: str = ".png", first: int = FIRST, frames: int = FRAMES) -> Path:
    """`frames` numbered files `shot_NNNNNN<suffix>` from `first` in `folder`; returns the pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    bits = FORMATS[suffix][2]
    for index in range(frames):
        write_image(folder / f"shot_{first + index:06d}{suffix}", deep_image(index, bits=bits), suffix=suffix)
    return folder / f"shot_%06d{suffix}"


def rgb48(path: Path) -> list[np.ndarray]:
    """Every decoded frame of a file as [H, W, 3] uint16 RGB, read with plain PyAV."""
    with av.open(str(path)) as container:
        return [frame.reformat(format="rgb48le").to_ndarray() for frame in container.decode(video=0)]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("suffix", list(FORMATS))
@pytest.mark.parametrize("as_folder", [False, True])
def test_a_sequence_reencodes_to_a_sequence_bit_exact_from_its_first_number(
    suffix: str, as_folder: bool, tmp_path: Path
) -> None:
    """A 16-bit PNG/TIFF or 10-bit DPX sequence from frame 1001, named by pattern or by folder, into the
    same format: the files are numbered from 1001, and each holds the source's very samples."""
    pattern = write_sequence(tmp_path / "in", suffix=suffix)
    source = pattern.parent if as_folder else pattern
    output = tmp_path / "out" / f"%04d{suffix}"
    assert run(["reencode", str(source), "-o", str(output), "--fps", str(FPS), "--quiet"]) == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [path.name for path in written] == [f"{FIRST + index}{suffix}" for index in range(FRAMES)]
    for index, path in enumerate(written):
        ours = rgb48(path)[0]
        theirs = rgb48(pattern.parent / f"shot_{FIRST + index:06d}{suffix}")[0]
        assert np.array_equal(ours, theirs), path.name
        assert np.mean(theirs % 257 != 0) > 0.5  # the low byte carries content: an 8-bit step shows


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_a_sequence_into_ffv1_keeps_depth_timing_and_its_first_frame_as_timecode(
    suffix: str, tmp_path: Path
) -> None:
    """A sequence into lossless FFV1: frame count, pts one 1/fps tick apart from 0, the samples' depth
    (16-bit PNG/TIFF stay 16-bit, DPX 10-bit stays 10-bit), every sample exact, and the timecode its
    first frame number at --fps."""
    pattern = write_sequence(tmp_path / "in", suffix=suffix)
    output = tmp_path / "out.mkv"
    args = ["reencode", str(pattern), "-o", str(output), "--fps", str(FPS), "--codec", "ffv1", "--quiet"]
    assert run(args) == 0
    info = video.probe(output)
    assert info.bit_depth == FORMATS[suffix][2] and info.frame_count == FRAMES
    assert frame_times(output) == [Fraction(index, FPS) for index in range(FRAMES)]
    assert info.timecode == START_TIMECODE
    sources = [rgb48(pattern.parent / f"shot_{FIRST + index:06d}{suffix}")[0] for index in range(FRAMES)]
    for index, (ours, theirs) in enumerate(zip(rgb48(output), sources, strict=True)):
        assert np.array_equal(ours, theirs), f"frame {index}"


def test_the_reader_gives_a_sequence_deep_frames_at_its_rate(tmp_path: Path) -> None:
    """`probe` and `VideoReader` of a 16-bit PNG pattern at 24000/1001: its first number, frame count, rate
    and depth; frames numbered from 0 with pts from 0 in 1001/24000 s ticks, uint16 for writing out,
    uint8 for analysis."""
    pattern = write_sequence(tmp_path / "in")
    rate = Fraction(24000, 1001)
    info = video.probe(pattern, fps=rate)
    frames = list(video.VideoReader(pattern, fps=rate).frames(native=True))
    analysis = next(iter(video.VideoReader(pattern.parent, fps=rate).frames()))
    assert (info.first_frame_number, info.frame_count, info.bit_depth) == (FIRST, FRAMES, 16)
    assert info.time_base_fraction == Fraction(1001, 24000) and info.fps_nominal == round(24000 / 1001, 4)
    assert [(frame.index, frame.pts) for frame in frames] == [(index, index) for index in range(FRAMES)]
    assert frames[0].image.dtype == np.uint16 and np.array_equal(frames[0].image, deep_image(0, bits=16))
    assert analysis.image.dtype == np.uint8


def test_two_sequences_read_at_once_each_at_its_own_rate(tmp_path: Path) -> None:
    """The rate travels with each input (no run-wide setting): two sequences, and the same files at a
    third rate, probed and decoded side by side, frames interleaved, each timed by its own rate; without
    one a sequence is refused in one line."""
    from reenact.errors import UsageError

    rates = {"a": Fraction(24000, 1001), "b": Fraction(50), "same files as a": Fraction(12)}
    patterns = {"a": write_sequence(tmp_path / "a"), "b": write_sequence(tmp_path / "b", frames=FRAMES)}
    patterns["same files as a"] = patterns["a"]
    infos = {name: video.probe(patterns[name], fps=rate) for name, rate in rates.items()}
    readers = {name: video.VideoReader(patterns[name], fps=rate).frames() for name, rate in rates.items()}
    seconds: dict[str, list[Fraction]] = {name: [] for name in rates}
    for _ in range(FRAMES):
        for name, frames in readers.items():
            frame = next(frames)
            seconds[name].append(frame.pts * frame.time_base)
    for name, rate in rates.items():
        assert infos[name].time_base_fraction == 1 / rate, name
        assert infos[name].duration_s == pytest.approx(float(FRAMES / rate), abs=1e-3), name
        assert seconds[name] == [index / rate for index in range(FRAMES)], name
    with pytest.raises(UsageError, match="carries no frame rate: give it with --fps"):
        video.probe(patterns["a"])
    with pytest.raises(UsageError, match="carries no frame rate: give it with --fps"):
        video.VideoReader(patterns["b"])


@pytest.mark.parametrize(
    ("rate", "timecode"),
    [
        (Fraction(30000, 1001), "00:01:00;02"),  # drop-frame skips ;00 and ;01 at the first minute
        (Fraction(60000, 1001), "00:00:30;00"),
        (Fraction(24000, 1001), "00:01:15:00"),  # counted at 24, never drop-frame
        (Fraction(25), "00:01:12:00"),
    ],
)
def test_a_sequences_timecode_is_drop_frame_at_ntsc_rates(
    tmp_path: Path, rate: Fraction, timecode: str
) -> None:
    """Frame 1800's timecode: drop-frame at 29.97 and 59.94 (SMPTE 12M's convention there), else not."""
    pattern = write_sequence(tmp_path / "in", first=1800, frames=2)
    assert video.probe(pattern, fps=rate).timecode == timecode


def test_a_slice_of_a_sequence_keeps_its_frame_numbers(tmp_path: Path) -> None:
    """`--start 2f` of a sequence from 1001: an output sequence starts at 1003, a video's timecode there."""
    pattern = write_sequence(tmp_path / "in")
    common = ["--fps", str(FPS), "--start", "2f", "--quiet"]
    assert run(["reencode", str(pattern), "-o", str(tmp_path / "out" / "%06d.png"), *common]) == 0
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == [f"{number:06d}.png" for number in range(FIRST + 2, FIRST + FRAMES)]
    assert run(["reencode", str(pattern), "-o", str(tmp_path / "out.mkv"), "--codec", "ffv1", *common]) == 0
    assert video.probe(tmp_path / "out.mkv").timecode == "00:00:40:03"


def test_probe_describes_a_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = write_sequence(tmp_path / "in")
    capsys.readouterr()
    assert run(["probe", str(pattern.parent), "--fps", "24"]) == 0
    out = capsys.readouterr().out
    assert f"frames {FIRST}-{FIRST + FRAMES - 1}" in out and "16-bit rgb" in out
    assert f"{FRAMES} frames" in out and "24.000 nominal" in out


def gap(folder: Path) -> Path:
    """A sequence whose third frame is missing."""
    pattern = write_sequence(folder)
    (folder / f"shot_{FIRST + 2:06d}.png").unlink()
    return pattern


def mixed_sizes(folder: Path) -> Path:
    """A sequence whose fourth frame is smaller than the others."""
    pattern = write_sequence(folder)
    write_image(folder / f"shot_{FIRST + 3:06d}.png", deep_image(3, bits=16, size=(40, 32)), suffix=".png")
    return pattern


def two_sequences(folder: Path) -> Path:
    write_sequence(folder)
    write_sequence(folder / "other", frames=2).parent.rename(folder / "unused")
    write_image(folder / "plate_0001.png", deep_image(0, bits=16), suffix=".png")
    return folder


BAD_SEQUENCES = [
    # what, the source, --fps given, message, exit code
    ("no --fps", write_sequence, False, "carries no frame rate: give it with --fps", 2),
    ("a gap", gap, True, "has a gap: frame 1003 (shot_001003.png) is missing between 1001 and 1005", 1),
    (
        "mixed sizes",
        mixed_sizes,
        True,
        "mixes frame sizes: shot_001004.png is 40x32, its first frame 48x32",
        1,
    ),
    ("two sequences", two_sequences, True, "holds more than one image sequence", 1),
    ("no frames", lambda folder: folder / "none_%04d.png", True, "no frames found for the image sequence", 1),
]


@pytest.mark.parametrize(("what", "make", "with_fps", "message", "code"), BAD_SEQUENCES)
def test_bad_sequences_are_refused_in_one_line_and_leave_no_output(
    what: str,
    make: object,
    with_fps: bool,
    message: str,
    code: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = make(tmp_path / "in")  # type: ignore[operator]
    fps = ["--fps", str(FPS)] if with_fps else []
    capsys.readouterr()
    assert run(["reencode", str(source), "-o", str(tmp_path / "out" / "%04d.png"), *fps, "--quiet"]) == code
    assert message in one_error_line(capsys), what
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir()), what


def test_bad_fps_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = write_sequence(tmp_path / "in", frames=1)
    capsys.readouterr()
    assert run(["probe", str(pattern), "--fps", "fast"]) == 2
    assert "is not a frame rate" in one_error_line(capsys)


SEQUENCE_READERS = ("probe", "reencode", "align", "people", "invert", "tune", "transfer", "edit", "evaluate")
"""Every command that reads a video also reads an image sequence, so each takes `--fps` (the one error a
sequence without it gets names that option)."""


@pytest.mark.parametrize("command", SEQUENCE_READERS)
def test_every_command_that_reads_a_sequence_takes_fps(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([command, "--help"]) == 0
    assert "--fps" in capsys.readouterr().out, command


def test_people_reads_a_sequence_with_fps_and_refuses_one_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern = write_sequence(tmp_path / "in", frames=2)
    common = ["--workdir", str(tmp_path / "work"), "--quiet", "--json"]
    capsys.readouterr()
    assert run(["people", str(pattern), *common]) == 2
    assert "give it with --fps" in one_error_line(capsys)
    assert run(["people", str(pattern), "--fps", str(FPS), *common]) == 1  # read: the frames have no face
    line = one_error_line(capsys)
    assert "no face found" in line and "(2 frames" in line, line


def test_a_sequence_output_cannot_overwrite_its_own_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern = write_sequence(tmp_path / "in")
    before = rgb48(pattern.parent / f"shot_{FIRST:06d}.png")[0]
    capsys.readouterr()
    assert run(["reencode", str(pattern), "-o", str(pattern), "--fps", "25", "--overwrite", "--quiet"]) == 1
    assert "refusing to write over the input" in one_error_line(capsys)
    assert np.array_equal(rgb48(pattern.parent / f"shot_{FIRST:06d}.png")[0], before)


def png_sequence_of(clip: Path, folder: Path, *, first: int = FIRST) -> Path:
    """`clip`'s frames as a 16-bit PNG sequence from `first`, with noise in every sample's low byte (so an
    8-bit step anywhere shows); returns its pattern."""
    rng = np.random.default_rng(SEED)
    folder.mkdir(parents=True)
    with av.open(str(clip)) as source:
        for index, frame in enumerate(source.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb48le").astype(np.int64)
            noisy = np.clip(rgb + rng.integers(-128, 128, rgb.shape), 0, 65535).astype(np.uint16)
            write_image(folder / f"plate.{first + index:04d}.png", noisy, suffix=".png")
    return folder / "plate.%04d.png"


def test_an_existing_output_file_numbered_from_the_sources_first_frame_stops_the_run_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output sequence is numbered from a sequence source's first frame (1001): a file already there
    under that number is one `error:` line before any work, not after the tuning."""
    from reenact.gan.checkpoints import save_generator
    from reenact.synthetic import SyntheticConfig, make_world, write_world

    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    target = png_sequence_of(files.target_video, tmp_path / "plates")
    output = tmp_path / "out" / "%06d.png"
    output.parent.mkdir()
    existing = output.parent / f"{FIRST:06d}.png"
    existing.write_bytes(b"an earlier render")
    args = files.transfer_args(output, generator=generator)
    args[1] = str(target)
    workdir = tmp_path / "work"
    capsys.readouterr()
    assert run([*args, "--preset", "synthetic", "--workdir", str(workdir), "--fps", str(FPS), "--quiet"]) == 1
    message = one_error_line(capsys)
    assert f"{existing} already exists" in message, message
    assert not (workdir / "invert").exists() and not (workdir / "tune").exists()
    assert existing.read_bytes() == b"an earlier render"


def test_transfer_onto_a_16_bit_png_sequence_keeps_every_sample_outside_the_matte_and_embeds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`transfer` with a PNG sequence target from 1001 (by folder, `--fps`) and a PNG sequence driver (by
    pattern) into a PNG pattern, its matte a
    16-bit gray PNG sequence: one output file and one matte file per target frame, both numbered from
    1001, the matte the paste-back's blend weights; every 16-bit sample where the matte is 0 is the
    target's own, a new face where it is 1; with `--alpha` the output's alpha holds the matte's codes."""
    import json

    from reenact.gan.checkpoints import save_generator
    from reenact.synthetic import SyntheticConfig, make_world, write_world

    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    target = png_sequence_of(files.target_video, tmp_path / "plates")
    output, matte = tmp_path / "out" / "%06d.png", tmp_path / "matte" / "m_%06d.png"
    args = files.transfer_args(output, generator=generator)
    args[1] = str(target.parent)
    args[2] = str(png_sequence_of(files.driver_video, tmp_path / "driver", first=1))  # a pattern from 1
    common = ["--preset", "synthetic", "--workdir", str(tmp_path / "work"), "--quiet", "--json"]
    extra = ["--fps", str(FPS), "--matte", str(matte), "--alpha"]
    assert run([*args, *common, *extra]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    sources = sorted(target.parent.iterdir())
    written = sorted((tmp_path / "out").iterdir())
    mattes = sorted((tmp_path / "matte").iterdir())
    assert [path.name for path in written] == [f"{FIRST + index:06d}.png" for index in range(len(sources))]
    assert [path.name for path in mattes] == [f"m_{FIRST + index:06d}.png" for index in range(len(sources))]
    for index, (ours, theirs, weights_file) in enumerate(zip(sources, written, mattes, strict=True)):
        with av.open(str(weights_file)) as container:
            picture = next(container.decode(video=0))
            assert picture.format.name == "gray16be"
            weights = picture.reformat(format="gray16le").to_ndarray()  # [H, W] uint16
        with av.open(str(theirs)) as container:
            rgba = next(container.decode(video=0))
            assert rgba.format.name == "rgba64be"
            embedded = rgba.reformat(format="rgba64le").to_ndarray()[..., 3]  # [H, W] uint16
        assert np.array_equal(embedded, weights), f"frame {index}: alpha is not the matte"
        before, after = rgb48(ours)[0], rgb48(theirs)[0]
        assert after.dtype == np.uint16 and before.shape == after.shape and weights.shape == after.shape[:2]
        blend = blend_weights_of(summary, weights.shape)[index]
        assert np.array_equal(weights, np.rint(blend * MATTE_LEVELS)), f"frame {index}: matte"
        outside, inside = weights == 0, weights == np.iinfo(np.uint16).max
        assert outside.any() and inside.any(), f"frame {index}: no face"
        assert np.array_equal(before[outside], after[outside]), f"frame {index}: samples changed outside"
        assert not np.array_equal(before[inside], after[inside]), f"frame {index}: no new face"


def read_frames(path: Path) -> list[np.ndarray]:
    """The frames of a sequence as the reader gives them to be written out, as 16-bit codes [H, W, 3] (a
    float EXR's values times 65535, unrounded)."""
    images = [frame.image for frame in video.VideoReader(path, fps=Fraction(FPS)).frames(native=True)]
    return [image * 65535.0 if image.dtype == np.float32 else image for image in images]


@pytest.mark.parametrize(
    ("codec", "suffix", "pix_fmt"), [("exr", ".png", "gbrpf32le"), ("exr_half", ".dpx", "gbrpf16le")]
)
def test_exr_output_holds_the_source_codes(codec: str, suffix: str, pix_fmt: str, tmp_path: Path) -> None:
    """A 16-bit PNG sequence into float EXR reads back (through the reader) as its very 16-bit codes; a
    10-bit DPX sequence into half EXR as its very 10-bit codes; numbered from the source's first frame."""
    pattern = write_sequence(tmp_path / "in", suffix=suffix, frames=2)
    output = tmp_path / "out" / "%06d.exr"
    args = ["reencode", str(pattern), "-o", str(output), "--fps", str(FPS), "--codec", codec, "--quiet"]
    assert run(args) == 0
    with av.open(str(tmp_path / "out" / f"{FIRST:06d}.exr")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pix_fmt
    bits = FORMATS[suffix][2]
    full_scale = (1 << bits) - 1
    for ours, theirs in zip(read_frames(output), read_frames(pattern), strict=True):
        assert np.array_equal(np.rint(ours / 65535 * full_scale), np.rint(theirs / 65535 * full_scale))
        assert np.mean(theirs % 257 != 0) > 0.5  # content below the top 8 bits


def test_half_exr_refuses_a_16_bit_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = write_sequence(tmp_path / "in", frames=1)
    capsys.readouterr()
    args = [
        "reencode",
        str(pattern),
        "-o",
        str(tmp_path / "o" / "%04d.exr"),
        "--fps",
        "25",
        "--codec",
        "exr_half",
    ]
    assert run(args) == 1
    assert "16-bit samples and exr_half holds at most 10 bits" in one_error_line(capsys)


def test_float_exr_is_read_and_refused_by_formats_that_cannot_hold_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EXR source is read (probe: 32-bit float); into PNG (16 bits at most) it is one line naming
    the format that holds it."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "shot_000001.png", deep_image(0, bits=16), suffix=".png")
    assert (
        run(["reencode", str(folder), "-o", str(tmp_path / "exr" / "%04d.exr"), "--fps", "25", "--quiet"])
        == 0
    )
    capsys.readouterr()
    assert run(["probe", str(tmp_path / "exr"), "--fps", "25"]) == 0
    assert "32-bit rgb" in capsys.readouterr().out
    assert (
        run(["reencode", str(tmp_path / "exr"), "-o", str(tmp_path / "o" / "%04d.png"), "--fps", "25"]) == 1
    )
    assert "32-bit samples and png holds at most 16 bits: use exr" in one_error_line(capsys)


def float_sequence_of(clip: Path, folder: Path, *, first: int = FIRST) -> Path:
    """`clip`'s frames as a float EXR sequence from `first`: each code over 255 plus noise far below a
    16-bit step, and a corner above 1.0 (scene light a 16-bit path would clip); returns its pattern."""
    rng = np.random.default_rng(SEED)
    folder.mkdir(parents=True)
    with av.open(str(clip)) as source:
        for index, frame in enumerate(source.decode(video=0)):
            values = frame.to_ndarray(format="rgb24").astype(np.float32) / 255
            values += rng.uniform(0, 1e-6, values.shape).astype(np.float32)
            values[:4, :4] = HIGHLIGHT
            picture = video._rgb_to_float(values)
            context = av.CodecContext.create("exr", "w")
            context.width, context.height, context.pix_fmt = (
                picture.width,
                picture.height,
                picture.format.name,
            )
            context.time_base, context.options = Fraction(1, FPS), dict(CODECS["exr"].options)
            picture.pts = 0
            packets = context.encode(picture) + context.encode(None)
            (folder / f"plate.{first + index:04d}.exr").write_bytes(b"".join(bytes(p) for p in packets))
    return folder / "plate.%04d.exr"


def exr_values(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray()  # [H, W, 3] (or [H, W]) float32


def test_transfer_onto_a_float_exr_sequence_keeps_every_value_outside_the_matte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`transfer` onto a float EXR plate (values between 16-bit steps, highlights above 1.0) into float
    EXR: every value where the float matte is 0 is the plate's own, bit for bit; a new face where it is 1.
    A 16-bit path would round every value and clip the highlights."""
    from reenact.gan.checkpoints import save_generator
    from reenact.synthetic import SyntheticConfig, make_world, write_world

    files = write_world(make_world(SyntheticConfig(seed=0)), tmp_path / "files")
    generator = save_generator(files.world.generator, tmp_path / "g.safetensors")
    target = float_sequence_of(files.target_video, tmp_path / "plates")
    output, matte = tmp_path / "out" / "%06d.exr", tmp_path / "matte" / "%06d.exr"
    args = files.transfer_args(output, generator=generator)
    args[1] = str(target)
    common = ["--preset", "synthetic", "--workdir", str(tmp_path / "work"), "--quiet"]
    assert run([*args, *common, "--fps", str(FPS), "--matte", str(matte)]) == 0, capsys.readouterr().err
    sources = sorted(target.parent.iterdir())
    written = sorted((tmp_path / "out").iterdir())
    mattes = sorted((tmp_path / "matte").iterdir())
    assert [path.name for path in written] == [f"{FIRST + index:06d}.exr" for index in range(len(sources))]
    for index, (ours, theirs, weights_file) in enumerate(zip(sources, written, mattes, strict=True)):
        before, after, weights = exr_values(ours), exr_values(theirs), exr_values(weights_file)
        assert after.dtype == np.float32 and after.shape == before.shape
        outside, inside = weights == 0, weights == 1
        assert outside.any() and inside.any(), f"frame {index}: no face"
        assert np.array_equal(before[outside], after[outside]), f"frame {index}: values changed outside"
        assert after[:4, :4].min() == HIGHLIGHT, f"frame {index}: the highlight was clipped"
        assert not np.array_equal(before[inside], after[inside]), f"frame {index}: no new face"


def test_an_rgb_sequence_into_yuv_is_tagged_bt709_limited_range(tmp_path: Path) -> None:
    """PNG frames (RGB, no matrix) into H.264: converted with BT.709 and tagged so, in limited range (an RGB
    matrix tag on a YUV stream would make players show it as GBR)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        image = (deep_image(index, bits=16) >> 8).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        context = av.CodecContext.create("png", "w")
        context.width, context.height, context.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        context.time_base = Fraction(1, FPS)
        (folder / f"{index:04d}.png").write_bytes(b"".join(bytes(p) for p in context.encode(frame)))
    output = tmp_path / "out.mp4"
    assert run(["reencode", str(folder), "-o", str(output), "--fps", str(FPS), "--quiet"]) == 0
    info = video.probe(output)
    assert (info.video_codec, info.colorspace, info.full_range) == ("h264", BT709_MATRIX, False)
