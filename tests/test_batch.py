"""`reenact batch`'s jobs files: TOML and CSV, defaults, relative paths and one-line errors. Running a
batch over ranks is in `test_distributed.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from reenact.errors import ReenactError
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
