"""Slices of a clip's timeline: `--start TIME --duration TIME` parsed, and resolved to frames.

A TIME is seconds (`12.5`), `M:SS.mmm` (`1:02.5`), `H:MM:SS.mmm` (`00:01:02.500`) or a whole number of
frames with an `f` suffix (`150f`). Time 0 is the clip's first frame as a player shows it.

A slice holds the frames whose presentation time lies in `[start, start + duration)` (with frames:
`[start, start + duration)` by frame number); a duration past the clip's end stops at the end. Its output
starts at 0: every frame's pts is shifted by the first slice frame's pts (durations kept exactly), and the
audio packets that start inside the slice's span are copied untouched, shifted by the same time
(`reenact.video`). Pure: no I/O here; `reenact.video.slice_window` reads the clip's timestamps.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from reenact.errors import UsageError

FRAMES_SUFFIX = "f"
"""A TIME that ends in this counts frames, not seconds."""
SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60
CLOCK_PARTS = 3
"""At most H:MM:SS."""
NUMBER = re.compile(r"\d+(\.\d+)?")
WHOLE = re.compile(r"\d+")
TIME_FORMATS = "seconds (12.5), M:SS.mmm (1:02.5), H:MM:SS.mmm (00:01:02.500) or frames (150f)"


@dataclass(frozen=True)
class Time:
    """A point or a length on a clip's timeline as the user gave it: seconds or a number of frames."""

    value: Fraction
    """Seconds, or frames when `in_frames`."""
    in_frames: bool
    text: str
    """As typed, for messages."""


@dataclass(frozen=True)
class ClipSlice:
    """What the user asked for: a start (default: the clip's first frame) and a duration (default: to
    the end)."""

    start: Time | None = None
    duration: Time | None = None


@dataclass(frozen=True)
class Window:
    """A slice resolved on a clip: frames `[first, stop)` and their span `[start_pts, stop_pts)` in the
    clip's video time base (`stop_pts`: the next frame's pts, or the clip's end)."""

    first: int
    stop: int
    start_pts: int
    stop_pts: int
    time_base: Fraction

    @property
    def frames(self) -> int:
        return self.stop - self.first

    @property
    def start_s(self) -> Fraction:
        return self.start_pts * self.time_base

    @property
    def stop_s(self) -> Fraction:
        return self.stop_pts * self.time_base

    def describe(self) -> str:
        """`frames A-B (12.000-14.000 s)`: what a run's summary says of its slice."""
        return f"frames {self.first}-{self.stop - 1} ({float(self.start_s):.3f}-{float(self.stop_s):.3f} s)"


def parse_time(text: str, *, option: str) -> Time:
    """`12.5`, `1:02.5`, `00:01:02.500` or `150f` -> `Time`; a `UsageError` naming `option` otherwise."""
    cleaned = text.strip()
    problem = f"{option} {text!r} is not a time: use {TIME_FORMATS}"
    if cleaned.startswith("-"):
        raise UsageError(f"{option} {text!r} is negative: times count from the clip's start")
    if cleaned.lower().endswith(FRAMES_SUFFIX):
        count = cleaned[: -len(FRAMES_SUFFIX)]
        if not WHOLE.fullmatch(count):
            raise UsageError(problem)
        return Time(value=Fraction(int(count)), in_frames=True, text=text)
    parts = cleaned.split(":")
    if len(parts) > CLOCK_PARTS or not NUMBER.fullmatch(parts[-1]):
        raise UsageError(problem)
    if not all(WHOLE.fullmatch(part) for part in parts[:-1]):
        raise UsageError(problem)
    seconds = Fraction(parts[-1])
    if len(parts) > 1 and seconds >= SECONDS_PER_MINUTE:
        raise UsageError(f"{option} {text!r}: seconds must be below 60 after a minute field")
    if len(parts) == CLOCK_PARTS and int(parts[1]) >= MINUTES_PER_HOUR:
        raise UsageError(f"{option} {text!r}: minutes must be below 60 after an hour field")
    for position, field in enumerate(reversed(parts[:-1])):
        seconds += int(field) * SECONDS_PER_MINUTE ** (position + 1)
    return Time(value=seconds, in_frames=False, text=text)


def parse_slice(start: str | None, duration: str | None) -> ClipSlice | None:
    """The slice `--start`/`--duration` ask for (None when neither is given: the whole clip)."""
    if start is None and duration is None:
        return None
    parsed = ClipSlice(
        start=parse_time(start, option="--start") if start is not None else None,
        duration=parse_time(duration, option="--duration") if duration is not None else None,
    )
    if parsed.duration is not None and parsed.duration.value == 0:
        raise UsageError(f"--duration {parsed.duration.text!r} is empty: give a duration longer than 0")
    return parsed


def format_clock(seconds: float) -> str:
    """`1:23.4` (or `1:02:03.4`): a clip length in a message."""
    whole_minutes, rest = divmod(seconds, SECONDS_PER_MINUTE)
    hours, minutes = divmod(int(whole_minutes), MINUTES_PER_HOUR)
    if hours:
        return f"{hours}:{minutes:02d}:{rest:04.1f}"
    return f"{minutes}:{rest:04.1f}"


def resolve_window(
    request: ClipSlice, *, pts: Sequence[int], end_pts: int, time_base: Fraction, name: str
) -> Window:
    """The frames of clip `name` (sorted frame `pts`, its end at `end_pts`, all in `time_base`) that
    `request` holds; a `UsageError` when the start is past the end or the slice holds no frame."""
    if not pts:
        raise UsageError(f"{name} has no frames to slice")
    origin = pts[0]
    times = [(value - origin) * time_base for value in pts]  # seconds from the first frame
    length = (end_pts - origin) * time_base
    start, duration = request.start, request.duration
    past_end = f"is past the end of {name} ({format_clock(float(length))}, {len(pts)} frames)"
    if start is None:
        first, start_s = 0, Fraction(0)
    elif start.in_frames:
        first = int(start.value)
        if first >= len(pts):
            raise UsageError(f"--start {start.text} {past_end}")
        start_s = times[first]
    else:
        first, start_s = bisect.bisect_left(times, start.value), start.value
        if start.value >= length or first >= len(pts):
            raise UsageError(f"--start {start.text} {past_end}")
    if duration is None:
        stop = len(pts)
    elif duration.in_frames:
        stop = min(first + int(duration.value), len(pts))
    else:
        stop = bisect.bisect_left(times, start_s + duration.value)
    if stop <= first:
        asked = " ".join(f"--{kind} {t.text}" for kind, t in (("start", start), ("duration", duration)) if t)
        raise UsageError(f"{asked} holds no frame of {name}: no frame starts in that span")
    stop_pts = pts[stop] if stop < len(pts) else end_pts
    return Window(first=first, stop=stop, start_pts=pts[first], stop_pts=stop_pts, time_base=time_base)
