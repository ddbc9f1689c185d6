"""`reenact demo`: the whole pipeline offline on the synthetic world (no weights needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reenact.config import DEMO_FRAMES
from reenact.errors import UsageError
from reenact.threads import use_threads
from reenact_cli.common import Device, Overwrite, Quiet, Threads
from reenact_cli.progress import cli_progress


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the demo's files.")] = Path(
        "reenact-demo"
    ),
    frames: Annotated[int, typer.Option("--frames", min=4, help="Frames per clip.")] = DEMO_FRAMES,
    world: Annotated[
        str,
        typer.Option(
            "--world",
            help="faces: reenact's own small face generator (a mouth opens and closes); random: a tiny "
            "random generator (abstract blobs, the fast tests' world).",
        ),
    ] = "faces",
    device: Device = "auto",
    threads: Threads = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Run transfer end to end on a world whose right answer is known, offline, in minutes.

    The clips are rendered with known latents by reenact's own 64 px face generator, trained on the
    faces of its test clips (`--world faces`, the `face-world` preset), or by a tiny random StyleGAN2
    that draws abstract blobs (`--world random`, the `synthetic` preset). Either way this shows the
    machinery (video in, latents, tuning, transfer, paste-back, video out with audio) and measures it
    against the ground truth; production faces need the official FFHQ weights (`reenact weights`).
    """
    from reenact.demo import DEMO_WORLDS

    if world not in DEMO_WORLDS:  # refused before anything loads
        raise UsageError(f"--world must be one of {', '.join(DEMO_WORLDS)}, got {world!r}")
    use_threads(threads)  # a bad count is refused before anything loads
    from reenact.demo import WORLD_FOLDER, WORLD_RESOLUTIONS, run_demo
    from reenact.device import resolve_runtime
    from reenact.threads import is_small_work

    use_threads(threads, small_work=is_small_work(WORLD_RESOLUTIONS[world]))

    report = run_demo(
        output,
        runtime=resolve_runtime(device),
        num_frames=frames,
        world_name=world,  # type: ignore[arg-type]  # checked above
        overwrite=overwrite,
        progress=cli_progress(quiet=quiet),
    )
    typer.echo(f"demo finished in {report.seconds:.1f} s; open these (H.264 4:2:0, plays anywhere):")
    for path, shows in report.files.items():
        typer.echo(f"  {path}  {shows}")
    typer.echo(
        f"  {output / WORLD_FOLDER}  the world's 4:4:4 clips, ground truth and measured output (for metrics)"
    )
    typer.echo(
        f"face-region PSNR against the ground truth: {report.face_psnr:.2f} dB "
        f"(the target without the expression: {report.face_psnr_no_expression:.2f} dB); "
        f"the output carries {report.expression_share:.0%} of the driver's expression; dlib finds a face in "
        f"{report.face_rate:.0%} of the output frames (the truth: {report.truth_face_rate:.0%})"
    )
