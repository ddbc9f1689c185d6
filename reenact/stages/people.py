"""People stage: every person in a clip (issue #25), found in every face of every frame; what every
alignment chooses its person from (`stages.align`).

Parts: the clip's face detection (`stages.align.DetectionParts`: every face of every frame), removed once
the people are stored (`detections.npz` keeps the faces). A slice's (`window`) are the whole clip's parts
that cover it, kept under the whole clip's key (`parts_key`), so a later run on the whole clip computes
only the rest; a slice of a clip whose people are stored has no parts: it reads their faces.
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
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reenact import video
from reenact.config import BUILTIN_LANDMARK_BACKENDS, Config, FacesConfig
from reenact.device import Runtime
from reenact.errors import ReenactError, UsageError
from reenact.faces.landmarks import make_backend
from reenact.faces.people import (
    DLIB_SAME_PERSON_DISTANCE,
    PIXEL_SAME_PERSON_DISTANCE,
    Describer,
    DlibDescriber,
    Person,
    PixelDescriber,
    Tracklet,
    clearest_face,
    find_people,
    main_person,
    person_at,
    person_by_size,
    reference_distances,
)
from reenact.faces.track import FrameDetections, clip_shot_starts
from reenact.files import load_arrays, save_arrays
from reenact.progress import SILENT, Progress
from reenact.renders import Renders
from reenact.stages.align import DetectionParts, FaceChoice
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


def one_person(people: list[Person]) -> list[Person]:
    """All of `people` as one person (id 0): what a landmarks file with at most one face per frame names,
    as it names the face to follow in every shot. (Pixels tell faces apart poorly across a cut that
    moves a face far: the synthetic world's own face would become two people.)"""
    if len(people) <= 1:
        return people
    tracklets = sorted((t for person in people for t in person.tracklets), key=lambda t: t.start)
    descriptors = [person.descriptors for person in people if person.descriptors.size]
    return [
        Person(
            id=0,
            tracklets=tracklets,
            descriptors=np.concatenate(descriptors) if descriptors else people[0].descriptors,
        )
    ]


def same_person_distance(name: DescriptorName) -> float:
    """The descriptor `name`'s same-person threshold (`Describer.threshold`), without loading a model."""
    return PIXEL_SAME_PERSON_DISTANCE if name == "pixels" else DLIB_SAME_PERSON_DISTANCE


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

    @property
    def ids(self) -> list[int]:
        return [person.id for person in self.people]

    def person(self, id: int) -> Person:
        """The person with id `id`."""
        for person in self.people:
            if person.id == id:
                return person
        raise ReenactError(f"internal error: no person {id} (people {self.ids})")

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
        dim = max(
            (person.descriptors.shape[1] for person in self.people if person.descriptors.size), default=0
        )
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
            descriptors=np.concatenate(
                [person.descriptors.reshape(len(person.descriptors), dim) for person in self.people]
                or [np.zeros((0, dim))]
            ).astype(np.float64),  # [M, D]
            descriptor_person=np.concatenate(
                [np.full(len(person.descriptors), person.id) for person in self.people] or [np.zeros(0)]
            ).astype(np.int64),  # [M]
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
        descriptors, owner = arrays["descriptors"], arrays["descriptor_person"]
        return cls(
            people=[
                Person(id=person, tracklets=owners[person], descriptors=descriptors[owner == person])
                for person in sorted(owners)
            ],
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
        fps: Fraction | None = None,
    ) -> None:
        """`fps`: the clip's frame rate when it is an image sequence (`video.probe`)."""
        self.path = path
        self.fps = fps
        self.window = window
        self.settings = settings
        self.landmarks = landmarks
        self.progress = progress
        self.detection = DetectionParts(
            workspace,
            path,
            settings=settings,
            landmarks=landmarks,
            runtime=runtime,
            progress=progress,
            shards=shards,
            window=window,
            fps=fps,
        )
        self.info = self.detection.info
        self.descriptor = descriptor_name(settings.faces, landmarks=landmarks)
        settings_of = {
            "version": STAGE_VERSION,
            "format": PEOPLE_FORMAT,
            **self.detection.settings_of,
            "descriptor": self.descriptor,
        }
        whole = stage_key("people", settings_of)
        self.workspace = workspace
        self.key: StageKey = whole
        self.parts_key: StageKey | None = None
        """The whole clip's key, whose parts a slice's people compute and use (None: its own)."""
        if window is not None:
            self.key = stage_key("people", {**settings_of, "window": [window.first, window.stop]})
            self.parts_key = whole

    def whole_clip_done(self) -> bool:
        """A slice's people, when the whole clip's are found: they hold its every face already."""
        return self.parts_key is not None and self.workspace.done(self.parts_key)

    def ranges(self) -> list[FrameRange]:
        """The detection parts; none for a slice of a clip whose people are found (its faces are theirs)."""
        return [] if self.whole_clip_done() else self.detection.ranges()

    def compute(self, frames: FrameRange, part: Path) -> Renders:
        """Every face in `frames` (`DetectionParts.compute`)."""
        return self.detection.compute(frames, part)

    def merge(self, parts: list[Path], directory: Path) -> dict[str, Any]:
        if parts or self.parts_key is None or self.detection.window is None:
            detections = self.detection.detections(parts)
        else:  # a slice of a clip whose people are found
            window = self.detection.window
            whole = FrameDetections(**load_arrays(self.workspace.path(self.parts_key) / DETECTIONS_FILE))
            detections = whole.cut(window.first, window.stop)
        if not detections.counts.any():
            source = self.landmarks or self.settings.faces.landmarks
            raise NoFaceError(
                f"no face found in {self.path} ({detections.num_frames} frames, {source} landmarks); "
                "check the input, or try --landmarks fan or a landmarks file"
            )
        starts = clip_shot_starts(detections, config=self.settings.faces)
        describer = make_describer(self.descriptor, self.settings.faces)

        def images(wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
            """The frames `wanted` [F], one at a time: the clip is decoded up to the last of them, and
            only they are converted to RGB."""
            reader = video.VideoReader(self.path, fps=self.fps, window=self.window)
            with self.progress.task("people", total=len(wanted), unit="frame") as task:
                for frame in reader.frames(upright=True, only=set(wanted.tolist())):
                    task.advance()
                    yield frame.index, frame.image

        people = find_people(detections, starts, images, describer=describer)
        source = self.landmarks or self.settings.faces.landmarks
        if source not in BUILTIN_LANDMARK_BACKENDS and int(detections.counts.max(initial=0)) <= 1:
            people = one_person(people)
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
        self.detection.release()
        return ClipPeople.load(directory)


# ------------------------------------------------------------------------------------------- choosing


def reference_descriptor(
    photo: Path, *, settings: Config, landmarks: str | None, descriptor: DescriptorName, runtime: Runtime
) -> np.ndarray:
    """The descriptor [D] of the largest face in `photo` (`--person-ref`), found by the clip's landmark
    backend (dlib when the clip's landmarks come from a file, which knows nothing of the photo)."""
    source = landmarks or settings.faces.landmarks
    backend = make_backend(
        settings.faces,
        landmarks=source if source in BUILTIN_LANDMARK_BACKENDS else "dlib",
        device=str(runtime.device),
    )
    image = next(iter(video.VideoReader(photo).frames(upright=True))).image
    faces = backend.detect(image, frame_index=0)
    if not faces:
        raise UsageError(f"--person-ref: no face found in {photo}; give a photo with the person's face")
    largest = max(faces, key=lambda face: face.size)
    return np.asarray(make_describer(descriptor, settings.faces).describe(image, largest), np.float64)


class NoFaceError(ReenactError):
    """A clip in which the people stage finds no face at all (evaluate then scores nobody)."""


def choose_person(
    people: ClipPeople, face: FaceChoice, *, path: Path, reference: np.ndarray | None, threshold: float
) -> int:
    """The id of the person `face` asks for in the clip at `path` (`stages.align.FaceChoice`); `reference`:
    the descriptor of `face.ref`'s face, matched under `threshold`. A `UsageError` when nobody fits."""
    known = ", ".join(map(str, people.ids))
    if face.person is not None:
        if face.person not in people.ids:
            raise UsageError(
                f"no person {face.person} in {path}; its people are {known} (see reenact people)"
            )
        return face.person
    if face.ref is not None:
        if reference is None:
            raise ReenactError("internal error: --person-ref without its descriptor")
        distances = reference_distances(people.people, reference)  # [P]
        nearest = int(np.argmin(distances))
        if not distances[nearest] < threshold:
            raise UsageError(
                f"--person-ref {face.ref}: nobody in {path} matches its face; the nearest is person "
                f"{people.people[nearest].id} at distance {distances[nearest]:.3f}, above the threshold "
                f"{threshold:g}"
            )
        return people.people[nearest].id
    if face.main:
        chosen = main_person(people.people)
        if chosen is None:
            raise UsageError(f"found no face in {path}")
        return chosen
    if face.at is not None:
        chosen = person_at(people.people, people.detections, point=face.at)
    else:
        chosen = person_by_size(people.people, people.detections, index=face.index)
    if chosen is None:
        most = int(people.detections.counts.max(initial=0))
        raise UsageError(
            f"asked for face {face.index} (--face-index counts from 0, the largest first); found "
            f"{most} face{'s' if most != 1 else ''} in {path} "
            f"(at most, in frame {int(people.detections.counts.argmax())})"
        )
    return chosen
