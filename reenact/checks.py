"""Checks that run before any work: a run fails in seconds, not after an hour of alignment and inversion.

The order a command follows (`check_run` after the settings):

1. option values that need no file: the settings (preset, quality, `--set`, `--length` ...: a bad value is
   made a `UsageError` by `usage_value`), `--layers`, `--face-at`'s syntax and whether it comes with
   `--face-index`: a `UsageError` (the CLI exits 2);
2. the inputs: each exists and probes as a video or image (`reenact.video.probe`): a `ReenactError`;
3. option values measured against the inputs: `--face-at` inside the target's frame, `--driver-ref`
   within the driver's frames: a `UsageError`;
4. the weights: every missing file at once, with its size, licence and the command that gets it.

Pure functions over paths and settings, callable from the Python API too. Nothing here imports torch
at import time (the CLI's `--help` imports this module's callers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reenact.errors import ReenactError, UsageError

if TYPE_CHECKING:
    from reenact.config import Config
    from reenact.video import VideoInfo

T = TypeVar("T")


@dataclass(frozen=True)
class FaceRequest:
    """The face options as given: `--face-index` (None when not given), `--face-at` (text or None),
    `--person` (an id or None) and `--person-ref` (a photo or None)."""

    index: int | None = None
    at: str | None = None
    person: int | None = None
    ref: Path | None = None

    def point(self) -> tuple[float, float] | None:
        """`--face-at` as (x, y), or None."""
        return None if self.at is None else parse_face_at(self.at)

    def given(self) -> list[str]:
        """The options given, by name (e.g. `["--person"]`)."""
        options = (
            ("--face-index", self.index),
            ("--face-at", self.at),
            ("--person", self.person),
            ("--person-ref", self.ref),
        )
        return [option for option, value in options if value is not None]


def parse_face_at(text: str) -> tuple[float, float]:
    """`X,Y` (pixels of the upright frame) -> (x, y); a `UsageError` otherwise."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise UsageError(f"--face-at expects X,Y in pixels, e.g. 640,360; got {text!r}") from None


def check_face_options(face: FaceRequest) -> None:
    """At most one of `--face-index`, `--face-at`, `--person` and `--person-ref`; `--face-at` parses, the
    index and the id are >= 0, and the reference photo exists and reads as an image."""
    if face.index is not None and face.index < 0:
        raise UsageError(f"--face-index must be >= 0, got {face.index}")
    if face.person is not None and face.person < 0:
        raise UsageError(f"--person must be >= 0, got {face.person}")
    given = face.given()
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} each choose the person to follow: give one of them")
    face.point()
    if face.ref is not None:
        (info,) = check_inputs([face.ref])
        if info.frame_count != 1:
            raise UsageError(f"--person-ref {face.ref} is a clip; give a photo of the person's face")


def check_face_in_frame(face: FaceRequest, *, info: VideoInfo) -> None:
    """`--face-at` lies inside the upright frame of `info` (else no face could be there)."""
    point = face.point()
    if point is None:
        return
    x, y = point
    width, height = info.display_width, info.display_height
    if not (0 <= x < width and 0 <= y < height):
        raise UsageError(
            f"--face-at {face.at} lies outside the {width}x{height} frame of {info.path}; "
            f"give X in 0..{width - 1} and Y in 0..{height - 1}"
        )


def check_choice(value: str | None, *, option: str, choices: Sequence[str]) -> None:
    """An option that takes one of a few words (`--length`, `--device` ...), or is not given (None)."""
    if value is not None and value not in choices:
        raise UsageError(f"{option} must be one of {', '.join(choices)}; got {value!r}")


def check_runtime_options(*, device: str, precision: str = "auto") -> None:
    """`--device` and `--precision` name a choice (whether a CUDA GPU is there is found later)."""
    from reenact.device import DEVICE_CHOICES, PRECISION_CHOICES  # here: it imports torch

    check_choice(device, option="--device", choices=DEVICE_CHOICES)
    check_choice(precision, option="--precision", choices=PRECISION_CHOICES)


def check_layers(spec: str | None, *, option: str, num_ws: int | None = None) -> None:
    """A W+ layer spec (`reenact.edit.layer_mask`) that selects layers of a `num_ws`-layer generator. Before
    the generator is loaded (`num_ws` None) it is checked against the 18 layers of the 1024 px one: an
    index beyond them fits no generator; the loaded generator's own count is checked before any frame."""
    if spec is None:
        return
    from reenact.edit import REFERENCE_NUM_WS, layer_mask  # here: it imports torch

    try:
        layer_mask(spec, num_ws=REFERENCE_NUM_WS if num_ws is None else num_ws)
    except ReenactError as exc:
        raise UsageError(f"{option}: {exc}") from None


def check_driver_ref(ref: int | None, *, info: VideoInfo) -> None:
    """`--driver-ref` names one of the driver's frames."""
    if ref is not None and not 0 <= ref < info.frame_count:
        raise UsageError(
            f"--driver-ref {ref} is outside the driver {info.path}: its frames are 0..{info.frame_count - 1}"
        )


def check_inputs(paths: Sequence[Path], *, fps: Fraction | None = None) -> list[VideoInfo]:
    """Each input exists and probes as a video or image, or as an image sequence at `fps` (a `ReenactError`
    naming the file otherwise; a `UsageError` for a sequence without `fps`)."""
    from reenact import video

    return [video.probe(path, fps=fps) for path in paths]


def usage_value(build: Callable[[], T]) -> T:
    """What `build` makes from a command's options (its settings, a parsed `--direction`), its
    `ReenactError` (unknown preset or quality, a bad `--set` or option value) turned into a `UsageError`."""
    try:
        return build()
    except UsageError:
        raise
    except ReenactError as exc:
        raise UsageError(str(exc)) from None


# ------------------------------------------------------------------------------------------ weights


def needed_weights(generator: str, *, settings: Config) -> list[tuple[str, Callable[[], Path]]]:
    """Every weight file a run with `generator` and `settings` needs, as (registry name, its lookup): the
    generator's, the inversion's perceptual loss (VGG16), PTI's LPIPS (backbone and heads). A lookup
    returns the file or raises a `ReenactError` (the LPIPS heads may come from the `lpips` package)."""
    from reenact import weights
    from reenact.weights.registry import backbone_entry_name, lpips_heads_entry_name

    needed: list[tuple[str, Callable[[], Path]]] = []
    if generator in weights.all_entries():
        needed.append((generator, lambda: weights.weight_path(generator)))
    if settings.invert.perceptual_weight > 0:
        from reenact.losses import IMAGE2STYLEGAN_ARCH  # here: it imports torch

        vgg = IMAGE2STYLEGAN_ARCH
        needed.append((backbone_entry_name(vgg), lambda: weights.backbone_path(vgg)))
    if settings.pti.lpips_weight > 0:
        from reenact.backbones import LPIPS_ARCH  # here: it imports torch

        net = settings.pti.lpips_net
        arch = LPIPS_ARCH[net]
        needed.append((backbone_entry_name(arch), lambda: weights.backbone_path(arch)))
        needed.append((lpips_heads_entry_name(net), lambda: weights.lpips_heads_path(net)))
    return needed


def weight_line(name: str) -> str:
    """`FILE (NAME, SIZE, LICENCE): COMMAND`: one missing file and how to get it."""
    from reenact import weights
    from reenact.weights.registry import expected_size_text

    entry = weights.get_entry(name)
    size = expected_size_text(entry)
    command = (
        f"`reenact weights fetch {entry.name}`"
        if entry.urls
        else f"get it from {entry.page}, then `reenact weights import FILE --as {entry.name}`"
    )
    return f"{entry.filename} ({entry.name}, {size}, {entry.license}): {command}"


def check_generator_spec(generator: str) -> None:
    """`--generator` is random:*, a known weight name or an existing file."""
    from reenact import weights
    from reenact.gan.random import is_random_spec

    if not (is_random_spec(generator) or generator in weights.all_entries() or Path(generator).exists()):
        raise UsageError(
            f"--generator {generator!r} is neither a file nor a known weight name; see "
            "`reenact weights list`, or pass random:tiny for a random test generator"
        )


def check_weights(generator: str, *, settings: Config) -> None:
    """Every weight file the run needs is in the cache; else one error that lists every missing file with
    its size, licence and the command that gets it (and any other problem with a cached file)."""
    from reenact import weights
    from reenact.weights.registry import format_size

    missing: list[str] = []
    problems: list[str] = []
    for name, lookup in needed_weights(generator, settings=settings):
        try:
            lookup()
        except ReenactError as exc:
            if weights.is_cached(name):
                problems.append(str(exc))
            elif name not in missing:
                missing.append(name)
    if missing:
        entries = [weights.get_entry(name) for name in missing]
        approximate = "~" if any(entry.size is None for entry in entries) else ""
        total_bytes = sum(entry.size if entry.size is not None else entry.approx_size for entry in entries)
        total = f" ({approximate}{format_size(total_bytes)} in all)"
        plural = "s" if len(missing) > 1 else ""
        problems.insert(
            0,
            f"{len(missing)} weight file{plural} missing{total}: "
            + "; ".join(weight_line(name) for name in missing),
        )
    if problems:
        raise ReenactError("; ".join(problems))


# ------------------------------------------------------------------------------------------ a run


def check_run(
    inputs: Sequence[Path],
    *,
    generator: str | None,
    settings: Config,
    face: FaceRequest | None = None,
    layers: dict[str, str | None] | None = None,
    driver_ref: int | None = None,
    fps: Fraction | None = None,
) -> list[VideoInfo]:
    """Everything a run needs, checked in the module's order before any work; the inputs' probes.

    `inputs[0]` is the clip whose face is followed; with `driver_ref`, `inputs[1]` is the driver; `fps`:
    the frame rate of those that are image sequences (`--fps`).
    `layers`: option name -> layer spec (e.g. {"--layers": "3-7"}); `generator` None: no weights needed."""
    face = face or FaceRequest()
    check_face_options(face)
    for option, spec in (layers or {}).items():
        check_layers(spec, option=option)
    infos = check_inputs(inputs, fps=fps)
    if infos:
        check_face_in_frame(face, info=infos[0])
    if driver_ref is not None and len(infos) > 1:
        check_driver_ref(driver_ref, info=infos[1])
    if generator is not None:
        check_generator_spec(generator)
        check_weights(generator, settings=settings)
    return infos
