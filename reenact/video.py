"""Streaming video I/O on PyAV that never damages what it does not touch.

- `probe(path)` describes a file without decoding it (one frame at most, for the display rotation).
- `VideoReader` yields RGB frames with their original pts and time base, one at a time; given a `window`
  (`slice_window`: `--start/--duration`), only the slice's frames, numbered from 0, their pts shifted so
  the slice starts at 0 (`reenact.timeline`). Frames for analysis are 8-bit; frames to be written out
  (`native=True`) keep the source's depth (16-bit RGB above 8 bits) and carry the decoded picture itself.
- `VideoWriter` encodes the codec `reenact.codecs` chooses (the source's own by default: ProRes stays
  ProRes, H.264 stays H.264) with the caller's exact timestamps (VFR kept), the source's display rotation,
  colour tags, range and start timecode, and copies the source's audio packet for packet (no re-encode;
  of a slice, the packets that start inside its span, shifted by the same time as its frames), and its
  subtitle and data streams where the container holds them (`dropped_streams_note` names the rest). With
  `--alpha` (`OutputFormat.alpha`) the face matte goes into the output's alpha plane. From a
  source above 8 bits, or into a lossless codec, wherever a written frame equals the source frame it came
  from the output gets the source's own decoded codes (when the pixel formats agree), not a round trip
  through RGB; an 8-bit source into a lossy codec goes through 8-bit RGB as it always has. It writes to a
  hidden temporary file beside the destination and renames it only when everything succeeded, so an
  interrupted or failed run never leaves a file that looks finished.

Image sequences (`reenact.sequences`: a pattern or a folder of numbered PNG/TIFF/DPX/EXR files) read as
clips through FFmpeg's image2 demuxer, at the rate their caller gives with them (`probe(path, fps=...)`,
`VideoReader(path, fps=...)`: the CLI's `--fps`), their first frame number kept (an output sequence,
`SequenceWriter`, starts at it; a video's timecode counts it). Still images (jpg/png/webp/bmp/tiff) read
as one-frame clips. Orientation: frames come in coded
orientation unless `upright=True`, which applies the display rotation (what a player shows).
"""

from __future__ import annotations

import functools
import io
import math
import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from reenact.codecs import (
    CODECS,
    FLOAT_DEPTH,
    FLOAT_RGB,
    Codec,
    alpha_format,
    choose_codec,
    is_planar,
    pixel_format,
    pixel_layout,
    plain_format,
)
from reenact.colour import PRIMARIES, TRANSFERS, SourceColour
from reenact.config import SOURCE_TIMECODE, VideoConfig
from reenact.errors import ReenactError, UsageError
from reenact.sequences import (
    FIRST_FRAME_NUMBER,
    SEQUENCE_SUFFIXES,
    ImageSequence,
    check_pattern,
    find_sequence,
    frame_path,
    is_sequence_input,
    sequence_container,
    sequence_rate,
)
from reenact.timecode import frame_timecode, parse_timecode
from reenact.timeline import ClipSlice, Window, resolve_window

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*")
WEBP_MAGIC = (b"RIFF", b"WEBP")
MAGIC_BYTES = 12
VIDEO_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".mxf": "mxf"}
OUTPUT_SUFFIXES = (*VIDEO_SUFFIXES, *(f"%06d{suffix}" for suffix in SEQUENCE_SUFFIXES))
"""What an output may be: a video file, or an image sequence pattern (shown with a frame field)."""
MUXER_OPTIONS = {
    "mp4": {"movflags": "+faststart"},
    "mov": {"movflags": "+faststart"},
    "matroska": {"avoid_negative_ts": "disabled"},
}
"""Per container: mp4/mov get their index in front (playable while downloading, decodable when cut short);
Matroska keeps negative timestamps (audio priming, B-frame delay) instead of shifting every stream."""
MOVIE_FORMATS = ("mp4", "mov")
MOVIE_TIMESCALE = "movie_timescale"
"""The mp4/mov muxer option for the clock of its edit lists (default 1000 per second). Set to the copied
audio's sample rate, so an audio start that is not a whole millisecond (a slice's first audio packet)
reads back exactly; with the default it was rounded down by up to 1 ms."""
STILL_TIME_BASE = Fraction(1, 25)
"""Time base (and frame duration) of a video made from a still image."""
VFR_SPREAD = 0.1
"""A clip is variable-frame-rate when its frame durations spread by more than this fraction."""
UNSPECIFIED_COLOR = 2
"""FFmpeg's AVCOL_*_UNSPECIFIED, the same value for primaries, transfer and matrix."""
Interpolation = av.video.reformatter.Interpolation
ColorRange = av.video.reformatter.ColorRange
VideoReformatter = av.video.reformatter.VideoReformatter
COLOUR_EXACT = (
    Interpolation.BILINEAR
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)
"""swscale flags for every RGB<->YUV conversion: correctly rounded, chroma handled at full resolution.
swscale's fast default is biased (each decode/encode pass darkened the picture by about a level)."""
DEFAULT_MATRIX = int(av.video.reformatter.Colorspace.ITU601)
"""The matrix swscale and most decoders assume for a source that does not say (BT.601)."""
RGB_MATRIX = 0
"""FFmpeg's AVCOL_SPC_RGB: the matrix tag of RGB pictures (PNG, TIFF, DPX, EXR), which have none."""
RGB_INTO_YUV_MATRIX = int(av.video.reformatter.Colorspace.ITU709)
"""The matrix an RGB source (an image sequence) is written to YUV with: BT.709, HD's."""
RIGHT_ANGLE = 90
EIGHT_BITS = 8
PROBES_REMEMBERED = 64
"""Files whose `probe` a process remembers."""
MACROBLOCK = 16
H264_MAX_FRAME_MACROBLOCKS = 139_264
"""The largest frame H.264 allows (level 6.2, e.g. 8192x4320), in 16x16 macroblocks; each side at most
sqrt(8x) of them."""
EIGHT_BIT_RGB = "rgb24"
DEEP_RGB = "rgb48le"
"""RGB of frames from sources above 8 bits: uint16, the source's codes scaled to the full 16 bits."""
MXF = "mxf"
FLOAT_RGBA = "gbrapf32le"
"""`FLOAT_RGB` with an alpha plane (EXR with `--alpha`)."""
FLOAT_VALUES = "float32"
"""`VideoInfo.rgb_format` of a 32-bit float source: frames to be written out are its values as float32,
unclipped and unrounded, so a float EXR output keeps them exactly."""
FLOAT_RGB_PLANES = {
    "gbrpf32le": (np.float32, "GBR"),
    "gbrapf32le": (np.float32, "GBR"),
    "gbrpf16le": (np.float16, "GBR"),
    "gbrapf16le": (np.float16, "GBR"),
}
"""Float RGB pixel formats (what the EXR decoder gives): sample type and the order of their colour planes."""
IMAGE_SEQUENCE_DEMUXER = "image2"
"""FFmpeg's demuxer of numbered image files."""
MXF_AUDIO_CODECS = ("pcm_s16le", "pcm_s24le")
"""The audio FFmpeg's MXF muxer takes (reenact copies audio untouched, never transcodes it)."""
X26X_ENCODERS = ("libx264", "libx265")
"""Encoders that take `video.crf` and `video.preset`."""
TIMECODE_TAG = "timecode"
"""The metadata key of a start timecode (MOV/MP4 stream, MXF container; Matroska spells it in capitals)."""
CONVERSION_REACH = 2
"""Frame pixels around a changed pixel whose subsampled chroma the RGB -> YUV conversion may change
(swscale's chroma filter); `VideoWriter` keeps the source's codes only beyond them."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a file; sizes are coded (before display rotation)."""

    path: str
    container: str
    is_image: bool
    width: int
    height: int
    rotation: int
    """Display rotation in degrees as FFmpeg reports it (-90: the player turns the picture clockwise)."""
    display_width: int
    display_height: int
    fps_avg: float
    fps_nominal: float
    vfr: bool
    frame_count: int
    """Frames a decoder shows: for a file cut short, those that survive the cut."""
    frames_announced: int
    """Frames the container's index announces (more than `frame_count` when the file is cut short)."""
    duration_s: float
    time_base: str
    video_codec: str
    pix_fmt: str
    has_audio: bool
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    colorspace: int = UNSPECIFIED_COLOR
    """FFmpeg colour tags of the source (matrix, range, primaries, transfer), carried to the output."""
    color_range: int = 0
    color_primaries: int = UNSPECIFIED_COLOR
    color_trc: int = UNSPECIFIED_COLOR
    bit_depth: int = 8
    """Bits per sample of the decoded picture (of its deepest component)."""
    chroma: str = "4:2:0"
    """Chroma layout of the decoded picture: 4:2:0, 4:2:2, 4:4:4, rgb or gray."""
    timecode: str | None = None
    """Start timecode (HH:MM:SS:FF; `;` before the frames when drop-frame), None when the file has none.
    An image sequence's is its first frame number counted at its rate (frame 1001 at 25 fps: 00:00:40:01)."""
    first_frame_number: int | None = None
    """The number of an image sequence's first file (None for a video or a still image)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def colour(self) -> SourceColour:
        """Its primaries and transfer, which faces are converted into and out of (`reenact.colour`)."""
        return SourceColour(primaries=self.color_primaries, transfer=self.color_trc)

    @property
    def time_base_fraction(self) -> Fraction:
        return Fraction(self.time_base)

    @property
    def frames_missing(self) -> int:
        """Announced frames that a cut or damaged file cannot deliver."""
        return max(0, self.frames_announced - self.frame_count)

    @property
    def rgb_format(self) -> str:
        """The RGB that frames to be written out are decoded to: a 32-bit float source's values
        themselves, 16-bit above 8 bits (a half float source's clipped to 0..1), else 8-bit."""
        if self.bit_depth == FLOAT_DEPTH:
            return FLOAT_VALUES
        return DEEP_RGB if self.bit_depth > EIGHT_BITS else EIGHT_BIT_RGB

    @property
    def full_range(self) -> bool:
        """Whether the source's YUV codes use the full range (JPEG), not the limited (MPEG) one."""
        return self.color_range == ColorRange.JPEG or self.pix_fmt.startswith("yuvj")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB pixels and where it sits in time."""

    image: np.ndarray  # [H, W, 3] uint8 RGB, or uint16 for a frame to be written out of a deep source
    pts: int
    time_base: Fraction
    index: int
    decoded: av.VideoFrame | None = None
    """The decoded picture in its own pixel format (coded orientation), for frames to be written out:
    `VideoWriter` keeps its codes wherever `image` is left as it was."""

    @property
    def time_s(self) -> float:
        return float(self.pts * self.time_base)


def new_video_info(*, width: int, height: int, fps: Fraction | int, path: str = "") -> VideoInfo:
    """A `VideoInfo` for frames we make ourselves (synthetic clips, morphs): constant rate, no audio."""
    fps = Fraction(fps)
    return VideoInfo(
        path=path,
        container="new",
        is_image=False,
        width=width,
        height=height,
        rotation=0,
        display_width=width,
        display_height=height,
        fps_avg=float(fps),
        fps_nominal=float(fps),
        vfr=False,
        frame_count=0,
        frames_announced=0,
        duration_s=0.0,
        time_base=str(1 / fps),
        video_codec="rawvideo",
        pix_fmt="rgb24",
        has_audio=False,
        audio_codec=None,
        audio_sample_rate=None,
        audio_channels=None,
    )


def rotation_turns(rotation: int) -> int:
    """Counter-clockwise quarter turns (for `np.rot90`) that bring a coded frame upright."""
    return (round(rotation / RIGHT_ANGLE)) % 4


def to_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Coded orientation -> display orientation."""
    turns = rotation_turns(rotation)
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def to_coded(image: np.ndarray, rotation: int) -> np.ndarray:
    """Display orientation -> coded orientation (inverse of `to_upright`)."""
    turns = rotation_turns(rotation)
    return np.ascontiguousarray(np.rot90(image, -turns)) if turns else image


def probe(path: str | Path, *, fps: Fraction | None = None) -> VideoInfo:
    """Describe a video or image file, or an image sequence at `fps` frames per second (which it needs: a
    one-line `UsageError` without; a file has its own rate and ignores it); `ReenactError` when it is
    missing or unreadable. A file is read once per process while it is unchanged (same size and
    modification time): every stage of a run asks, and a long file's packets are many."""
    path = check_input(path)
    if is_sequence_input(path):
        sequence = find_sequence(path)
        rate = sequence_rate(path, fps)
        stamp = _file_stamp(frame_path(sequence.pattern, sequence.last))
        info = _probe_sequence(str(sequence.pattern.resolve()), sequence.first, sequence.count, rate, *stamp)
        return replace(info, path=str(path))
    stat = path.stat()
    info = _probe_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return replace(info, path=str(path))


@functools.lru_cache(maxsize=PROBES_REMEMBERED)
def _probe_sequence(
    pattern: str, first: int, count: int, rate: Fraction, size: int, mtime_ns: int
) -> VideoInfo:
    """`probe` of the image sequence `pattern` (`count` files from `first`, their last one of this size and
    mtime) at `rate` frames per second: frame `first + i` is shown at `i / rate` seconds. Only the first
    file is decoded (for its size and pixel format); the files' sizes are checked as they are read."""
    sequence = ImageSequence(pattern=Path(pattern), first=first, count=count)
    with _open_sequence(sequence, rate=rate) as container:
        stream = _video_stream(container, sequence.pattern)
        times = PacketTimes(pts=list(range(count)), announced=count, truncated=False)
        info = _video_info(sequence.pattern, container, stream, None, rotation=0, times=times)
    return replace(info, first_frame_number=first, timecode=str(frame_timecode(first, rate=rate)))


@functools.lru_cache(maxsize=PROBES_REMEMBERED)
def _probe_file(resolved: str, size: int, mtime_ns: int) -> VideoInfo:
    """`probe` of the file at `resolved` with this size and mtime (the arguments are the memo's key)."""
    path = Path(resolved)
    if is_image_file(path):
        return _probe_image(path)
    with _open_video(path) as container:
        stream = _video_stream(container, path)
        rotation = _first_frame_rotation(container, stream)
        container.seek(0)
        times = _packet_times(container, stream)
        audio = container.streams.audio[0] if container.streams.audio else None
        return _video_info(path, container, stream, audio, rotation=rotation, times=times)


def check_input(path: str | Path) -> Path:
    """An input path that exists, is a file and is not empty, or a one-line `ReenactError`."""
    path = Path(path)
    if is_sequence_input(path):
        return path  # its files are checked by `find_sequence`
    if not path.exists():
        raise ReenactError(f"input not found: {path}")
    if path.is_dir():
        raise ReenactError(f"{path} is a directory, not a video or image file")
    if path.stat().st_size == 0:
        raise ReenactError(f"{path} is empty (0 bytes)")
    return path


def is_image_file(path: Path) -> bool:
    """True for still images, judged by content first (a PNG named .jpg is still an image)."""
    with path.open("rb") as handle:
        head = handle.read(MAGIC_BYTES)
    if any(head.startswith(magic) for magic in IMAGE_MAGIC):
        return True
    if head.startswith(WEBP_MAGIC[0]) and head[8:12] == WEBP_MAGIC[1]:
        return True
    return path.suffix.lower() in IMAGE_SUFFIXES


def slice_window(
    path: str | Path, request: ClipSlice | None, *, fps: Fraction | None = None
) -> Window | None:
    """The frames of `path` (an image sequence: at `fps`, as `probe`) that `request` holds (None: the whole
    clip); a `UsageError` when it holds none or the file is a still image. Reads the clip's packet
    timestamps (no decoding)."""
    if request is None:
        return None
    info = probe(path, fps=fps)
    if info.is_image:
        raise UsageError(f"--start/--duration slice a video; {path} is a still image")
    if info.first_frame_number is not None:  # an image sequence: one frame a 1/rate tick
        pts: tuple[int, ...] = tuple(range(info.frame_count))
    else:
        pts = _frame_times(str(Path(path).resolve()), *_file_stamp(Path(path)))
    return resolve_window(
        request, pts=pts, end_pts=_end_pts(pts, info), time_base=info.time_base_fraction, name=Path(path).name
    )


def _file_stamp(path: Path) -> tuple[int, int]:
    """(size, mtime) of a file: with its resolved path, the key of what a process remembers of it."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=PROBES_REMEMBERED)
def _frame_times(resolved: str, size: int, mtime_ns: int) -> tuple[int, ...]:
    """Sorted pts of the frames a decoder shows, for the file at `resolved` with this size and mtime."""
    path = Path(resolved)
    with _open_video(path) as container:
        return tuple(_packet_times(container, _video_stream(container, path)).pts)


def _end_pts(pts: tuple[int, ...], info: VideoInfo) -> int:
    """Where the clip's last frame ends: its pts plus the median frame duration (as `probe`'s duration)."""
    if len(pts) >= 2:
        return pts[-1] + int(np.median(np.diff(np.asarray(pts, dtype=np.int64))))
    rate = Fraction(info.fps_nominal or 1 / STILL_TIME_BASE)
    return pts[-1] + max(1, round(1 / (rate * info.time_base_fraction)))


def sliced_info(info: VideoInfo, window: Window | None) -> VideoInfo:
    """What a reader of `window` of the clip sees: its frames and duration (the rest is the clip's)."""
    if window is None:
        return info
    return replace(
        info,
        frame_count=window.frames,
        frames_announced=window.frames,
        duration_s=round(float(window.stop_s - window.start_s), 4),
    )


class VideoReader:
    """Streaming decoder: `for frame in reader.frames(): ...` holds one frame at a time. With a `window`
    it reads that slice as if it were the clip: frames numbered from 0, pts from 0 (`slice_window`). An
    image sequence reads at `fps` frames per second (as `probe`)."""

    def __init__(
        self, path: str | Path, *, fps: Fraction | None = None, window: Window | None = None
    ) -> None:
        self.path = check_input(path)
        self.fps = fps
        self.window = window
        self.info = sliced_info(probe(self.path, fps=fps), window)
        self.frames_decoded = 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def frames_lost(self) -> int:
        """Frames the container announced but the decoder could not deliver (after a full pass)."""
        return max(0, self.info.frames_announced - self.frames_decoded)

    def frames(
        self, *, upright: bool = False, only: Collection[int] | None = None, native: bool = False
    ) -> Iterator[Frame]:
        """Decode every frame (of the window) in order; `upright` applies the display rotation. With
        `only` (frame numbers), just those frames are converted and yielded, and decoding stops after
        the last of them: the others are decoded (the chain needs them), never converted. Frames are
        8-bit RGB (for analysis) unless `native`: frames to be written out, at the source's own depth
        (`VideoInfo.rgb_format`) and with the decoded picture attached (`Frame.decoded`)."""
        if self.info.is_image:
            self.frames_decoded = 0
            if only is not None and 0 not in only:
                return
            image = _read_image(self.path)
            self.frames_decoded = 1
            yield Frame(image=image, pts=0, time_base=STILL_TIME_BASE, index=0)
            return
        rgb_format = self.info.rgb_format if native else EIGHT_BIT_RGB
        reformatter = VideoReformatter()  # one swscale context for the whole pass
        for picture in self.pictures(only=only):
            image = frame_to_rgb(picture.decoded, reformatter=reformatter, rgb_format=rgb_format)  # [H, W, 3]
            if upright:
                image = to_upright(image, self.info.rotation)
            yield Frame(
                image=image,
                pts=picture.pts,
                time_base=picture.time_base,
                index=picture.index,
                decoded=picture.decoded if native else None,
            )

    def pictures(self, *, only: Collection[int] | None = None) -> Iterator[Picture]:
        """The decoded pictures of the video (of the window) in order, as the decoder gives them (coded
        orientation, own pixel format, no conversion); `only` as in `frames`."""
        self.frames_decoded = 0
        first, stop, shift = 0, math.inf, 0
        if self.window is not None:
            first, stop, shift = self.window.first, self.window.stop, self.window.start_pts
        if only is not None:
            stop = min(stop, first + max(only, default=-1) + 1)
        with _open_source(self.path, fps=self.fps) as container:
            stream = _video_stream(container, self.path)
            stream.thread_type = "AUTO"
            time_base = Fraction(stream.time_base)
            previous_pts: int | None = None
            try:
                for index, frame in enumerate(container.decode(stream)):
                    pts = frame.pts if frame.pts is not None else _next_pts(previous_pts, stream)
                    previous_pts = pts
                    if index < first:
                        continue  # before the window: decoded (the chain needs it), never converted
                    if index >= stop:
                        return
                    self._check_size(frame, index=index)
                    self.frames_decoded = index - first + 1
                    if only is not None and index - first not in only:
                        continue  # not asked for: decoded, never converted
                    yield Picture(decoded=frame, pts=pts - shift, time_base=time_base, index=index - first)
            except av.error.FFmpegError as exc:
                if self.frames_decoded == 0:
                    raise ReenactError(f"cannot decode {self.path}: {_ffmpeg_message(exc)}") from None
                # A damaged tail: keep what decoded; `frames_lost` tells the caller how much is missing.

    def _check_size(self, frame: av.VideoFrame, *, index: int) -> None:
        """A one-line `ReenactError` when a frame of an image sequence differs in size from its first (each
        file is a picture of its own; a video's frames share one size)."""
        first = self.info.first_frame_number
        if first is None or (frame.width, frame.height) == (self.info.width, self.info.height):
            return
        name = frame_path(find_sequence(self.path).pattern, first + index).name
        raise ReenactError(
            f"the image sequence {self.path} mixes frame sizes: {name} is {frame.width}x{frame.height}, its "
            f"first frame {self.info.width}x{self.info.height}; give every frame one size"
        )


@dataclass(frozen=True)
class Picture:
    """One decoded picture as the decoder gave it, and where it sits in time (`VideoReader.pictures`)."""

    decoded: av.VideoFrame
    pts: int
    time_base: Fraction
    index: int


def lost_frames_warning(path: str | Path, *, lost: int, announced: int) -> str:
    """The one warning every command gives for an input that cannot deliver all its frames."""
    return (
        f"warning: {lost} of {announced} frames of {Path(path).name} could not be decoded "
        "(damaged or truncated input); the rest are used"
    )


def yuv_matrix(colorspace: int) -> int:
    """The YUV matrix of a stream with this colour tag; untagged streams get the usual default."""
    return DEFAULT_MATRIX if colorspace == UNSPECIFIED_COLOR else colorspace


def output_matrix(colorspace: int, *, pix_fmt: str) -> int:
    """The YUV matrix an output in `pix_fmt` is converted with and tagged, for a source tagged `colorspace`:
    the reader's (`yuv_matrix`), so a pass changes no colour; an RGB source (an image sequence) written as
    YUV gets BT.709, and written as RGB keeps its RGB tag."""
    if colorspace != RGB_MATRIX:
        return yuv_matrix(colorspace)
    return RGB_MATRIX if pixel_layout(pix_fmt).chroma == "rgb" else RGB_INTO_YUV_MATRIX


def frame_to_rgb(
    frame: av.VideoFrame, *, reformatter: VideoReformatter | None = None, rgb_format: str = EIGHT_BIT_RGB
) -> np.ndarray:
    """RGB pixels `[H, W, 3]` of a decoded frame (uint8 for `rgb24`, uint16 for `rgb48le`), converted
    exactly in its own matrix and range.

    Pass one `reformatter` for every frame of a stream: `VideoFrame.reformat` builds a new swscale
    context (tables, threads) for each frame, which costs as much as the conversion itself."""
    if frame.format.name in FLOAT_RGB_PLANES:
        return _float_to_rgb(frame, rgb_format=rgb_format)
    color_range = frame.color_range
    if color_range == ColorRange.UNSPECIFIED:  # full range only where the pixel format says so
        color_range = ColorRange.JPEG if frame.format.name.startswith("yuvj") else ColorRange.MPEG
    rgb = (reformatter or VideoReformatter()).reformat(
        frame,
        format=rgb_format,
        src_colorspace=yuv_matrix(frame.colorspace),
        src_color_range=color_range,
        interpolation=COLOUR_EXACT,
    )
    return rgb.to_ndarray()


def _float_to_rgb(frame: av.VideoFrame, *, rgb_format: str) -> np.ndarray:
    """RGB `[H, W, 3]` of a float RGB picture (EXR): each value, clipped to 0..1, times the full scale of
    `rgb_format`, rounded. Done here: swscale's float conversions are off by up to 63 16-bit codes."""
    dtype, planes = FLOAT_RGB_PLANES[frame.format.name]
    channels = [
        _plane_array(plane, dtype, plane.height, plane.width) for plane in frame.planes[:3]
    ]  # G, B, R
    rgb = np.stack([channels[planes.index(name)] for name in "RGB"], axis=-1)  # [H, W, 3]
    if rgb_format == FLOAT_VALUES:
        return rgb.astype(np.float32)
    out = np.uint16 if rgb_format == DEEP_RGB else np.uint8
    return np.rint(np.clip(rgb.astype(np.float64), 0.0, 1.0) * np.iinfo(out).max).astype(out)


def _rgb_to_float(image: np.ndarray, *, alpha: bool = False) -> av.VideoFrame:
    """`FLOAT_RGB` picture (`FLOAT_RGBA` with `alpha`: its alpha plane left for `put_alpha`) of an RGB image
    `[H, W, 3]`: uint8 or uint16, each code over its full scale, so `_float_to_rgb` gives the very codes
    back (float32 holds every 16-bit code's quotient closely); float32, its values themselves."""
    height, width = image.shape[:2]
    frame = av.VideoFrame(width, height, FLOAT_RGBA if alpha else FLOAT_RGB)
    dtype, planes = FLOAT_RGB_PLANES[FLOAT_RGB]
    scale = 1 if image.dtype == np.float32 else np.iinfo(image.dtype).max
    for plane, name in zip(frame.planes, planes, strict=False):  # an alpha plane is the fourth
        _plane_array(plane, dtype, height, width)[:] = image[..., "RGB".index(name)] / scale
    return frame


def alpha_weights(alpha: np.ndarray | None, image: np.ndarray) -> np.ndarray:
    """[H, W] float32 weights in 0..1 for the alpha plane of `image`'s frame: the matte, or 0 (no face)."""
    if alpha is None:
        return np.zeros(image.shape[:2], np.float32)
    if alpha.shape != image.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match the frame {image.shape[:2]}")
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def put_alpha(frame: av.VideoFrame, weights: np.ndarray) -> None:
    """Write blend weights [H, W] in 0..1 into `frame`'s alpha samples: a float format takes them as they
    are, an integer one `rint(weight * full scale)` at its alpha depth (the matte's codes at 16 bits)."""
    components = frame.format.components
    index = next(position for position, component in enumerate(components) if component.is_alpha)
    component = components[index]
    name = frame.format.name
    if name in FLOAT_RGB_PLANES:
        dtype: np.dtype = np.dtype(FLOAT_RGB_PLANES[name][0])
        samples = weights.astype(dtype)
    else:
        byte_order = ">" if name.endswith("be") else "<"
        dtype = np.dtype(np.uint8) if component.bits <= EIGHT_BITS else np.dtype(f"{byte_order}u2")
        samples = np.rint(weights * ((1 << component.bits) - 1)).astype(dtype)
    height, width = weights.shape
    packed = 1 if is_planar(name) else len(components)  # samples per pixel in the alpha's plane
    plane = _plane_array(frame.planes[component.plane], dtype, height, width * packed)
    plane[:, index % packed :: packed] = samples


PARTIAL_MARKER = ".partial-"
"""In the name of an output being written: `.NAME.partial-PID@HOST-RANDOM.EXT`."""


HDR_TRANSFERS = {16: "PQ (SMPTE ST 2084)", 18: "HLG (ARIB STD-B67)"}
"""FFmpeg's AVCOL_TRC_* values of high-dynamic-range transfers."""
WIDE_PRIMARIES = {9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}
"""FFmpeg's AVCOL_PRI_* values of gamuts wider than BT.709."""


def check_face_colour(info: VideoInfo) -> None:
    """A one-line `ReenactError` before any work when a face cannot be pasted into `info`'s colour: the
    generator renders BT.709 faces, converted into the source's primaries and transfer where
    `reenact.colour` knows them (BT.601's and BT.470's, gamma curves, sRGB, linear), never into an HDR
    transfer or a gamut wider than BT.709, which a BT.709 face cannot hold (a `reencode` of such a clip
    keeps its tags and codes)."""
    if info.colour.known:
        return
    transfer = HDR_TRANSFERS.get(info.color_trc) or (
        None if info.color_trc in TRANSFERS else f"AVCOL_TRC {info.color_trc}"
    )
    primaries = WIDE_PRIMARIES.get(info.color_primaries) or (
        None if info.color_primaries in PRIMARIES else f"AVCOL_PRI {info.color_primaries}"
    )
    what = " and ".join(
        part for part in (transfer and f"{transfer} transfer", primaries and f"{primaries} primaries") if part
    )
    raise ReenactError(
        f"{info.path} is tagged {what}: reenact renders BT.709 faces and does not convert them into this "
        "colour space; grade it to BT.709 first"
    )


@dataclass(frozen=True)
class OutputFormat:
    """How an output is encoded: container, codec, pixel format, range and start timecode."""

    container: str
    """FFmpeg muxer name."""
    codec: Codec
    pix_fmt: str
    """What the encoder is given (with an alpha plane when `alpha`)."""
    full_range: bool
    timecode: str | None
    color_pix_fmt: str
    """`pix_fmt` without its alpha plane: the format the source's codes are kept in."""
    alpha: bool = False
    """The face matte goes into the alpha plane (`--alpha`)."""


def output_format(
    path: str | Path, *, like: VideoInfo, config: VideoConfig, window: Window | None = None
) -> OutputFormat:
    """The format an output at `path` made from a source like `like` is written in (`reenact.codecs`), with
    the source's range and start timecode (moved to `window`'s start for a slice, or `video.timecode`).
    A one-line `ReenactError` before any work for an unknown extension, codec or timecode, a codec the
    container cannot hold, a source deeper than the codec holds, a frame too large or small for it, or
    audio MXF cannot hold (the source's is copied)."""
    suffix = Path(path).suffix.lower()
    container = VIDEO_SUFFIXES.get(suffix) or sequence_container(path)
    if container is None:
        raise ReenactError(f"unsupported output type {suffix!r} for {path}: use {', '.join(OUTPUT_SUFFIXES)}")
    if suffix in SEQUENCE_SUFFIXES:
        check_pattern(path)
    codec = choose_codec(
        config.codec, source_codec=like.video_codec, source_pix_fmt=like.pix_fmt, container=container
    )
    if container == MXF and like.has_audio and like.audio_codec not in MXF_AUDIO_CODECS:
        raise ReenactError(
            f"MXF holds PCM audio only ({', '.join(MXF_AUDIO_CODECS)}) and the audio of {like.path} is "
            f"{like.audio_codec}, which is copied untouched: write .mov or .mkv"
        )
    check_encodable(like, codec=codec)
    color_pix_fmt = pixel_format(codec, source_pix_fmt=like.pix_fmt, x26x_pix_fmt=config.pix_fmt)
    pix_fmt = alpha_format(codec, pix_fmt=color_pix_fmt) if config.alpha else color_pix_fmt
    rate = like.fps_nominal or float(1 / STILL_TIME_BASE)
    timecode = None
    if suffix in SEQUENCE_SUFFIXES:
        pass  # a sequence's frames are numbered, not timed
    elif config.timecode != SOURCE_TIMECODE:
        timecode = str(parse_timecode(config.timecode, fps=rate))
    elif like.timecode is not None:
        start = parse_timecode(like.timecode, fps=rate)
        timecode = str(start.moved(window.first) if window is not None else start)
    return OutputFormat(
        container=container,
        codec=codec,
        pix_fmt=pix_fmt,
        full_range=like.full_range and like.chroma != "rgb",  # RGB (an image) into YUV: the usual range
        timecode=timecode,
        color_pix_fmt=color_pix_fmt,
        alpha=config.alpha,
    )


class VideoWriter:
    """Video writer with exact timestamps, the source's rotation and its audio copied untouched, in the
    format `output_format` chooses (the source's own codec, depth, chroma, tags and timecode by default).

    Use as a context manager; the output appears under its final name only on a clean exit.
    Frames are given in coded orientation, or upright with `upright_frames=True` (rotated back here).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        like: VideoInfo,
        config: VideoConfig,
        audio_from: str | Path | None = None,
        overwrite: bool = False,
        upright_frames: bool = False,
        inputs: tuple[str | Path, ...] = (),
        audio_window: Window | None = None,
    ) -> None:
        """`audio_window`: the slice of the source this output is: only its audio of `audio_from` is
        copied, shifted as its frames are, and the source's timecode is moved to its start."""
        self.path = Path(path)
        self.audio_window = audio_window
        self.like = like
        self.config = config
        self.upright_frames = upright_frames
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.time_base = STILL_TIME_BASE if like.is_image else like.time_base_fraction
        self.frames_written = 0
        self.frames_kept = 0
        """Frames written as the source decoded them, untouched (no conversion)."""
        self.padded = False
        protected = tuple(Path(p) for p in (like.path, *inputs) if str(p))
        if self.audio_from is not None:
            protected = (*protected, self.audio_from)
        self.format = output_format(self.path, like=like, config=config, window=audio_window)
        self.format_name = check_output(self.path, inputs=protected, overwrite=overwrite)
        self.overwrite = overwrite
        remove_stale_partials(self.path)
        self._tmp_path = partial_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: _AudioCopier | None = None
        self._last_pts: int | None = None
        self._matrix = output_matrix(like.colorspace, pix_fmt=self.format.pix_fmt)
        self._range = ColorRange.JPEG if self.format.full_range else ColorRange.MPEG
        self._reformatter = VideoReformatter()  # one swscale context for every frame (see frame_to_rgb)
        self._decode_reformatter = VideoReformatter()  # and one for `write_picture`'s decoded pictures
        self._keeps_codes = (
            not like.is_image
            and (like.bit_depth > EIGHT_BITS or self.format.codec.lossless)
            and plain_format(like.pix_fmt) == self.format.color_pix_fmt
            and is_planar(like.pix_fmt)
        )

    def __enter__(self) -> VideoWriter:
        try:
            options = dict(MUXER_OPTIONS.get(self.format_name, {}))
            if self.format_name in MOVIE_FORMATS and self.audio_from is not None:
                rate = _audio_rate(self.audio_from)
                if rate:
                    options[MOVIE_TIMESCALE] = str(rate)
            self._container = av.open(str(self._tmp_path), mode="w", format=self.format_name, options=options)
        except (OSError, av.error.FFmpegError) as exc:
            raise ReenactError(f"cannot create {self.path}: {exc}") from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                self._finish()
            except OSError as error:
                self._discard()
                raise self._output_error(error) from None
            except BaseException:
                self._discard()
                raise
            publish(self._tmp_path, self.path, overwrite=self.overwrite)
        else:
            self._discard()

    def _output_error(self, error: OSError) -> OSError:
        """The same OS error, naming the output the user asked for rather than its hidden partial file."""
        return OSError(error.errno, error.strerror or str(error), str(self.path))

    def write(
        self,
        image: np.ndarray,
        *,
        pts: int | None = None,
        source: Frame | None = None,
        alpha: np.ndarray | None = None,
    ) -> None:
        """Encode one RGB frame `[H, W, 3]` (uint8, or uint16 for 16-bit RGB) at `pts` (in the source's
        time base). `source`: the decoded frame `image` was made from (`VideoReader.frames(native=True)`,
        in the same orientation); wherever `image` equals it, the output gets its decoded codes. `alpha`:
        the frame's matte [H, W] in 0..1 for an output with alpha (`OutputFormat.alpha`; None: no face,
        all 0)."""
        if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] uint8 or uint16 image, got {image.shape} {image.dtype}")
        pts = self._next_pts(pts)
        decoded = source.decoded if source is not None and self._keeps_codes else None
        changed = None if decoded is None else changed_pixels(image, source.image)  # [H, W] bool
        weights = alpha_weights(alpha, image) if self.format.alpha else None  # [H, W]
        if self.upright_frames:
            image = to_coded(image, self.like.rotation)
            changed = None if changed is None else to_coded(changed, self.like.rotation)
            weights = None if weights is None else to_coded(weights, self.like.rotation)
        image = self._pad_to_even(image)
        self._start(width=image.shape[1], height=image.shape[0], pts=pts)
        if decoded is not None and changed is not None and self._can_keep(decoded, image):
            frame = self._keep_codes(image, decoded, changed)
        else:
            frame = self._convert(image)
        if weights is not None:
            put_alpha(frame, self._pad_to_even(weights[..., None])[..., 0])
        self._encode(frame, pts=pts)

    @property
    def keeps_codes(self) -> bool:
        """Whether a frame the source decoded and nobody changed is written with its own codes (a source
        above 8 bits, or a lossless output, in the output's own pixel format)."""
        return self._keeps_codes

    def write_picture(self, picture: Picture) -> None:
        """Encode a decoded picture left as it was (a `reencode`): itself, with no conversion at all, where
        the output `keeps_codes` and its size needs no padding; else through RGB at the source's depth."""
        decoded = picture.decoded
        whole = self._keeps_codes and not self.format.alpha  # a picture has no alpha plane to carry a matte
        if not (whole and self._padding(decoded.height, decoded.width) == (0, 0)):
            image = frame_to_rgb(
                decoded, reformatter=self._decode_reformatter, rgb_format=self.like.rgb_format
            )  # [H, W, 3], coded orientation
            self.write(
                to_upright(image, self.like.rotation) if self.upright_frames else image, pts=picture.pts
            )
            return
        pts = self._next_pts(picture.pts)
        self._start(width=decoded.width, height=decoded.height, pts=pts)
        decoded.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses its own frame types
        self.frames_kept += 1
        self._encode(decoded, pts=pts)

    def _next_pts(self, pts: int | None) -> int:
        """`pts`, or the one after the last frame's; a `ValueError` when it does not increase."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write() outside its `with` block")
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + 1
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        return pts

    def _start(self, *, width: int, height: int, pts: int) -> None:
        """Open the streams at the first frame (its size) and copy the audio up to this frame's time."""
        if self._stream is None:
            self._open_streams(width=width, height=height)
        if self._audio is not None:
            self._audio.copy_until(float(pts * self.time_base))

    def _encode(self, frame: av.VideoFrame, *, pts: int) -> None:
        """Encode `frame` (in the output's pixel format) at `pts` with the output's colour tags."""
        assert self._stream is not None and self._container is not None
        self._tag(frame)
        frame.pts = pts
        frame.time_base = self.time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as error:
            raise self._output_error(error) from None
        except av.error.FFmpegError as error:
            raise ReenactError(
                f"cannot encode {self.path} as {self.format.codec.name}: {_ffmpeg_message(error)}"
            ) from None
        self._last_pts = pts
        self.frames_written += 1

    def _tag(self, frame: av.VideoFrame) -> None:
        """Give `frame` the output's colour tags: some encoders (ProRes) write each frame's own, not the
        stream's."""
        frame.colorspace = self._matrix
        frame.color_range = self._range
        frame.color_primaries = self.like.color_primaries
        frame.color_trc = self.like.color_trc

    def _convert(self, image: np.ndarray) -> av.VideoFrame:
        """`image` `[H, W, 3]` in the output's pixel format, matrix and range."""
        rgb_format = DEEP_RGB if image.dtype == np.uint16 else EIGHT_BIT_RGB
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=rgb_format)
        return self._reformatter.reformat(
            rgb,
            format=self.format.pix_fmt,
            dst_colorspace=self._matrix,
            dst_color_range=self._range,
            interpolation=COLOUR_EXACT,
        )

    def _can_keep(self, decoded: av.VideoFrame, image: np.ndarray) -> bool:
        """Whether the output can take `decoded`'s codes: same pixel format and size as the output."""
        return (
            self._keeps_codes
            and plain_format(decoded.format.name) == self.format.color_pix_fmt
            and (decoded.height, decoded.width) == image.shape[:2]
        )

    def _keep_codes(self, image: np.ndarray, decoded: av.VideoFrame, changed: np.ndarray) -> av.VideoFrame:
        """The output frame: `decoded` itself where nothing changed, else `image` converted with the
        decoded codes put back wherever no changed pixel reaches."""
        if not changed.any() and not self.format.alpha:
            decoded.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses its own frame types
            self.frames_kept += 1
            return decoded
        frame = self._convert(image)
        keep_codes(frame, decoded, changed)
        return frame

    def _padding(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns a frame of this size needs to be even where the output's chroma is halved
        (4:2:0 both ways, 4:2:2 across)."""
        chroma = pixel_layout(self.format.pix_fmt).chroma
        rows = height % 2 if chroma == "4:2:0" else 0
        columns = width % 2 if chroma in ("4:2:0", "4:2:2") else 0
        return rows, columns

    def _pad_to_even(self, image: np.ndarray) -> np.ndarray:
        """Subsampled chroma needs even sizes: replicate the last row/column (never crop pixels away)."""
        pad_h, pad_w = self._padding(image.shape[0], image.shape[1])
        if not (pad_h or pad_w):
            return image
        self.padded = True
        return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")

    def _open_streams(self, *, width: int, height: int) -> None:
        assert self._container is not None
        rate = Fraction(self.like.fps_nominal).limit_denominator(1001) if self.like.fps_nominal > 0 else 25
        codec = self.format.codec
        stream = self._container.add_stream(codec.encoder, rate=rate)
        stream.width = width
        stream.height = height
        stream.pix_fmt = self.format.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        options = dict(codec.options)
        if codec.encoder in X26X_ENCODERS:
            options |= {"crf": str(self.config.crf), "preset": self.config.preset}
        stream.options = options
        if self.like.rotation:
            stream.set_display_rotation(self.like.rotation)
        if self.format.timecode is not None:
            stream.metadata[TIMECODE_TAG] = self.format.timecode
        context = stream.codec_context
        context.colorspace = self._matrix
        context.color_range = self._range
        context.color_primaries = self.like.color_primaries
        context.color_trc = self.like.color_trc
        self._stream = stream
        if self.audio_from is not None:
            self._audio = _AudioCopier(self.audio_from, self._container, window=self.audio_window)

    def _finish(self) -> None:
        assert self._container is not None
        if self._stream is None:
            self._container.close()
            raise ReenactError(f"no frames to write to {self.path}")
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.copy_until(math.inf)
            self._audio.close()
        self._container.close()

    def _discard(self) -> None:
        try:
            if self._audio is not None:
                self._audio.close()
            if self._container is not None:
                self._container.close()
        except (av.error.FFmpegError, OSError, ValueError):
            pass
        self._tmp_path.unlink(missing_ok=True)


def first_output_number(like: VideoInfo, window: Window | None) -> int:
    """The number of an output sequence's first file: an image sequence source's own first number (moved to
    a slice's first frame, as a timecode is), else `FIRST_FRAME_NUMBER`."""
    if like.first_frame_number is None:
        return FIRST_FRAME_NUMBER
    return like.first_frame_number + (window.first if window is not None else 0)


class SequenceWriter:
    """Writes an image sequence (`reenact.sequences`): frame after frame, numbered from the source's first
    frame number when it is a sequence, else from `FIRST_FRAME_NUMBER` (`first_output_number`), each an
    image in the pattern's format at the source's depth where it holds it.
    No audio or timecode (a sequence's frames are numbered); `audio_dropped` says when audio was left out.
    Every file is written under a hidden partial name and renamed only when the whole sequence succeeded.
    The same interface as `VideoWriter` (`open_writer` picks one)."""

    def __init__(
        self,
        path: str | Path,
        *,
        like: VideoInfo,
        config: VideoConfig,
        audio_from: str | Path | None = None,
        overwrite: bool = False,
        upright_frames: bool = False,
        inputs: tuple[str | Path, ...] = (),
        audio_window: Window | None = None,
    ) -> None:
        self.path = Path(path)
        self.like = like
        self.overwrite = overwrite
        self.upright_frames = upright_frames
        self.audio_dropped = audio_from is not None and like.has_audio
        self.frames_written = 0
        self.frames_kept = 0
        self.padded = False
        self.keeps_codes = False
        """Frames are converted to the format's RGB: a sequence never takes the decoded codes as they are."""
        self.format = output_format(self.path, like=like, config=config, window=audio_window)
        self.first_number = first_output_number(like, audio_window)
        protected = tuple(Path(p) for p in (like.path, *inputs) if str(p))
        check_output(self.path, inputs=protected, overwrite=overwrite, first_number=self.first_number)
        self._files = SequenceFiles(self.path, first_number=self.first_number, overwrite=overwrite)
        self._context: av.CodecContext | None = None
        self._reformatter = VideoReformatter()
        self._decode_reformatter = VideoReformatter()

    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._files.finish(failed=exc_type is not None)

    def write(
        self,
        image: np.ndarray,
        *,
        pts: int | None = None,
        source: Frame | None = None,
        alpha: np.ndarray | None = None,
    ) -> None:
        """Write one RGB frame `[H, W, 3]` (uint8 or uint16; float32 values into a float EXR) as the next
        image of the sequence; `alpha` as in `VideoWriter.write`."""
        floats = image.dtype == np.float32 and self.format.color_pix_fmt == FLOAT_RGB
        if not (image.dtype in (np.uint8, np.uint16) or floats) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] uint8 or uint16 image, got {image.shape} {image.dtype}")
        weights = alpha_weights(alpha, image) if self.format.alpha else None  # [H, W]
        if self.upright_frames:
            image = to_coded(image, self.like.rotation)
            weights = None if weights is None else to_coded(weights, self.like.rotation)
        if self.format.color_pix_fmt == FLOAT_RGB:
            frame = _rgb_to_float(image, alpha=self.format.alpha)
        else:
            rgb_format = DEEP_RGB if image.dtype == np.uint16 else EIGHT_BIT_RGB
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=rgb_format)
            frame = self._reformatter.reformat(rgb, format=self.format.pix_fmt, interpolation=COLOUR_EXACT)
        if weights is not None:
            put_alpha(frame, weights)
        if self._context is None:
            context = av.CodecContext.create(self.format.codec.encoder, "w")
            context.width, context.height = image.shape[1], image.shape[0]
            context.pix_fmt = self.format.pix_fmt
            context.time_base = self.like.time_base_fraction
            context.options = dict(self.format.codec.options)  # EXR: half or float, compression
            self._context = context
        frame.pts = self.frames_written
        self._files.add(self._context, frame)
        self.frames_written += 1

    def write_picture(self, picture: Picture) -> None:
        """Write a decoded picture as the next image (converted to RGB at the source's depth)."""
        image = frame_to_rgb(
            picture.decoded, reformatter=self._decode_reformatter, rgb_format=self.like.rgb_format
        )  # [H, W, 3], coded orientation
        self.write(to_upright(image, self.like.rotation) if self.upright_frames else image, pts=picture.pts)


class SequenceFiles:
    """The files of an image sequence being written (the pictures of `SequenceWriter` and of a matte
    sequence): frame after frame from `first_number`, each under a hidden partial name, renamed to its own
    only when the whole sequence succeeded (`finish`), all removed otherwise."""

    def __init__(self, pattern: Path, *, first_number: int, overwrite: bool) -> None:
        self.pattern = pattern
        self.first_number = first_number
        self.overwrite = overwrite
        remove_stale_partials(frame_path(pattern, first_number))
        self._written: list[tuple[Path, Path]] = []  # (partial, final) of every frame so far

    def add(self, context: av.CodecContext, frame: av.VideoFrame) -> None:
        """Encode `frame` with the image encoder `context` into the next frame's file."""
        final = frame_path(self.pattern, self.first_number + len(self._written))
        partial = partial_path(final)
        try:
            partial.write_bytes(b"".join(bytes(packet) for packet in context.encode(frame)))
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise OSError(error.errno, error.strerror or str(error), str(final)) from None
        except av.error.FFmpegError as error:
            raise ReenactError(f"cannot encode {final}: {_ffmpeg_message(error)}") from None
        self._written.append((partial, final))

    def finish(self, *, failed: bool) -> None:
        """Publish every file (`publish`), or, when the run `failed` or wrote none, remove them."""
        if failed or not self._written:
            self._discard()
            if not failed:
                raise ReenactError(f"no frames to write to {self.pattern}")
            return
        try:
            for partial, final in self._written:
                publish(partial, final, overwrite=self.overwrite)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        for partial, _ in self._written:
            partial.unlink(missing_ok=True)


def open_writer(path: str | Path, **options: object) -> VideoWriter | SequenceWriter:
    """The writer of an output: a `SequenceWriter` for an image sequence pattern, else a `VideoWriter`
    (the same keyword options)."""
    writer = SequenceWriter if Path(path).suffix.lower() in SEQUENCE_SUFFIXES else VideoWriter
    return writer(path, **options)  # type: ignore[arg-type]


MATTE_SUFFIX = ".mkv"
MATTE_PIX_FMT = "gray16le"
MATTE_ENCODER = "ffv1"
MATTE_LEVELS = 65535
"""A matte's code for a blend weight of 1 (16-bit gray)."""
MATTE_FLOAT_PIX_FMT = "grayf32le"
"""An EXR matte's pixel format: the blend weights themselves, as 32-bit float."""
MATTE_SEQUENCE_FORMATS = {
    ".png": ("png", "gray16be"),
    ".tif": ("tiff", "gray16le"),
    ".tiff": ("tiff", "gray16le"),
    ".exr": ("exr", MATTE_FLOAT_PIX_FMT),
}
"""Matte image sequences by extension: the encoder and its gray pixel format (16-bit codes; EXR float)."""


def check_matte(
    path: Path, *, inputs: tuple[Path, ...], overwrite: bool, first_number: int = FIRST_FRAME_NUMBER
) -> None:
    """A one-line `ReenactError` now, before any work, when a matte cannot be written at `path` (a
    sequence pattern's first file: `first_number`)."""
    suffix = path.suffix.lower()
    if suffix in MATTE_SEQUENCE_FORMATS:
        check_pattern(path)
    elif suffix != MATTE_SUFFIX:
        raise ReenactError(
            f"--matte writes gray: give a {MATTE_SUFFIX} path (FFV1 video, 16-bit) or a .png/.tif (16-bit) "
            f"or .exr (float) sequence pattern (matte/%06d.png), not {path}"
        )
    check_output(path, inputs=inputs, overwrite=overwrite, first_number=first_number)


class MatteWriter:
    """Writes a face matte beside an output: for every output frame, the blend weights the paste-back used
    (0: the source's pixel, 1: the face's) as 16-bit gray, in FFV1 (lossless) in Matroska at the output's
    timestamps with its rotation, or as a PNG/TIFF sequence (16-bit) or an EXR sequence (the weights
    themselves, 32-bit float) (`MATTE_SEQUENCE_FORMATS`) numbered as an
    output sequence of the same source is (`first_output_number`, of the slice `window`). Like the output,
    it appears under its name only on a clean exit."""

    def __init__(
        self,
        path: str | Path,
        *,
        like: VideoInfo,
        overwrite: bool = False,
        upright_frames: bool = False,
        inputs: tuple[str | Path, ...] = (),
        window: Window | None = None,
    ) -> None:
        self.path = Path(path)
        self.like = like
        self.overwrite = overwrite
        self.upright_frames = upright_frames
        self.time_base = STILL_TIME_BASE if like.is_image else like.time_base_fraction
        self.image_format = MATTE_SEQUENCE_FORMATS.get(self.path.suffix.lower())
        """(encoder, pixel format) of a matte sequence; None for a video."""
        first_number = first_output_number(like, window)
        protected = tuple(Path(p) for p in (like.path, *inputs) if str(p))
        check_matte(self.path, inputs=protected, overwrite=overwrite, first_number=first_number)
        self._files = (
            SequenceFiles(self.path, first_number=first_number, overwrite=overwrite)
            if self.image_format is not None
            else None
        )
        self._image_context: av.CodecContext | None = None
        if self._files is None:
            remove_stale_partials(self.path)
        self._tmp_path = partial_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self.frames_written = 0

    def __enter__(self) -> MatteWriter:
        if self._files is not None:
            return self
        try:
            self._container = av.open(str(self._tmp_path), mode="w", format=VIDEO_SUFFIXES[MATTE_SUFFIX])
        except (OSError, av.error.FFmpegError) as exc:
            raise ReenactError(f"cannot create {self.path}: {exc}") from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._files is not None:
            self._files.finish(failed=exc_type is not None)
            return
        assert self._container is not None
        if exc_type is not None or self._stream is None:
            self._container.close()
            self._tmp_path.unlink(missing_ok=True)
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BaseException:
            self._tmp_path.unlink(missing_ok=True)
            raise
        publish(self._tmp_path, self.path, overwrite=self.overwrite)

    def write(self, weights: np.ndarray, *, pts: int) -> None:
        """Encode one frame's blend weights [H, W] float in 0..1 at `pts` (the output frame's)."""
        floats = self.image_format is not None and self.image_format[1] == MATTE_FLOAT_PIX_FMT
        codes = (
            np.clip(weights, 0.0, 1.0).astype(np.float32) if floats else matte_codes(weights)
        )  # [H, W] float32 or uint16
        if self.upright_frames:
            codes = to_coded(codes, self.like.rotation)
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(codes), format=MATTE_FLOAT_PIX_FMT if floats else MATTE_PIX_FMT
        )
        if self._files is not None:
            self._write_image(frame)
            return
        assert self._container is not None, "MatteWriter.write() outside its `with` block"
        if self._stream is None:
            rate = (
                Fraction(self.like.fps_nominal).limit_denominator(1001) if self.like.fps_nominal > 0 else 25
            )
            stream = self._container.add_stream(MATTE_ENCODER, rate=rate)
            stream.width, stream.height, stream.pix_fmt = codes.shape[1], codes.shape[0], MATTE_PIX_FMT
            stream.time_base = stream.codec_context.time_base = self.time_base
            if self.like.rotation:
                stream.set_display_rotation(self.like.rotation)
            self._stream = stream
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _write_image(self, frame: av.VideoFrame) -> None:
        """The next file of a matte sequence: `frame` (16-bit gray) in the sequence's format."""
        assert self._files is not None and self.image_format is not None
        encoder, pix_fmt = self.image_format
        if self._image_context is None:
            context = av.CodecContext.create(encoder, "w")
            context.width, context.height, context.pix_fmt = frame.width, frame.height, pix_fmt
            context.time_base = self.time_base
            if encoder == CODECS["exr"].encoder:
                context.options = dict(CODECS["exr"].options)  # float, compressed losslessly
            self._image_context = context
        image = frame.reformat(format=pix_fmt)  # the same codes, in the format's byte order
        image.pts = self.frames_written
        self._files.add(self._image_context, image)
        self.frames_written += 1


def matte_codes(weights: np.ndarray) -> np.ndarray:
    """[H, W] uint16 matte codes of blend weights [H, W] in 0..1: `MATTE_LEVELS` for 1."""
    return np.rint(np.clip(weights, 0.0, 1.0) * MATTE_LEVELS).astype(np.uint16)


def partial_path(path: Path) -> Path:
    """The hidden file an output is written to before it is published under `path` (`publish`)."""
    return path.parent / f".{path.stem}{PARTIAL_MARKER}{partial_owner()}-{uuid.uuid4().hex[:8]}{path.suffix}"


def changed_pixels(image: np.ndarray, source: np.ndarray) -> np.ndarray:
    """[H, W] bool: where `image` differs from `source` (all pixels when their sizes or depths differ)."""
    if image is source:
        return np.zeros(image.shape[:2], dtype=bool)
    if image.shape != source.shape or image.dtype != source.dtype:
        return np.ones(image.shape[:2], dtype=bool)
    differs = image != source  # [H, W, 3]
    return differs[..., 0] | differs[..., 1] | differs[..., 2]  # far faster than np.any over the short axis


def keep_codes(frame: av.VideoFrame, decoded: av.VideoFrame, changed: np.ndarray) -> None:
    """Put `decoded`'s codes into `frame` (same planar pixel format and size; `frame`'s alpha plane, if it has
    one and `decoded` none, is left alone) wherever the RGB -> YUV
    conversion that made `frame` read no `changed` pixel ([H, W] bool): a full-size plane's sample reads
    its own pixel; a subsampled one its block and `CONVERSION_REACH` pixels around it."""
    height, width = changed.shape
    grown = None
    for out_plane, in_plane in zip(frame.planes[: len(decoded.planes)], decoded.planes, strict=True):
        rows, columns = out_plane.height, out_plane.width
        dtype = np.uint16 if pixel_layout(frame.format.name).depth > EIGHT_BITS else np.uint8
        out = _plane_array(out_plane, dtype, rows, columns)
        own = _plane_array(in_plane, dtype, rows, columns)
        if (rows, columns) == (height, width):
            keep = ~changed
        else:
            if grown is None:
                size = 2 * CONVERSION_REACH + 1
                grown = cv2.dilate(changed.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
            keep = ~_blocks_any(grown, rows=rows, columns=columns)
        np.copyto(out, own, where=keep)


def _plane_array(plane: av.video.plane.VideoPlane, dtype: type, rows: int, columns: int) -> np.ndarray:
    """A writable view [rows, columns] of a plane's samples (its row padding left out)."""
    itemsize = np.dtype(dtype).itemsize
    flat = np.frombuffer(plane, dtype=dtype, count=rows * plane.line_size // itemsize)
    return flat.reshape(rows, plane.line_size // itemsize)[:, :columns]


def _blocks_any(mask: np.ndarray, *, rows: int, columns: int) -> np.ndarray:
    """[rows, columns] bool: whether any pixel of `mask` [H, W] in each subsampling block is set."""
    height, width = mask.shape
    step_y, step_x = -(-height // rows), -(-width // columns)
    padded = np.zeros((rows * step_y, columns * step_x), dtype=bool)
    padded[:height, :width] = mask
    return padded.reshape(rows, step_y, columns, step_x).any(axis=(1, 3))


def publish(finished: Path, path: Path, *, overwrite: bool) -> None:
    """Move a finished temporary file to `path` in one step. Without `overwrite` the existence check is
    repeated atomically at this moment (a hard link fails on an existing name), so of two runs writing
    one output exactly one succeeds; the other stops with one line and leaves the first's file alone."""
    if overwrite:
        os.replace(finished, path)
        return
    try:
        os.link(finished, path)
    except FileExistsError:
        finished.unlink(missing_ok=True)
        raise ReenactError(
            f"{path} was created by another run meanwhile; pass --overwrite to replace it"
        ) from None
    finished.unlink()


def partial_owner() -> str:
    """`PID@HOST` of this process, in the names of the partial files it writes."""
    return f"{os.getpid()}@{socket.gethostname()}"


def remove_stale_partials(path: Path) -> None:
    """Remove the partial files that killed runs on this machine left beside `path` (their process no
    longer exists). Files of other machines sharing the folder are left alone."""
    prefix = f".{path.stem}{PARTIAL_MARKER}"
    host = socket.gethostname()
    for partial in path.parent.glob(f"{prefix}*{path.suffix}"):
        owner = partial.name[len(prefix) : -len(path.suffix) or None].rsplit("-", 1)[0]
        pid, _, owner_host = owner.partition("@")
        if owner_host == host and pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output(
    path: Path, *, inputs: tuple[Path, ...], overwrite: bool, first_number: int = FIRST_FRAME_NUMBER
) -> str:
    """Validate a destination before any work starts; returns the container format name. An image
    sequence's pattern needs its frame number field, and its folder is made now; its first frame's file
    (`first_number`) stands for the sequence in the checks."""
    format_name = VIDEO_SUFFIXES.get(path.suffix.lower()) or sequence_container(path)
    if format_name is None:
        raise ReenactError(
            f"unsupported output type {path.suffix!r} for {path}: use {', '.join(OUTPUT_SUFFIXES)}"
        )
    if path.suffix.lower() in SEQUENCE_SUFFIXES:
        check_pattern(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReenactError(f"cannot make the folder of {path}: {exc.strerror or exc}") from None
        path = frame_path(path, first_number)
    if not path.parent.is_dir():
        raise ReenactError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise ReenactError(f"output {path} is a directory")
    for source in inputs if path.exists() else ():
        files = find_sequence(source).files() if is_sequence_input(source) else [source]
        if any(file.exists() and os.path.samefile(file, path) for file in files):  # links included
            raise ReenactError(f"refusing to write over the input {source}")
    if path.exists() and not overwrite:
        raise ReenactError(f"{path} already exists; pass --overwrite to replace it")
    try:  # find out now, not after the work, that the folder takes no files
        handle, probe_name = tempfile.mkstemp(prefix=f".{path.stem}.write-test-", dir=path.parent)
        os.close(handle)
        os.unlink(probe_name)
    except OSError as exc:
        raise ReenactError(f"cannot write {path}: {exc.strerror or exc}") from None
    return format_name


def check_encodable(info: VideoInfo, *, codec: Codec) -> None:
    """A one-line `ReenactError` now, before any work, when frames of this size cannot be encoded in
    `codec` (H.264's largest frame)."""
    min_width, min_height = codec.min_size
    if info.width < min_width or info.height < min_height:
        raise ReenactError(
            f"{info.path} is {info.width}x{info.height}: {codec.name} encodes frames of at least "
            f"{min_width}x{min_height}; choose another codec with --codec"
        )
    if codec.encoder != "libx264":
        return
    columns, rows = (-(-side // MACROBLOCK) for side in (info.width, info.height))
    longest = math.isqrt(8 * H264_MAX_FRAME_MACROBLOCKS)
    if columns * rows > H264_MAX_FRAME_MACROBLOCKS or max(columns, rows) > longest:
        largest = H264_MAX_FRAME_MACROBLOCKS * MACROBLOCK**2 / 1e6
        raise ReenactError(
            f"{info.path} is {info.width}x{info.height}: too large for H.264, which encodes at most "
            f"{largest:.1f} megapixels per frame (e.g. 8192x4320) and {longest * MACROBLOCK} px per side; "
            "scale it down first"
        )


class _AudioCopier:
    """Remuxes the packets of every audio stream of a source file into an output, interleaved with the
    video, each track into a stream of its own in the source's order; and of every subtitle and data
    stream the output's container holds (`copied_streams`; a timecode track is not copied: the output
    writes its own from `OutputFormat.timecode`).

    With a `window` (a slice of the source's video): only the packets whose start lies in the window's
    span `[start_s, stop_s)` are copied (a packet is indivisible: the one that begins before the span is
    left out, the last one kept may end after it), each with pts and dts moved back by `start_s` expressed
    in the audio time base (rounded to the nearest tick when it is not a whole number of them), so the
    audio keeps its place against the frames, which move back by the same time."""

    def __init__(
        self, source: Path, output: av.container.OutputContainer, *, window: Window | None = None
    ) -> None:
        self._window = window
        self._input = _open_video(source)
        tracks = list(self._input.streams.audio)
        tracks += copied_streams(self._input, output.format.name)[0]
        self._out_streams = {track.index: output.add_stream_from_template(track) for track in tracks}
        self._packets = self._input.demux(*tracks) if tracks else iter(())
        self._ended: set[int] = set()
        """Tracks whose packets have passed the window's end."""
        self._pending: av.Packet | None = None

    def copy_until(self, time_s: float) -> None:
        """Mux every remaining audio packet that starts at or before `time_s` (output time)."""
        if not self._out_streams:
            return
        while True:
            packet = self._pending or self._next_packet()
            self._pending = None
            if packet is None:
                return
            start = packet.pts if packet.pts is not None else packet.dts
            if float(start * packet.time_base) > time_s:
                self._pending = packet
                return
            out_stream = self._out_streams[packet.stream.index]
            packet.stream = out_stream
            try:
                out_stream.container.mux(packet)
            except av.error.FFmpegError as exc:
                raise ReenactError(
                    f"cannot copy the audio into this container: {_ffmpeg_message(exc)}"
                ) from None

    def _next_packet(self) -> av.Packet | None:
        """The next packet to copy, in output time (shifted when there is a window); None at the end."""
        for packet in self._packets:
            if packet.size == 0 or packet.dts is None:
                continue
            if self._window is None:
                return packet
            start = packet.pts if packet.pts is not None else packet.dts
            if start * packet.time_base < self._window.start_s:
                continue
            if start * packet.time_base >= self._window.stop_s:
                self._ended.add(packet.stream.index)
                if len(self._ended) == len(self._out_streams):
                    return None
                continue
            shift = round(self._window.start_s / packet.time_base)
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts -= shift
            return packet
        return None

    def close(self) -> None:
        self._input.close()


def _is_timecode_track(stream: av.stream.Stream) -> bool:
    """Whether a data stream is a start timecode (MOV's tmcd track), which outputs write from their own."""
    return any(key.lower() == TIMECODE_TAG for key in stream.metadata)


def _holds(format_name: str, stream: av.stream.Stream) -> bool:
    """Whether a container of this muxer takes a copy of `stream`: a trial header, written in memory."""
    try:
        with av.open(io.BytesIO(), mode="w", format=format_name) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (ValueError, av.error.FFmpegError, OSError):
        return False
    return True


def copied_streams(
    container: av.container.InputContainer, format_name: str | None
) -> tuple[list[av.stream.Stream], list[av.stream.Stream]]:
    """The subtitle and data streams of a source (timecode tracks left out) that an output of the muxer
    `format_name` takes a copy of, and those it cannot hold (None: an image sequence, which holds none)."""
    streams = [*container.streams.subtitles, *container.streams.data]
    streams = [stream for stream in streams if not _is_timecode_track(stream)]
    kept = [stream for stream in streams if format_name is not None and _holds(format_name, stream)]
    return kept, [stream for stream in streams if stream not in kept]


def dropped_streams_note(source: str | Path, output: str | Path) -> str | None:
    """One line naming the subtitle and data streams of `source` that `output`'s container cannot hold
    (they are left out), or None when every one is copied, the source has none, or is not a video file."""
    source, output = Path(source), Path(output)
    if is_sequence_input(source) or is_image_file(source):
        return None
    format_name = VIDEO_SUFFIXES.get(output.suffix.lower())  # None: an image sequence output
    with _open_video(source) as container:
        dropped = copied_streams(container, format_name)[1]
        names = [f"{stream.type} stream {stream.index} ({_stream_kind(stream)})" for stream in dropped]
    if not names:
        return None
    return f"note: {output.name} cannot hold the {', '.join(names)} of {source.name}; left out"


def _stream_kind(stream: av.stream.Stream) -> str:
    """What a stream holds, for a message: its codec, else its handler's name (a data stream's)."""
    if stream.codec_context is not None:
        return stream.codec_context.name
    return stream.metadata.get("handler_name", "unknown")


def copies_streams(info: VideoInfo) -> bool:
    """Whether an output made from a clip like `info` copies its audio, subtitle and data streams: a video
    file's (a still or an image sequence has none)."""
    return not info.is_image and info.first_frame_number is None


def _audio_rate(path: Path) -> int | None:
    """Sample rate of a file's first audio stream (None without one); the file may have no video."""
    with _open_video(path) as container:
        audio = container.streams.audio
        return audio[0].codec_context.sample_rate if audio else None


def _probe_image(path: Path) -> VideoInfo:
    image = _read_image(path)
    height, width = image.shape[:2]
    suffix = path.suffix.lower().lstrip(".")
    return VideoInfo(
        path=str(path),
        container="image",
        is_image=True,
        width=width,
        height=height,
        rotation=0,
        display_width=width,
        display_height=height,
        fps_avg=0.0,
        fps_nominal=0.0,
        vfr=False,
        frame_count=1,
        frames_announced=1,
        duration_s=0.0,
        time_base=str(STILL_TIME_BASE),
        video_codec=suffix or "image",
        pix_fmt="rgb24",
        has_audio=False,
        audio_codec=None,
        audio_sample_rate=None,
        audio_channels=None,
    )


def _read_image(path: Path) -> np.ndarray:
    """Decode a still image by content (EXIF orientation applied) as RGB uint8 `[H, W, 3]`."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ReenactError(f"{path} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _open_source(path: Path, *, fps: Fraction | None) -> av.container.InputContainer:
    """The demuxer of an input: an image sequence's at `fps` (`_open_sequence`) or a video file's."""
    if is_sequence_input(path):
        return _open_sequence(find_sequence(path), rate=sequence_rate(path, fps))
    return _open_video(path)


def _open_sequence(sequence: ImageSequence, *, rate: Fraction) -> av.container.InputContainer:
    """FFmpeg's image2 demuxer on `sequence`'s files from its first number, one frame every 1/`rate` s."""
    options = {"pattern_type": "sequence", "start_number": str(sequence.first), "framerate": str(rate)}
    try:
        return av.open(str(sequence.pattern), mode="r", format=IMAGE_SEQUENCE_DEMUXER, options=options)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ReenactError(
            f"{sequence.pattern} is not a readable image sequence ({_ffmpeg_message(exc)})"
        ) from None


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ReenactError(f"{path} is not a readable video or image ({_ffmpeg_message(exc)})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise ReenactError(f"{path} has no video stream")
    return container.streams.video[0]


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Display rotation from the first decodable frame's display matrix (0 when none)."""
    try:
        for frame in container.decode(stream):
            return round(frame.rotation or 0)
    except av.error.FFmpegError:
        pass
    return 0


@dataclass(frozen=True)
class PacketTimes:
    """What the packets of a video stream say, read without decoding (except a cut file's last GOP)."""

    pts: list[int]
    """Presentation timestamps of the frames a decoder shows, sorted (pre-roll frames left out)."""
    announced: int
    """Frames the container's index announces, pre-roll left out (0 when it has no count)."""
    truncated: bool
    """The stream ends early: a packet cut short or a read error."""


def _packet_times(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> PacketTimes:
    """Timestamps of the frames a decoder will show. Packets before the last keyframe of a cut file all
    decode; the last group of pictures is decoded to learn which of its frames survive."""
    complete: list[int] = []  # before the last keyframe seen
    group: list[int] = []  # since the last keyframe seen
    last_key: int | None = None
    discarded = 0
    truncated = False
    try:
        for packet in container.demux(stream):
            if not packet.size or packet.pts is None:
                continue
            if packet.is_discard:
                discarded += 1
                continue
            if packet.is_corrupt:
                truncated = True
                break
            if packet.is_keyframe:
                complete += group
                group, last_key = [], packet.pts
            group.append(packet.pts)
    except av.error.FFmpegError:
        truncated = True
    announced = int(stream.frames or 0) - discarded  # the index counts pre-roll samples too
    truncated = truncated or len(complete) + len(group) < announced  # the index outlives the data
    if truncated and last_key is not None:
        group = _decoded_pts(container, stream, start=last_key)
    return PacketTimes(pts=sorted(set(complete + group)), announced=announced, truncated=truncated)


def _decoded_pts(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, *, start: int
) -> list[int]:
    """pts of the frames that decode from the keyframe at `start` to the end of a cut file."""
    pts: list[int] = []
    try:
        container.seek(start, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is not None and frame.pts >= start:
                pts.append(frame.pts)
    except av.error.FFmpegError:
        pass  # the cut: what decoded so far is what a reader gets
    return pts


def _video_info(
    path: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    audio: av.audio.stream.AudioStream | None,
    *,
    rotation: int,
    times: PacketTimes,
) -> VideoInfo:
    time_base = Fraction(stream.time_base)
    pts = times.pts
    frame_count = len(pts)
    frames_announced = max(frame_count, times.announced) if times.truncated else frame_count
    durations = np.diff(np.asarray(pts, dtype=np.int64))
    vfr = False
    if durations.size >= 2:
        median = float(np.median(durations))
        vfr = median > 0 and float(durations.max() - durations.min()) / median > VFR_SPREAD
    if durations.size >= 1:
        duration_s = float((pts[-1] - pts[0] + int(np.median(durations))) * time_base)
    elif container.duration:
        duration_s = container.duration / av.time_base
    else:
        duration_s = 0.0
    fps_avg = frame_count / duration_s if duration_s > 0 else 0.0
    nominal = stream.base_rate or stream.guessed_rate or stream.average_rate
    swapped = rotation_turns(rotation) % 2 == 1
    width, height = stream.codec_context.width, stream.codec_context.height
    layout = pixel_layout(stream.codec_context.pix_fmt or "unknown")
    return VideoInfo(
        path=str(path),
        container=container.format.name,
        is_image=False,
        width=width,
        height=height,
        rotation=rotation,
        display_width=height if swapped else width,
        display_height=width if swapped else height,
        fps_avg=round(fps_avg, 4),
        fps_nominal=round(float(nominal), 4) if nominal else 0.0,
        vfr=vfr,
        frame_count=frame_count,
        frames_announced=frames_announced,
        duration_s=round(duration_s, 4),
        time_base=str(time_base),
        video_codec=stream.codec_context.name,
        pix_fmt=stream.codec_context.pix_fmt or "unknown",
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        audio_channels=audio.codec_context.channels if audio is not None else None,
        colorspace=int(stream.codec_context.colorspace),
        color_range=int(stream.codec_context.color_range),
        color_primaries=int(stream.codec_context.color_primaries),
        color_trc=int(stream.codec_context.color_trc),
        bit_depth=layout.depth,
        chroma=layout.chroma,
        timecode=_timecode(container, stream),
    )


def _timecode(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> str | None:
    """The start timecode a file carries: on its video stream (MOV, MP4, Matroska), the container (MXF)
    or a timecode data stream (MOV's tmcd track); None when it has none."""
    for tags in (stream.metadata, container.metadata, *(data.metadata for data in container.streams.data)):
        for key, value in tags.items():
            if key.lower() == TIMECODE_TAG and value:
                return str(value)
    return None


def _next_pts(previous: int | None, stream: av.video.stream.VideoStream) -> int:
    if previous is None:
        return 0
    rate = stream.average_rate or stream.base_rate or 25
    return previous + max(1, round(1 / (Fraction(rate) * Fraction(stream.time_base))))


def _ffmpeg_message(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


@dataclass(frozen=True)
class ReencodeReport:
    """What `reencode` did: frames in and out, whether the size had to be padded to even, and whether
    the source's audio was left out (an image sequence holds none)."""

    frames_expected: int
    frames_written: int
    padded: bool
    audio_dropped: bool = False

    @property
    def frames_lost(self) -> int:
        return max(0, self.frames_expected - self.frames_written)


def reencode(
    reader: VideoReader,
    destination: str | Path,
    *,
    config: VideoConfig,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReencodeReport:
    """Decode every frame and encode it again with the original timestamps, rotation and audio (of a
    reader's window: that slice, its timestamps and audio shifted to start at 0)."""
    audio_from = reader.path if copies_streams(reader.info) else None  # its audio, subtitles and data
    with open_writer(
        destination,
        like=reader.info,
        config=config,
        audio_from=audio_from,
        overwrite=overwrite,
        audio_window=reader.window,
    ) as writer:
        if reader.info.is_image:  # a still: one frame, read as the image it is (EXIF orientation applied)
            for frame in reader.frames():
                writer.write(frame.image, pts=frame.pts)
                if progress is not None:
                    progress(1)
        else:
            for picture in reader.pictures():
                writer.write_picture(picture)  # the decoded codes themselves wherever the output keeps them
                if progress is not None:
                    progress(1)
    return ReencodeReport(
        frames_expected=reader.info.frames_announced,
        frames_written=writer.frames_written,
        padded=writer.padded,
        audio_dropped=isinstance(writer, SequenceWriter) and writer.audio_dropped,
    )
