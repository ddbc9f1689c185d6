"""`reenact batch`: its jobs files (TOML and CSV, defaults, relative paths, one-line errors) and running
one on a tiny synthetic world in this process (skip, failure, exit status). Running a batch over ranks
is in `test_distributed.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reenact.errors import ReenactError
from reenact.synthetic import SyntheticConfig, make_world, write_world
from reenact_cli.batch_cmd import read_jobs
from reenact_cli.main import run
from tests.conftest import REPO_ROOT


def test_the_sample_jobs_file_reads_with_defaults_and_paths_from_its_folder() -> None:
    jobs = read_jobs(REPO_ROOT / "samples" / "jobs.toml")
    assert len(jobs) == 2
    first, second = jobs
    assert first.target == REPO_ROOT / "samples" / "demo" / "world" / "target.mp4"
    assert first.options == {"generator": "random:tiny", "preset": "synthetic"}
    assert second.options["strength"] == 0.5 and second.options["set"] == ["video.crf=20"]
    assert second.options["generator"] == "random:tiny", "defaults apply to every job"


def test_a_csv_jobs_file_reads_like_toml(tmp_path: Path) -> None:
    (tmp_path / "jobs.csv").write_text(
        "target,driver,output,strength,set,quality\n"
        "a.mp4,b.mp4,out/ab.mp4,0.8,video.crf=18;edit.sigma=2,fast\n"
        "c.mp4,d.mp4,out/cd.mp4,,,\n"
    )
    first, second = read_jobs(tmp_path / "jobs.csv")
    assert (first.target, first.output) == (tmp_path / "a.mp4", tmp_path / "out" / "ab.mp4")
    assert first.options == {"strength": 0.8, "set": ["video.crf=18", "edit.sigma=2"], "quality": "fast"}
    assert second.options == {}, "empty cells are not given"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[job]]\ntarget = "a.mp4"\ndriver = "b.mp4"\n', "job 1: missing output"),
        ('[[job]]\ntarget = "a"\ndriver = "b"\noutput = "c"\nstrenght = 1\n', "unknown field(s) strenght"),
        ('[[job]]\ntarget = "a"\ndriver = "b"\noutput = "c"\nstrength = "x"\n', "strength must be float"),
        ("[defaults]\n", "lists no jobs"),
        ("[[job]\n", "is not valid TOML"),
    ],
)
def test_a_bad_jobs_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(text)
    with pytest.raises(ReenactError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_jobs(jobs)
    assert run(["batch", str(jobs)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


QUICK = ["invert.first_steps=2", "invert.warm_steps=1", "pti.base_steps=1", "pti.max_steps=1"]
"""A few steps each: the test is about the batch, not the fit."""


def test_a_batch_skips_what_exists_reports_a_failure_in_one_line_and_finishes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_world(make_world(SyntheticConfig(num_frames=4)), tmp_path / "world")
    clips = (
        f'target = "{files.target_video}"\ntarget_landmarks = "{files.target_landmarks}"\n'
        f'driver_landmarks = "{files.driver_landmarks}"\n'
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "done.mp4").write_bytes(b"made before")
    (tmp_path / "jobs.toml").write_text(
        f'[defaults]\ngenerator = "random:tiny"\npreset = "synthetic"\nset = {json.dumps(QUICK)}\n\n'
        f'[[job]]\n{clips}driver = "{tmp_path / "missing.mp4"}"\noutput = "out/failed.mp4"\n\n'
        f'[[job]]\n{clips}driver = "{files.driver_video}"\noutput = "out/done.mp4"\n\n'
        f'[[job]]\n{clips}driver = "{files.driver_video}"\noutput = "out/new.mp4"\n'
    )
    command = ["batch", str(tmp_path / "jobs.toml"), "--workdir", str(tmp_path / "work"), "--quiet"]
    assert run([*command, "--json"]) == 1, "a failed job fails the batch"
    captured = capsys.readouterr()
    jobs = json.loads(captured.out)["jobs"]
    assert [job["status"] for job in jobs] == ["failed", "skipped", "ok"], jobs
    assert "missing.mp4" in jobs[0]["error"] and "\n" not in jobs[0]["error"]
    assert (tmp_path / "out" / "done.mp4").read_bytes() == b"made before", "an existing output is kept"
    assert (tmp_path / "out" / "new.mp4").stat().st_size > 0 and not (
        tmp_path / "out" / "failed.mp4"
    ).exists()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: 1 of 3 jobs failed; job 1: {jobs[0]['error']}"], captured.err
