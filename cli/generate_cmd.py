"""`reenact generate`: images of a generator by seed (the official generate.py's job), and a contact sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reenact.config import DEFAULT_GENERATOR
from reenact.threads import use_threads
from reenact_cli.common import Device, Generator, Overwrite, Threads


def generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the PNGs (made if missing).")],
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            help="Seeds to render: numbers and inclusive ranges, separated by commas (0-63 or 1,5,10-12).",
        ),
    ],
    generator: Generator = DEFAULT_GENERATOR,
    trunc: Annotated[
        float,
        typer.Option("--trunc", help="Truncation psi: 1 samples W as trained, below 1 nearer the average."),
    ] = 1.0,
    grid: Annotated[
        bool, typer.Option("--grid", help="Also write grid.png, a contact sheet of all seeds.")
    ] = False,
    device: Device = "auto",
    threads: Threads = None,
    overwrite: Overwrite = False,
) -> None:
    """Render one PNG per seed (seedNNNN.png) from a generator, as NVlabs' generate.py does.

    A seed's latent is numpy's RandomState(seed).randn(1, z_dim), so a seed gives the same image whatever
    other seeds are asked for; the per-layer noise is the generator's constant noise.
    """
    use_threads(threads)  # a bad count is refused before anything loads
    from reenact.device import resolve_runtime
    from reenact.generator_source import load_generator_spec
    from reenact.sampling import parse_seeds, write_samples
    from reenact.threads import is_small_work

    seed_list = parse_seeds(seeds)
    runtime = resolve_runtime(device)
    source = load_generator_spec(generator, device=runtime.device)
    use_threads(threads, small_work=is_small_work(source.generator.resolution))
    paths = write_samples(
        source.generator, seed_list, truncation=trunc, out_dir=output, grid=grid, overwrite=overwrite
    )
    typer.echo(
        f"{len(seed_list)} images of {generator} ({source.generator.resolution} px, truncation {trunc}) "
        f"in {output}" + (f"; contact sheet {paths[-1]}" if grid else "")
    )
