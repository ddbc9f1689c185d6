"""Independent measurements of video files for tests: straight PyAV, not reenact's own reader."""

from __future__ import annotations

import hashlib
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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape (capped for identical images)."""
    return min(MAX_PSNR_DB, uint8_psnr(a, b))


def decoded_rgb(path: Path) -> list[np.ndarray]:
    """Every frame as RGB uint8 in coded orientation, decoded by PyAV directly."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
