"""Image sequence names: a printf pattern with one frame number field (`shot/%06d.dpx`), one file a frame.

The format is the pattern's extension (`SEQUENCE_SUFFIXES`); frames are numbered from
`FIRST_FRAME_NUMBER` in output order. `VideoWriter`'s sibling `video.SequenceWriter` writes them.
"""

from __future__ import annotations

import re
from pathlib import Path

from reenact.codecs import SEQUENCE
from reenact.errors import ReenactError

FRAME_FIELD = re.compile(r"%0?\d*d")
"""A printf frame number field: `%d`, `%4d`, `%06d`."""
SEQUENCE_SUFFIXES = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".dpx": "dpx"}
"""Image sequence outputs by extension: the codec (`reenact.codecs`) that writes them."""
FIRST_FRAME_NUMBER = 1
"""The number of an output sequence's first frame (as FFmpeg's image2 muxer)."""


def sequence_container(path: str | Path) -> str | None:
    """`sequence:FORMAT` for a path with an image sequence extension, else None."""
    codec = SEQUENCE_SUFFIXES.get(Path(path).suffix.lower())
    return None if codec is None else f"{SEQUENCE}:{codec}"


def check_pattern(path: str | Path) -> None:
    """A one-line `ReenactError` when an image sequence output has not exactly one frame number field in
    its file name (`shot/%06d.png`)."""
    fields = FRAME_FIELD.findall(Path(path).name)
    if len(fields) != 1 or "%" in FRAME_FIELD.sub("", Path(path).name):
        raise ReenactError(
            f"an image sequence output needs one frame number in its file name, e.g. "
            f"{Path(path).parent / ('%06d' + Path(path).suffix)}; got {path}"
        )


def frame_path(pattern: str | Path, number: int) -> Path:
    """The file of frame `number` of the sequence `pattern`."""
    pattern = Path(pattern)
    return pattern.parent / FRAME_FIELD.sub(lambda field: field.group(0) % number, pattern.name)
