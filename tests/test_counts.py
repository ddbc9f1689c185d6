"""One count everywhere: the align stage line, the `align` summary and `--json` give the same frames with
a face. They once disagreed ("264/264 frames with a face" on the stage line, "face in 263" in the summary)
when a short gap without a detected face was interpolated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reenact.faces import landmarks as lm
from reenact_cli.main import run
from tests.videotools import write_preroll_clip

FRAMES = 12
SIZE = 64
MISSING_FRAME = 5
"""The one frame without a face: a gap shorter than `align.max_gap`, so it is interpolated."""
EXPECTED = f"{FRAMES}/{FRAMES} frames with a face ({FRAMES - 1} detected, 1 interpolated)"


@pytest.fixture
def clip_with_a_gap(tmp_path: Path) -> tuple[Path, Path]:
    """A 12-frame clip and a landmarks file that has its face in every frame but one."""
    clip = tmp_path / "clip.mp4"
    write_preroll_clip(clip, preroll=0, frames=FRAMES, size=SIZE)
    rng = np.random.default_rng(0)
    face = SIZE / 2 + rng.uniform(-12, 12, size=(68, 2))
    points = np.repeat(face[None, None], FRAMES, axis=0)  # [T, 1, 68, 2]
    points[MISSING_FRAME] = np.nan
    return clip, lm.write_landmarks(tmp_path / "marks.json", points)


def test_stage_line_summary_and_json_give_one_count(
    clip_with_a_gap: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip, marks = clip_with_a_gap
    args = ["align", str(clip), "--landmarks", str(marks), "--workdir", str(tmp_path / "work")]
    assert run(args) == 0
    captured = capsys.readouterr()
    stage_lines = [line for line in captured.err.splitlines() if "inp-align" in line]
    assert len(stage_lines) == 1 and stage_lines[0].endswith(EXPECTED), captured.err
    assert captured.out.splitlines()[0] == f"{clip}: {EXPECTED}"
    assert run([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["frames"], summary["aligned_frames"], summary["faces_found"]) == (
        FRAMES,
        FRAMES,
        FRAMES - 1,
    )
    assert summary["frames_without_face"] == 1
