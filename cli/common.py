"""Options and helpers shared by the CLI commands (I/O only, no maths)."""

from __future__ import annotations

from pathlib import Path

import typer

from reenact.config import Config, load_config

ConfigOption = typer.Option(
    None, "--config", help="TOML preset to read settings from (see configs/).", dir_okay=False
)
SetOption = typer.Option(
    [],
    "--set",
    help="Override one setting, e.g. --set video.crf=18 (repeatable).",
    metavar="SECTION.KEY=VALUE",
)


def cli_config(config: Path | None, sets: list[str]) -> Config:
    """The configuration a command runs with: defaults, then `--config`, then each `--set`."""
    return load_config(config, sets)
