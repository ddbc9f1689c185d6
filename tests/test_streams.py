"""Subtitle and data streams (#26 item 7): copied packet for packet where the output's container holds
them, else left out with one `note:` line naming them; a MOV timecode track is not copied (the output
writes its own from the timecode)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from reenact import video
from reenact_cli.main import run
from tests.mastering import write_deep_clip

FPS = 25
FRAMES = 10
SIZE = (64, 32)
SUBTITLES = "1\n00:00:00,080 --> 00:00:00,160\nhello\n\n2\n00:00:00,200 --> 00:00:00,240\nworld\n"
DATA_EVERY = 3
"""A data packet every this many frames."""
MILLISECONDS = Fraction(1, 1000)


def write_frames(
    container: av.container.OutputContainer, stream: av.video.stream.VideoStream, index: int
) -> None:
    frame = av.VideoFrame(*SIZE, "yuv420p")
    frame.pts = index
    for packet in stream.encode(frame):
        container.mux(packet)


def clip_with_subtitles(path: Path) -> Path:
    """An FFV1 .mkv with an SRT subtitle stream (two cues), copied from an .srt file."""
    srt = path.with_suffix(".srt")
    srt.write_text(SUBTITLES)
    with av.open(str(srt)) as cues, av.open(str(path), "w") as out:
        video_stream = out.add_stream("ffv1", rate=FPS)
        video_stream.width, video_stream.height, video_stream.pix_fmt = *SIZE, "yuv420p"
        subtitle = out.add_stream_from_template(cues.streams.subtitles[0])
        for index in range(FRAMES):
            write_frames(out, video_stream, index)
        for packet in cues.demux(cues.streams.subtitles[0]):
            if packet.size:
                packet.stream = subtitle
                out.mux(packet)
        for packet in video_stream.encode(None):
            out.mux(packet)
    return path


def clip_with_data(path: Path) -> Path:
    """An H.264 .mp4 with a binary data stream (as a camera's metadata track), a packet every few frames."""
    with av.open(str(path), "w") as out:
        video_stream = out.add_stream("libx264", rate=FPS)
        video_stream.width, video_stream.height, video_stream.pix_fmt = *SIZE, "yuv420p"
        data = out.add_data_stream("bin_data")
        data.time_base = MILLISECONDS
        for index in range(FRAMES):
            write_frames(out, video_stream, index)
            if index % DATA_EVERY == 0:
                packet = av.Packet(b"meta%d" % index)
                packet.stream, packet.time_base = data, MILLISECONDS
                packet.pts = packet.dts = index * 1000 // FPS
                out.mux(packet)
        for packet in video_stream.encode(None):
            out.mux(packet)
    return path


def packets(path: Path, kind: str) -> list[tuple[Fraction, bytes]]:
    """(start time, payload) of every packet of the first stream of `kind` (subtitle, data)."""
    with av.open(str(path)) as container:
        streams = {"subtitle": container.streams.subtitles, "data": container.streams.data}[kind]
        if not streams:
            return []
        return [
            (packet.pts * packet.time_base, bytes(packet))
            for packet in container.demux(streams[0])
            if packet.size
        ]


@pytest.mark.parametrize(
    ("make", "kind", "output_name"),
    [
        (clip_with_subtitles, "subtitle", "out.mkv"),
        (clip_with_data, "data", "out.mp4"),
        (clip_with_data, "data", "out.mov"),
    ],
)
def test_streams_the_container_holds_are_copied_packet_for_packet(
    make: object, kind: str, output_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make(tmp_path / ("src.mkv" if kind == "subtitle" else "src.mp4"))  # type: ignore[operator]
    output = tmp_path / output_name
    capsys.readouterr()
    assert run(["reencode", str(source), "-o", str(output), "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert len(packets(source, kind)) >= 2
    assert packets(output, kind) == packets(source, kind)


@pytest.mark.parametrize(
    ("make", "output_name", "message"),
    [
        (
            clip_with_subtitles,
            "out.mov",
            "note: out.mov cannot hold the subtitle stream 1 (srt) of src.mkv; left out",
        ),
        (clip_with_subtitles, "seq/%04d.png", "cannot hold the subtitle stream 1 (srt) of src.mkv; left out"),
        (
            clip_with_data,
            "out.mkv",
            "note: out.mkv cannot hold the data stream 1 (GoPro MET) of src.mp4; left out",
        ),
    ],
)
def test_streams_the_container_cannot_hold_are_named_in_one_line(
    make: object, output_name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make(tmp_path / ("src.mkv" if make is clip_with_subtitles else "src.mp4"))  # type: ignore[operator]
    capsys.readouterr()
    assert run(["reencode", str(source), "-o", str(tmp_path / output_name), "--quiet"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "cannot hold" in line]
    assert len(notes) == 1 and message in notes[0], notes


def test_a_timecode_track_is_not_copied_twice(tmp_path: Path) -> None:
    """A ProRes .mov with a start timecode (a tmcd data track) into .mov: one timecode track, the source's
    timecode, and no note."""
    source = write_deep_clip(
        tmp_path / "src.mov",
        encoder="prores_ks",
        pix_fmt="yuv422p10le",
        options={"profile": "3"},
        audio_tracks=0,
    )
    output = tmp_path / "out.mov"
    assert video.dropped_streams_note(source, output) is None
    assert run(["reencode", str(source), "-o", str(output), "--quiet"]) == 0
    with av.open(str(output)) as container:
        assert len(container.streams.data) == 1
    assert video.probe(output).timecode == video.probe(source).timecode
