"""What finding every person (issue #25) adds to aligning a clip: `reenact people` against `reenact align`.

Examples:
    python benchmarks/bench_people.py                          # ghost_2person.mp4 (1280x720, two people)
    python benchmarks/bench_people.py --duration 60f --repeats 3 --json

Each repeat, in fresh workspaces: the alignment alone (detection parts + one face followed and smoothed),
then the people stage (the same detection parts + tracklets + descriptors + grouping), then the alignment
again on the people's workspace, which finds the detection done. The people stage's own cost is its merge
(total minus its detection parts): what it adds to an alignment when both run (the issue's target: at most
30 % of the alignment's time on a 720p two-person clip). The describer's model load is part of it and is
given apart, with the decode and descriptor time inside the merge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reenact import video
from reenact.config import Config
from reenact.device import resolve_runtime
from reenact.faces import people as people_maths
from reenact.faces.landmarks import FaceDetection
from reenact.pipeline import RunContext, align_clip, clip_people
from reenact.stages.people import make_describer
from reenact.timeline import parse_slice
from reenact.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_CLIP = SHARED_DIR / "testdata" / "ghost_2person.mp4"
TARGET_SHARE = 0.30
"""The issue's bound: people may add at most this share of the alignment's time."""


class TimedDescriber:
    """A describer that adds up the time and calls of its `describe`."""

    def __init__(self, inner: people_maths.Describer) -> None:
        self.inner = inner
        self.threshold = inner.threshold
        self.seconds = 0.0
        self.calls = 0

    def describe(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        started = time.perf_counter()
        descriptor = self.inner.describe(image, detection)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return descriptor


def one_repeat(clip: Path, *, duration: str | None, settings: Config) -> dict[str, Any]:
    """Seconds of each step of one repeat (see the module docstring)."""
    window = video.slice_window(clip, parse_slice(None, duration)) if duration else None
    runtime = resolve_runtime("cpu")
    timed: list[TimedDescriber] = []
    load_seconds: list[float] = []

    def timed_describer(name: Any, faces: Any) -> TimedDescriber:
        started = time.perf_counter()
        inner = make_describer(name, faces)
        load_seconds.append(time.perf_counter() - started)
        timed.append(TimedDescriber(inner))
        return timed[-1]

    with tempfile.TemporaryDirectory() as alone, tempfile.TemporaryDirectory() as shared:
        context = RunContext(workspace=Workspace(alone), settings=settings, runtime=runtime)
        started = time.perf_counter()
        align_clip(clip, context=context, resolution=settings.align.resolution, window=window)
        align_s = time.perf_counter() - started

        context = RunContext(workspace=Workspace(shared), settings=settings, runtime=runtime)
        original = people_stage_describer(timed_describer)
        try:
            started = time.perf_counter()
            found, _ = clip_people(clip, context=context, window=window)
            people_s = time.perf_counter() - started
        finally:
            people_stage_describer(original)
        (report,) = context.reports
        detect_s = report.work.seconds
        started = time.perf_counter()
        align_clip(clip, context=context, resolution=settings.align.resolution, window=window)
        align_after_s = time.perf_counter() - started
    merge_s = people_s - detect_s
    return {
        "frames": found.num_frames,
        "people": len(found.people),
        "faces": len(found.detections.boxes),
        "align_s": align_s,
        "people_s": people_s,
        "people_detect_s": detect_s,
        "people_extra_s": merge_s,
        "describer_load_s": load_seconds[0],
        "descriptors": timed[0].calls,
        "descriptor_s": timed[0].seconds,
        "align_after_people_s": align_after_s,
        "extra_share": merge_s / align_s,
    }


def people_stage_describer(replacement: Any) -> Any:
    """Swap the describer factory the people stage uses; returns the one it had."""
    from reenact.stages import people as stage

    original = stage.make_describer
    stage.make_describer = replacement
    return original


def summarise(rows: list[dict[str, Any]]) -> Iterator[str]:
    for name in rows[0]:
        values = [row[name] for row in rows]
        middle = statistics.median_low(values) if isinstance(values[0], int) else statistics.median(values)
        yield f"  {name:<22} {middle:.3f}" if isinstance(middle, float) else f"  {name:<22} {middle}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--duration", help="a slice from the start, e.g. 60f (default: the whole clip)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Config()
    rows = [one_repeat(args.clip, duration=args.duration, settings=settings) for _ in range(args.repeats)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.clip.name}: median of {len(rows)} repeat(s)")
    for line in summarise(rows):
        print(line)
    share = statistics.median(row["extra_share"] for row in rows)
    print(f"people add {share:.1%} to the alignment's time (target <= {TARGET_SHARE:.0%})")


if __name__ == "__main__":
    main()
