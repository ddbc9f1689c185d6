"""`reenact weights …`: list, fetch, import, verify and locate the weight files (I/O only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reenact.errors import ReenactError
from reenact_cli.progress import cli_progress

app = typer.Typer(
    help=(
        "The weight cache: which pretrained files reenact knows, which are present, and how to add them. "
        "Files live under $REENACT_HOME/weights (else $XDG_CACHE_HOME/reenact/weights, else "
        "~/.cache/reenact/weights)."
    ),
    no_args_is_help=True,
)

BYTES_PER_MIB = 1024 * 1024


def _size_text(size: int | None) -> str:
    if size is None:
        return "?"
    if size < BYTES_PER_MIB:
        return f"{size / 1024:.1f} KiB"
    return f"{size / BYTES_PER_MIB:.1f} MiB"


@app.command("list")
def list_weights(
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as a JSON list.")] = False,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="Only this kind: generator, backbone, lpips, landmarks or direction.",
            show_default="every kind",
        ),
    ] = None,
) -> None:
    """Every known weight file: cached or missing, size, license."""
    from reenact import weights

    rows = []
    for entry in weights.registry().values():
        if kind is not None and entry.kind != kind:
            continue
        path = weights.cached_file(entry.name)
        cached = path.is_file()
        rows.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "status": "cached" if cached else "missing",
                "filename": entry.filename,
                "size": path.stat().st_size if cached else entry.size,
                "sha256": entry.sha256,
                "sha256_prefix": entry.sha256_prefix,
                "license": entry.license,
                "urls": list(entry.urls),
                "page": entry.page,
                "citation": entry.citation,
                "note": entry.note,
                "path": str(path),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    name_width = max((len(row["name"]) for row in rows), default=4)
    typer.echo(f"{'name':<{name_width}}  {'kind':<10}  {'status':<7}  {'size':>10}  license")
    for row in rows:
        typer.echo(
            f"{row['name']:<{name_width}}  {row['kind']:<10}  {row['status']:<7}  "
            f"{_size_text(row['size']):>10}  {row['license']}"
        )
    typer.echo(f"cache: {weights.weights_dir()}")


@app.command("fetch")
def fetch(
    names: Annotated[
        list[str], typer.Argument(help="Registry names (see `reenact weights list`).", metavar="NAME")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if a good copy is cached.")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show download progress (bar or log lines).")
    ] = True,
) -> None:
    """Download weight files into the cache: resumes a broken download, checks the checksum."""
    from reenact import weights

    for name in names:
        path = weights.fetch(name, progress=cli_progress(quiet=not progress), force=force)
        typer.echo(f"{name}: {path}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="The downloaded file.", dir_okay=False)],
    name: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Registry name of the file; without it the checksum or filename decides.",
            show_default="found from the file",
        ),
    ] = None,
) -> None:
    """Copy a downloaded weight file into the cache after checking its checksum and format."""
    from reenact import weights

    path = weights.import_file(file, name=name)
    typer.echo(f"imported {file} -> {path}")


@app.command("verify")
def verify() -> None:
    """Recompute the checksum of every cached file; exit 1 if any is corrupt."""
    from reenact import weights

    results = weights.verify()
    for result in results:
        typer.echo(f"{result.status:<9}  {result.name}: {result.detail}")
    corrupt = [result.name for result in results if result.status == "corrupt"]
    if not results:
        typer.echo(f"no weight files cached in {weights.weights_dir()}")
    if corrupt:
        raise ReenactError(
            f"corrupt weight files: {', '.join(corrupt)}; run `reenact weights fetch --force NAME` "
            "or import a good copy"
        )


@app.command("path")
def path(name: Annotated[str, typer.Argument(help="Registry name.")]) -> None:
    """Print the cached file's path (error with download instructions if it is missing)."""
    from reenact import weights

    typer.echo(str(weights.weight_path(name)))
