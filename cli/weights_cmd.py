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

SOURCE_STATUS = {"cache": "cached", "package": "package", "torch-hub": "hub"}
"""The list's status of a file by where it was found (`reenact.weights.WeightSource`)."""
OUTSIDE_THE_CACHE = {
    "package": "from an installed package",
    "hub": "in the torch hub checkpoints, where face-alignment reads it",
}
"""What the list says under the table about files found outside the cache, by status."""


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
    """Every known weight file: where the pipeline finds it (the cache, an installed package such as
    `lpips`, the torch hub checkpoints) or that it is missing; its size (on disk, else the download's,
    "~" when approximate); its license.
    """
    from reenact import weights

    rows = []
    for entry in weights.all_entries().values():
        if kind is not None and entry.kind != kind:
            continue
        found = weights.locate(entry.name)
        if found is None:
            status, size, size_text = "missing", entry.size, weights.expected_size_text(entry)
        else:
            size = found.path.stat().st_size
            status, size_text = SOURCE_STATUS[found.source], weights.format_size(size)
        rows.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "status": status,
                "filename": entry.filename,
                "size": size,
                "approx_size": entry.approx_size,
                "size_text": size_text,
                "size_source": entry.size_source,
                "sha256": entry.sha256,
                "sha256_prefix": entry.sha256_prefix,
                "license": entry.license,
                "urls": list(entry.urls),
                "page": entry.page,
                "citation": entry.citation,
                "note": entry.note,
                "path": str(found.path if found else weights.cached_file(entry.name)),
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
            f"{row['size_text']:>10}  {row['license']}"
        )
    for row in rows:
        if row["status"] in OUTSIDE_THE_CACHE:
            typer.echo(f"{row['name']}: {row['path']} ({OUTSIDE_THE_CACHE[row['status']]})")
    typer.echo(f"cache: {weights.weights_dir()}  (~: approximate download size)")


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
