"""`samples/` runs as shipped: the commands `samples/README.md` documents (the demo writes the clips, then
`reenact batch samples/jobs.toml`), and `samples/slurm.sh` as far as it can run without a cluster."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from reenact_cli.main import app, run
from tests.conftest import REPO_ROOT
from tests.videotools import frame_times

SAMPLES = REPO_ROOT / "samples"
FAST_FLAGS = {"demo": ["--frames", "4", "--device", "cpu"], "batch": ["--quality", "fast", "--device", "cpu"]}
"""What the test adds to the documented commands to keep them short: 4 frames, fast quality, the CPU."""
DEMO_FRAMES = 4
SAMPLE_OUTPUTS = ("full.mp4", "half.mp4")
"""The outputs `samples/jobs.toml` names (under `samples/out/`)."""


def readme_commands() -> list[list[str]]:
    """The `reenact ...` lines of the README's bash block, comments dropped, as argument lists."""
    text = (SAMPLES / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("reenact ")]


def parse_only(args: list[str]) -> dict[str, object]:
    """Parse `reenact ARGS` with the CLI's own parser without running the command (a usage error raises)."""
    command = typer.main.get_command(app)
    sub = command.get_command(None, args[0])  # type: ignore[attr-defined]
    assert sub is not None, f"no command {args[0]}"
    return sub.make_context(args[0], args[1:]).params


def test_the_readme_documents_one_command_before_the_jobs_file() -> None:
    commands = readme_commands()
    assert [args[0] for args in commands] == ["demo", "batch"]
    demo, batch = commands
    for args in commands:
        parse_only(args)
    assert parse_only(demo)["output"] == Path("samples/demo")
    assert batch[1] == "samples/jobs.toml"


@pytest.mark.slow
def test_the_jobs_file_runs_after_the_documented_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's commands, in a copy of `samples/`, with fewer frames and fast quality (about 90 s)."""
    shutil.copytree(SAMPLES, tmp_path / "samples", ignore=shutil.ignore_patterns("demo", "out"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "home"))
    demo, batch = readme_commands()
    assert run([*demo, *FAST_FLAGS["demo"]]) == 0
    capsys.readouterr()
    assert run([*batch, *FAST_FLAGS["batch"], "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == 0 and [job["status"] for job in summary["jobs"]] == ["ok", "ok"]
    for name in SAMPLE_OUTPUTS:
        output = tmp_path / "samples" / "out" / name
        assert len(frame_times(output)) == DEMO_FRAMES, name
    assert run([*batch, *FAST_FLAGS["batch"], "--json", "--quiet"]) == 0  # a rerun skips finished jobs
    again = json.loads(capsys.readouterr().out)
    assert [job["status"] for job in again["jobs"]] == ["skipped", "skipped"]


def slurm_command() -> tuple[str, list[str]]:
    """`samples/slurm.sh` with its continuation lines joined, and the `reenact_cli` arguments it runs."""
    script = (SAMPLES / "slurm.sh").read_text()
    joined = script.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith("srun torchrun"))
    workdir = re.search(r"^WORKDIR=(\S+)", script, flags=re.MULTILINE)
    assert workdir is not None
    line = line.replace('"$WORKDIR"', workdir.group(1))
    return joined, shlex.split(line.split("-m reenact_cli", 1)[1])


def test_the_slurm_script_is_valid_bash_and_its_command_line_parses() -> None:
    assert shutil.which("bash") is not None
    result = subprocess.run(["bash", "-n", str(SAMPLES / "slurm.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    script, args = slurm_command()
    gpus = re.search(r"^#SBATCH --gpus-per-node=(\d+)", script, flags=re.MULTILINE)
    nproc = re.search(r"--nproc_per_node=(\d+)", script)
    assert gpus and nproc and gpus.group(1) == nproc.group(1), "one process per GPU"
    params = parse_only(args)
    assert args[0] == "transfer" and params["workdir"] == Path("/shared/reenact-work")
    batch = re.search(r"-m reenact_cli (batch .*)$", script, flags=re.MULTILINE)
    assert batch is not None
    parse_only(shlex.split(batch.group(1).replace('"$WORKDIR"', "/shared/reenact-work")))
