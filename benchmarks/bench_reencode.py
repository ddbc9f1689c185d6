"""Speed of `reenact reencode` against a plain PyAV transcode loop with the same x264 settings.

Examples:
    python benchmarks/bench_reencode.py                              # lp_source_s18.mp4 (720p, AAC), 5 rounds
    python benchmarks/bench_reencode.py --clip retalk_face2.mp4 --rounds 9 --json
    python benchmarks/bench_reencode.py --clip /path/to/any.mp4

Each round runs both, one after the other (alternating which goes first), over the same input, so a
machine shared with other work slows both alike:
- `reenact`: the `reencode` command in this process (`reenact_cli.main.run`, `--quiet`), probe included
  (its per-process memo is cleared first): exact colour conversion, timestamps, rotation, audio copy,
  atomic output.
- `plain`: demux -> decode -> `frame.to_ndarray(format="rgb24")` -> `av.VideoFrame.from_ndarray` ->
  encode with libx264 at the same CRF, preset and pixel format, the frames' own timestamps, and the
  audio packets copied when the source has audio (as `reencode` does).

Printed: median, fastest and slowest seconds of each, frames per second at the median, the ratio of
the medians (plain / reenact: 1.0 is as fast as the plain loop) and the median of the per-round ratios.
Clips without a path are looked up in ../shared/testdata.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from reenact import video
from reenact.config import VideoConfig
from reenact_cli.main import run as run_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
TESTDATA = SHARED_DIR / "testdata"
DEFAULT_CLIP = "lp_source_s18.mp4"
"""1280x720 H.264 with AAC audio, 282 frames: a typical target clip."""


@dataclass(frozen=True)
class Timing:
    name: str
    median_s: float
    fastest_s: float
    slowest_s: float
    fps: float


def reenact_reencode(source: Path, destination: Path, *, config: VideoConfig) -> None:
    """`reenact reencode SOURCE -o DESTINATION` as the command runs it, without its start-up."""
    video._probe_file.cache_clear()  # every run pays its probe, as a fresh command does
    arguments = ["reencode", str(source), "-o", str(destination), "--overwrite", "--quiet"]
    arguments += ["--crf", str(config.crf), "--set", f"video.preset={config.preset}"]
    arguments += ["--set", f"video.pix_fmt={config.pix_fmt}"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(arguments)
    if code != 0:
        raise SystemExit(f"reenact reencode exited with {code}")


def plain_transcode(source: Path, destination: Path, *, config: VideoConfig) -> None:
    """The plain PyAV loop: decode, to RGB, back to a frame, encode; audio packets copied."""
    with av.open(str(source)) as inp, av.open(str(destination), "w") as out:
        video_in = inp.streams.video[0]
        audio_in = inp.streams.audio[0] if inp.streams.audio else None
        video_out = out.add_stream("libx264", rate=video_in.average_rate)
        video_out.width = video_in.codec_context.width
        video_out.height = video_in.codec_context.height
        video_out.pix_fmt = config.pix_fmt
        video_out.time_base = video_in.time_base
        video_out.options = {"crf": str(config.crf), "preset": config.preset}
        audio_out = out.add_stream_from_template(audio_in) if audio_in is not None else None
        for packet in inp.demux(*(s for s in (video_in, audio_in) if s is not None)):
            if packet.stream is audio_in:
                if packet.dts is not None:
                    packet.stream = audio_out
                    out.mux(packet)
                continue
            for frame in packet.decode():
                image = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                image.pts, image.time_base = frame.pts, Fraction(video_in.time_base)
                out.mux(video_out.encode(image))
        out.mux(video_out.encode(None))


def timed(job: Callable[[], None]) -> float:
    start = time.perf_counter()
    job()
    return time.perf_counter() - start


def summary(name: str, seconds: list[float], *, frames: int) -> Timing:
    median = statistics.median(seconds)
    return Timing(
        name=name,
        median_s=round(median, 3),
        fastest_s=round(min(seconds), 3),
        slowest_s=round(max(seconds), 3),
        fps=round(frames / median, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--clip", default=DEFAULT_CLIP, help="a video file (bare names: ../shared/testdata)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each, alternating")
    parser.add_argument("--crf", type=int, default=VideoConfig.crf, help="x264 CRF of both")
    parser.add_argument("--preset", default=VideoConfig.preset, help="x264 preset of both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    source = Path(args.clip)
    if not source.is_file():
        source = TESTDATA / args.clip
    if not source.is_file():
        raise SystemExit(f"no such clip: {args.clip}")
    config = VideoConfig(crf=args.crf, preset=args.preset)
    info = video.probe(source)
    jobs: dict[str, Callable[[Path], None]] = {
        "reenact": lambda path: reenact_reencode(source, path, config=config),
        "plain": lambda path: plain_transcode(source, path, config=config),
    }
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    with tempfile.TemporaryDirectory(prefix="bench_reencode-") as tmp:
        for round_index in range(args.rounds):
            order = list(jobs) if round_index % 2 == 0 else list(reversed(jobs))
            for name in order:
                seconds[name].append(timed(lambda name=name: jobs[name](Path(tmp) / f"{name}.mp4")))
    frames = info.frame_count
    timings = [summary(name, values, frames=frames) for name, values in seconds.items()]
    ratio = timings[1].median_s / timings[0].median_s
    paired = statistics.median(p / r for p, r in zip(seconds["plain"], seconds["reenact"], strict=True))
    if args.json:
        result = {
            "clip": source.name,
            "frames": frames,
            "size": f"{info.width}x{info.height}",
            "audio": info.has_audio,
            "crf": config.crf,
            "preset": config.preset,
            "rounds": args.rounds,
            "timings": [asdict(timing) for timing in timings],
            "ratio_of_medians": round(ratio, 3),
            "median_round_ratio": round(paired, 3),
        }
        print(json.dumps(result, indent=2))
        return
    audio = f", audio {info.audio_codec}" if info.has_audio else ", no audio"
    print(
        f"{source.name}: {info.width}x{info.height}, {frames} frames{audio}; crf {config.crf}, "
        f"preset {config.preset}, {config.pix_fmt}; {args.rounds} rounds"
    )
    print(f"{'':8} {'median s':>9} {'fastest':>8} {'slowest':>8} {'fps':>7}")
    for timing in timings:
        print(
            f"{timing.name:8} {timing.median_s:9.3f} {timing.fastest_s:8.3f} {timing.slowest_s:8.3f} "
            f"{timing.fps:7.1f}"
        )
    print(f"reenact / plain speed: {ratio:.2f}x (ratio of medians), {paired:.2f}x (median of rounds)")


if __name__ == "__main__":
    main()
