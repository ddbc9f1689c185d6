"""Everything is checked before any work (`reenact.checks`): each mistake ends the command at once with one
`error:` line, exit 2 for a usage mistake and 1 for a failure, no traceback, no workdir and no output."""

from __future__ import annotations

from pathlib import Path

import pytest

from reenact import checks
from reenact.config import Config
from reenact.errors import ReenactError, UsageError
from reenact_cli.main import EXIT_ERROR, EXIT_USAGE, run
from tests.conftest import testdata_file
from tests.videotools import write_preroll_clip

CLIP_FRAMES = 3
CLIP_SIZE = 64
RANDOM = ["--generator", "random:tiny"]


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a 3-frame 64 px clip (`clip.mp4`) and an empty weight cache; the tests run in it."""
    write_preroll_clip(tmp_path / "clip.mp4", preroll=0, frames=CLIP_FRAMES, size=CLIP_SIZE)
    (tmp_path / "garbage.mp4").write_bytes(b"not a video at all" * 100)
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


TRANSFER = ["transfer", "clip.mp4", "clip.mp4", "-o", "out.mp4", "--workdir", "work"]
EDIT = ["edit", "clip.mp4", "-o", "out.mp4", "--workdir", "work"]

CASES = [  # what the user typed, the exit code, what the one error line says
    pytest.param(
        ["transfer", "nope.mp4", "clip.mp4", "-o", "out.mp4"],
        EXIT_ERROR,
        "input not found: nope.mp4",
        id="missing target",
    ),
    pytest.param(
        ["transfer", "clip.mp4", "nope.mp4", "-o", "out.mp4"],
        EXIT_ERROR,
        "input not found: nope.mp4",
        id="missing driver",
    ),
    pytest.param(
        ["transfer", "garbage.mp4", "clip.mp4", "-o", "out.mp4"],
        EXIT_ERROR,
        "garbage.mp4",
        id="undecodable target",
    ),
    pytest.param(
        [*TRANSFER, *RANDOM, "--layers", "bogus"],
        EXIT_USAGE,
        "--layers: bad layer spec 'bogus'",
        id="layers unparsable",
    ),
    pytest.param(
        [*TRANSFER, "--layers", "30"],
        EXIT_USAGE,
        "--layers: bad layer spec '30'",
        id="layers beyond any generator",
    ),
    pytest.param(
        [*TRANSFER, *RANDOM, "--layers", "12-13"],
        EXIT_USAGE,
        "--layers: bad layer spec",
        id="layers beyond this generator",
    ),
    pytest.param(
        [*TRANSFER, *RANDOM, "--face-at", "5000,5000"],
        EXIT_USAGE,
        "outside the 64x64 frame",
        id="face-at outside the frame",
    ),
    pytest.param(
        [*TRANSFER, "--face-at", "5,5", "--face-index", "0"],
        EXIT_USAGE,
        "give one of them",
        id="face-at with face-index",
    ),
    pytest.param(
        [*TRANSFER, "--face-at", "abc"], EXIT_USAGE, "--face-at expects X,Y", id="face-at unparsable"
    ),
    pytest.param(
        [*TRANSFER, "--length", "bogus"],
        EXIT_USAGE,
        "--length must be one of loop, pingpong, cut, hold; got 'bogus'",
        id="length unknown",
    ),
    pytest.param(
        [*TRANSFER, *RANDOM, "--driver-ref", "3"],
        EXIT_USAGE,
        "its frames are 0..2",
        id="driver-ref beyond the driver",
    ),
    pytest.param(
        [*TRANSFER, "--quality", "ultra"], EXIT_USAGE, "unknown quality 'ultra'", id="quality unknown"
    ),
    pytest.param([*TRANSFER, "--preset", "nope"], EXIT_USAGE, "unknown preset 'nope'", id="preset unknown"),
    pytest.param([*TRANSFER, "--set", "edit.nope=1"], EXIT_USAGE, "nope", id="set unknown"),
    pytest.param(
        [*TRANSFER, "--generator", "nope.pkl"],
        EXIT_USAGE,
        "--generator 'nope.pkl' is neither",
        id="generator unknown",
    ),
    pytest.param(EDIT, EXIT_USAGE, "give at least one --direction", id="direction missing"),
    pytest.param(
        [*EDIT, "--direction", "smile"],
        EXIT_USAGE,
        "--direction expects NAME=STRENGTH",
        id="direction malformed",
    ),
    pytest.param(
        [*EDIT, *RANDOM, "-d", "smile=1", "--layers", "x"],
        EXIT_USAGE,
        "--layers: bad",
        id="edit layers unparsable",
    ),
    pytest.param(
        ["align", "clip.mp4", "--face-at", "64,0", "--workdir", "work"],
        EXIT_USAGE,
        "64x64",
        id="align face-at outside",
    ),
    pytest.param(TRANSFER, EXIT_ERROR, "3 weight files missing", id="missing weights"),
    pytest.param([*TRANSFER, "--device", "tpu"], EXIT_USAGE, "--device must be one of", id="device unknown"),
    pytest.param([*TRANSFER, "--precision", "fp8"], EXIT_USAGE, "--precision must be one of", id="precision"),
    pytest.param(
        ["align", "clip.mp4", "--device", "tpu", "--workdir", "work"],
        EXIT_USAGE,
        "--device",
        id="align device",
    ),
    pytest.param(
        ["evaluate", "clip.mp4", "-r", "clip.mp4", "--plot", "plot.txt"],
        EXIT_USAGE,
        "--plot writes a PNG",
        id="plot not png",
    ),
    pytest.param(["cache", "prune", "--workdir", "work"], EXIT_USAGE, "say what to prune", id="prune what"),
    pytest.param(
        ["cache", "prune", "--workdir", "work", "--max-size", "lots"],
        EXIT_USAGE,
        "--max-size takes",
        id="prune size",
    ),
    pytest.param(
        ["cache", "prune", "--workdir", "work", "--older-than", "old"],
        EXIT_USAGE,
        "--older-than takes",
        id="prune age",
    ),
]


@pytest.mark.parametrize(("args", "code", "says"), CASES)
def test_each_mistake_ends_the_command_before_any_work(
    args: list[str], code: int, says: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(args) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], captured.err
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert not (files / "work").exists() and not (files / "out.mp4").exists()  # nothing was computed


def test_a_missing_input_is_reported_before_any_weight(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`transfer nope.mp4 d.mp4` with no weights at all names the input, not ffhq.pkl."""
    assert run(["transfer", "nope.mp4", "clip.mp4", "-o", "out.mp4"]) == EXIT_ERROR
    assert "weight" not in capsys.readouterr().err


def test_every_missing_weight_is_listed_at_once_with_how_to_get_it(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(TRANSFER) == EXIT_ERROR
    err = capsys.readouterr().err
    for name, filename in (
        ("stylegan2-ffhq-1024", "ffhq.pkl"),
        ("vgg16", "vgg16-397923af.pth"),
        ("alexnet", "alexnet-owt-7be5be79.pth"),
    ):
        assert filename in err and f"`reenact weights fetch {name}`" in err
    assert "License" in err and "BSD-3-Clause" in err  # each file's licence


def test_a_face_index_beyond_the_faces_found_says_how_many(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One face in the photo; asking for the sixth says so (not "no face found"), exit 2."""
    photo = testdata_file("facerec_obama-1080p.jpg")
    assert run(["align", str(photo), "--face-index", "5", "--workdir", "work"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    expected = (
        "error: asked for face 5 (--face-index counts from 0, the largest first); "
        f"found 1 face in {photo} (at most, in frame 0)"
    )
    assert [line for line in err.splitlines() if line.startswith("error:")] == [expected], err
    assert "Traceback" not in err


def test_the_checks_are_a_library_function(files: Path) -> None:
    """The Python API gets the same checks and the same error types."""
    settings = Config.from_preset("synthetic")
    clip = files / "clip.mp4"
    infos = checks.check_run([clip, clip], generator="random:tiny", settings=settings, driver_ref=2)
    assert [info.frame_count for info in infos] == [CLIP_FRAMES, CLIP_FRAMES]
    with pytest.raises(UsageError, match="outside the 64x64 frame"):
        checks.check_run([clip], generator=None, settings=settings, face=checks.FaceRequest(at="64,10"))
    with pytest.raises(UsageError, match="give one of them"):
        checks.check_face_options(checks.FaceRequest(index=1, at="3,4"))
    with pytest.raises(ReenactError, match="input not found") as missing:
        checks.check_run([files / "nope.mp4"], generator=None, settings=settings)
    assert not isinstance(missing.value, UsageError)


def test_the_pipeline_checks_its_settings_before_any_frame(files: Path) -> None:
    """`reenact.pipeline.transfer` called from Python refuses a layer spec beyond its generator and a
    driver frame beyond the driver before aligning anything."""
    from reenact import pipeline
    from reenact.device import resolve_runtime
    from reenact.generator_source import load_generator_spec
    from reenact.stages.align import FaceChoice
    from reenact.workspace import Workspace

    workspace = Workspace(files / "work")
    source = load_generator_spec("random:tiny", workspace=workspace)
    clip = files / "clip.mp4"
    for edit, driver_ref, says in (({"layers": "12-13"}, None, "edit.layers"), ({}, 3, "--driver-ref 3")):
        settings = Config.from_preset("synthetic").with_values(edit=edit)
        context = pipeline.make_context(
            workspace=workspace, source=source, settings=settings, runtime=resolve_runtime("cpu")
        )
        with pytest.raises(UsageError, match=says):
            pipeline.transfer(
                clip, clip, files / "out.mp4", context=context, face=FaceChoice(), driver_ref=driver_ref
            )
    assert not (files / "work").exists()
