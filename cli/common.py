"""Options and helpers shared by the CLI commands (I/O only, no maths).

Every option that more than one command takes is declared here once, as an `Annotated` alias, and each
command lists the aliases it needs; defaults live in the command signatures only where the setting has
no home in `reenact.config` (paths, flags), so every setting keeps one default.

Every command module imports this one, and `reenact --help` imports every command module: nothing here
may import torch at import time (the stage types are imported where they are used).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.config import (
    DEFAULT_GENERATOR,
    DEFAULT_PRESET,
    DEFAULT_QUALITY,
    QUALITY_LEVELS,
    Config,
    preset_names,
)
from reenact.errors import ReenactError

if TYPE_CHECKING:
    from reenact.stages.align import FaceChoice

Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help=(
            f"Settings preset: a packaged name ({', '.join(preset_names())}) or your own .toml file "
            f"(see configs/). Default: {DEFAULT_PRESET}, or synthetic with a random:* generator."
        ),
    ),
]
Quality = Annotated[
    str,
    typer.Option(
        "--quality",
        help=(
            f"Compute budget ({', '.join(QUALITY_LEVELS)}): the inversion's and the tuning's steps. "
            "fast renders far less for some fidelity; best runs the papers' per-image budgets "
            "(Image2StyleGAN, PTI). A preset or --set that names a budget setting wins over it. "
            "Cost and quality of each: the README's cost table."
        ),
        metavar="LEVEL",
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override one setting, e.g. --set video.crf=18 (repeatable).",
        metavar="SECTION.KEY=VALUE",
    ),
]
Generator = Annotated[
    str,
    typer.Option(
        "--generator",
        "-g",
        help=(
            f"Generator: a weight name (see `reenact weights list`; default {DEFAULT_GENERATOR}), a "
            "checkpoint file (.pkl, .pt, .safetensors), or random:tiny[-RES], an explicitly random test "
            "generator that is not a face model."
        ),
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")]
Precision = Annotated[
    str, typer.Option("--precision", help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.")
]
Compile = Annotated[
    bool, typer.Option("--compile", help="torch.compile the generator (pays off on long GPU runs).")
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help=(
            "CPU threads to compute with. Default: the REENACT_THREADS environment variable, else "
            "OMP_NUM_THREADS (not under torchrun), else the cores this process may use (shared out between "
            "the local ranks under torchrun). Idle threads spin only briefly before they sleep, so a busy "
            "machine does not slow the run many times over."
        ),
        metavar="N",
        show_default=False,
    ),
]
Workdir = Annotated[Path, typer.Option("--workdir", help="Folder where every stage's result is cached.")]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or stage lines; only the summary.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
Landmarks = Annotated[
    str | None,
    typer.Option("--landmarks", help="Landmark source: dlib (default), fan, or a sidecar .json/.npz file."),
]
FaceIndex = Annotated[
    int, typer.Option("--face-index", min=0, help="Follow the N-th largest face (0 = the largest).")
]
FaceAt = Annotated[
    str | None,
    typer.Option("--face-at", help="Follow the face at X,Y (pixels of the upright frame) instead."),
]
Output = Annotated[Path, typer.Option("--output", "-o", help="Output video file (.mp4, .mov, .mkv).")]


def os_error_message(exc: OSError) -> str:
    """One line naming the path and the cause, e.g. `/x/out.mp4: No space left on device`."""
    cause = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {cause}"
    return cause


def settings_for(
    preset: str | None,
    sets: list[str] | None,
    *,
    quality: str = DEFAULT_QUALITY,
    **sections: dict[str, Any],
) -> Config:
    """The settings a command runs with: the quality level's budgets, the preset over them, then each
    `--set`, then the command's own options (`sections`, e.g. `edit={"strength": 0.5}`; options left at
    None are not applied)."""
    settings = Config.from_preset(preset or DEFAULT_PRESET, overrides=sets or [], quality=quality)
    given = {
        name: {key: value for key, value in values.items() if value is not None}
        for name, values in sections.items()
    }
    return settings.with_values(**{name: values for name, values in given.items() if values})


def parse_face_at(text: str) -> tuple[float, float]:
    """`X,Y` (pixels of the upright frame) -> (x, y)."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ReenactError(f"--face-at expects X,Y in pixels, e.g. 640,360; got {text!r}") from None


def face_choice(face_index: int, face_at: str | None) -> FaceChoice:
    """The face a command follows, from `--face-index` and `--face-at`."""
    from reenact.stages.align import FaceChoice

    return FaceChoice(index=face_index, at=parse_face_at(face_at) if face_at is not None else None)
