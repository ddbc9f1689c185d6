"""Options and helpers shared by the CLI commands (I/O only, no maths).

Every option that more than one command takes is declared here once, as an `Annotated` alias, and each
command lists the aliases it needs; defaults live in the command signatures only where the setting has
no home in `reenact.config` (paths, flags), so every setting keeps one default.

Every command module imports this one, and `reenact --help` imports every command module: nothing here
may import torch at import time (the stage types are imported where they are used).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reenact.checks import FaceRequest, check_face_options, usage_value
from reenact.config import (
    DEFAULT_GENERATOR,
    DEFAULT_PRESET,
    DEFAULT_QUALITY,
    DEFAULT_WORKDIR,
    QUALITY_LEVELS,
    Config,
    preset_names,
)
from reenact.errors import UsageError
from reenact.threads import use_threads
from reenact.weights.registry import FACE_WORLD_NAME

if TYPE_CHECKING:
    from reenact.stages.align import FaceChoice
    from reenact.timeline import Window

RANDOM_GENERATOR_PRESET = "synthetic"
"""The preset a random:* generator runs with unless told otherwise (MSE-only losses, small budgets)."""
OWN_PRESETS = {FACE_WORLD_NAME: FACE_WORLD_NAME}
"""Generators that run with a preset of their own unless told otherwise (the face world: pixel losses)."""

NO_DEFAULT = "none"
"""How `--help` shows the default of an option that is off unless given (`--set`, `--plot` ...)."""


def config_default(section: str, key: str) -> str:
    """How `--help` shows a default that lives in `reenact.config`: read from the config's own defaults,
    so the help and the settings never disagree (a preset or `--set` may change it)."""
    return f"{getattr(getattr(Config(), section), key)}, from the preset's {section}.{key}"


Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help=(
            f"Settings preset: a packaged name ({', '.join(preset_names())}) or your own .toml file "
            f"(see configs/). Default: {DEFAULT_PRESET}, or the generator's own ({RANDOM_GENERATOR_PRESET} "
            f"with a random:* generator, {OWN_PRESETS[FACE_WORLD_NAME]} with {FACE_WORLD_NAME}): its values "
            "replace the defaults this help shows."
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
            "Cost and quality of each: docs/cost.md."
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
        show_default=NO_DEFAULT,
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
    int | None,
    typer.Option(
        "--face-index",
        min=0,
        help=(
            "Follow the person with the N-th largest face (0 = the largest) in the first frame that has "
            "N + 1 faces, through cuts. Default: 0, unless --face-at, --person or --person-ref is given."
        ),
        show_default=False,
    ),
]
FaceAt = Annotated[
    str | None,
    typer.Option(
        "--face-at",
        help="Follow the person whose face is at X,Y (pixels of the upright frame) in the first frame it is.",
        show_default="none: --face-index chooses",
    ),
]
Person = Annotated[
    int | None,
    typer.Option(
        "--person",
        min=0,
        help="Follow person ID, as `reenact people CLIP` lists them.",
        metavar="ID",
        show_default="none: --face-index chooses",
    ),
]
PersonRef = Annotated[
    Path | None,
    typer.Option(
        "--person-ref",
        help=(
            "Follow the person whose face is nearest the face in this photo (a frame of the clip will do), "
            "if near enough to be the same person."
        ),
        metavar="PHOTO",
        show_default="none: --face-index chooses",
    ),
]
People = Annotated[
    str | None,
    typer.Option(
        "--people",
        help=(
            "all: every person of the clip, each inverted and tuned on their own frames, all in one output "
            "(instead of choosing one person)."
        ),
        metavar="all",
        show_default="none: one person",
    ),
]
Output = Annotated[
    Path,
    typer.Option(
        "--output", "-o", help="Output video file (.mp4, .mov, .mkv, .mxf), or image sequence shot/%06d.png."
    ),
]
CodecOption = Annotated[
    str | None,
    typer.Option(
        "--codec",
        help=(
            "Output codec: source (the source's own where OUTPUT's container holds it: ProRes stays ProRes, "
            "H.264 stays H.264), h264, h265, prores (422 HQ), prores4444, dnxhr (the profile that holds the "
            "source), dnxhr_hq, dnxhr_hqx, dnxhr_444, ffv1 (lossless, .mkv), or png, tiff, dpx, exr (float), "
            "exr_half (image sequences: OUTPUT a pattern like shot/%06d.dpx). Formats: README."
        ),
        show_default=config_default("video", "codec"),
    ),
]
MatteOption = Annotated[
    Path | None,
    typer.Option(
        "--matte",
        help=(
            "Also write the face matte: for every output frame, the exact weights the face was blended with "
            "(0: the source's pixel, 65535: the face's), 16-bit gray: an FFV1 .mkv with the output's frames "
            "and timestamps, or a PNG/TIFF sequence (matte/%06d.png) numbered as an output sequence is; "
            "an EXR sequence (matte/%06d.exr) holds the weights themselves as 32-bit float (0 to 1)."
        ),
        metavar="MATTE",
        show_default="none",
    ),
]
SequenceFps = Annotated[
    str | None,
    typer.Option(
        "--fps",
        help=(
            "Frame rate of an image sequence input (a pattern like shot/%06d.exr or a folder of numbered "
            "frames), which carries none: 25, 23.976 or 24000/1001. Required for one; its first frame "
            "number is kept (an output sequence starts at it, a video's timecode counts it)."
        ),
        metavar="RATE",
        show_default="none",
    ),
]
AlphaOption = Annotated[
    bool,
    typer.Option(
        "--alpha",
        help=(
            "Embed the face matte (the exact blend weights: 0 the source's pixel, full the face's) as the "
            "output's alpha channel: prores4444, ffv1, png, tiff, dpx or exr; refused for codecs without "
            "alpha."
        ),
    ),
]
TimecodeOption = Annotated[
    str | None,
    typer.Option(
        "--timecode",
        help="Start timecode of the output, HH:MM:SS:FF (HH:MM:SS;FF drop-frame). Default: the source's own.",
        metavar="HH:MM:SS:FF",
        show_default=config_default("video", "timecode"),
    ),
]
Start = Annotated[
    str | None,
    typer.Option(
        "--start",
        help=(
            "Work on a slice from this time: seconds (12.5), M:SS.mmm (1:02.5), H:MM:SS.mmm, or a frame "
            "number with f (150f). The output is the slice alone: its timestamps start at 0, its audio is "
            "the packets that start inside the slice. Default: the first frame."
        ),
        metavar="TIME",
    ),
]
Duration = Annotated[
    str | None,
    typer.Option(
        "--duration",
        help=(
            "Length of the slice (same formats as --start; 50f = 50 frames): the frames shown in "
            "[start, start + duration). Default: to the end of the clip."
        ),
        metavar="TIME",
    ),
]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options of a run, which every pipeline command and `batch` take: declared here once, they
    become each command's options through `with_run_options`."""

    generator: Generator = DEFAULT_GENERATOR
    device: Device = "auto"
    threads: Threads = None
    precision: Precision = "auto"
    compile: Compile = False
    workdir: Workdir = DEFAULT_WORKDIR
    quiet: Quiet = False
    as_json: AsJson = False
    preset: Preset = None
    quality: Quality = DEFAULT_QUALITY
    sets: Sets = None


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., run: RunOptions)` as a typer command: its own parameters, then every `RunOptions`
    field as an option; the command gets them as one `run`, with the CPU threads already set (before any
    work, as `--threads` promises)."""
    own_hints = typing.get_type_hints(command, include_extras=True)
    own = [
        parameter.replace(annotation=own_hints[parameter.name])
        for parameter in inspect.signature(command).parameters.values()
        if parameter.name != "run"
    ]
    option_hints = typing.get_type_hints(RunOptions, include_extras=True)
    shared = [
        inspect.Parameter(
            option.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=option.default,
            annotation=option_hints[option.name],
        )
        for option in dataclasses.fields(RunOptions)
    ]

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        options = RunOptions(
            **{option.name: values.pop(option.name) for option in dataclasses.fields(RunOptions)}
        )
        use_threads(options.threads)
        command(**values, run=options)

    del wrapper.__wrapped__  # typer reads the signature below, not the command's
    wrapper.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in [*own, *shared]}
    return wrapper


def sequence_fps(fps: str | None) -> Fraction | None:
    """The frame rate `--fps` gives this run's image sequence inputs, passed down with them (None: not
    given; a sequence input is then refused in one line when it is first looked at, before any work)."""
    from reenact.sequences import parse_rate

    return None if fps is None else parse_rate(fps)


def video_settings(codec: str | None, timecode: str | None, alpha: bool | None = None) -> dict[str, Any]:
    """The `video` settings that `--codec`, `--timecode` and `--alpha` give (None: not given)."""
    return {"codec": codec, "timecode": timecode, "alpha": alpha}


def with_video_options(
    run: RunOptions, *, codec: str | None, timecode: str | None, alpha: bool = False
) -> RunOptions:
    """`run` with `--codec`, `--timecode` and `--alpha` as its last `--set`s, so they win over the preset
    and any `--set` (as every command's own options do, `settings_for`)."""
    settings = video_settings(codec, timecode, alpha or None).items()
    given = {key: value for key, value in settings if value is not None}
    if not given:
        return run
    toml = {key: str(value).lower() if isinstance(value, bool) else value for key, value in given.items()}
    sets = [*(run.sets or []), *(f"video.{key}={value}" for key, value in toml.items())]
    return dataclasses.replace(run, sets=sets)


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
    None are not applied). A bad value in any of them is a `UsageError`."""
    given = {
        name: {key: value for key, value in values.items() if value is not None}
        for name, values in sections.items()
    }
    return usage_value(
        lambda: Config.from_preset(
            preset or DEFAULT_PRESET, overrides=sets or [], quality=quality
        ).with_values(**{name: values for name, values in given.items() if values})
    )


def face_choice(
    face_index: int | None, face_at: str | None, person: int | None = None, person_ref: Path | None = None
) -> FaceChoice:
    """The person a command follows, from `--face-index`, `--face-at`, `--person` and `--person-ref` (a
    `UsageError` when more than one is given, `--face-at` does not parse or the photo does not read)."""
    from reenact.stages.align import FaceChoice

    face = FaceRequest(index=face_index, at=face_at, person=person, ref=person_ref)
    check_face_options(face)
    return FaceChoice(index=face_index or 0, at=face.point(), person=person, ref=person_ref)


def slice_window(
    path: Path, start: str | None, duration: str | None, *, fps: Fraction | None = None
) -> Window | None:
    """The frames of `path` (an image sequence: at `fps`) that `--start`/`--duration` ask for (None: the
    whole clip); a `UsageError` (exit 2) for a TIME that does not parse, an empty duration or a start past
    the end."""
    from reenact import video
    from reenact.timeline import parse_slice

    return video.slice_window(path, parse_slice(start, duration), fps=fps)


def everyone_from(people: str | None, *, face: FaceRequest) -> bool:
    """Whether `--people all` was given: a `UsageError` for another value, or beside an option of `face`
    that chooses one person."""
    if people is None:
        return False
    if people != "all":
        raise UsageError(f"--people takes all, got {people!r} (choose one person with --person)")
    given = face.given()
    if given:
        raise UsageError(f"--people all takes every person; {', '.join(given)} cannot go with it")
    return True
