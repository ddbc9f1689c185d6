"""`reenact batch JOBS.toml|JOBS.csv`: many transfers (target, driver, output), each with its own options.

A jobs file lists the jobs; options given once on the command line, or in the file's `[defaults]`, apply
to every job, and a job's own values win:

    [defaults]
    generator = "stylegan2-ffhq-1024"
    strength = 1.0

    [[job]]
    target = "actors/anna.mp4"
    driver = "takes/take3.mp4"
    output = "out/anna-take3.mp4"
    strength = 0.8
    set = ["video.crf=18"]

    [[job]]  # a cast instead of a driver: as `reenact transfer SCENE --cast` (reenact/cast.py)
    target = "scenes/dinner.mp4"
    target_landmarks = "scenes/dinner_landmarks.npz"
    cast = "scenes/dinner_cast.toml"
    output = "out/dinner.mp4"

    [[job]]  # or the cast in the job: one [[job.person]] per person, the keys of a cast's [[person]]
    target = "scenes/dinner.mp4"
    output = "out/dinner-anna.mp4"

    [[job.person]]  # its paths, too, are read from the jobs file's folder
    id = 0
    driver = "takes/take3.mp4"

A CSV file has a header row with the same names (`target,driver,output,strength,...`; a cast job gives
the `cast` file's column instead of `driver`). Relative paths are read from the jobs file's folder. A
cast job cannot take the one-driver fields (`person`, `person_ref`, `face_index`, `face_at`, `driver_ref`,
`driver_landmarks`): the cast gives them per person.

Under `torchrun`, job i runs on rank i mod ranks, each job in one process. The workspace is shared, so a
stage that several jobs need (one target, many drivers) is computed once: the first job to reach it holds
its lock, and the others wait and load it. A job whose output exists is skipped (a rerun does only what is
missing; `--overwrite` redoes them), and a failing job is reported with its one-line error while the
others go on. The summary lists every job; the exit status is 1 when any job failed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.checks import FaceRequest
from reenact.config import tomllib
from reenact.errors import ReenactError, UsageError
from reenact_cli.common import Overwrite, RunOptions, face_choice, os_error_message, with_run_options
from reenact_cli.pipeline_cmds import cast_transfer, make_context

if TYPE_CHECKING:
    from reenact.cast import CastMember
    from reenact.report import RunReport

JOB_PATHS = ("target", "driver", "cast", "output", "target_landmarks", "driver_landmarks")
"""Job fields that are paths, read relative to the jobs file."""
JOB_OPTIONS: dict[str, type] = {
    "generator": str,
    "preset": str,
    "quality": str,
    "set": list,
    "strength": float,
    "layers": str,
    "length": str,
    "driver_ref": int,
    "face_index": int,
    "face_at": str,
    "person": int,
    "person_ref": str,
}
"""What a job (or `[defaults]`) may set besides its paths, with the type each takes."""
REQUIRED = ("target", "output")
"""Every job's fields; besides them, a job gives `driver`, or a cast (`cast` or `[[job.person]]`)."""
NOT_WITH_CAST = ("person", "person_ref", "face_index", "face_at", "driver_ref", "driver_landmarks")
"""A job's fields for one driver on one person, which a cast gives per person instead."""


@dataclass
class Job:
    """One transfer of a batch."""

    number: int
    target: Path
    driver: Path | None
    """None for a cast job."""
    output: Path
    options: dict[str, Any] = field(default_factory=dict)
    target_landmarks: str | None = None
    driver_landmarks: str | None = None
    cast: list[CastMember] | None = None
    """A cast job's people and their drivers (`pipeline.transfer_cast` on `target`)."""
    cast_source: str | None = None
    """Where the cast was read: its file, or the jobs file's job (`[[job.person]]`)."""


def read_jobs(path: Path) -> list[Job]:
    """The jobs of a `.toml` or `.csv` jobs file (see the module docstring); a `ReenactError` names the
    first problem (missing field, unknown name, wrong type)."""
    if not path.is_file():
        raise ReenactError(f"jobs file {path} does not exist")
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ReenactError(f"{path} is not valid TOML: {exc}") from None
        defaults, rows = data.get("defaults", {}), data.get("job", [])
        unknown = sorted(set(data) - {"defaults", "job"})
        if unknown:
            raise ReenactError(f"{path}: unknown table(s) {', '.join(unknown)}; use [defaults] and [[job]]")
    elif path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            rows = [
                {key.strip(): value.strip() for key, value in row.items() if key and value and value.strip()}
                for row in csv.DictReader(handle)
            ]
        defaults = {}
    else:
        raise ReenactError(f"jobs file {path} must be .toml or .csv")
    if not isinstance(rows, list) or not rows:
        raise ReenactError(f"{path} lists no jobs")
    return [
        _job(number, {**_defaults_for(defaults, row), **row}, folder=path.parent, source=path)
        for number, row in enumerate(rows, 1)
    ]


def _defaults_for(defaults: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The `[defaults]` a job takes: a cast job skips the one-driver fields, which its cast gives per
    person, so one file can hold both kinds of job."""
    if "cast" in row or _is_inline_cast(row.get("person")):
        return {name: value for name, value in defaults.items() if name not in (*NOT_WITH_CAST, "driver")}
    return defaults


def _job(number: int, row: dict[str, Any], *, folder: Path, source: Path) -> Job:
    where = f"{source}, job {number}"
    row = dict(row)
    inline = row.pop("person") if _is_inline_cast(row.get("person")) else None
    has_cast = "cast" in row or inline is not None
    missing = [name for name in REQUIRED if name not in row]
    if not has_cast and "driver" not in row:
        missing.append("driver (or cast)")
    if missing:
        raise ReenactError(f"{where}: missing {', '.join(missing)}")
    if "cast" in row and inline is not None:
        raise ReenactError(
            f'{where}: give the cast as cast = "CAST.toml" or as [[job.person]] tables, not both'
        )
    if has_cast and "driver" in row:
        raise ReenactError(f"{where}: give driver or cast, not both (a cast names each person's driver)")
    unknown = sorted(set(row) - set(JOB_PATHS) - set(JOB_OPTIONS))
    if unknown:
        raise ReenactError(f"{where}: unknown field(s) {', '.join(unknown)}")
    options: dict[str, Any] = {}
    for name, kind in JOB_OPTIONS.items():
        if name not in row:
            continue
        value = row[name]
        try:
            if kind is list:
                options[name] = [
                    str(item) for item in (value if isinstance(value, list) else str(value).split(";"))
                ]
            else:
                options[name] = kind(value)
        except (TypeError, ValueError):
            raise ReenactError(f"{where}: {name} must be {kind.__name__}, got {value!r}") from None
    paths = {name: folder / str(row[name]) for name in JOB_PATHS if name in row}
    if "person_ref" in options:  # a photo, beside the jobs file like the clips
        options["person_ref"] = folder / options["person_ref"]
    cast, cast_source = None, None
    if has_cast:
        cast, cast_source = _job_cast(row, paths.get("cast"), inline, folder=folder, where=where)
    return Job(
        number=number,
        target=paths["target"],
        driver=paths.get("driver"),
        output=paths["output"],
        options=options,
        target_landmarks=str(paths["target_landmarks"]) if "target_landmarks" in paths else None,
        driver_landmarks=str(paths["driver_landmarks"]) if "driver_landmarks" in paths else None,
        cast=cast,
        cast_source=cast_source,
    )


def _is_inline_cast(value: Any) -> bool:
    """Whether a job's `person` is `[[job.person]]` tables (a cast) rather than the `person` option."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _job_cast(
    row: dict[str, Any], cast_file: Path | None, inline: Any, *, folder: Path, where: str
) -> tuple[list[CastMember], str]:
    """A cast job's cast, from its file (`reenact.cast.read_cast`) or its `[[job.person]]` tables (the same
    parser, paths from the jobs file's folder), and where it was read; a `ReenactError` naming the job
    for a bad cast or a one-driver field beside it."""
    from reenact.cast import cast_from_tables, read_cast

    given = [name for name in NOT_WITH_CAST if name in row]
    if given:
        raise ReenactError(
            f"{where}: {', '.join(given)} cannot go with a cast (give driver_id, driver_ref, "
            "driver_landmarks or driver_frame per person in the cast)"
        )
    try:
        if cast_file is not None:
            return read_cast(cast_file), str(cast_file)
        return cast_from_tables(inline, folder=folder, source=where), where
    except UsageError as exc:
        raise ReenactError(str(exc) if cast_file is None else f"{where}: {exc}") from None


def run_job(job: Job, *, run: RunOptions, rank: int, overwrite: bool) -> dict[str, Any]:
    """One job in this process, with the batch's `run` options under its own: its summary entry, with
    status `ok`, `skipped` or `failed` (and the error's one line)."""
    from reenact import distributed, pipeline

    entry: dict[str, Any] = {
        "job": job.number,
        "target": str(job.target),
        **({"driver": str(job.driver)} if job.cast is None else {"cast": job.cast_source}),
        "output": str(job.output),
        "rank": rank,
    }
    if job.output.exists() and not overwrite:
        return {**entry, "status": "skipped", "detail": "the output exists (--overwrite redoes it)"}
    started = time.perf_counter()
    options = job.options
    job.output.parent.mkdir(parents=True, exist_ok=True)
    own = dataclasses.replace(
        run,
        generator=options.get("generator", run.generator),
        preset=options.get("preset", run.preset),
        quality=options.get("quality", run.quality),
        sets=[*(run.sets or []), *options.get("set", [])],
    )
    try:
        if job.cast is not None:
            report = cast_transfer(
                job.target,
                job.cast,
                job.output,
                run=own,
                group=distributed.SINGLE,
                strength=options.get("strength"),
                layers=options.get("layers"),
                length=options.get("length"),
                landmarks=job.target_landmarks,
                overwrite=overwrite,
                layers_option="layers",
            )
            return _done(entry, report)
        assert job.driver is not None, "a job without a cast has a driver (read_jobs)"
        context = make_context(
            own,
            group=distributed.SINGLE,
            edit={
                "strength": options.get("strength"),
                "layers": options.get("layers"),
                "length_policy": options.get("length"),
            },
            inputs=[job.target, job.driver],
            face=FaceRequest(
                options.get("face_index"),
                options.get("face_at"),
                options.get("person"),
                options.get("person_ref"),
            ),
            layers={"layers": options.get("layers")},
            driver_ref=options.get("driver_ref"),
        )
        report = pipeline.transfer(
            job.target,
            job.driver,
            job.output,
            context=context,
            target_landmarks=job.target_landmarks,
            driver_landmarks=job.driver_landmarks,
            face=face_choice(
                options.get("face_index"),
                options.get("face_at"),
                options.get("person"),
                options.get("person_ref"),
            ),
            driver_ref=options.get("driver_ref"),
            overwrite=overwrite,
        )
    except (ReenactError, OSError) as exc:
        error = os_error_message(exc) if isinstance(exc, OSError) else str(exc)
        return {
            **entry,
            "status": "failed",
            "error": error,
            "seconds": round(time.perf_counter() - started, 3),
        }
    except Exception as exc:  # one job's bug must not cost the others their results
        traceback.print_exc()
        error = f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())})"
        return {
            **entry,
            "status": "failed",
            "error": error,
            "seconds": round(time.perf_counter() - started, 3),
        }
    return _done(entry, report)


def _done(entry: dict[str, Any], report: RunReport) -> dict[str, Any]:
    """A job's summary entry once it ran: its frames, time and stages."""
    from reenact.report import rank_work

    return {
        **entry,
        "status": "ok",
        "frames": report.frames,
        "seconds": round(report.seconds, 3),
        "stages": [stage.to_dict() for stage in report.stages],
        "work": rank_work(report.stages),
    }


@with_run_options
def batch(
    jobs_file: Annotated[
        Path, typer.Argument(help="Jobs file: .toml ([defaults] and [[job]] tables) or .csv.")
    ],
    overwrite: Overwrite = False,
    *,
    run: RunOptions,
) -> None:
    """Run many transfers from a jobs file; under torchrun, the jobs are spread over the ranks.

    Each job is TARGET, DRIVER and OUTPUT with its own options (strength, layers, length, driver_ref,
    face_index, face_at, person, person_ref, generator, preset, quality, set, target_landmarks,
    driver_landmarks), which win over the command line's; a job may give a cast (cast = "CAST.toml", or
    [[job.person]] tables) instead of DRIVER, as transfer --cast. Stages that jobs share are computed once;
    jobs whose output exists are skipped; a failing job does not stop the others.
    """
    from reenact import distributed
    from reenact.device import resolve_device

    jobs = read_jobs(jobs_file)
    group = distributed.join(distributed.rank_device(resolve_device(run.device)))
    mine = [job for index, job in enumerate(jobs) if index % group.size == group.rank]
    quiet = dataclasses.replace(run, quiet=run.quiet or not group.is_main)
    results = [run_job(job, run=quiet, rank=group.rank, overwrite=overwrite) for job in mine]
    everyone = sorted(
        (entry for part in group.gather(results) for entry in part), key=lambda entry: entry["job"]
    )
    if not group.is_main:
        return
    failed = [entry for entry in everyone if entry["status"] == "failed"]
    if run.as_json:
        typer.echo(json.dumps({"jobs": everyone, "failed": len(failed), "ranks": group.size}, indent=2))
    else:
        typer.echo(f"batch {jobs_file}: {len(everyone)} jobs on {group.size} rank(s)")
        for entry in everyone:
            what = entry.get("error") or entry.get("detail") or f"{entry.get('frames', 0)} frames"
            typer.echo(
                f"  job {entry['job']:<3} {entry['status']:<8} rank {entry['rank']}  "
                f"{entry['output']}: {what}"
            )
    if failed:
        first = failed[0]
        raise ReenactError(
            f"{len(failed)} of {len(everyone)} jobs failed; job {first['job']}: {first['error']}"
        )
