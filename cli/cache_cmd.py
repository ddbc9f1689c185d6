"""`reenact cache …`: see what a workspace holds, and prune it by age or total size."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reenact.config import DEFAULT_WORKDIR
from reenact.errors import UsageError

if TYPE_CHECKING:
    from reenact import workspace_cache as cache

app = typer.Typer(
    help=(
        "The workspace (--workdir): every stage result with its size, last use and inputs; prune by age "
        "or total size. Entries that a running command computes or uses are never removed."
    ),
    no_args_is_help=True,
)

SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
SIZE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", re.IGNORECASE)
AGE_UNITS = {"d": 1.0, "h": 1 / 24, "w": 7.0}
AGE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([dhw])", re.IGNORECASE)

CacheDir = Annotated[
    Path, typer.Option("--workdir", help="The workspace folder (as given to the other commands).")
]


def parse_size(text: str) -> int:
    """`50G`, `800MB`, `1.5T` -> bytes (decimal units)."""
    match = SIZE_PATTERN.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--max-size takes a size like 50G or 800M, not {text!r}")
    return int(float(match[1]) * SIZE_UNITS[match[2].upper()])


def parse_age(text: str) -> float:
    """`7d`, `12h`, `2w` -> days."""
    match = AGE_PATTERN.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--older-than takes an age like 7d, 12h or 2w, not {text!r}")
    return float(match[1]) * AGE_UNITS[match[2].lower()]


def size_text(size: int) -> str:
    for unit, factor in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}B"
    return f"{size} B"


def entry_line(entry: cache.Entry) -> str:
    when = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M")
    state = "" if entry.finished else " (unfinished)"
    inputs = ", ".join(Path(name).name for name in entry.inputs) or "-"
    return f"{entry.stage:<7} {entry.digest}{state:<13} {size_text(entry.size_bytes):>10}  {when}  {inputs}"


@app.command("list")
def list_entries(
    workdir: CacheDir = DEFAULT_WORKDIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as a JSON list.")] = False,
) -> None:
    """Every entry, most recently used first: stage, key, size, last use and the inputs it came from;
    then the size of each stage's entries together."""
    from reenact import workspace_cache as cache

    listed = cache.entries(workdir)
    if as_json:
        typer.echo(json.dumps([entry.to_dict() for entry in listed], indent=2))
        return
    for entry in listed:
        typer.echo(entry_line(entry))
    for stage, size in cache.stage_bytes(listed).items():
        count = sum(entry.stage == stage for entry in listed)
        typer.echo(f"{stage:<7} {count:>3} entries {size_text(size):>10}")
    total = sum(entry.size_bytes for entry in listed)
    typer.echo(f"{len(listed)} entries, {size_text(total)} in {workdir}")


@app.command("prune")
def prune(
    workdir: CacheDir = DEFAULT_WORKDIR,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Remove entries last used longer ago: 7d, 12h, 2w.",
            show_default="no age limit",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            help="Then remove the least recently used until the rest fit, e.g. 50G.",
            show_default="no size limit",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
) -> None:
    """Remove old entries, or the least recently used ones beyond a total size."""
    from reenact import workspace_cache as cache

    if older_than is None and max_size is None:
        raise UsageError("say what to prune: --older-than AGE and/or --max-size SIZE")
    report = cache.prune(
        workdir,
        older_than_days=None if older_than is None else parse_age(older_than),
        max_bytes=None if max_size is None else parse_size(max_size),
        dry_run=dry_run,
    )
    verb = "would remove" if dry_run else "removed"
    for entry in report.removed:
        typer.echo(f"{verb} {entry_line(entry)}")
    for entry in report.kept_in_use:
        typer.echo(f"kept (in use by a running command) {entry_line(entry)}")
    typer.echo(f"{verb} {len(report.removed)} entries, {size_text(report.freed_bytes)}")
