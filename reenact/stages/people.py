"""People stage: every person in a clip (issue #25), found in the faces its alignment detects.

Parts: the alignment's own detection parts (`AlignStage.ranges` and `compute`: every face of every frame),
kept where the clip's alignment keeps them (`parts_key`, the alignment of the largest face): when people
are found first, aligning the clip afterwards detects nothing again. (A finished alignment removes its
parts, so people found after it detect again.)
Merge: the faces linked into tracklets within shots and grouped into people (`faces.people.find_people`),
describing a few frames of each tracklet: the clip is decoded up to the last of them and only they are
converted, one at a time.

Stored: `people.json` (each person's id, frame count, runs of frames and clearest face), `people.npz` (the
tracklets of each person: frames and faces, so a person's face in every frame) and `detections.npz` (the
faces those index). A slice (`window`) is a clip of its own, frames numbered from 0, as for alignment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reenact import video
from reenact.config import BUILTIN_LANDMARK_BACKENDS, Config, FacesConfig
from reenact.device import Runtime
from reenact.errors import ReenactError
from reenact.faces.people import (
    Describer,
    DlibDescriber,
    Person,
    PixelDescriber,
    Tracklet,
    clearest_face,
    find_people,
)
from reenact.faces.track import FrameDetections, clip_shot_starts
from reenact.files import load_arrays, save_arrays
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.stages.align import LARGEST_FACE, AlignStage
from reenact.stages.base import STAGE_VERSION, FrameRange
from reenact.timeline import Window
from reenact.workspace import StageKey, Workspace, stage_key

PEOPLE_FORMAT = "reenact-people/1"
PEOPLE_JSON = "people.json"
PEOPLE_ARRAYS = "people.npz"
DETECTIONS_FILE = "detections.npz"

DescriptorName = Literal["dlib", "pixels"]


def descriptor_name(faces: FacesConfig, *, landmarks: str | None) -> DescriptorName:
    """The descriptor `faces.descriptor` asks for; `auto`: dlib's for faces a detector finds (dlib, fan),
    pixels for landmarks from a sidecar file (the synthetic world's faces, which dlib does not know)."""
    if faces.descriptor != "auto":
        return faces.descriptor
    source = landmarks or faces.landmarks
    return "dlib" if source in BUILTIN_LANDMARK_BACKENDS else "pixels"


def make_describer(name: DescriptorName, faces: FacesConfig) -> Describer:
    """The `Describer` called `name`."""
    if name == "pixels":
        return PixelDescriber()
    from reenact.metrics import IdentityEmbedder  # local: loads dlib's models

    return DlibDescriber(IdentityEmbedder(faces=faces))


@dataclass
class ClipPeople:
    """Every person in a clip, and the faces their tracklets index."""

    people: list[Person]
    detections: FrameDetections
    starts: list[int]
    """First frame of each shot."""

    @property
    def num_frames(self) -> int:
        return self.detections.num_frames

    def text(self) -> str:
        """`2 people in 264 frames (3 shots)`."""
        count, frames, shots = len(self.people), self.num_frames, len(self.starts)
        return (
            f"{count} {'person' if count == 1 else 'people'} in {frames} frame{'s' if frames != 1 else ''} "
            f"({shots} shot{'s' if shots != 1 else ''})"
        )

    def person_summary(self, person: Person) -> dict[str, Any]:
        """One person as JSON data: id, frame count, runs `[start, stop)`, first and last frame, tracklets
        and the clearest face (its frame, box (x0, y0, x1, y1) and detector score, null when unknown)."""
        face = clearest_face(person, self.detections)
        frames = person.frames  # [n]
        score = float(self.detections.scores[face])
        return {
            "id": person.id,
            "frames": len(frames),
            "ranges": [list(run) for run in person.ranges()],
            "first": int(frames[0]),
            "last": int(frames[-1]),
            "tracklets": len(person.tracklets),
            "clearest": {
                "frame": int(frames[np.flatnonzero(person.faces == face)[0]]),
                "box": [round(float(value), 2) for value in self.detections.boxes[face]],
                "score": round(score, 4) if np.isfinite(score) else None,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PEOPLE_FORMAT,
            "frames": self.num_frames,
            "shots": self.starts,
            "people": [self.person_summary(person) for person in self.people],
        }

    def save(self, directory: Path) -> None:
        tracklets = [(person.id, tracklet) for person in self.people for tracklet in person.tracklets]
        lengths = [len(tracklet) for _, tracklet in tracklets]
        save_arrays(
            directory / PEOPLE_ARRAYS,
            format=np.array(PEOPLE_FORMAT),
            tracklet_person=np.array([person for person, _ in tracklets], dtype=np.int64),  # [C]
            tracklet_shot=np.array([t.shot for _, t in tracklets], dtype=np.int64),  # [C]
            tracklet_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),  # [C + 1]
            frames=np.concatenate([t.frames for _, t in tracklets] or [np.zeros(0, np.int64)]),  # [N]
            faces=np.concatenate([t.faces for _, t in tracklets] or [np.zeros(0, np.int64)]),  # [N]
            starts=np.array(self.starts, dtype=np.int64),  # [S]
        )
        save_arrays(directory / DETECTIONS_FILE, **self.detections.arrays())
        (directory / PEOPLE_JSON).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ClipPeople:
        arrays = load_arrays(directory / PEOPLE_ARRAYS)
        if str(arrays["format"]) != PEOPLE_FORMAT:
            raise ReenactError(f"{directory / PEOPLE_ARRAYS} is not a {PEOPLE_FORMAT} file")
        offsets = arrays["tracklet_offsets"]
        owners: dict[int, list[Tracklet]] = {}
        for index, (person, shot) in enumerate(
            zip(arrays["tracklet_person"], arrays["tracklet_shot"], strict=True)
        ):
            rows = slice(int(offsets[index]), int(offsets[index + 1]))
            owners.setdefault(int(person), []).append(
                Tracklet(frames=arrays["frames"][rows], faces=arrays["faces"][rows], shot=int(shot))
            )
        return cls(
            people=[Person(id=person, tracklets=owners[person]) for person in sorted(owners)],
            detections=FrameDetections(**load_arrays(directory / DETECTIONS_FILE)),
            starts=[int(start) for start in arrays["starts"]],
        )


class PeopleStage:
    """Every person in a clip or its `window` (see the module docstring)."""

    name = "people"

    def __init__(
        self,
        workspace: Workspace,
        path: Path,
        *,
        settings: Config,
        landmarks: str | None,
        runtime: Runtime,
        progress: Progress = SILENT,
        shards: int = 1,
        window: Window | None = None,
    ) -> None:
        self.path = path
        self.window = window
        self.settings = settings
        self.landmarks = landmarks
        self.progress = progress
        self.align = AlignStage(
            workspace,
            path,
            settings=settings,
            landmarks=landmarks,
            resolution=settings.align.resolution,
            face=LARGEST_FACE,
            runtime=runtime,
            progress=progress,
            shards=shards,
            window=window,
        )
        """The alignment whose detection parts this stage shares (computes or finds)."""
        self.info = self.align.info
        self.descriptor = descriptor_name(settings.faces, landmarks=landmarks)
        self.key: StageKey = stage_key(
            "people",
            {
                "version": STAGE_VERSION,
                "format": PEOPLE_FORMAT,
                "align": self.align.key.digest,
                "descriptor": self.descriptor,
            },
        )
        self.parts_key: StageKey = self.align.parts_key or self.align.key
        """The alignment's parts, shared: whichever runs first detects the faces."""

    def ranges(self) -> list[FrameRange]:
        return self.align.ranges()

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """The alignment's detection part (every face in `frames`), as the alignment computes it."""
        return self.align.compute(frames, part)

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        detections = self.align.detections(parts)
        if not detections.counts.any():
            source = self.landmarks or self.settings.faces.landmarks
            raise ReenactError(
                f"no face found in {self.path} ({detections.num_frames} frames, {source} landmarks); "
                "check the input, or try --landmarks fan or a landmarks file"
            )
        starts = clip_shot_starts(detections, config=self.settings.faces)
        describer = make_describer(self.descriptor, self.settings.faces)

        def images(wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
            """The frames `wanted` [F], one at a time: the clip is decoded up to the last of them, and
            only they are converted to RGB."""
            reader = video.VideoReader(self.path, window=self.window)
            with self.progress.task("people", total=len(wanted), unit="frame") as task:
                for frame in reader.frames(upright=True, only=set(wanted.tolist())):
                    task.advance()
                    yield frame.index, frame.image

        people = find_people(detections, starts, images, describer=describer)
        result = ClipPeople(people=people, detections=detections, starts=starts)
        result.save(directory)
        window = None if self.window is None else [self.window.first, self.window.stop]
        return {
            "frames": result.num_frames,
            "people": len(people),
            "faces": len(detections.boxes),
            "descriptor": self.descriptor,
            "input": str(self.path),
            "window": window,
        }

    def load(self, directory: Path) -> ClipPeople:
        """The stored people; detection is over, so the alignment's landmark backend is let go."""
        self.align.release()
        return ClipPeople.load(directory)
