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

A CSV file has a header row with the same names (`target,driver,output,strength,...`). Relative paths are
read from the jobs file's folder.

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
from typing import Annotated, Any

import typer

from reenact.checks import FaceRequest
from reenact.config import tomllib
from reenact.errors import ReenactError
from reenact_cli.common import Overwrite, RunOptions, face_choice, os_error_message, with_run_options
from reenact_cli.pipeline_cmds import make_context

JOB_PATHS = ("target", "driver", "output", "target_landmarks", "driver_landmarks")
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
REQUIRED = ("target", "driver", "output")


@dataclass
class Job:
    """One transfer of a batch."""

    number: int
    target: Path
    driver: Path
    output: Path
    options: dict[str, Any] = field(default_factory=dict)
    target_landmarks: str | None = None
    driver_landmarks: str | None = None


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
        _job(number, {**defaults, **row}, folder=path.parent, source=path)
        for number, row in enumerate(rows, 1)
    ]


def _job(number: int, row: dict[str, Any], *, folder: Path, source: Path) -> Job:
    where = f"{source}, job {number}"
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise ReenactError(f"{where}: missing {', '.join(missing)}")
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
    return Job(
        number=number,
        target=paths["target"],
        driver=paths["driver"],
        output=paths["output"],
        options=options,
        target_landmarks=str(paths["target_landmarks"]) if "target_landmarks" in paths else None,
        driver_landmarks=str(paths["driver_landmarks"]) if "driver_landmarks" in paths else None,
    )


def run_job(job: Job, *, run: RunOptions, rank: int, overwrite: bool) -> dict[str, Any]:
    """One job in this process, with the batch's `run` options under its own: its summary entry, with
    status `ok`, `skipped` or `failed` (and the error's one line)."""
    from reenact import distributed, pipeline
    from reenact.report import rank_work

    entry: dict[str, Any] = {
        "job": job.number,
        "target": str(job.target),
        "driver": str(job.driver),
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
    driver_landmarks), which win over the command line's. Stages that jobs share are computed once;
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
