"""A cast in a batch job (`cast = "CAST.toml"` or `[[job.person]]` instead of `driver`): the same output
as `reenact transfer SCENE --cast` on the synthetic multi-person scene, and the jobs file's one-line
errors for a cast job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from reenact.demo import decode, face_psnr
from reenact.errors import ReenactError
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import MEASURED_PIX_FMT, SyntheticConfig, make_world, write_world
from reenact.synthetic_scene import SceneConfig, SyntheticScene, make_scene, write_scene
from reenact_cli.batch_cmd import NOT_WITH_CAST, read_jobs
from reenact_cli.main import run
from tests.test_batch import QUICK
from tests.test_cuts import _cli

MIN_SAME_DB = 60.0
"""The batch's cast job against `transfer --cast` with the same settings: the same frames (or this close)."""
MAX_SOURCE_DB = 35.0
"""The output against the scene as written, in the faces: below this (the cast was not ignored; measured
28 dB, and 42 dB outside the faces, where the scene passes through)."""


@dataclass
class CastBatch:
    scene: SyntheticScene
    source: np.ndarray
    """The scene clip as written [T, H, W, 3]."""
    batch: np.ndarray
    """The batch's cast job's output [T, H, W, 3]."""
    transfer: np.ndarray
    """`transfer SCENE --cast` with the same cast and settings [T, H, W, 3]."""
    jobs: list[dict]
    """The batch's summary entries."""
    root: Path


def _cast_text(drivers: list[tuple[str, str, float]]) -> str:
    return "".join(
        f'[[person]]\nid = {person}\ndriver = "{video}"\ndriver_landmarks = "{marks}"\n'
        f"strength = {strength}\ndriver_frame = 0\n\n"
        for person, (video, marks, strength) in enumerate(drivers)
    )


@pytest.fixture(scope="module")
def cast_batch(tmp_path_factory: pytest.TempPathFactory) -> CastBatch:
    """One batch with a cast job, and `transfer --cast` with the same cast, each in its own workdir. The
    cast file is in a folder of its own and the jobs file in another, all paths relative (a cast's from
    its file, a job's from the jobs file)."""
    root = tmp_path_factory.mktemp("batch-cast")
    scene = make_scene(SceneConfig(shot_frames=2))
    world = make_world(SyntheticConfig(num_frames=scene.config.num_frames))
    clip, landmarks = write_scene(scene, root / "scene")
    files = write_world(world, root / "world")
    generator = save_generator(world.generator, root / "g.safetensors")
    cast = root / "cast" / "cast.toml"
    cast.parent.mkdir()
    cast.write_text(
        _cast_text(
            [
                ("../world/driver.mp4", f"../world/{files.driver_landmarks.name}", 1.0),
                ("../world/target.mp4", f"../world/{files.target_landmarks.name}", 0.5),
            ]
        )
    )
    assert files.driver_video.name == "driver.mp4" and files.target_video.name == "target.mp4"
    jobs = root / "jobs" / "jobs.toml"
    jobs.parent.mkdir()
    jobs.write_text(
        '[[job]]\ntarget = "../scene/video.mp4"\ntarget_landmarks = "../scene/landmarks.npz"\n'
        'cast = "../cast/cast.toml"\noutput = "out/batch.mp4"\n'
    )
    common = [
        "--generator",
        str(generator),
        "--preset",
        "synthetic",
        "--set",
        f"video.pix_fmt={MEASURED_PIX_FMT}",
    ]
    common += [item for value in QUICK for item in ("--set", value)]
    common += ["--quiet", "--json"]
    summary = _cli(["batch", str(jobs), "--workdir", str(root / "work-batch"), *common])
    transfer = root / "transfer.mp4"
    _cli(
        [
            "transfer", str(clip), "--cast", str(cast), "-o", str(transfer), "--target-landmarks",
            str(landmarks), "--workdir", str(root / "work-transfer"), *common,
        ]
    )  # fmt: skip
    return CastBatch(
        scene=scene,
        source=decode(clip),
        batch=decode(jobs.parent / "out" / "batch.mp4"),
        transfer=decode(transfer),
        jobs=summary["jobs"],
        root=root,
    )


def _face_regions(scene: SyntheticScene) -> np.ndarray:
    """[T, H, W] bool: the landmarks' bounding box of every person in every frame they are in."""
    regions = np.zeros(scene.frames.shape[:3], dtype=bool)
    for person in range(scene.config.num_people):
        for frame in scene.frames_of(person):
            points = scene.landmarks[person, frame]
            (x0, y0), (x1, y1) = np.floor(points.min(0)).astype(int), np.ceil(points.max(0)).astype(int)
            regions[frame, max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
    return regions


def test_a_cast_job_gives_what_transfer_cast_gives(cast_batch: CastBatch) -> None:
    (job,) = cast_batch.jobs
    assert job["status"] == "ok" and job["cast"] == str(cast_batch.root / "jobs" / "../cast/cast.toml"), job
    assert "driver" not in job and job["frames"] == cast_batch.scene.config.num_frames
    assert cast_batch.batch.shape == cast_batch.transfer.shape == cast_batch.source.shape
    regions = _face_regions(cast_batch.scene)
    same = face_psnr(cast_batch.batch, cast_batch.transfer, np.ones_like(regions))
    source = face_psnr(cast_batch.batch, cast_batch.source, regions)
    print(f"batch against transfer --cast: {same:.2f} dB; against the scene, in the faces: {source:.2f} dB")
    assert np.array_equal(cast_batch.batch, cast_batch.transfer) or same > MIN_SAME_DB
    assert source < MAX_SOURCE_DB, "the cast job must reenact the faces, not pass the scene through"


# ----------------------------------------------------------------------------------------- reading


def test_a_jobs_cast_inline_reads_with_the_cast_files_parser_and_paths_from_the_jobs_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "jobs.toml").write_text(
        '[defaults]\nstrength = 0.5\n\n[[job]]\ntarget = "s.mp4"\noutput = "o.mp4"\n\n'
        '[[job.person]]\nid = 1\ndriver = "d/a.mp4"\ndriver_landmarks = "d/a.npz"\nstrength = 1\n\n'
        '[[job.person]]\nref = "b.png"\ndriver = "b.mp4"\n'
    )
    (job,) = read_jobs(tmp_path / "jobs.toml")
    assert job.driver is None and job.options == {"strength": 0.5}, "a cast's person is not the option"
    first, second = job.cast
    assert first.face.person == 1 and first.driver == tmp_path / "d" / "a.mp4" and first.strength == 1.0
    assert first.driver_landmarks == str(tmp_path / "d" / "a.npz")
    assert second.face.ref == tmp_path / "b.png" and second.driver == tmp_path / "b.mp4"


def test_one_driver_defaults_skip_cast_jobs(tmp_path: Path) -> None:
    """`[defaults]` may hold one-driver fields for the file's driver jobs; a cast job takes the others."""
    (tmp_path / "cast.toml").write_text(GOOD_CAST)
    (tmp_path / "jobs.toml").write_text(
        "[defaults]\ndriver_ref = 0\nstrength = 0.5\n\n" + JOB + CAST + "\n" + JOB + 'driver = "d.mp4"\n'
    )
    cast_job, plain = read_jobs(tmp_path / "jobs.toml")
    assert cast_job.options == {"strength": 0.5} and cast_job.cast
    assert plain.options == {"driver_ref": 0, "strength": 0.5} and plain.cast is None


def test_a_csv_job_takes_a_cast_file_column(tmp_path: Path) -> None:
    (tmp_path / "casts").mkdir()
    (tmp_path / "casts" / "c.toml").write_text('[[person]]\nid = 0\ndriver = "d.mp4"\n')
    (tmp_path / "jobs.csv").write_text(
        "target,driver,cast,output,strength\ns.mp4,,casts/c.toml,o.mp4,0.7\na.mp4,b.mp4,,ab.mp4,\n"
    )
    cast_job, plain = read_jobs(tmp_path / "jobs.csv")
    assert cast_job.driver is None and cast_job.cast_source == str(tmp_path / "casts" / "c.toml")
    assert [member.driver for member in cast_job.cast] == [tmp_path / "casts" / "d.mp4"]
    assert cast_job.options == {"strength": 0.7}
    assert plain.cast is None and plain.driver == tmp_path / "b.mp4"


# ----------------------------------------------------------------------------------------- errors

JOB = '[[job]]\ntarget = "s.mp4"\noutput = "o.mp4"\n'
CAST = 'cast = "cast.toml"\n'
GOOD_CAST = '[[person]]\nid = 0\ndriver = "d.mp4"\n'
ONE_DRIVER_FIELDS = {
    "person": "person = 1\n",
    "person_ref": 'person_ref = "p.png"\n',
    "face_index": "face_index = 0\n",
    "face_at": 'face_at = "10,10"\n',
    "driver_ref": "driver_ref = 0\n",
    "driver_landmarks": 'driver_landmarks = "d.npz"\n',
}


@pytest.mark.parametrize(
    ("jobs", "cast", "message"),
    [
        (JOB + 'driver = "d.mp4"\n' + CAST, GOOD_CAST, "job 1: give driver or cast, not both"),
        (JOB, GOOD_CAST, "job 1: missing driver (or cast)"),
        (
            JOB + CAST + "\n[[job.person]]\nid = 0\ndriver = 'd.mp4'\n",
            GOOD_CAST,
            "job 1: give the cast as cast = ",
        ),
        (
            JOB + 'driver = "d.mp4"\n\n' + JOB + CAST,
            "[[person]]\nid = 0\n",
            "job 2: {cast}, person 1: no driver",
        ),
        (JOB + CAST, "", "job 1: {cast}: no [[person]] tables"),
        (JOB + CAST, "[[person]\n", "job 1: {cast} is not valid TOML"),
        (JOB + 'cast = "nowhere.toml"\n', GOOD_CAST, "job 1: cannot read the cast file"),
        (JOB + "\n[[job.person]]\nid = -1\ndriver = 'd.mp4'\n", "", "job 1, person 1: id must be >= 0"),
        (JOB + "\n[[job.person]]\nid = 0\nmood = 'x'\n", "", "job 1, person 1: unknown key(s) mood"),
        *(
            (JOB + CAST + line, GOOD_CAST, f"job 1: {name} cannot go with a cast")
            for name, line in ONE_DRIVER_FIELDS.items()
        ),
    ],
)
def test_a_bad_cast_job_is_one_error_line_naming_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str, cast: str, message: str
) -> None:
    (tmp_path / "jobs.toml").write_text(jobs)
    (tmp_path / "cast.toml").write_text(cast)
    message = message.format(cast=tmp_path / "cast.toml")
    with pytest.raises(ReenactError) as error:
        read_jobs(tmp_path / "jobs.toml")
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    assert run(["batch", str(tmp_path / "jobs.toml")]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in captured.err, captured.err
    assert errors[0] == f"error: {tmp_path / 'jobs.toml'}, {message}" or (
        errors[0].startswith(f"error: {tmp_path / 'jobs.toml'}, job ") and message in errors[0]
    ), errors


def test_every_one_driver_field_is_refused_with_a_cast() -> None:
    assert set(ONE_DRIVER_FIELDS) == set(NOT_WITH_CAST)


def test_a_cast_job_that_fails_when_run_is_reported_in_one_line(
    cast_batch: CastBatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cast naming a person the scene does not have fails its job (the others go on), as the transfer
    would."""
    scene = cast_batch.root / "scene"
    (tmp_path / "jobs.toml").write_text(
        f'[defaults]\ntarget = "{scene / "video.mp4"}"\ntarget_landmarks = "{scene / "landmarks.npz"}"\n'
        f'generator = "random:tiny"\n\n[[job]]\noutput = "bad.mp4"\n\n'
        f'[[job.person]]\nid = 5\ndriver = "{cast_batch.root / "world" / "driver.mp4"}"\n'
    )
    code = run(
        ["batch", str(tmp_path / "jobs.toml"), "--workdir", str(tmp_path / "work"), "--quiet", "--json"]
    )
    captured = capsys.readouterr()
    (job,) = json.loads(captured.out)["jobs"]
    assert code == 1 and job["status"] == "failed", job
    assert "no person 5 in" in job["error"] and "\n" not in job["error"], job["error"]
    assert job["cast"] == f"{tmp_path / 'jobs.toml'}, job 1"
    assert not (tmp_path / "bad.mp4").exists()
