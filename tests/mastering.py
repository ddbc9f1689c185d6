"""Sources for the mastering tests: deep clips whose low bits carry content, with tags, timecode, audio."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BT709 = 1
"""FFmpeg's AVCOL_PRI/TRC/SPC_BT709."""
SOURCE_TIMECODE = "01:00:00:00"
FPS = 25
AUDIO_RATE = 48_000
AUDIO_SAMPLES_PER_FRAME = 1_024
TONE_HZ = 440.0
TONE_LEVEL = 8_000
"""Peak of the test tone in 16-bit PCM."""
LOW_BITS_SEED = 7


def deep_frame(
    width: int, height: int, pix_fmt: str, *, index: int, rng: np.random.Generator
) -> av.VideoFrame:
    """A frame of smooth colour ramps (made in 16-bit RGB, so its YUV is in gamut) with noise in the low
    2 bits of its first plane (luma, or green): an 8-bit step anywhere changes most of those codes, a
    lossless path none, and a good lossy codec far fewer."""
    columns = np.linspace(0.15, 0.85, width)[None, :]
    rows = np.linspace(0.2, 0.8, height)[:, None]
    shift = index / 50
    rgb = np.stack(
        [columns + shift * rows, rows + 0 * columns, 1.0 - (columns + rows) / 2 + shift / 2], axis=-1
    )  # [H, W, 3] in 0..1
    image = np.clip(np.rint(rgb * 65535), 0, 65535).astype(np.uint16)
    frame = av.VideoFrame.from_ndarray(image, format="rgb48le").reformat(
        format=pix_fmt, dst_colorspace=BT709, dst_color_range=av.video.reformatter.ColorRange.MPEG
    )
    plane = frame.planes[0]
    view = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)[:, : plane.width]
    view[:] = np.clip(view.astype(np.int32) + rng.integers(-2, 2, view.shape, endpoint=True), 64, 940)
    return frame


def write_deep_clip(
    path: Path,
    *,
    encoder: str,
    pix_fmt: str,
    frames: int = 6,
    size: tuple[int, int] = (256, 120),
    options: dict[str, str] | None = None,
    timecode: str | None = SOURCE_TIMECODE,
    audio_tracks: int = 1,
) -> Path:
    """A clip of `frames` deep frames (`deep_frame`) in `encoder`/`pix_fmt`, tagged BT.709, with a start
    `timecode` and `audio_tracks` PCM tone tracks (48 kHz stereo s16) covering it."""
    width, height = size
    rng = np.random.default_rng(LOW_BITS_SEED)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options or {}
        stream.time_base = Fraction(1, FPS)
        context = stream.codec_context
        context.color_primaries = context.color_trc = context.colorspace = BT709
        if timecode is not None:
            stream.metadata["timecode"] = timecode
        tracks = [
            container.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="stereo") for _ in range(audio_tracks)
        ]
        samples = frames * AUDIO_RATE // FPS
        for number, track in enumerate(tracks):
            t = np.arange(samples) / AUDIO_RATE
            tone = (TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * (number + 1) * t)).astype(np.int16)
            for start in range(0, samples, AUDIO_SAMPLES_PER_FRAME):
                chunk = np.repeat(tone[None, start : start + AUDIO_SAMPLES_PER_FRAME], 2, axis=0)
                audio = av.AudioFrame.from_ndarray(
                    chunk.T.reshape(1, -1).copy(), format="s16", layout="stereo"
                )
                audio.sample_rate, audio.pts = AUDIO_RATE, start
                for packet in track.encode(audio):
                    container.mux(packet)
        for index in range(frames):
            frame = deep_frame(width, height, pix_fmt, index=index, rng=rng)
            frame.color_primaries = frame.color_trc = frame.colorspace = BT709  # ProRes writes the frame's
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for encoder_stream in (stream, *tracks):
            for packet in encoder_stream.encode(None):
                container.mux(packet)
    return path


def decoded_planes(path: Path) -> list[list[np.ndarray]]:
    """Every decoded frame's planes as arrays [h, w] of its samples (row padding left out)."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            itemsize = 2 if frame.format.name.endswith(("le", "be")) else 1
            dtype = np.uint16 if itemsize == 2 else np.uint8
            planes = []
            for plane in frame.planes:
                samples = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // itemsize)
                planes.append(samples[:, : plane.width].copy())
            out.append(planes)
    return out


def audio_digests(path: Path) -> list[tuple[str, int]]:
    """Per audio track, in order: sha256 over its packets' payloads and their bytes (not the packet
    count: demuxers cut PCM into packets of their own size, e.g. MOV's reader in 1024 samples)."""
    with av.open(str(path)) as container:
        tracks = list(container.streams.audio)
        digests = {track.index: hashlib.sha256() for track in tracks}
        counts = dict.fromkeys(digests, 0)
        for packet in container.demux(*tracks):
            if packet.size:
                digests[packet.stream.index].update(bytes(packet))
                counts[packet.stream.index] += packet.size
        return [(digests[track.index].hexdigest(), counts[track.index]) for track in tracks]


def mean_luma_error(source: Path, output: Path) -> float:
    """Mean absolute difference of the first planes (luma, or green) in the source's codes, over every
    frame; an output deeper than the source (ProRes 4444 decodes to 12 bits) is scaled to its depth."""
    errors = []
    for ours, theirs in zip(decoded_planes(source), decoded_planes(output), strict=True):
        scale = 1 << max(0, sample_bits(output) - sample_bits(source))
        errors.append(np.abs(ours[0].astype(np.int64) - np.rint(theirs[0] / scale).astype(np.int64)).mean())
    return float(np.mean(errors))


def mean_luma(path: Path) -> float:
    """Mean of the first plane's codes (luma, or green) over every frame."""
    return float(np.mean([planes[0].mean(dtype=np.float64) for planes in decoded_planes(path)]))


def sample_bits(path: Path) -> int:
    with av.open(str(path)) as container:
        fmt = container.streams.video[0].codec_context.format
        return max(component.bits for component in fmt.components)


def ffv1_copy(
    clip: Path,
    destination: Path,
    *,
    pix_fmt: str,
    picture: Callable[[av.VideoFrame], av.VideoFrame],
    primaries: int | None = None,
    transfer: int | None = None,
) -> Path:
    """`clip`'s frames, each made into `picture(frame)` (in `pix_fmt`), as lossless FFV1 with the clip's
    timing, tagged with `primaries` and `transfer` where given."""
    with av.open(str(clip)) as source, av.open(str(destination), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.pix_fmt, stream.time_base = pix_fmt, source.streams.video[0].time_base
        if primaries is not None and transfer is not None:
            stream.codec_context.color_primaries, stream.codec_context.color_trc = primaries, transfer
        for index, frame in enumerate(source.decode(video=0)):
            made = picture(frame)
            if index == 0:
                stream.width, stream.height = made.width, made.height
            made.pts = frame.pts
            for packet in stream.encode(made):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return destination
