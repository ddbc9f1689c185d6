"""68-point face landmarks behind one interface: dlib (offline), face-alignment FAN, or a sidecar file.

Every backend has `detect(image, *, frame_index) -> list[FaceDetection]` for an RGB uint8 frame
`[H, W, 3]`. Points are in pixels of that frame, `(0, 0)` the centre of the top-left pixel, in the
iBUG 300-W 68-point order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).

Sidecar landmark files (`--landmarks PATH`) let users bring points from any tracker and let tests feed
exact ones. Two equivalent formats, frames indexed from 0 in decoding order (upright frames):

JSON (`.json`)::

    {"format": "reenact-landmarks/1",
     "frames": [{"index": 0, "faces": [[[x, y], ... 68 points ...], ... more faces ...]},
                {"index": 1, "faces": []}, ...]}

  A frame that is absent or has `"faces": []` has no face.

NPZ (`.npz`): an array `points` of shape `[T, F, 68, 2]` (float), `F` the most faces in any frame,
  a face slot that is all NaN meaning "no face"; optional `format` = `"reenact-landmarks/1"`.

A face's points are all finite or all NaN; its box is the bounding box of its points.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from reenact.config import BUILTIN_LANDMARK_BACKENDS, FacesConfig
from reenact.errors import ReenactError

NUM_LANDMARKS = 68
LANDMARKS_FORMAT = "reenact-landmarks/1"
FACE_MODELS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
FAN_DEVICE_AUTO = "auto"
OUTSIDE_FRAME_LIMIT = 1.0
"""A sidecar face with a point farther than this many frame sizes outside its frame counts as missing."""
MIN_FACE_EXTENT_PX = 1.0
"""A sidecar face whose points span less than this in x or y (a degenerate face) counts as missing."""
"""A sidecar face with a point farther than this many frame sizes outside its frame counts as missing."""
"""`faces.fan_device` value meaning: the run's device."""
FAN_WEIGHT_FILES = {"landmarks": "2DFAN4-11f355bf06.pth.tar", "sfd": "s3fd-619a316812.pth"}
"""Files face-alignment loads from `<torch hub dir>/checkpoints` (2D landmarks, S3FD detector)."""


@dataclass(frozen=True)
class FaceDetection:
    """One face in one frame: box `(x0, y0, x1, y1)`, 68 points `[68, 2]` (pixels), detector score."""

    box: np.ndarray  # [4] float64
    points: np.ndarray  # [68, 2] float64
    score: float

    @property
    def size(self) -> float:
        """Geometric mean of the box width and height (pixels)."""
        width, height = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(width, 0.0) * max(height, 0.0)))

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


class LandmarkBackend(Protocol):
    """Anything that finds faces and their 68 points in an RGB uint8 frame `[H, W, 3]`."""

    name: str

    def detect(self, image: np.ndarray, *, frame_index: int = 0) -> list[FaceDetection]: ...


def detection_from_points(points: np.ndarray, *, score: float = 1.0) -> FaceDetection:
    """A detection whose box is the bounding box of its 68 points."""
    points = np.asarray(points, dtype=np.float64).reshape(NUM_LANDMARKS, 2)
    box = np.concatenate([points.min(axis=0), points.max(axis=0)])
    return FaceDetection(box=box, points=points, score=score)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")


def _detection_scale(shape: Sequence[int], max_side: int) -> float:
    """Factor that shrinks a frame so its longest side is at most `max_side` (1.0 when 0 or smaller)."""
    longest = max(shape[0], shape[1])
    if max_side <= 0 or longest <= max_side:
        return 1.0
    return max_side / longest


# ---------------------------------------------------------------------------------------------- dlib


def face_models_file(name: str) -> Path:
    """Path of a model file shipped by `face_recognition_models`, found without importing it.

    Importing the package pulls in `pkg_resources`; its spec already tells where its files are.
    """
    spec = importlib.util.find_spec(FACE_MODELS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "models" / name
        if candidate.is_file():
            return candidate
    raise ReenactError(
        f"dlib model file {name} not found; install it with `pip install {FACE_MODELS_PACKAGE}`"
    )


class DlibLandmarks:
    """dlib face detector (HOG or CNN mmod) on a downscaled copy, 68-point shape predictor at full size."""

    name = "dlib"

    def __init__(
        self,
        *,
        detector: str = "hog",
        detect_max_side: int = 640,
        upsample: int = 0,
        min_score: float = 0.0,
        shape_predictor_path: Path | None = None,
    ) -> None:
        import dlib  # local: keeps `import reenact.faces` light

        self.detector_kind = detector
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self.min_score = min_score
        if detector == "hog":
            self._detector: Any = dlib.get_frontal_face_detector()
        elif detector == "cnn":
            self._detector = dlib.cnn_face_detection_model_v1(str(face_models_file(CNN_DETECTOR_FILE)))
        else:
            raise ReenactError(f"unknown dlib detector {detector!r}; use hog or cnn")
        predictor_path = shape_predictor_path or face_models_file(SHAPE_PREDICTOR_FILE)
        self._predictor = dlib.shape_predictor(str(predictor_path))
        self._rectangle = dlib.rectangle

    def _boxes(self, small: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Boxes `(x0, y0, x1, y1)` and scores found in the detection copy."""
        found: list[tuple[np.ndarray, float]] = []
        if self.detector_kind == "hog":
            rects, scores, _ = self._detector.run(small, self.upsample, self.min_score)
            for rect, score in zip(rects, scores, strict=True):
                found.append((np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float), score))
        else:
            for item in self._detector(small, self.upsample):
                if item.confidence >= self.min_score:
                    rect = item.rect
                    box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float)
                    found.append((box, float(item.confidence)))
        return found

    def detect(self, image: np.ndarray, *, frame_index: int = 0) -> list[FaceDetection]:
        _check_image(image)
        scale = _detection_scale(image.shape, self.detect_max_side)
        small = (
            image
            if scale == 1.0
            else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        detections = []
        for small_box, score in self._boxes(np.ascontiguousarray(small)):
            box = small_box / scale  # back to full-frame pixels
            rect = self._rectangle(*(round(v) for v in box))
            shape = self._predictor(image, rect)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(NUM_LANDMARKS)], float)
            detections.append(FaceDetection(box=box, points=points, score=float(score)))
        return detections


# ----------------------------------------------------------------------------------------------- FAN


def fan_checkpoint_dir() -> Path:
    """Where face-alignment looks for (and downloads) its weights: `<torch hub dir>/checkpoints`."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_fan_weights(face_detector: str) -> list[str]:
    """Names of the FAN weight files not yet in the torch hub checkpoints dir."""
    needed = [FAN_WEIGHT_FILES["landmarks"]]
    if face_detector == "sfd":
        needed.append(FAN_WEIGHT_FILES["sfd"])
    folder = fan_checkpoint_dir()
    return [name for name in needed if not (folder / name).is_file()]


def load_fan_model(*, device: str = "cpu", face_detector: str = "sfd") -> Any:
    """A `face_alignment.FaceAlignment` for 2D points; `ReenactError` naming any missing weight files."""
    import inspect

    try:
        import face_alignment
    except ImportError as exc:
        raise ReenactError(
            f"the fan backend needs the face-alignment package ({exc}); install it or use --landmarks dlib"
        ) from None

    missing = missing_fan_weights(face_detector)
    kwargs: dict[str, Any] = {"device": device, "face_detector": face_detector, "flip_input": False}
    if "compile" in inspect.signature(face_alignment.FaceAlignment.__init__).parameters:
        kwargs["compile"] = device != "cpu"
    try:
        return face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, **kwargs)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        if not missing:
            raise
        raise ReenactError(
            f"face-alignment weights missing and not downloadable ({type(exc).__name__}): put "
            f"{', '.join(missing)} into {fan_checkpoint_dir()} (the torch hub checkpoints dir), "
            "or use --landmarks dlib"
        ) from None


class FanLandmarks:
    """face-alignment's FAN (2DFAN4) with its own face detector; `model` may be any object with the
    same `get_landmarks_from_image` interface (tests inject a stand-in)."""

    name = "fan"

    def __init__(
        self,
        *,
        device: str = "cpu",
        face_detector: str = "sfd",
        min_score: float = 0.0,
        model: Any | None = None,
    ) -> None:
        self.min_score = min_score
        self.model = (
            model if model is not None else load_fan_model(device=device, face_detector=face_detector)
        )

    def detect(self, image: np.ndarray, *, frame_index: int = 0) -> list[FaceDetection]:
        _check_image(image)
        with warnings.catch_warnings():  # face-alignment warns on every faceless frame
            warnings.filterwarnings("ignore", message="No faces were detected")
            points_list, _, boxes = self.model.get_landmarks_from_image(
                image, return_bboxes=True, return_landmark_score=True
            )
        if points_list is None:
            return []
        detections = []
        for points, box in zip(points_list, boxes, strict=True):
            box = np.asarray(box, dtype=np.float64).reshape(-1)  # [x0, y0, x1, y1, (score)]
            score = float(box[4]) if box.size > 4 else 1.0
            if score < self.min_score:
                continue
            points = np.asarray(points, dtype=np.float64)[:, :2]  # [68, 2]
            detections.append(FaceDetection(box=box[:4].copy(), points=points, score=score))
        return detections


# ---------------------------------------------------------------------------------------------- file


def _validate_points(points: np.ndarray, *, source: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 4 or points.shape[2:] != (NUM_LANDMARKS, 2):
        raise ReenactError(f"{source}: landmarks must have shape [T, F, 68, 2], got {list(points.shape)}")
    finite = np.isfinite(points).all(axis=(2, 3))  # [T, F]
    empty = np.isnan(points).all(axis=(2, 3))
    if not np.all(finite | empty):
        raise ReenactError(f"{source}: each face must have 68 finite points or be all NaN (no face)")
    return points


def write_landmarks(path: Path | str, points: np.ndarray) -> Path:
    """Write per-frame faces `[T, F, 68, 2]` (all-NaN face = none) as a `.json` or `.npz` sidecar."""
    path = Path(path)
    points = _validate_points(points, source=str(path))
    suffix = path.suffix.lower()
    if suffix == ".npz":
        np.savez(path, points=points, format=np.array(LANDMARKS_FORMAT))
    elif suffix == ".json":
        frames = []
        for index, faces in enumerate(points):
            present = [face.tolist() for face in faces if np.isfinite(face).all()]
            frames.append({"index": index, "faces": present})
        path.write_text(json.dumps({"format": LANDMARKS_FORMAT, "frames": frames}))
    else:
        raise ReenactError(f"landmarks file must end in .json or .npz: {path}")
    return path


def read_landmarks(path: Path | str, *, max_frames: int | None = None) -> np.ndarray:
    """Read a `.json` or `.npz` sidecar into `[T, F, 68, 2]` (all-NaN face = none).

    With `max_frames` (the video's length) frames from that index on are dropped, so a stray huge index
    cannot make the array huge.
    """
    return _read_landmarks(Path(path), max_frames=max_frames)[0]


def _read_landmarks(path: Path, *, max_frames: int | None) -> tuple[np.ndarray, int]:
    """The points of `read_landmarks` and how many frame entries lay at or past `max_frames`."""
    if not path.is_file():
        raise ReenactError(f"landmarks file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if "points" not in data:
                    raise ReenactError(
                        f"{path}: no `points` array; see reenact.faces.landmarks for the format"
                    )
                points = data["points"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # garbage, pickled objects
            raise ReenactError(f"{path} is not a landmarks .npz of plain arrays ({exc})") from None
        dropped = max(0, len(points) - max_frames) if max_frames is not None else 0
        return _validate_points(points[: len(points) - dropped], source=str(path)), dropped
    if suffix != ".json":
        raise ReenactError(f"landmarks file must end in .json or .npz: {path}")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReenactError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ReenactError(f"{path} nests its JSON too deeply to be a landmarks file") from None
    if not isinstance(document, dict) or document.get("format") != LANDMARKS_FORMAT:
        raise ReenactError(f'{path}: expected "format": "{LANDMARKS_FORMAT}"')
    frames = document.get("frames", [])
    try:
        per_frame = {int(frame["index"]): np.asarray(frame["faces"], dtype=np.float64) for frame in frames}
    except (KeyError, TypeError, ValueError) as exc:
        raise ReenactError(f"{path}: bad frame entry ({exc}); each needs an index and a faces list") from None
    if any(index < 0 for index in per_frame):
        raise ReenactError(f"{path}: frame indices must be >= 0")
    dropped = 0
    if max_frames is not None:
        kept = {index: faces for index, faces in per_frame.items() if index < max_frames}
        dropped, per_frame = len(per_frame) - len(kept), kept
    num_frames = max(per_frame, default=-1) + 1
    num_faces = max((faces.shape[0] for faces in per_frame.values() if faces.size), default=1)
    points = np.full((num_frames, num_faces, NUM_LANDMARKS, 2), np.nan)
    for index, faces in per_frame.items():
        if faces.size == 0:
            continue
        if faces.ndim != 3 or faces.shape[1:] != (NUM_LANDMARKS, 2):
            raise ReenactError(f"{path}: frame {index} faces must be lists of 68 [x, y] points")
        points[index, : faces.shape[0]] = faces
    return _validate_points(points, source=str(path)), dropped


class FileLandmarks:
    """Landmarks read from a sidecar file; frames past its end have no face.

    Entries past the video's `num_frames` are ignored, and a face with a point farther than
    `OUTSIDE_FRAME_LIMIT` frame sizes outside the frame is treated as missing: a sidecar cannot make a
    run allocate or warp without bound. `warnings` says what was ignored.
    """

    name = "file"

    def __init__(self, path: Path | str, *, num_frames: int | None = None) -> None:
        self.path = Path(path)
        self.points, dropped = _read_landmarks(self.path, max_frames=num_frames)  # [T, F, 68, 2]
        self.outside = 0
        """Faces ignored so far for lying far outside their frame."""
        self.warnings: list[str] = []
        if dropped:
            self.warnings.append(
                f"{self.path}: {dropped} frame entries lie past the video's {num_frames} frames; ignored"
            )

    def detect(self, image: np.ndarray, *, frame_index: int = 0) -> list[FaceDetection]:
        if frame_index >= len(self.points):
            return []
        height, width = image.shape[:2]
        low = -OUTSIDE_FRAME_LIMIT * np.array([width, height])
        high = (1 + OUTSIDE_FRAME_LIMIT) * np.array([width, height])
        faces = []
        for face in self.points[frame_index]:
            if not np.isfinite(face).all():
                continue
            if (face < low).any() or (face > high).any() or np.ptp(face, axis=0).min() < MIN_FACE_EXTENT_PX:
                self.outside += 1  # far outside the frame, or all points (nearly) on one line or spot
                continue
            faces.append(detection_from_points(face))
        return faces


def make_backend(
    config: FacesConfig, *, landmarks: str | None = None, device: str = "cpu", num_frames: int | None = None
) -> LandmarkBackend:
    """The backend `landmarks` names (`dlib`, `fan` or a sidecar path), else `config.landmarks`.

    FAN runs on `config.fan_device`, or on `device` (the run's) when that is `auto`.
    """
    choice = landmarks or config.landmarks
    if choice == "dlib":
        return DlibLandmarks(
            detector=config.dlib_detector,
            detect_max_side=config.detect_max_side,
            upsample=config.upsample,
            min_score=config.min_score,
        )
    if choice == "fan":
        return FanLandmarks(
            device=device if config.fan_device == FAN_DEVICE_AUTO else config.fan_device,
            face_detector=config.fan_detector,
            min_score=config.min_score,
        )
    if choice in BUILTIN_LANDMARK_BACKENDS:  # pragma: no cover - a new name without a branch
        raise ReenactError(f"landmark backend {choice!r} is not wired up")
    return FileLandmarks(choice, num_frames=num_frames)
