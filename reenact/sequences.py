"""Image sequences: a printf pattern with one frame number field (`shot/%06d.dpx`), one file a frame.

The format is the pattern's extension. Outputs (`SEQUENCE_SUFFIXES`) are numbered from the source's own
first frame number when it is a sequence, else from `FIRST_FRAME_NUMBER`; `video.SequenceWriter` writes
them. Inputs (`INPUT_SEQUENCE_SUFFIXES`) are a pattern or a folder of numbered frames (`find_sequence`):
their files must run without a gap from the first number, and since an image carries no frame rate,
whoever opens one gives its rate with it (`sequence_rate`; the CLI's `--fps`). `frame_path` names a
frame's file on both sides, so an input and an output sequence number their files the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reenact.codecs import SEQUENCE
from reenact.errors import ReenactError, UsageError

FRAME_FIELD = re.compile(r"%0?\d*d")
"""A printf frame number field: `%d`, `%4d`, `%06d`."""
SEQUENCE_SUFFIXES = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".dpx": "dpx", ".exr": "exr"}
"""Image sequence outputs by extension: the codec (`reenact.codecs`) that writes them."""
INPUT_SEQUENCE_SUFFIXES = tuple(SEQUENCE_SUFFIXES)
"""Image sequence inputs by extension."""
FIRST_FRAME_NUMBER = 1
"""The number of an output sequence's first frame when the source is not a sequence (as FFmpeg's image2)."""
NUMBERED_NAME = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)(?P<suffix>\.[A-Za-z]+)$")
"""A numbered frame's file name in a folder: anything, the frame number (the last digits), the extension."""


@dataclass(frozen=True)
class ImageSequence:
    """An image sequence on disk: its pattern, first frame number and frame count (numbers without gaps)."""

    pattern: Path
    first: int
    count: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def files(self) -> list[Path]:
        return [frame_path(self.pattern, number) for number in range(self.first, self.first + self.count)]


def sequence_container(path: str | Path) -> str | None:
    """`sequence:FORMAT` for a path with an image sequence extension, else None."""
    codec = SEQUENCE_SUFFIXES.get(Path(path).suffix.lower())
    return None if codec is None else f"{SEQUENCE}:{codec}"


def has_frame_field(path: str | Path) -> bool:
    """Whether a file name holds a printf frame number field (a sequence pattern, not a file)."""
    return FRAME_FIELD.search(Path(path).name) is not None


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


def is_sequence_input(path: str | Path) -> bool:
    """Whether an input names an image sequence: a pattern (`shot/%06d.png`) or a folder."""
    path = Path(path)
    return path.is_dir() or (has_frame_field(path) and path.suffix.lower() in INPUT_SEQUENCE_SUFFIXES)


def find_sequence(path: str | Path) -> ImageSequence:
    """The image sequence an input names: a pattern's files, or a folder's one run of numbered frames
    (`INPUT_SEQUENCE_SUFFIXES`). A one-line `ReenactError` when it holds no frame, several sequences, or
    a gap in its numbers (the missing frame named)."""
    path = Path(path)
    if path.is_dir():
        pattern = _folder_pattern(path)
    else:
        check_pattern(path)
        pattern = path
    numbers = _frame_numbers(pattern)
    if not numbers:
        raise ReenactError(f"no frames found for the image sequence {pattern}")
    first, last = numbers[0], numbers[-1]
    if len(numbers) != last - first + 1:
        present = set(numbers)
        gap = next(number for number in range(first, last + 1) if number not in present)
        raise ReenactError(
            f"the image sequence {pattern} has a gap: frame {gap} ({frame_path(pattern, gap).name}) is "
            f"missing between {first} and {last}; fill or renumber it"
        )
    return ImageSequence(pattern=pattern, first=first, count=len(numbers))


def _frame_numbers(pattern: Path) -> list[int]:
    """The frame numbers of the files of `pattern` that exist, sorted: a file counts when `frame_path`
    names it by its number (so `%06d` takes `000012.png`, not `12.png`)."""
    field = FRAME_FIELD.search(pattern.name)
    assert field is not None
    prefix, suffix = pattern.name[: field.start()], pattern.name[field.end() :]
    matcher = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    numbers = []
    if pattern.parent.is_dir():
        for child in pattern.parent.iterdir():
            match = matcher.match(child.name)
            if match and child.is_file() and frame_path(pattern, int(match.group(1))).name == child.name:
                numbers.append(int(match.group(1)))
    return sorted(numbers)


def _folder_pattern(folder: Path) -> Path:
    """The pattern of a folder's numbered frames: one prefix, extension and number width (`%0Nd`, or `%d`
    when the numbers are not padded); a one-line `ReenactError` when there are none or several."""
    groups: dict[tuple[str, str], list[str]] = {}
    for child in folder.iterdir():
        match = NUMBERED_NAME.match(child.name)
        if match and child.is_file() and match["suffix"].lower() in INPUT_SEQUENCE_SUFFIXES:
            groups.setdefault((match["prefix"], match["suffix"]), []).append(match["number"])
    if not groups:
        kinds = ", ".join(INPUT_SEQUENCE_SUFFIXES)
        raise ReenactError(f"{folder} holds no numbered frames ({kinds}), e.g. {folder / ('000001.png')}")
    if len(groups) > 1:
        names = ", ".join(f"{prefix}#{suffix}" for prefix, suffix in sorted(groups))
        raise ReenactError(
            f"{folder} holds more than one image sequence ({names}): give a pattern, e.g. shot/%06d.png"
        )
    (prefix, suffix), numbers = next(iter(groups.items()))
    widths = {len(number) for number in numbers}
    padded = any(number.startswith("0") and len(number) > 1 for number in numbers)
    field = f"%0{widths.pop()}d" if len(widths) == 1 else "%d"
    if field == "%d" and padded:
        raise ReenactError(f"the frame numbers in {folder} are padded to different widths: give a pattern")
    return folder / f"{prefix}{field}{suffix}"


def sequence_rate(path: str | Path, fps: Fraction | None) -> Fraction:
    """The frame rate of the image sequence `path`: `fps`, the one its caller gives (the CLI's `--fps`), or
    a one-line `UsageError` when none was given (an image carries no frame rate) or it is not positive."""
    if fps is None:
        raise UsageError(f"{path} is an image sequence, which carries no frame rate: give it with --fps")
    if fps <= 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    return fps


def parse_rate(text: str) -> Fraction:
    """A frame rate as `--fps` takes it: `25`, `23.976` or `24000/1001`; a one-line `UsageError` else."""
    try:
        rate = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps {text!r} is not a frame rate (25, 23.976 or 24000/1001)") from None
    if rate <= 0:
        raise UsageError(f"--fps must be positive, got {text}")
    return rate
