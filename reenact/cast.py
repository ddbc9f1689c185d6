"""A cast: several people of one scene, each reenacted by their own driver in one run (issue #25).

A cast file is TOML with one `[[person]]` table per cast member:

    [[person]]
    id = 0                      # the scene's person (as `reenact people SCENE` lists them), or
    # ref = "anna.jpg"          #   the person nearest the face in this photo
    driver = "anna_talks.mp4"   # the driver clip (paths are relative to the cast file)
    driver_id = 1               # optional: the driver's person (default: its largest face in frame 0)
    # driver_ref = "x.jpg"      #   or the person nearest this photo's face
    driver_landmarks = "a.npz"  # optional: the driver's landmarks file
    strength = 0.8              # optional: edit.strength
    layers = "4-7"              # optional: edit.layers
    driver_frame = 12           # optional: the driver's neutral frame (default: found)

`read_cast` checks the file in one line per problem, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from reenact.errors import UsageError
from reenact.stages.align import MAIN_PERSON, FaceChoice

CAST_KEYS = {
    "id": int,
    "ref": str,
    "driver": str,
    "driver_id": int,
    "driver_ref": str,
    "driver_landmarks": str,
    "strength": float,
    "layers": str,
    "driver_frame": int,
}
"""What a `[[person]]` table may hold, with the type each takes."""
PATH_KEYS = ("ref", "driver", "driver_ref", "driver_landmarks")


@dataclass(frozen=True)
class CastMember:
    """One person of the scene and what drives them."""

    face: FaceChoice
    """The scene's person (`person` or `ref`)."""
    driver: Path
    driver_face: FaceChoice = MAIN_PERSON
    """The driver's person; by default its main person (in most frames)."""
    driver_landmarks: str | None = None
    strength: float | None = None
    """None: the run's `edit.strength`."""
    layers: str | None = None
    """None: the run's `edit.layers`."""
    driver_frame: int | None = None
    """The driver's neutral frame; None: found (`edit.neutral_frame`)."""

    def describe(self) -> str:
        """`person 1` or `the person in anna.jpg`, for messages."""
        if self.face.person is not None:
            return f"person {self.face.person}"
        return f"the person in {self.face.ref}"


def read_cast(path: Path) -> list[CastMember]:
    """The cast in the TOML file `path` (see the module docstring); a `UsageError` naming the file and
    the table for anything wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read the cast file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"person"})
    if unknown:
        raise UsageError(
            f"{path}: unknown table(s) {', '.join(unknown)}; give one [[person]] per cast member"
        )
    return cast_from_tables(data.get("person", []), folder=path.parent, source=str(path))


def cast_from_tables(tables: Any, *, folder: Path, source: str) -> list[CastMember]:
    """The cast in `tables`, the `[[person]]` tables of a cast file (or a batch job's `[[job.person]]`),
    their paths relative to `folder`; a `UsageError` naming `source` and the table for anything wrong."""
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{source}: no [[person]] tables; give one per cast member")
    return [_member(index + 1, table, folder=folder, source=source) for index, table in enumerate(tables)]


def _member(number: int, table: Any, *, folder: Path, source: str) -> CastMember:
    where = f"{source}, person {number}"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: must be a [[person]] table, got {table!r}")
    unknown = sorted(set(table) - set(CAST_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(CAST_KEYS)})")
    values: dict[str, Any] = {}
    for name, kind in CAST_KEYS.items():
        if name not in table:
            continue
        value = table[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UsageError(f"{where}: {name} must be {kind.__name__}, got {value!r}")
        values[name] = folder / value if name in PATH_KEYS else value
    if "driver" not in values:
        raise UsageError(f'{where}: no driver; give driver = "clip.mp4"')
    if ("id" in values) == ("ref" in values):
        raise UsageError(f"{where}: give the scene's person as one of id or ref")
    if "driver_id" in values and "driver_ref" in values:
        raise UsageError(f"{where}: give the driver's person as one of driver_id or driver_ref")
    for name in ("id", "driver_id", "driver_frame"):
        if values.get(name, 0) < 0:
            raise UsageError(f"{where}: {name} must be >= 0, got {values[name]}")
    landmarks = values.get("driver_landmarks")
    return CastMember(
        face=FaceChoice(person=values.get("id"), ref=values.get("ref")),
        driver=values["driver"],
        driver_face=FaceChoice(
            person=values.get("driver_id"),
            ref=values.get("driver_ref"),
            main="driver_id" not in values and "driver_ref" not in values,
        ),
        driver_landmarks=None if landmarks is None else str(landmarks),
        strength=values.get("strength"),
        layers=values.get("layers"),
        driver_frame=values.get("driver_frame"),
    )
