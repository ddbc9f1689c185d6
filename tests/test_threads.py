"""Threads: the count a run takes (--threads, REENACT_THREADS, the cores shared between local ranks), its
short spin before idle threads sleep, and that every computing command applies them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import torch

from reenact.device import Runtime
from reenact.errors import UsageError
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import SyntheticConfig, make_world, write_world
from reenact.threads import (
    LOCAL_WORLD_ENV,
    OPENMP_THREADS_ENV,
    SHORT_SPIN_COUNT,
    SMALL_WORK_RESOLUTION,
    SPIN_COUNT_ENV,
    THREADS_ENV,
    WAIT_POLICY_ENV,
    cpu_quota_cores,
    decide_threads,
    is_small_work,
    short_spinning,
    usable_cores,
    use_threads,
)
from reenact_cli.main import EXIT_USAGE, run
from tests.videotools import write_preroll_clip

OTHER_THREADS = 3
"""A count no decision in these tests gives, set before a command so that an ignored option shows."""
WORLD_FRAMES = 4
CLIP_FRAMES = 3
COMPUTING_COMMANDS = {
    "invert": ["invert", "clip.mp4"],
    "tune": ["tune", "clip.mp4"],
    "transfer": ["transfer", "a.mp4", "b.mp4", "-o", "out.mp4"],
    "edit": ["edit", "clip.mp4", "-o", "out.mp4", "--direction", "smile=1"],
    "morph": ["morph", "a.png", "b.png", "-o", "out.mp4"],
    "align": ["align", "clip.mp4"],
    "evaluate": ["evaluate", "out.mp4", "--reference", "clip.mp4"],
    "reencode": ["reencode", "clip.mp4", "-o", "out.mp4"],
    "demo": ["demo", "-o", "demo"],
    "batch": ["batch", "jobs.toml"],
}
"""Each computing command with arguments that would fail later (missing files): a bad thread count must be
refused first, at the top of the command."""


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """Put torch's and OpenCV's thread counts back after a test that changes them."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def test_explicit_count_wins_over_the_environment() -> None:
    environ = {THREADS_ENV: "5", LOCAL_WORLD_ENV: "2"}
    assert decide_threads(3, environ=environ, cores=16) == 3


def test_environment_variable_wins_over_the_cores() -> None:
    assert decide_threads(None, environ={THREADS_ENV: " 5 ", LOCAL_WORLD_ENV: "2"}, cores=16) == 5


def test_default_is_the_usable_cores(tmp_path: Path) -> None:
    assert decide_threads(None, environ={}, cores=6) == 6
    assert decide_threads(None, environ={THREADS_ENV: ""}, cores=6) == 6
    assert usable_cores(cgroup_root=tmp_path) == len(os.sched_getaffinity(0)), "no quota: the affinity"


def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


def test_a_containers_cpu_quota_caps_the_cores(tmp_path: Path) -> None:
    """A container limited to fewer CPUs than its host's (docker --cpus, a Kubernetes limit) computes with
    the limit: cgroup v2's cpu.max or v1's quota over period, rounded up; no quota, or none readable,
    leaves the affinity mask."""
    cases = {
        "v2-one": ({"cpu.max": "100000 100000"}, 1),
        "v2-half-more": ({"cpu.max": "150000 100000"}, 2),
        "v2-none": ({"cpu.max": "max 100000"}, None),
        "v1": ({"cpu/cpu.cfs_quota_us": "250000", "cpu/cpu.cfs_period_us": "100000"}, 3),
        "v1-joined": (
            {"cpu,cpuacct/cpu.cfs_quota_us": "50000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            1,
        ),
        "v1-none": ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
        "garbage": ({"cpu.max": "lots"}, None),
        "empty": ({"cpu.max": ""}, None),
        "absent": ({}, None),
    }
    for name, (files, cores) in cases.items():
        assert cpu_quota_cores(_cgroup(tmp_path / name, files)) == cores, name
    affinity = len(os.sched_getaffinity(0))
    if affinity < 2:
        pytest.skip("one core: a quota of one cannot show")
    assert usable_cores(cgroup_root=tmp_path / "v2-one") == 1
    assert usable_cores(cgroup_root=tmp_path / "v2-none") == affinity


def test_openmp_count_is_kept_outside_torchrun_only() -> None:
    assert decide_threads(None, environ={OPENMP_THREADS_ENV: "1"}, cores=8) == 1
    assert decide_threads(None, environ={OPENMP_THREADS_ENV: "3,2"}, cores=8) == 3
    assert decide_threads(None, environ={OPENMP_THREADS_ENV: "many"}, cores=8) == 8
    assert decide_threads(None, environ={THREADS_ENV: "2", OPENMP_THREADS_ENV: "1"}, cores=8) == 2
    under_torchrun = {OPENMP_THREADS_ENV: "1", LOCAL_WORLD_ENV: "2"}  # torchrun's own OMP_NUM_THREADS
    assert decide_threads(None, environ=under_torchrun, cores=8) == 4


def test_local_ranks_share_the_cores() -> None:
    assert decide_threads(None, environ={LOCAL_WORLD_ENV: "4"}, cores=16) == 4
    assert decide_threads(None, environ={LOCAL_WORLD_ENV: "3"}, cores=16) == 5
    assert decide_threads(None, environ={LOCAL_WORLD_ENV: "4"}, cores=2) == 1


def test_small_work_gets_one_thread_unless_a_count_is_given() -> None:
    assert decide_threads(None, environ={}, cores=8, small_work=True) == 1
    assert decide_threads(None, environ={LOCAL_WORLD_ENV: "2"}, cores=8, small_work=True) == 1
    assert decide_threads(4, environ={}, cores=8, small_work=True) == 4
    assert decide_threads(None, environ={THREADS_ENV: "3"}, cores=8, small_work=True) == 3
    assert decide_threads(None, environ={OPENMP_THREADS_ENV: "2"}, cores=8, small_work=True) == 2
    assert is_small_work(SMALL_WORK_RESOLUTION) and not is_small_work(2 * SMALL_WORK_RESOLUTION)


@pytest.mark.parametrize("requested", [0, -2])
def test_explicit_count_below_one_is_a_usage_error(requested: int) -> None:
    with pytest.raises(UsageError, match="--threads"):
        decide_threads(requested, environ={}, cores=4)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_environment_value_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match=THREADS_ENV):
        decide_threads(None, environ={THREADS_ENV: value}, cores=4)


def test_short_spinning_keeps_a_policy_the_user_chose() -> None:
    environ: dict[str, str] = {}
    assert short_spinning(environ) and environ == {SPIN_COUNT_ENV: SHORT_SPIN_COUNT}
    for chosen in ({WAIT_POLICY_ENV: "active"}, {SPIN_COUNT_ENV: "300000"}):
        kept = dict(chosen)
        assert not short_spinning(kept) and kept == chosen


def test_use_threads_sets_torch_and_opencv(restore_threads: None) -> None:
    torch.set_num_threads(OTHER_THREADS)
    assert use_threads(1) == 1
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    assert "1 threads" in Runtime(device=torch.device("cpu"), autocast_dtype=None, compile=False).describe()


@pytest.mark.parametrize("command", sorted(COMPUTING_COMMANDS))
def test_every_computing_command_refuses_a_bad_count_first(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One error line and exit 2, before the command looks at its (missing) inputs."""
    monkeypatch.chdir(tmp_path)
    args = COMPUTING_COMMANDS[command]
    assert run([*args, "--threads", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err == "error: --threads must be 1 or more, got 0\n"
    monkeypatch.setenv(THREADS_ENV, "many")
    assert run(args) == EXIT_USAGE
    assert capsys.readouterr().err.startswith(f"error: {THREADS_ENV} must be a whole number")


def test_console_script_asks_for_short_spinning_before_torch_loads() -> None:
    script = (
        "import os, sys\n"
        "from reenact_cli.main import entry\n"
        "sys.argv = ['reenact', '--version']\n"
        "try:\n    entry()\nexcept SystemExit:\n    pass\n"
        f"print(os.environ.get({SPIN_COUNT_ENV!r}), 'torch' in sys.modules)\n"
    )
    environ = {
        key: value for key, value in os.environ.items() if key not in (WAIT_POLICY_ENV, SPIN_COUNT_ENV)
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=environ
    )
    assert result.stdout.splitlines()[-1] == f"{SHORT_SPIN_COUNT} False"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A few frames of the synthetic world: the target clip and its landmarks, and the generator file."""
    root = tmp_path_factory.mktemp("threads-world")
    built = make_world(SyntheticConfig(num_frames=WORLD_FRAMES))
    files = write_world(built, root / "files")
    generator = save_generator(built.generator, root / "g.safetensors")
    return files.target_video, files.target_landmarks, generator


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_command_runs_with_the_count_asked_for(
    how: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    restore_threads: None,
) -> None:
    clip = tmp_path / "clip.mp4"
    write_preroll_clip(clip, preroll=0, frames=CLIP_FRAMES)
    args = ["reencode", str(clip), "-o", str(tmp_path / "out.mp4"), "--quiet"]
    if how == "option":
        args += ["--threads", "1"]
    else:
        monkeypatch.setenv(THREADS_ENV, "1")
    torch.set_num_threads(OTHER_THREADS)
    cv2.setNumThreads(OTHER_THREADS)
    assert run(args) == 0, capsys.readouterr().err
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1


@pytest.mark.slow
def test_the_summary_reports_the_threads_used(
    world: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    restore_threads: None,
) -> None:
    clip, landmarks, generator = world
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv(OPENMP_THREADS_ENV, raising=False)
    args = ["invert", str(clip), "--landmarks", str(landmarks), "--generator", str(generator)]
    args += ["--preset", "synthetic", "--device", "cpu", "--workdir", str(tmp_path / "work"), "--json"]
    for given, expected in ((["--threads", str(OTHER_THREADS)], OTHER_THREADS), ([], 1)):
        torch.set_num_threads(OTHER_THREADS + 1)
        assert run([*args, *given]) == 0  # the world's generator is small work: one thread by default
        assert json.loads(capsys.readouterr().out)["threads"] == expected
