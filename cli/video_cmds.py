"""`reenact probe` and `reenact reencode` (placeholder until video.py lands)."""

from __future__ import annotations


def probe() -> None:
    """Describe a video or image file."""


def reencode() -> None:
    """Decode and encode again."""
