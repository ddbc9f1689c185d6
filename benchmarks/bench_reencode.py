"""Speed of `reenact reencode` against a plain PyAV transcode loop with the same encoder settings.

Examples:
    python benchmarks/bench_reencode.py                              # lp_source_s18.mp4 (720p, AAC), 5 rounds
    python benchmarks/bench_reencode.py --clip retalk_face2.mp4 --rounds 9 --json
    python benchmarks/bench_reencode.py --clip /path/to/any.mp4
    python benchmarks/bench_reencode.py --clip master.mov --codec prores   # also dnxhr, ffv1, h265 ...
    python benchmarks/bench_reencode.py --clip master.mov --codec h264,prores,dnxhr,ffv1  # one table
    python benchmarks/bench_reencode.py --make-source master.mov --frames 48  # a 10-bit 1080p ProRes 422 HQ
    python benchmarks/bench_reencode.py --clip master.mov --codec ffv1 --peak-memory  # one run, peak RSS

Each round runs both, one after the other (alternating which goes first), over the same input, so a
machine shared with other work slows both alike:
- `reenact`: the `reencode` command in this process (`reenact_cli.main.run`, `--quiet`), probe included
  (its per-process memo is cleared first): exact colour conversion, timestamps, rotation, audio copy,
  atomic output.
- `plain`: demux -> decode -> `frame.to_ndarray(format="rgb24")` -> `av.VideoFrame.from_ndarray` ->
  encode with libx264 at the same CRF, preset and pixel format, the frames' own timestamps, and the
  audio packets copied when the source has audio (as `reencode` does). With `--codec` (other than h264):
  demux -> decode -> (`reformat` to the output's pixel format when it is not the source's) -> encode
  with the encoder, pixel format and options `reencode` chooses for that codec (`video.output_format`),
  the frames' own timestamps, the audio packets copied.

Printed: median, fastest and slowest seconds of each, frames per second at the median, the ratio of
the medians (plain / reenact: 1.0 is as fast as the plain loop) and the median of the per-round ratios.
With several codecs (`--codec h264,prores,dnxhr,ffv1`), each is measured in turn over the same clip and
one table gives, per codec, both medians and both ratios. Clips without a path are looked up in
../shared/testdata.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import sys
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
KIB = 1024
"""ru_maxrss is in KiB on Linux."""
MASTER_SIZE = (1920, 1080)
PRORES_HQ = {"profile": "3"}
OUTPUT_SUFFIXES = {"h264": ".mp4", "h265": ".mp4", "ffv1": ".mkv"}
"""The output file type of each codec; the others are written to .mov."""


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
    arguments += ["--set", f"video.pix_fmt={config.pix_fmt}", "--codec", config.codec]
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


def plain_same_codec(source: Path, destination: Path, *, config: VideoConfig) -> None:
    """The plain PyAV loop on the codec `reencode` writes: decode, encode (a pixel format conversion only
    where the output's is not the source's); audio packets copied."""
    chosen = video.output_format(destination, like=video.probe(source), config=config)
    with av.open(str(source)) as inp, av.open(str(destination), "w") as out:
        video_in = inp.streams.video[0]
        audio_in = inp.streams.audio[0] if inp.streams.audio else None
        video_out = out.add_stream(chosen.codec.encoder, rate=video_in.average_rate)
        video_out.width = video_in.codec_context.width
        video_out.height = video_in.codec_context.height
        video_out.pix_fmt = chosen.pix_fmt
        video_out.time_base = video_in.time_base
        options = dict(chosen.codec.options)
        if chosen.codec.encoder in video.X26X_ENCODERS:
            options |= {"crf": str(config.crf), "preset": config.preset}
        video_out.options = options
        audio_out = out.add_stream_from_template(audio_in) if audio_in is not None else None
        for packet in inp.demux(*(s for s in (video_in, audio_in) if s is not None)):
            if packet.stream is audio_in:
                if packet.dts is not None:
                    packet.stream = audio_out
                    out.mux(packet)
                continue
            for frame in packet.decode():
                if frame.format.name != chosen.pix_fmt:
                    frame = frame.reformat(format=chosen.pix_fmt)
                frame.pict_type = av.video.frame.PictureType.NONE
                out.mux(video_out.encode(frame))
        out.mux(video_out.encode(None))


def make_source(path: Path, *, frames: int) -> None:
    """A 10-bit 1920x1080 ProRes 422 HQ clip at 25 fps with a PCM track and a timecode: smooth moving
    ramps with noise in the low bits (`tests.mastering.write_deep_clip`)."""
    sys.path.insert(0, str(REPO_ROOT))  # for tests.mastering
    from tests.mastering import write_deep_clip

    write_deep_clip(
        path, encoder="prores_ks", pix_fmt="yuv422p10le", frames=frames, size=MASTER_SIZE, options=PRORES_HQ
    )


@dataclass(frozen=True)
class Measurement:
    """One codec's rounds: the timings of both, the ratio of their medians and the median per-round ratio."""

    codec: str
    timings: list[Timing]
    ratio_of_medians: float
    median_round_ratio: float


def measure(source: Path, *, frames: int, config: VideoConfig, rounds: int) -> Measurement:
    """`rounds` runs of `reencode` and of the plain loop on `config.codec`, alternating which goes first."""
    plain = plain_transcode if config.codec == "h264" else plain_same_codec
    jobs: dict[str, Callable[[Path], None]] = {
        "reenact": lambda path: reenact_reencode(source, path, config=config),
        "plain": lambda path: plain(source, path, config=config),
    }
    suffix = OUTPUT_SUFFIXES.get(config.codec, ".mov")
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    with tempfile.TemporaryDirectory(prefix="bench_reencode-") as tmp:
        for round_index in range(rounds):
            order = list(jobs) if round_index % 2 == 0 else list(reversed(jobs))
            for name in order:
                seconds[name].append(timed(lambda name=name: jobs[name](Path(tmp) / f"{name}{suffix}")))
    timings = [summary(name, values, frames=frames) for name, values in seconds.items()]
    paired = statistics.median(p / r for p, r in zip(seconds["plain"], seconds["reenact"], strict=True))
    return Measurement(
        codec=config.codec,
        timings=timings,
        ratio_of_medians=round(timings[1].median_s / timings[0].median_s, 3),
        median_round_ratio=round(paired, 3),
    )


def print_table(measurements: list[Measurement]) -> None:
    """One row per codec: both medians, the ratio of medians and the median of the per-round ratios."""
    print(f"{'--codec':10} {'reenact s':>10} {'plain s':>8} {'reenact/plain':>14} {'median of rounds':>17}")
    for measured in measurements:
        ours, theirs = measured.timings
        print(
            f"{measured.codec:10} {ours.median_s:10.3f} {theirs.median_s:8.3f} "
            f"{measured.ratio_of_medians:13.2f}x {measured.median_round_ratio:16.2f}x"
        )


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
    parser.add_argument(
        "--codec",
        default="h264",
        help="output codec (reenact's --codec names); several, comma-separated: one table",
    )
    parser.add_argument("--make-source", type=Path, help="write a 10-bit 1080p ProRes clip here and stop")
    parser.add_argument("--frames", type=int, default=48, help="frames of --make-source")
    parser.add_argument("--peak-memory", action="store_true", help="one reencode, then its peak RSS")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.make_source is not None:
        make_source(args.make_source, frames=args.frames)
        print(f"wrote {args.make_source}: {args.frames} frames of 10-bit 1920x1080 ProRes 422 HQ")
        return
    source = Path(args.clip)
    if not source.is_file():
        source = TESTDATA / args.clip
    if not source.is_file():
        raise SystemExit(f"no such clip: {args.clip}")
    codecs = args.codec.split(",")
    info = video.probe(source)
    frames = info.frame_count
    if args.peak_memory:
        config = VideoConfig(crf=args.crf, preset=args.preset, codec=codecs[0])
        with tempfile.TemporaryDirectory(prefix="bench_reencode-") as tmp:
            reenact_reencode(
                source, Path(tmp) / f"out{OUTPUT_SUFFIXES.get(codecs[0], '.mov')}", config=config
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // KIB
        print(f"{source.name}: {frames} frames, --codec {codecs[0]}: peak RSS {peak} MiB")
        return
    measurements = [
        measure(
            source,
            frames=frames,
            config=VideoConfig(crf=args.crf, preset=args.preset, codec=codec),
            rounds=args.rounds,
        )
        for codec in codecs
    ]
    if args.json:
        result = {
            "clip": source.name,
            "frames": frames,
            "size": f"{info.width}x{info.height}",
            "audio": info.has_audio,
            "crf": args.crf,
            "preset": args.preset,
            "rounds": args.rounds,
            "codecs": [
                {**asdict(measured), "timings": [asdict(timing) for timing in measured.timings]}
                for measured in measurements
            ],
        }
        print(json.dumps(result, indent=2))
        return
    audio = f", audio {info.audio_codec}" if info.has_audio else ", no audio"
    print(
        f"{source.name}: {info.width}x{info.height} {info.pix_fmt}, {frames} frames{audio}; --codec "
        f"{args.codec}, crf {args.crf}, preset {args.preset}, {VideoConfig.pix_fmt}; {args.rounds} rounds"
    )
    if len(measurements) > 1:
        print_table(measurements)
        return
    (measured,) = measurements
    print(f"{'':8} {'median s':>9} {'fastest':>8} {'slowest':>8} {'fps':>7}")
    for timing in measured.timings:
        print(
            f"{timing.name:8} {timing.median_s:9.3f} {timing.fastest_s:8.3f} {timing.slowest_s:8.3f} "
            f"{timing.fps:7.1f}"
        )
    print(
        f"reenact / plain speed: {measured.ratio_of_medians:.2f}x (ratio of medians), "
        f"{measured.median_round_ratio:.2f}x (median of rounds)"
    )


if __name__ == "__main__":
    main()
