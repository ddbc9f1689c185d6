"""`reenact cache`: the workspace's entries with sizes and inputs; pruning that never removes what a
running command computes or uses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reenact import workspace_cache as cache
from reenact.synthetic import SyntheticConfig, make_world, write_world
from reenact_cli.cache_cmd import parse_age, parse_size, size_text
from reenact_cli.main import run

PAUSE_SCRIPT = """
import os, signal, sys
from reenact import pti
from reenact_cli.main import run

original = pti.save_checkpoint


def save_then_pause(*args, **kwargs):  # tuning's first checkpoint written: stop, mid-stage, until SIGCONT
    original(*args, **kwargs)
    if not getattr(save_then_pause, "paused", False):
        save_then_pause.paused = True
        os.kill(os.getpid(), signal.SIGSTOP)


pti.save_checkpoint = save_then_pause
sys.exit(run(sys.argv[1:]))
"""
STOP_WAIT_S = 120.0


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory):
    return write_world(make_world(SyntheticConfig(num_frames=8)), tmp_path_factory.mktemp("world"))


def transfer_args(world_files, output: Path, workdir: Path) -> list[str]:
    return [
        "transfer", str(world_files.target_video), str(world_files.driver_video), "-o", str(output),
        "--generator", "random:tiny", "--target-landmarks", str(world_files.target_landmarks),
        "--driver-landmarks", str(world_files.driver_landmarks), "--workdir", str(workdir), "--quiet",
    ]  # fmt: skip


def test_list_shows_every_stage_with_its_size_and_inputs(world_files, tmp_path: Path, capsys) -> None:
    workdir = tmp_path / "work"
    assert run(transfer_args(world_files, tmp_path / "out.mp4", workdir)) == 0
    capsys.readouterr()
    assert run(["cache", "list", "--workdir", str(workdir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    stages = sorted(entry["stage"] for entry in listed)
    expected = [
        *("align", "align", "crops", "crops", "invert", "invert", "keys", "keys", "people", "people"),
        "tune",
    ]
    assert stages == expected, stages  # no renders
    on_disk = {entry["path"]: cache.folder_bytes(Path(entry["path"])) for entry in listed}
    assert all(entry["size_bytes"] == on_disk[entry["path"]] > 0 for entry in listed)
    names = {world_files.target_video.name, world_files.driver_video.name}
    for entry in listed:
        inputs = {Path(name).name for name in entry["inputs"]}
        assert inputs and inputs <= names, entry
    tune = next(entry for entry in listed if entry["stage"] == "tune")
    assert {Path(name).name for name in tune["inputs"]} == {world_files.target_video.name}  # via its invert
    assert run(["cache", "list", "--workdir", str(workdir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    per_stage = {line.split()[0]: line for line in lines if " entries " in line and "," not in line}
    assert set(per_stage) == {"people", "align", "crops", "keys", "invert", "tune"}, lines
    for stage, line in per_stage.items():
        size = sum(entry["size_bytes"] for entry in listed if entry["stage"] == stage)
        assert line.split()[1] == str(sum(entry["stage"] == stage for entry in listed))
        assert line.endswith(size_text(size)), (line, size)


def _wait_stopped(process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the transfer never reached its first tuning checkpoint")


def test_prune_never_removes_what_a_running_command_holds(world_files, tmp_path: Path, capsys) -> None:
    workdir, output = tmp_path / "work", tmp_path / "out.mp4"
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSE_SCRIPT, *transfer_args(world_files, output, workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_stopped(process)  # the target's align, crops and invert are done and in use; tune is written
        before = cache.entries(workdir)
        assert any(not entry.finished and entry.stage == "tune" for entry in before), before
        assert run(["cache", "prune", "--workdir", str(workdir), "--max-size", "0"]) == 0
        printed = capsys.readouterr().out
        assert {(e.stage, e.digest) for e in cache.entries(workdir)} == {(e.stage, e.digest) for e in before}
        assert printed.count("kept (in use") == len(before), printed
    finally:
        os.kill(process.pid, signal.SIGCONT)
    _, err = process.communicate(timeout=STOP_WAIT_S)
    assert process.returncode == 0, err
    assert output.exists()
    assert run(["cache", "prune", "--workdir", str(workdir), "--max-size", "0"]) == 0
    assert "removed 11 entries" in capsys.readouterr().out  # the renders went with the finished run
    assert cache.entries(workdir) == []


def test_prune_by_age_keeps_recent_entries(world_files, tmp_path: Path, capsys) -> None:
    workdir = tmp_path / "work"
    assert run(transfer_args(world_files, tmp_path / "out.mp4", workdir)) == 0
    listed = cache.entries(workdir)
    old = [entry for entry in listed if entry.stage == "tune"]
    two_weeks_ago = time.time() - 14 * cache.SECONDS_PER_DAY
    for entry in old:
        os.utime(entry.path.parent / f"{entry.digest}.use", (two_weeks_ago, two_weeks_ago))
    capsys.readouterr()
    assert run(["cache", "prune", "--workdir", str(workdir), "--older-than", "7d", "--dry-run"]) == 0
    assert "would remove 1 entries" in capsys.readouterr().out
    assert len(cache.entries(workdir)) == len(listed)
    assert run(["cache", "prune", "--workdir", str(workdir), "--older-than", "7d"]) == 0
    assert {e.stage for e in cache.entries(workdir)} == {e.stage for e in listed} - {"tune"}


def test_sizes_and_ages_parse_or_are_one_line(capsys) -> None:
    assert parse_size("50G") == 50 * 10**9 and parse_size("800MB") == 800 * 10**6 and parse_size("0") == 0
    assert parse_age("7d") == 7 and parse_age("12h") == 0.5 and parse_age("2w") == 14
    assert run(["cache", "prune", "--max-size", "lots"]) == 2  # a usage mistake
    assert capsys.readouterr().err.strip() == "error: --max-size takes a size like 50G or 800M, not 'lots'"
    assert run(["cache", "prune"]) == 2
    assert "say what to prune" in capsys.readouterr().err
