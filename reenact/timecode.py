"""SMPTE timecodes: parse `HH:MM:SS:FF` (`;` before the frames: drop-frame), count frames, move by frames.

A slice of a clip (`--start`) starts later than the clip, so its timecode is the clip's moved by the
slice's start; drop-frame timecodes (29.97 and 59.94 fps) skip frame numbers 0 and 1 (2 and 3 at 59.94)
at the start of every minute except every tenth, so they stay near the wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from reenact.errors import ReenactError

TIMECODE_PATTERN = re.compile(r"^(\d{2}):(\d{2}):(\d{2})([:;.])(\d{2,3})$")
SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60
HOURS_PER_DAY = 24
DROP_FRAME_INTERVAL = 10
"""Drop-frame timecode keeps the frame numbers of every tenth minute."""
DROP_FRAME_SEPARATORS = ";."
DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))
"""The rates whose timecode is drop-frame by convention (NTSC's 29.97 and 59.94): counted from frame
numbers alone, it stays near the wall clock."""


@dataclass(frozen=True)
class Timecode:
    """A timecode at a whole number of frames per second (`rate`, the nominal rate rounded)."""

    frames: int
    """Frames since 00:00:00:00."""
    rate: int
    drop: bool

    def __str__(self) -> str:
        frames = self.frames
        if self.drop:
            frames += _dropped_before(frames, rate=self.rate)
        seconds, frame = divmod(frames, self.rate)
        minutes, second = divmod(seconds, SECONDS_PER_MINUTE)
        hours, minute = divmod(minutes, MINUTES_PER_HOUR)
        separator = ";" if self.drop else ":"
        return f"{hours % HOURS_PER_DAY:02d}:{minute:02d}:{second:02d}{separator}{frame:02d}"

    def moved(self, frames: int) -> Timecode:
        return Timecode(frames=self.frames + frames, rate=self.rate, drop=self.drop)


def frame_timecode(frame: int, *, rate: Fraction) -> Timecode:
    """The timecode of frame number `frame` counted at `rate` (an image sequence's first frame): drop-frame
    at the `DROP_FRAME_RATES`, else not."""
    return Timecode(frames=frame, rate=timecode_rate(float(rate)), drop=rate in DROP_FRAME_RATES)


def timecode_rate(fps: float) -> int:
    """The whole frame rate a timecode counts at for a clip of `fps` (29.97 counts 30)."""
    return max(1, round(fps))


def parse_timecode(text: str, *, fps: float) -> Timecode:
    """`HH:MM:SS:FF` (or `HH:MM:SS;FF`, drop-frame) at `fps`; a one-line `ReenactError` when malformed."""
    match = TIMECODE_PATTERN.match(text.strip())
    if match is None:
        raise ReenactError(f"timecode {text!r} is not HH:MM:SS:FF")
    hours, minutes, seconds, separator, frame = match.groups()
    rate = timecode_rate(fps)
    drop = separator in DROP_FRAME_SEPARATORS
    if int(minutes) >= MINUTES_PER_HOUR or int(seconds) >= SECONDS_PER_MINUTE or int(frame) >= rate:
        raise ReenactError(f"timecode {text!r} is out of range at {rate} frames per second")
    total_minutes = int(hours) * MINUTES_PER_HOUR + int(minutes)
    frames = (total_minutes * SECONDS_PER_MINUTE + int(seconds)) * rate + int(frame)
    if drop:
        frames -= _drop_count(rate) * (total_minutes - total_minutes // DROP_FRAME_INTERVAL)
    return Timecode(frames=frames, rate=rate, drop=drop)


def check_timecode(text: str) -> None:
    """A one-line `ReenactError` when `text` is not shaped like a timecode (its range is checked against
    the clip's rate later, by `parse_timecode`)."""
    if TIMECODE_PATTERN.match(text.strip()) is None:
        raise ReenactError(f"timecode {text!r} is not HH:MM:SS:FF")


def _drop_count(rate: int) -> int:
    """Frame numbers drop-frame skips each minute: 2 per 30 frames per second."""
    return 2 * round(rate / 30)


def _dropped_before(frames: int, *, rate: int) -> int:
    """Frame numbers skipped before the `frames`-th frame in drop-frame counting."""
    drop = _drop_count(rate)
    per_minute = rate * SECONDS_PER_MINUTE - drop
    per_ten_minutes = per_minute * DROP_FRAME_INTERVAL + drop
    tens, rest = divmod(frames, per_ten_minutes)
    skipped = drop * (DROP_FRAME_INTERVAL - 1) * tens
    if rest > drop:
        skipped += drop * ((rest - drop) // per_minute)
    return skipped
