"""Faults a farm meets: damaged cache files, several commands on one workspace, killed runs' leftovers.

Each test drives the real CLI on the synthetic world (known answer) and checks that nothing wrong is
used and nothing is lost: a damaged result is computed again, shared stages are computed once, and of
two runs writing one output exactly one succeeds.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact import video
from reenact.demo import decode
from reenact.stages.base import FrameRange, run_stage
from reenact.synthetic import SyntheticConfig, make_world, write_world
from reenact.workspace import Workspace
from reenact_cli.main import run
from tests.conftest import testdata_file
from tests.proctools import peak_bytes, start
from tests.test_stages import SquaresStage
from tests.test_video import VIDEO_CLIPS

START_GAP_S = 0.5
"""Second of two concurrent runs starts this long after the first."""


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory):
    return write_world(make_world(SyntheticConfig(num_frames=8)), tmp_path_factory.mktemp("world"))


def transfer_args(world_files, output: Path, workdir: Path, *extra: str) -> list[str]:
    return [
        "transfer", str(world_files.target_video), str(world_files.driver_video), "-o", str(output),
        "--generator", "random:tiny", "--target-landmarks", str(world_files.target_landmarks),
        "--driver-landmarks", str(world_files.driver_landmarks), "--workdir", str(workdir), *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------------------------- a verified cache


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(255 - b for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = (_flip_bytes, _truncate)


def test_a_damaged_or_swapped_cache_file_is_recomputed_never_used(
    world_files, tmp_path: Path, capsys
) -> None:
    """Every file of every stage: flipped bytes or a cut file (the two damages take turns over the files,
    so each meets many files and every stage at least one) are noticed, the stage is computed again, and
    the output is the clean run's; a file copied from another result (the driver's pivots over the
    target's) too."""
    workdir = tmp_path / "work"

    def transfer(name: str) -> tuple[dict, str, np.ndarray]:
        output = tmp_path / f"{name}.mp4"
        assert run(transfer_args(world_files, output, workdir, "--json")) == 0
        captured = capsys.readouterr()
        return json.loads(captured.out), captured.err, decode(output)

    clean, _, clean_frames = transfer("clean")
    locations = {  # renders are never stored: nothing of theirs to damage
        stage["name"]: Path(stage["location"])
        for stage in clean["stages"]
        if stage["name"] not in ("encode", "render")
    }
    damaged_files = [
        (name, path) for name, folder in locations.items() for path in sorted(folder.iterdir())
        if path.name != "manifest.json"
    ]  # fmt: skip
    assert {name for name, _ in damaged_files} == set(locations), "every stage stores files"
    damages = itertools.cycle(DAMAGES)
    for number, ((name, path), damage) in enumerate(zip(damaged_files, damages, strict=False)):
        damage(path)
        # crops and key chains are read only by a computing inversion (or tuning): make it compute
        needed_by = {"-crops": ("invert", "tune"), "-keys": ("invert",)}
        for suffix, needers in needed_by.items():
            if name.endswith(suffix):
                for needs in needers:
                    shutil.rmtree(
                        locations.get(name.replace(suffix[1:], needs), tmp_path / "none"), ignore_errors=True
                    )
        summary, err, frames = transfer(f"damaged{number}")
        stages = {stage["name"]: stage["cached"] for stage in summary["stages"]}
        assert stages[name] is False, f"damaged {path.name} of {name} was used"
        assert f"stored {name.split('-')[-1]} result" in err and "damaged" in err, err
        np.testing.assert_array_equal(frames, clean_frames)

    for target_pivots in sorted(locations["tar-invert"].glob("pivots-*.npy")):
        driver_pivots = next(locations["dri-invert"].glob("pivots-*.npy"))
        target_pivots.write_bytes(driver_pivots.read_bytes())
    summary, err, frames = transfer("swapped")
    assert {s["name"]: s["cached"] for s in summary["stages"]}["tar-invert"] is False
    np.testing.assert_array_equal(frames, clean_frames)


def test_a_damaged_part_is_computed_again(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_stage(workspace, SquaresStage(9, part=3, fail_at=6))
    first_part = workspace.scratch(SquaresStage(9, part=3).key) / FrameRange(0, 3).name
    np.save(first_part / "values.npy", np.zeros(3, dtype=np.int64))  # changed after it was finished
    again = SquaresStage(9, part=3)
    outcome = run_stage(workspace, again)
    assert again.computed == [FrameRange(0, 3), FrameRange(6, 9)]
    np.testing.assert_array_equal(outcome.result, np.arange(9) ** 2)


# ------------------------------------------------------------------------------------- concurrent runs


def run_two(first: list[str], second: list[str]) -> list[tuple[int, str, str]]:
    """Two commands, the second started `START_GAP_S` after the first; (exit code, stdout, stderr) each."""
    processes = [start(first)]
    time.sleep(START_GAP_S)
    processes.append(start(second))
    return [(p.wait(), *p.communicate()) for p in processes]


def test_two_runs_on_one_workdir_compute_each_shared_stage_once(world_files, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    outputs = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    results = run_two(*(transfer_args(world_files, out, workdir, "--json") for out in outputs))
    for code, _, err in results:
        assert code == 0, err
    np.testing.assert_array_equal(decode(outputs[0]), decode(outputs[1]))
    computed: dict[str, int] = {}
    for _, out, _ in results:
        for stage in json.loads(out)["stages"]:
            computed[stage["name"]] = computed.get(stage["name"], 0) + (not stage["cached"])
    own = ("render", "encode")  # each run renders its own crops, in memory (`stages.render`), and encodes
    shared = {name: count for name, count in computed.items() if name not in own}
    assert set(shared.values()) == {1}, f"stages computed by both runs, or by neither: {shared}"
    assert all(computed[name] == 2 for name in own), computed


def test_two_runs_to_one_output_exactly_one_succeeds(world_files, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    args = transfer_args(world_files, output, tmp_path / "work")
    results = run_two(args, args)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], [err for _, _, err in results]
    loser = next(err for code, _, err in results if code == 1)
    assert loser.strip().splitlines()[-1].startswith("error: ") and "--overwrite" in loser
    assert video.probe(output).frame_count == 8
    assert not list(tmp_path.glob(".out.partial-*")), "the loser left its partial file"


def test_partial_files_of_dead_runs_are_removed(world_files, tmp_path: Path) -> None:
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()  # its pid now names no process
    host = video.partial_owner().partition("@")[2]
    output = tmp_path / "out.mp4"
    dead = tmp_path / f".out{video.PARTIAL_MARKER}{dead_pid.pid}@{host}-deadbeef.mp4"
    alive = tmp_path / f".out{video.PARTIAL_MARKER}{video.partial_owner()}-0badf00d.mp4"
    elsewhere = tmp_path / f".out{video.PARTIAL_MARKER}{dead_pid.pid}@another-host-12345678.mp4"
    for path in (dead, alive, elsewhere):
        path.write_bytes(b"half a video")
    assert run(transfer_args(world_files, output, tmp_path / "work", "--quiet")) == 0
    assert not dead.exists(), "a dead run's partial file was kept"
    assert alive.exists() and elsewhere.exists(), "a live run's (or another machine's) partial was removed"


# ------------------------------------------------------------------------------------- signals and errors

KILL_SCRIPT = """
import os, signal, sys
from reenact import pti, video
from reenact.stages import align, base, invert, render, tune
from reenact_cli.main import run

stage_name, point, args = sys.argv[1], sys.argv[2], sys.argv[3:]
STAGES = {cls.name: cls for cls in (align.AlignStage, invert.InvertStage, tune.TuneStage)}
frames_written = []


def then_die(owner, attribute, when=lambda *args: True):
    original = getattr(owner, attribute)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, attribute, wrapper)


if point == "part":  # a part finished and stored
    then_die(base, "compute_part", lambda stage, *rest: stage.name == stage_name)
elif point == "compute":  # a part computed, not yet marked done
    then_die(STAGES[stage_name], "compute")
elif point == "merge":  # the result merged, not yet published
    then_die(STAGES[stage_name], "merge")
elif point == "batch":  # a batch rendered, in memory only
    then_die(render, "render_batch")
elif point == "checkpoint":  # tuning's first checkpoint written
    then_die(pti, "save_checkpoint")
elif point == "frames":  # a few frames of the output encoded
    then_die(video.VideoWriter, "write", lambda *rest: frames_written.append(1) or len(frames_written) == 3)
sys.exit(run(args))
"""
KILL_POINTS = (
    ("people", "part"),
    ("invert", "compute"),
    ("invert", "merge"),  # the target's and the driver's inversions merge together, after all their parts
    ("tune", "checkpoint"),
    ("render", "batch"),
    ("encode", "frames"),
)
"""One transfer killed at each point in turn, each run resuming what the runs before it left."""


def test_kill_9_at_every_stage_then_a_rerun_gives_the_identical_output(world_files, tmp_path: Path) -> None:
    clean = tmp_path / "clean.mp4"
    assert run(transfer_args(world_files, clean, tmp_path / "clean-work", "--quiet")) == 0
    output, workdir = tmp_path / "out.mp4", tmp_path / "work"
    for stage, point in KILL_POINTS:
        killed = subprocess.run(
            [sys.executable, "-c", KILL_SCRIPT, stage, point, *transfer_args(world_files, output, workdir)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert killed.returncode == -signal.SIGKILL, (stage, point, killed.stderr)
        assert not output.exists(), "a killed run left an output that looks finished"
    assert run(transfer_args(world_files, output, workdir, "--quiet")) == 0
    assert output.read_bytes() == clean.read_bytes()
    assert not list(tmp_path.glob(".out*")), "a killed run's partial output is still there"


SIGNAL_WAIT_S = 120.0
"""Longest wait for the run under test to reach its inversion."""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_with_one_line_keeps_finished_stages_and_leaves_no_output(
    world_files, tmp_path: Path, signum: int, code: int
) -> None:
    workdir, output = tmp_path / "work", tmp_path / "out.mp4"
    process = start(transfer_args(world_files, output, workdir))
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while not list((workdir / "invert").glob("*.resume")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the target's inversion has started
    process.send_signal(signum)
    _, err = process.communicate()
    assert process.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted") and "Traceback" not in err
    assert not output.exists() and not list(tmp_path.glob(".out*")), "a partial output was left"
    assert run(transfer_args(world_files, output, workdir, "--json")) == 0
    assert video.probe(output).frame_count == 8


def test_an_unwritable_output_or_a_bad_driver_stops_before_any_work(
    world_files, tmp_path: Path, capsys
) -> None:
    workdir = tmp_path / "work"
    assert run(transfer_args(world_files, Path("/proc/reenact-out.mp4"), workdir)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error:")] == err[-1:], err
    assert err[-1].startswith("error: cannot write /proc/reenact-out.mp4"), err
    broken = tmp_path / "driver.mp4"
    broken.write_bytes(b"not a video at all")
    args = transfer_args(world_files, tmp_path / "out.mp4", workdir)
    args[2] = str(broken)
    assert run(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and str(broken) in err[-1], err
    assert not (workdir / "invert").exists(), "work was done before the inputs were checked"


def test_a_cut_input_gives_the_same_warning_in_every_command(world_files, tmp_path: Path, capsys) -> None:
    data = world_files.target_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 5])
    info = video.probe(cut)
    assert 0 < info.frame_count < info.frames_announced
    expected = video.lost_frames_warning(cut, lost=info.frames_missing, announced=info.frames_announced)
    workdir = tmp_path / "work"
    commands = {
        "reencode": ["reencode", str(cut), "-o", str(tmp_path / "re.mp4"), "--quiet"],
        "align": [
            "align",
            str(cut),
            "--landmarks",
            str(world_files.target_landmarks),
            "--workdir",
            str(workdir),
        ],
        "transfer": transfer_args(world_files, tmp_path / "out.mp4", workdir),
    }
    commands["transfer"][1] = str(cut)
    for command, args in commands.items():
        assert run(args) == 0, command
        err = capsys.readouterr().err.splitlines()
        assert err.count(expected) == 1, (command, err)
    assert video.probe(tmp_path / "out.mp4").frame_count == info.frame_count


FULL_DISK_BYTES = 300 << 10
"""A filesystem this small fills up in every command below."""


@contextlib.contextmanager
def tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted with `options` (needs root and mount rights: the test is skipped elsewhere)."""
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", f"size={FULL_DISK_BYTES}") as mount_point:
        yield mount_point


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "readonly", "ro") as mount_point:
        yield mount_point


def test_a_read_only_output_or_a_missing_landmarks_file_is_one_line(
    world_files, read_only_disk: Path, tmp_path: Path, capsys
) -> None:
    output = read_only_disk / "out.mp4"
    assert run(["reencode", str(testdata_file("lp_driving_d0.mp4")), "-o", str(output), "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == f"error: cannot write {output}: Read-only file system"
    missing = tmp_path / "no-such-landmarks.json"
    args = transfer_args(world_files, tmp_path / "out.mp4", tmp_path / "work", "--quiet")
    args[args.index("--target-landmarks") + 1] = str(missing)
    assert run(args) == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note:")]
    assert err == [f"error: {missing}: No such file or directory"], err
    assert not list((tmp_path / "work").rglob("manifest.json")), (
        "work was done before the inputs were checked"
    )


def test_a_full_disk_is_one_line_naming_the_path(
    world_files, full_disk: Path, tmp_path: Path, capsys
) -> None:
    reencoded = full_disk / "out.mp4"
    assert run(["reencode", str(testdata_file("lp_driving_d0.mp4")), "-o", str(reencoded), "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {reencoded}: No space left on device"
    assert list(full_disk.iterdir()) == [], "a partial file was left on the full disk"

    assert run(transfer_args(world_files, tmp_path / "out.mp4", full_disk / "work", "--quiet")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {full_disk}/work/") and err[-1].endswith(
        ": No space left on device"
    ), err
    assert not any("Traceback" in line or "internal error" in line for line in err)
    assert not (tmp_path / "out.mp4").exists()


HUGE_SIDE = 16384


def test_an_image_too_large_to_encode_is_refused_before_any_work(world_files, tmp_path: Path, capsys) -> None:
    huge = tmp_path / "huge.png"
    assert cv2.imwrite(str(huge), np.zeros((HUGE_SIDE, HUGE_SIDE, 3), dtype=np.uint8))
    workdir = tmp_path / "work"
    args = transfer_args(world_files, tmp_path / "out.mp4", workdir)
    args[1] = str(huge)
    for command in (["reencode", str(huge), "-o", str(tmp_path / "re.mp4")], args):
        assert run(command) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: {huge} is {HUGE_SIDE}x{HUGE_SIDE}: too large for H.264"), err
        assert not any("internal error" in line for line in err)
    assert not list(workdir.rglob("manifest.json")), "work was done before the input was checked"
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_demo_never_writes_over_a_users_files(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.json").write_text("my own report")
    assert run(["demo", "-o", str(folder), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {folder} already holds report.json; pass --overwrite to replace them"]
    assert (folder / "report.json").read_text() == "my own report"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert run(["demo", "-o", str(a_file), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith(f"error: {a_file} is a file")


# ------------------------------------------------------------------------------------- absurd inputs

ABSURD_LIMIT_S = 30.0
ABSURD_LIMIT_BYTES = 1 << 30
ABSURD_SCALE = 1e6
ABSURD_INDEX = 3_000_000


def _landmarks_json(points: np.ndarray, indices: list[int]) -> dict:
    frames = [{"index": index, "faces": [face.tolist()]} for index, face in zip(indices, points, strict=True)]
    return {"format": "reenact-landmarks/1", "frames": frames}


@pytest.mark.parametrize("case", ["scaled", "far_index"])
def test_absurd_landmark_files_end_fast_in_bounded_memory(world_files, tmp_path: Path, case: str) -> None:
    """×1e6 coordinates count as missing faces; an index of 3,000,000 is ignored: both in seconds, < 1 GB."""
    from reenact.faces.landmarks import read_landmarks

    points = read_landmarks(world_files.target_landmarks)[:, 0]  # [T, 68, 2]
    indices = list(range(len(points)))
    if case == "scaled":
        points = points * ABSURD_SCALE
    else:
        indices[-1] = ABSURD_INDEX
    sidecar = tmp_path / "absurd.json"
    sidecar.write_text(json.dumps(_landmarks_json(points, indices)))
    args = [
        "align",
        str(world_files.target_video),
        "--landmarks",
        str(sidecar),
        "--workdir",
        str(tmp_path / "w"),
    ]
    started = time.monotonic()
    peak_file = tmp_path / "peak_kb"
    process = start([*args, "--json"], peak_file=peak_file)
    out, err = process.communicate(timeout=ABSURD_LIMIT_S * 4)
    seconds = time.monotonic() - started
    peak = peak_bytes(peak_file)
    assert seconds < ABSURD_LIMIT_S and peak < ABSURD_LIMIT_BYTES, (seconds, peak)
    assert "warning:" in err, err
    if case == "scaled":
        assert process.returncode == 1 and err.strip().splitlines()[-1].startswith("error: no face found"), (
            err
        )
    else:
        assert process.returncode == 0, err
        assert json.loads(out)["faces_found"] == len(points) - 1


# ------------------------------------------------------------------------------------- oversized weight files

BOMB_BYTES = 3 << 29
"""1.5 GiB of zeros, deflated into a file of about 1.5 MB."""
BOMB_CHUNK = 1 << 24
MAX_EXTRA_PEAK_BYTES = 200 << 20

PEAK_SCRIPT = """
import resource, sys
from reenact.directions import load_direction
from reenact.errors import ReenactError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_direction(sys.argv[1])
    print("loaded")
except ReenactError as exc:
    print("refused:", exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_zip_bomb_weight_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    import zipfile

    bomb = tmp_path / "direction.pt"
    zeros = bytes(BOMB_CHUNK)
    with (
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("archive/data.pkl", "w", force_zip64=True) as member,
    ):
        for _ in range(BOMB_BYTES // BOMB_CHUNK):
            member.write(zeros)
    assert bomb.stat().st_size < BOMB_BYTES // 100
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(bomb)], capture_output=True, text=True, check=True
    )
    verdict, extra_kb = result.stdout.strip().splitlines()
    assert verdict.startswith("refused:") and "unpacks to 1536 MiB" in verdict, verdict
    assert int(extra_kb) * 1024 < MAX_EXTRA_PEAK_BYTES, f"{int(extra_kb) / 1024:.0f} MB while refusing"


def test_a_damaged_tuning_checkpoint_is_not_resumed_from(
    world_files, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scratch state is checked like results: a changed checkpoint means tuning starts over, with a warning,
    and the output is the uninterrupted run's."""
    from reenact import pti
    from reenact.stages import tune as tune_stage

    clean = tmp_path / "clean.mp4"
    assert run(transfer_args(world_files, clean, tmp_path / "clean-work", "--quiet")) == 0
    workdir = tmp_path / "work"
    real_tune = pti.tune_generator

    def interrupted(*args: object, **kwargs: object) -> pti.TuneResult:
        return real_tune(*args, stop=lambda step: step >= 3, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tune_stage, "tune_generator", interrupted)
    assert run(transfer_args(world_files, tmp_path / "cut.mp4", workdir)) == 1
    monkeypatch.undo()
    (checkpoint,) = (workdir / "tune").glob("*.resume/checkpoint.safetensors")
    data = bytearray(checkpoint.read_bytes())
    data[-16:] = bytes(255 - b for b in data[-16:])  # tensor bytes, not the header
    checkpoint.write_bytes(bytes(data))
    capsys.readouterr()
    output = tmp_path / "out.mp4"
    assert run(transfer_args(world_files, output, workdir)) == 0
    err = capsys.readouterr().err
    assert "is damaged" in err and "tuning starts over" in err, err
    np.testing.assert_array_equal(decode(output), decode(clean))


@pytest.mark.parametrize("case", ["object_npz", "garbage_npz", "nested_json", "degenerate"])
def test_bad_landmark_files_are_one_specific_line(tmp_path: Path, capsys, case: str) -> None:
    """Files that used to end in `internal error`: each now says what is wrong with it."""
    import zipfile

    if case == "object_npz":
        np.save(tmp_path / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
        sidecar = tmp_path / "marks.npz"
        with zipfile.ZipFile(sidecar, "w") as archive:
            archive.write(tmp_path / "objects.npy", "points.npy")
        expected = "is not a landmarks .npz of plain arrays"
    elif case == "garbage_npz":
        sidecar = tmp_path / "marks.npz"
        sidecar.write_bytes(b"\x00garbage" * 100)
        expected = "is not a landmarks .npz of plain arrays"
    elif case == "nested_json":
        sidecar = tmp_path / "marks.json"
        sidecar.write_text("[" * 100_000 + "]" * 100_000)
        expected = "nests its JSON too deeply"
    else:
        sidecar = tmp_path / "marks.npz"
        np.savez(sidecar, points=np.full((1, 1, 68, 2), 50.0), format=np.array("reenact-landmarks/1"))
        expected = "no face found"
    photo = testdata_file("facerec_obama-1080p.jpg")
    assert run(["align", str(photo), "--landmarks", str(sidecar), "--workdir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and expected in err[-1] and "internal error" not in err[-1], err


CHAINED_PASSES = 3
MAX_DRIFT_PER_PASS = 0.1
"""Mean RGB level change per decode/encode pass (each pass used to darken by about 1.2 levels)."""


def _mean_level(path: Path) -> float:
    with video.VideoReader(path) as reader:
        return float(np.mean([frame.image.mean(dtype=np.float64) for frame in reader.frames()]))


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEO_CLIPS)
def test_chained_reencodes_do_not_drift(name: str, tmp_path: Path) -> None:
    """Three `reencode` passes in a row: each keeps the picture's mean level within a tenth of a level."""
    paths = [testdata_file(name)]
    for index in range(CHAINED_PASSES):
        paths.append(tmp_path / f"pass{index + 1}.mp4")
        assert run(["reencode", str(paths[-2]), "-o", str(paths[-1]), "--quiet"]) == 0
    levels = [_mean_level(path) for path in paths]
    drift = np.diff(levels)
    assert np.abs(drift).max() < MAX_DRIFT_PER_PASS, f"level drift per pass {np.round(drift, 3)}"
