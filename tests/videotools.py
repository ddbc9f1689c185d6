"""Independent measurements of video files for tests: straight PyAV, not reenact's own reader."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from reenact.imaging import uint8_psnr

MAX_PSNR_DB = 100.0


def frame_times(path: Path) -> list[Fraction]:
    """Presentation time of every decoded video frame, exact, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [Fraction(frame.pts) * stream.time_base for frame in container.decode(stream)]


def audio_digest(path: Path) -> tuple[str, int] | None:
    """sha256 over the payloads of every audio packet, and the packet count (None without audio)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        digest = hashlib.sha256()
        count = 0
        for packet in container.demux(container.streams.audio[0]):
            if packet.size:
                digest.update(bytes(packet))
                count += 1
        return digest.hexdigest(), count


def audio_start(path: Path) -> Fraction:
    """Presentation time of the first audio packet, exact, in seconds (negative for encoder priming)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packet = next(p for p in container.demux(stream) if p.size and p.pts is not None)
        return Fraction(packet.pts) * stream.time_base


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape (capped for identical images)."""
    return min(MAX_PSNR_DB, uint8_psnr(a, b))


@dataclass(frozen=True)
class HardSource:
    """A recipe for a source that is hard to re-encode faithfully: sensor noise through another codec.

    Made from a real clip: `frames` of it, each shown `repeat` times (a high-speed camera sees little
    motion between frames) with fresh Gaussian noise of `noise_sigma` levels, encoded with `codec`."""

    name: str
    clip: str
    codec: str
    rate: int
    suffix: str
    noise_sigma: float
    options: tuple[tuple[str, str], ...] = ()
    bit_rate: int = 0
    frames: int = 24
    repeat: int = 1


HARD_SOURCES = (
    HardSource("mpeg4-part2-noisy", "lp_source_s18.mp4", "mpeg4", 30, ".mp4", 3.0, bit_rate=4_000_000),
    HardSource(
        "vp9-noisy",
        "ghost_2person.mp4",
        "libvpx-vp9",
        30,
        ".webm",
        3.0,
        options=(("crf", "24"), ("b", "0"), ("deadline", "realtime"), ("cpu-used", "8")),
    ),
    HardSource(
        "phone-240fps-noisy",
        "lp_driving_d13_vertical.mp4",
        "libx264",
        240,
        ".mp4",
        2.5,
        options=(("crf", "12"), ("preset", "ultrafast")),
        frames=12,
        repeat=8,
    ),
)


def write_hard_source(recipe: HardSource, clip: Path, folder: Path, *, seed: int = 0) -> Path:
    """Encode `recipe` from the real `clip` into `folder`, with PyAV directly; returns the file."""
    rng = np.random.default_rng(seed)
    destination = folder / f"{recipe.name}{recipe.suffix}"
    with av.open(str(clip)) as source, av.open(str(destination), "w") as output:
        context = source.streams.video[0].codec_context
        stream = output.add_stream(recipe.codec, rate=recipe.rate)
        stream.width, stream.height, stream.pix_fmt = context.width, context.height, "yuv420p"
        stream.options = dict(recipe.options)
        if recipe.bit_rate:
            stream.bit_rate = recipe.bit_rate
        pts = 0
        for frame in itertools.islice(source.decode(video=0), recipe.frames):
            base = frame.to_ndarray(format="rgb24").astype(np.float32)  # [H, W, 3]
            for _ in range(recipe.repeat):
                noisy = np.clip(base + rng.normal(0.0, recipe.noise_sigma, base.shape), 0, 255)
                image = av.VideoFrame.from_ndarray(noisy.astype(np.uint8), format="rgb24")
                encoded = image.reformat(format="yuv420p")
                encoded.pts, encoded.time_base = pts, Fraction(1, recipe.rate)
                pts += 1
                for packet in stream.encode(encoded):
                    output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return destination


def write_preroll_clip(path: Path, *, preroll: int, frames: int, size: int = 64, rate: int = 25) -> None:
    """An H.264 mp4 whose first `preroll` frames sit before time zero: its edit list hides them, as
    cameras and editors do for encoder priming or a trimmed start."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(-preroll, frames):
            level = np.full((size, size, 3), (index * 7) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(level, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
