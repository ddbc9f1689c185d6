"""How good is a reenacted clip: identity consistency (TL-ID, TG-ID), landmark jitter, PSNR and LPIPS.

TL-ID and TG-ID follow STIT (Tzaban et al., "Stitch it in Time", SIGGRAPH Asia 2022, sec. 5):

* TL-ID (local): mean identity similarity of adjacent frame pairs `(t, t+1)` of the output clip,
  divided by the same mean on the source (reference) clip.
* TG-ID (global): mean identity similarity of all frame pairs `(s, t), s < t` of the output clip,
  divided by the same mean on the source clip.

So a clip scored against itself gets exactly 1.0, and values below 1 mean the output's identity is less
consistent over time than the source's. STIT embeds faces with ArcFace; here the identity embedding is
dlib's 128-d face descriptor (`dlib_face_recognition_resnet_model_v1.dat` of `face_recognition_models`,
on the 68-point shape of the largest face dlib finds) and the similarity is the *cosine similarity* of
two descriptors, as STIT uses for ArcFace. dlib descriptors of one person are close to parallel, so
the scale is compressed (measured on the test clips: frames of one person 0.96-0.998, two different
people ~0.8); TL-ID/TG-ID a few hundredths below 1 are already a visible change.

Frames without a face have no embedding (a NaN row): pairs that touch one are skipped (TL keeps only
`(t, t+1)` with both faces found; it never bridges a gap) and the frames are counted in the report.
TG on long clips: all pairs among at most `tg_max_frames` frames with a face, taken evenly spaced
(deterministic), so its cost is bounded.

Landmark jitter: the FFHQ crop quad of the output's 68 points per frame, then the RMS second temporal
difference of its corners in quad sides (`reenact.faces.align.quad_jitter`), within shots of the
reference (scene cuts found by colour histogram). Raw dlib points are noisy, so read it against the
reference's own figure, reported alongside (an output that jitters more than its source scores higher).

PSNR and LPIPS compare output frame t with reference frame t (decoding order; counts and sizes must
match). PSNR is over all RGB uint8 values (peak 255); identical frames are reported as `psnr_max_db`
(JSON has no infinity). LPIPS (v0.1, `reenact.losses.LPIPS`) needs the real ImageNet backbone weights
from the weight cache (`reenact weights import`); when they are missing LPIPS is `null` with a note,
never computed with random weights.

Per person (`person_figures`): given the reference's people (`reenact.stages.people.ClipPeople`, what
`reenact people` finds: every face of every frame, tracked through cuts), each person's faces in the
reference are paired with the output's faces of the same frame by position (`match_faces`: the people
tracker's link cost of box overlap and landmark distance, with its gates, as the output keeps the
reference's positions). For each person: frame count, TL-ID / TG-ID and identity similarity to the
reference's same frame on their faces alone, landmark jitter of their own track (NaN where they are
absent, so it never runs across two people; within shots, and split where their tracklets start) and a
face PSNR over their face box in the reference's frame.

Against the driver (`driver_figures`, when the driver clip is given): output frame t is paired with
driver frame t (a transfer uses driver frame t for output frame t while the driver lasts, whatever its
length policy; later frames are not compared). Identity kept: the share of frames whose output face is
nearer (Euclidean distance of dlib descriptors, as dlib's own 0.6 same-person rule measures) the
reference's face of the same frame than the driver's. Expression followed: the Pearson correlation over
frames of the output's mouth opening (inner lips apart, in eye-distance units) and eye opening (eye
aspect ratio) with the driver's; beside each, the reference's own correlation with the driver, what
doing nothing scores.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from reenact.backbones import LPIPS_ARCH, LpipsNet
from reenact.config import FacesConfig, MetricsConfig
from reenact.errors import ReenactError
from reenact.faces.align import ffhq_quad, quad_jitter
from reenact.faces.landmarks import (
    NUM_LANDMARKS,
    DlibLandmarks,
    FaceDetection,
    LandmarkBackend,
    face_models_file,
)
from reenact.faces.people import GATED_COST, MAX_MOTION, MAX_SCALE_CHANGE, MIN_IOU, detection_at, link_costs
from reenact.faces.track import SceneCutDetector
from reenact.imaging import image_from_uint8, uint8_psnr
from reenact.losses import LPIPS
from reenact.plots import Axis, Series, two_axis_plot, write_plot_png
from reenact.progress import SILENT, Progress
from reenact.sampling import upscaled_for_check
from reenact.timeline import Window
from reenact.video import VideoReader, probe

if TYPE_CHECKING:
    from reenact.stages.people import ClipPeople

DESCRIPTOR_DIM = 128
FACE_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DESCRIPTOR_PADDING = 0.25
"""dlib's default margin around the aligned 150x150 face chip, as a fraction of the face."""
DESCRIPTOR_JITTERS = 0
"""dlib's random re-crops per descriptor; 0 keeps descriptors deterministic."""
REPORT_FORMAT = "reenact-evaluation/1"
SIMILARITY_NOTE = "cosine similarity of dlib 128-d face descriptors (STIT uses ArcFace cosine)"


# ----------------------------------------------------------------------------------------------------
# Identity consistency (pure)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (NaN rows stay NaN)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.where(norms > 0, norms, 1.0)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors; NaN when either is missing (NaN) or zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if not np.isfinite(norm) or norm == 0:
        return float("nan")
    return float(np.dot(a, b) / norm)


def evenly_spaced(indices: np.ndarray, max_count: int) -> np.ndarray:
    """At most `max_count` of `indices`, evenly spaced and always including the first and last."""
    if len(indices) <= max_count:
        return indices
    picks = np.unique(np.round(np.linspace(0, len(indices) - 1, max_count)).astype(np.int64))
    return indices[picks]


def identity_similarity_stats(embeddings: np.ndarray, *, tg_max_frames: int = 1000) -> tuple[float, float]:
    """Mean similarity of adjacent frame pairs (TL) and of all frame pairs (TG) of one clip.

    `embeddings` [N, D], a NaN row for a frame without a face. TL averages cos(e_t, e_t+1) over the
    `t` where both rows are present; TG averages cos(e_s, e_t), s < t, over all pairs among at most
    `tg_max_frames` evenly spaced present rows. Each is NaN when it has no pair.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"expected embeddings [N, D], got {embeddings.shape}")
    unit = _unit_rows(embeddings)  # [N, D]
    present = np.isfinite(unit).all(axis=1)  # [N]
    adjacent = present[1:] & present[:-1]  # [N-1]
    local_sims = (unit[1:] * unit[:-1]).sum(axis=1)[adjacent]  # [P]
    tl = float(local_sims.mean()) if local_sims.size else float("nan")

    rows = evenly_spaced(np.flatnonzero(present), tg_max_frames)
    if len(rows) < 2:
        return tl, float("nan")
    gram = unit[rows] @ unit[rows].T  # [M, M]
    upper = np.triu_indices(len(rows), k=1)
    tg = float(gram[upper].mean())
    return tl, tg


def _ratio(output_value: float, reference_value: float) -> float:
    if not (np.isfinite(output_value) and np.isfinite(reference_value)) or reference_value == 0:
        return float("nan")
    return output_value / reference_value


def identity_consistency(out_tl: float, ref_tl: float, out_tg: float, ref_tg: float) -> dict[str, float]:
    """TL-ID and TG-ID (the output's adjacent-frame and all-pairs identity similarity over the
    reference's) with the four similarities they are made of."""
    return {
        "tl_id": _ratio(out_tl, ref_tl),
        "tg_id": _ratio(out_tg, ref_tg),
        "tl_output": out_tl,
        "tl_reference": ref_tl,
        "tg_output": out_tg,
        "tg_reference": ref_tg,
    }


def tl_id(output: np.ndarray, reference: np.ndarray) -> float:
    """STIT TL-ID: adjacent-pair identity similarity of the output over that of the reference."""
    return _ratio(identity_similarity_stats(output)[0], identity_similarity_stats(reference)[0])


def tg_id(output: np.ndarray, reference: np.ndarray, *, tg_max_frames: int = 1000) -> float:
    """STIT TG-ID: all-pairs identity similarity of the output over that of the reference."""
    out_tg = identity_similarity_stats(output, tg_max_frames=tg_max_frames)[1]
    ref_tg = identity_similarity_stats(reference, tg_max_frames=tg_max_frames)[1]
    return _ratio(out_tg, ref_tg)


# ----------------------------------------------------------------------------------------------------
# Fidelity and jitter (pure)


def psnr(output: np.ndarray, reference: np.ndarray, *, max_db: float = 100.0) -> float:
    """PSNR in dB of two uint8 images of one shape over all values (peak 255), at most `max_db`."""
    return min(max_db, uint8_psnr(output, reference))


def landmark_jitter(points: np.ndarray, segments: list[tuple[int, int]] | None = None) -> float:
    """Jitter of 68-point tracks [N, 68, 2] (NaN where no face): RMS 2nd difference of the FFHQ quad
    corners, in quad sides, within `segments` (default: the whole clip); NaN without 3 faced frames."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected points [N, {NUM_LANDMARKS}, 2], got {points.shape}")
    quads = np.full((len(points), 4, 2), np.nan)  # [N, 4, 2]
    for index in np.flatnonzero(np.isfinite(points).all(axis=(1, 2))):
        quads[index] = ffhq_quad(points[index])
    if len(points) == 0:
        return float("nan")
    return quad_jitter(quads, segments if segments is not None else [(0, len(points))])


def segments_from_cuts(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """Half-open shots `[start, stop)` covering `num_frames`, a new one at every cut frame."""
    starts = [0, *sorted(c for c in cuts if 0 < c < num_frames)]
    return [(a, b) for a, b in zip(starts, [*starts[1:], num_frames], strict=True) if b > a]


# ----------------------------------------------------------------------------------------------------
# Per person (pure)


def match_faces(ref_boxes: np.ndarray, ref_points: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
    """Each reference face's face among `faces` (the output's, same frame) by position [P] int64 (-1: none).

    `ref_boxes` [P, 4] and `ref_points` [P, 68, 2]: the people's faces in the reference's frame. An optimal
    assignment over the people tracker's link cost one frame apart (`reenact.faces.people.link_costs`: box
    overlap and landmark distance, with its gates); a pair beyond the gates is never matched."""
    matched = np.full(len(ref_boxes), -1, dtype=np.int64)
    if len(ref_boxes) == 0 or not faces:
        return matched
    boxes = np.stack([np.asarray(face.box, np.float64) for face in faces])  # [F, 4]
    points = np.stack([np.asarray(face.points, np.float64) for face in faces])  # [F, 68, 2]
    cost = np.stack(
        [
            link_costs(
                np.asarray(box, np.float64),
                np.asarray(face_points, np.float64),
                boxes,
                points,
                elapsed=1,
                min_iou=MIN_IOU,
                max_motion=MAX_MOTION,
                max_scale_change=MAX_SCALE_CHANGE,
            )
            for box, face_points in zip(ref_boxes, ref_points, strict=True)
        ]
    )  # [P, F]
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] < GATED_COST
    matched[rows[keep]] = cols[keep]
    return matched


def box_psnr(output: np.ndarray, reference: np.ndarray, box: np.ndarray, *, max_db: float = 100.0) -> float:
    """PSNR (as `psnr`) of two uint8 frames [H, W, 3] inside a face box [4] (x0, y0, x1, y1), widened to
    whole pixels and clipped to the frame; NaN for a box outside it."""
    height, width = reference.shape[:2]
    x0, y0 = (int(np.clip(math.floor(v), 0, side)) for v, side in zip(box[:2], (width, height), strict=True))
    x1, y1 = (int(np.clip(math.ceil(v), 0, side)) for v, side in zip(box[2:], (width, height), strict=True))
    if x1 <= x0 or y1 <= y0:
        return float("nan")
    return psnr(output[y0:y1, x0:x1], reference[y0:y1, x0:x1], max_db=max_db)


def lpips_model(net: LpipsNet, *, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS v0.1 on `net` with the weight cache's backbone and heads: the one way reenact builds it (PTI's
    loss, `evaluate`). A missing file is a `ReenactError` saying how to get it, never a random stand-in."""
    from reenact import weights

    return LPIPS(
        net=net,
        backbone_weights=weights.backbone_path(LPIPS_ARCH[net]),
        heads_path=weights.lpips_heads_path(net),
        device=device,
    )


def load_lpips(net: str, *, device: torch.device | str = "cpu") -> tuple[torch.nn.Module | None, str | None]:
    """The LPIPS model with real backbone weights, or `(None, note)` saying why LPIPS is unavailable."""
    try:
        return lpips_model(net, device=device), None  # type: ignore[arg-type]
    except ReenactError as exc:
        return None, f"LPIPS not computed: {exc}"


# ----------------------------------------------------------------------------------------------------
# Identity embedding


class IdentityEmbedder:
    """dlib face detector + 68-point shape + 128-d face descriptor of the largest face in a frame."""

    def __init__(
        self, *, faces: FacesConfig | None = None, recognition_model_path: Path | None = None
    ) -> None:
        import dlib  # local: keeps `import reenact.metrics` light

        self.faces = faces or FacesConfig()
        model_path = recognition_model_path or face_models_file(FACE_RECOGNITION_FILE)
        self._model = dlib.face_recognition_model_v1(str(model_path))
        self._dlib = dlib

    @functools.cached_property
    def landmarks(self) -> DlibLandmarks:
        """dlib's detector and 68-point shape predictor, loaded when first used (about a second): a
        caller that brings its own faces (`embed_face`) never pays for it."""
        return DlibLandmarks(
            detector=self.faces.dlib_detector,
            detect_max_side=self.faces.detect_max_side,
            upsample=self.faces.upsample,
            min_score=self.faces.min_score,
        )

    def largest_face(self, image: np.ndarray) -> FaceDetection | None:
        """The biggest face dlib finds in an RGB uint8 frame, or None."""
        faces = self.landmarks.detect(image)
        return max(faces, key=lambda face: face.size) if faces else None

    def embed_face(self, image: np.ndarray, face: FaceDetection) -> np.ndarray:
        """Descriptor [128] float64 of `face` (its 68 points locate the aligned face chip)."""
        dlib = self._dlib
        rect = dlib.rectangle(*(round(v) for v in face.box))
        parts = dlib.points([dlib.point(round(x), round(y)) for x, y in face.points])
        shape = dlib.full_object_detection(rect, parts)
        descriptor = self._model.compute_face_descriptor(
            np.ascontiguousarray(image), shape, DESCRIPTOR_JITTERS, DESCRIPTOR_PADDING
        )
        return np.asarray(descriptor, dtype=np.float64)  # [128]

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        """Descriptor [128] of the largest face in an RGB uint8 frame [H, W, 3], or None without a face."""
        face = self.largest_face(image)
        return None if face is None else self.embed_face(image, face)


# ----------------------------------------------------------------------------------------------------
# Evaluation of a clip against its source


@dataclass
class EvaluationReport:
    """Summary figures of a clip and one record per frame (JSON-ready: NaN/inf become null)."""

    summary: dict[str, Any]
    frames: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] | None = None
    """Each person of the reference's figures (`person_figures`); None when they were not asked for."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "summary": self.summary,
            "people": self.people,
            "frames": self.frames,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(_json_safe(self.to_dict()), indent=indent)


def _json_safe(value: Any) -> Any:
    """NaN and infinities (no JSON form) -> None, recursively; numpy scalars -> Python."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frame_column(frames: list[dict[str, Any]], key: str) -> np.ndarray:
    """One per-frame figure as a float array [N] (null -> NaN)."""
    return np.array([np.nan if frame[key] is None else frame[key] for frame in frames], dtype=np.float64)


def _or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def output_window(output: Path, window: Window | None, *, fps: Fraction | None = None) -> Window | None:
    """The slice of `output` (an image sequence: at `fps`) paired with the slice `window` of the
    reference: none (the output whole) when the output is as long as the slice (what a command given the
    same --start/--duration wrote), else the same slice."""
    if window is not None and probe(output, fps=fps).frame_count != window.frames:
        return window
    return None


def paired_frames(
    output: Path, reference: Path, *, window: Window | None = None, fps: Fraction | None = None
) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """Frame count and upright RGB frame pairs (output t, reference t); `ReenactError` on a mismatch.

    `window`: a slice of the reference. The output is paired with it whole when it is that slice (as
    long as it: what a command given the same --start/--duration wrote), else the same slice of it.
    `fps`: the frame rate of either that is an image sequence."""
    out_window = output_window(output, window, fps=fps)
    out_reader = VideoReader(output, fps=fps, window=out_window)
    ref_reader = VideoReader(reference, fps=fps, window=window)
    out_count, ref_count = out_reader.info.frame_count, ref_reader.info.frame_count
    if out_count and ref_count and out_count != ref_count:
        raise ReenactError(
            f"{output} has {out_count} frames but the reference {reference} has {ref_count}; "
            "evaluate an output against the clip it was made from"
        )

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        out_frames = out_reader.frames(upright=True)
        ref_frames = ref_reader.frames(upright=True)
        for index in itertools.count():
            out_frame, ref_frame = next(out_frames, None), next(ref_frames, None)
            if out_frame is None and ref_frame is None:
                return
            if out_frame is None or ref_frame is None:
                shorter = output if out_frame is None else reference
                raise ReenactError(
                    f"{shorter} ends after {index} frames but the other clip goes on; frame counts must match"
                )
            if out_frame.image.shape != ref_frame.image.shape:
                raise ReenactError(
                    f"frame sizes differ: {output} is {_size(out_frame.image)}, {reference} is "
                    f"{_size(ref_frame.image)}; evaluate at the reference's size"
                )
            yield out_frame.image, ref_frame.image

    return max(out_count, ref_count), pairs()


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


@dataclass
class PersonTrack:
    """One person of the reference while the frames are scored: their face in each frame and, in rows of
    frames [N] (NaN where they are absent or, for the output, where no face matched theirs), what
    `person_figures` sums up."""

    id: int
    faces: np.ndarray  # [N] int64, their face in each reference frame (flat detections index), -1: absent
    starts: list[int]
    """First frame of each of their tracklets: their jitter never runs across one."""
    out_embeddings: np.ndarray  # [N, 128]
    ref_embeddings: np.ndarray  # [N, 128]
    out_points: np.ndarray  # [N, 68, 2]
    ref_points: np.ndarray  # [N, 68, 2]
    to_reference: np.ndarray  # [N] identity similarity to the reference's same frame
    face_psnr: np.ndarray  # [N] PSNR over their face box

    @classmethod
    def of_people(cls, people: ClipPeople) -> list[PersonTrack]:
        frames = people.num_frames
        tracks = []
        for person in people.people:
            faces = np.full(frames, -1, dtype=np.int64)
            faces[person.frames] = person.faces
            tracks.append(
                cls(
                    id=person.id,
                    faces=faces,
                    starts=sorted(tracklet.start for tracklet in person.tracklets),
                    out_embeddings=np.full((frames, DESCRIPTOR_DIM), np.nan),
                    ref_embeddings=np.full((frames, DESCRIPTOR_DIM), np.nan),
                    out_points=np.full((frames, NUM_LANDMARKS, 2), np.nan),
                    ref_points=np.full((frames, NUM_LANDMARKS, 2), np.nan),
                    to_reference=np.full(frames, np.nan),
                    face_psnr=np.full(frames, np.nan),
                )
            )
        return tracks

    def face_in(self, frame: int) -> int:
        """Their face in `frame` (flat detections index), -1 when absent."""
        return int(self.faces[frame]) if frame < len(self.faces) else -1


def score_people(
    tracks: list[PersonTrack],
    people: ClipPeople,
    index: int,
    *,
    out_image: np.ndarray,
    ref_image: np.ndarray,
    out_faces: list[FaceDetection],
    describe: Callable[[np.ndarray, FaceDetection], np.ndarray],
    max_db: float,
) -> list[dict[str, Any]]:
    """Score frame `index` for each person in it: their reference face (from `people`), the output face
    matched to it (`match_faces` among `out_faces`), descriptors by `describe`, into `tracks`; returns one
    record per person in the frame."""
    present = [track for track in tracks if track.face_in(index) >= 0]
    if not present:
        return []
    ref_faces = [detection_at(people.detections, track.face_in(index)) for track in present]
    matched = match_faces(
        np.stack([face.box for face in ref_faces]), np.stack([face.points for face in ref_faces]), out_faces
    )  # [P]
    records = []
    for track, ref_face, match in zip(present, ref_faces, matched, strict=True):
        ref_embedding = describe(ref_image, ref_face)
        track.ref_embeddings[index] = ref_embedding
        track.ref_points[index] = ref_face.points
        track.face_psnr[index] = box_psnr(out_image, ref_image, ref_face.box, max_db=max_db)
        if match >= 0:
            out_face = out_faces[match]
            track.out_embeddings[index] = describe(out_image, out_face)
            track.out_points[index] = out_face.points
            track.to_reference[index] = cosine_similarity(track.out_embeddings[index], ref_embedding)
        records.append(
            {
                "id": track.id,
                "face_found": bool(match >= 0),
                "id_to_reference": _or_none(float(track.to_reference[index])),
                "face_psnr": _or_none(float(track.face_psnr[index])),
            }
        )
    return records


def person_figures(
    track: PersonTrack, *, num_frames: int, cuts: list[int], config: MetricsConfig
) -> dict[str, Any]:
    """One person's figures over the first `num_frames` frames (the scored ones): as the whole clip's, on
    their faces alone. Jitter within the shots that begin at `cuts` (frame indices), split also where one
    of their tracklets begins."""
    num_frames = min(num_frames, len(track.faces))
    rows = slice(0, num_frames)
    present = track.faces[rows] >= 0  # [N]
    out_embeddings, ref_embeddings = track.out_embeddings[rows], track.ref_embeddings[rows]
    out_tl, out_tg = identity_similarity_stats(out_embeddings, tg_max_frames=config.tg_max_frames)
    ref_tl, ref_tg = identity_similarity_stats(ref_embeddings, tg_max_frames=config.tg_max_frames)
    segments = segments_from_cuts(sorted({*cuts, *track.starts}), num_frames)
    found = np.isfinite(out_embeddings).all(axis=1) & present  # [N]
    to_reference = track.to_reference[rows][found]
    psnrs = track.face_psnr[rows][present]
    psnrs = psnrs[np.isfinite(psnrs)]
    return {
        "id": track.id,
        "frames": int(present.sum()),
        **identity_consistency(out_tl, ref_tl, out_tg, ref_tg),
        "id_to_reference_mean": float(to_reference.mean()) if to_reference.size else None,
        "jitter_output": landmark_jitter(track.out_points[rows], segments),
        "jitter_reference": landmark_jitter(track.ref_points[rows], segments),
        "face_psnr_mean": float(psnrs.mean()) if psnrs.size else None,
        "face_psnr_min": float(psnrs.min()) if psnrs.size else None,
        "frames_without_face": int((present & ~found).sum()),
    }


INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
"""68-point indices of the inner lips' upper and lower points facing each other."""
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
"""68-point indices of the right and left eye contours (corner, two upper, corner, two lower)."""
MIN_CORRELATION_FRAMES = 3
"""Frames with both faces found a correlation needs; fewer gives no figure."""


def eye_distance(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres of 68-point faces [N, 68, 2]: [N] (the face's scale)."""
    centres = [points[:, list(eye)].mean(axis=1) for eye in EYES]  # 2 x [N, 2]
    return np.linalg.norm(centres[0] - centres[1], axis=1)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """How far the inner lips are apart, in eye distances, of 68-point faces [N, 68, 2]: [N] (NaN rows
    stay NaN)."""
    gaps = [np.linalg.norm(points[:, upper] - points[:, lower], axis=1) for upper, lower in INNER_LIP_PAIRS]
    return np.mean(gaps, axis=0) / eye_distance(points)


def rendered_mouth_openings(images: np.ndarray, landmarks: LandmarkBackend) -> np.ndarray:
    """Mouth opening (`mouth_opening`) of the largest face the landmarks find in each generator render,
    uint8 [N, R, R, 3] upscaled as the face checks see them (`sampling.upscaled_for_check`): [N], NaN
    where none is found."""
    openings = np.full(len(images), np.nan)
    for index, image in enumerate(images):
        faces = landmarks.detect(upscaled_for_check(image))
        if faces:
            openings[index] = mouth_opening(max(faces, key=lambda face: face.size).points[None])[0]
    return openings


def eye_opening(points: np.ndarray) -> np.ndarray:
    """Eye aspect ratio (Soukupova & Cech 2016: lids apart over corner to corner), the mean of both eyes,
    of 68-point faces [N, 68, 2]: [N]."""
    ratios = []
    for eye in EYES:
        p = points[:, list(eye)]  # [N, 6, 2]
        lids = np.linalg.norm(p[:, 1] - p[:, 5], axis=1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=1)
        ratios.append(lids / (2.0 * np.linalg.norm(p[:, 0] - p[:, 3], axis=1)))
    return np.mean(ratios, axis=0)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of a [N] and b [N] over the entries where both are finite; NaN when fewer than
    `MIN_CORRELATION_FRAMES` remain or either is constant there."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < MIN_CORRELATION_FRAMES:
        return math.nan
    x, y = a[both] - a[both].mean(), b[both] - b[both].mean()
    scale = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / scale) if scale > 0 else math.nan


def driver_figures(
    *,
    out_points: np.ndarray,  # [N, 68, 2]
    ref_points: np.ndarray,  # [N, 68, 2]
    drv_points: np.ndarray,  # [N, 68, 2]
    out_embeddings: np.ndarray,  # [N, 128]
    ref_embeddings: np.ndarray,  # [N, 128]
    drv_embeddings: np.ndarray,  # [N, 128]
) -> dict[str, Any]:
    """Identity kept and expression followed over N paired frames (see the module docstring); NaN rows
    are frames where that clip has no face."""
    to_reference = np.linalg.norm(out_embeddings - ref_embeddings, axis=1)  # [N]
    to_driver = np.linalg.norm(out_embeddings - drv_embeddings, axis=1)  # [N]
    scored = np.isfinite(to_reference) & np.isfinite(to_driver)
    figures: dict[str, Any] = {
        "frames": len(out_points),
        "identity_frames": int(scored.sum()),
        "nearer_reference_share": float((to_reference[scored] < to_driver[scored]).mean())
        if scored.any()
        else None,
        "distance_to_reference_mean": float(to_reference[scored].mean()) if scored.any() else None,
        "distance_to_driver_mean": float(to_driver[scored].mean()) if scored.any() else None,
    }
    for name, measure in (("mouth", mouth_opening), ("eyes", eye_opening)):
        driver = measure(drv_points)
        output = measure(out_points)
        figures[f"{name}_frames"] = int((np.isfinite(output) & np.isfinite(driver)).sum())
        figures[f"{name}_correlation"] = _or_none(correlation(output, driver))
        figures[f"{name}_correlation_reference"] = _or_none(correlation(measure(ref_points), driver))
    return figures


def evaluate_frames(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    embedder: IdentityEmbedder,
    config: MetricsConfig,
    faces: FacesConfig,
    lpips: torch.nn.Module | None = None,
    lpips_note: str | None = None,
    device: torch.device | str = "cpu",
    progress: Progress = SILENT,
    total: int | None = None,
    people: ClipPeople | None = None,
    output_faces: LandmarkBackend | None = None,
    output_first: int = 0,
    driver: Iterator[np.ndarray] | None = None,
) -> EvaluationReport:
    """Score (output, reference) RGB uint8 frame pairs; see the module docstring for each figure.

    `progress` gets an "evaluate" task counting the pairs, of `total` when the count is known.
    `people`: the reference's people (frames numbered as the pairs), scored each (`EvaluationReport.people`)
    against the output's faces that `output_faces` finds (default: dlib's, those the whole-clip figures
    take the largest of), asked for frame `output_first + t` of pair t (a landmarks file's numbering).
    `driver`: the driver's RGB uint8 frames, frame t for pair t while it lasts, scored against
    (`driver_figures`, the summary's "driver").
    """
    tracks = None if people is None else PersonTrack.of_people(people)
    cut_detector = SceneCutDetector(threshold=faces.cut_threshold, side=faces.cut_side)
    out_embeddings: list[np.ndarray] = []
    ref_embeddings: list[np.ndarray] = []
    out_points: list[np.ndarray] = []
    ref_points: list[np.ndarray] = []
    drv_embeddings: list[np.ndarray] = []
    drv_points: list[np.ndarray] = []
    cuts: list[int] = []
    frames: list[dict[str, Any]] = []
    missing_embedding = np.full(DESCRIPTOR_DIM, np.nan)
    missing_points = np.full((NUM_LANDMARKS, 2), np.nan)
    with progress.task("evaluate", total=total, unit="frame") as task:
        for index, (out_image, ref_image) in enumerate(pairs):
            if faces.scene_cuts and cut_detector.is_cut(ref_image):
                cuts.append(index)
            out_all: list[FaceDetection] = []
            if tracks is not None and output_faces is None:  # every dlib face, of which the largest
                out_all = embedder.landmarks.detect(out_image)
                out_face = max(out_all, key=lambda face: face.size) if out_all else None
            else:
                out_face = embedder.largest_face(out_image)
                if tracks is not None and output_faces is not None:
                    out_all = output_faces.detect(out_image, frame_index=output_first + index)
            ref_face = embedder.largest_face(ref_image)
            describe = _descriptor_memo(embedder)
            out_emb = describe(out_image, out_face) if out_face else missing_embedding
            ref_emb = describe(ref_image, ref_face) if ref_face else missing_embedding
            out_points.append(out_face.points if out_face else missing_points)
            ref_points.append(ref_face.points if ref_face else missing_points)
            drv_image = None if driver is None else next(driver, None)
            if drv_image is not None:
                drv_face = embedder.largest_face(drv_image)
                drv_embeddings.append(describe(drv_image, drv_face) if drv_face else missing_embedding)
                drv_points.append(drv_face.points if drv_face else missing_points)
            previous = out_embeddings[-1] if out_embeddings else missing_embedding
            out_embeddings.append(out_emb)
            ref_embeddings.append(ref_emb)
            lpips_value = float("nan")
            if lpips is not None:
                with torch.no_grad():
                    lpips_value = float(
                        lpips(
                            image_from_uint8(out_image, device=device),
                            image_from_uint8(ref_image, device=device),
                        )[0]
                    )
            frames.append(
                {
                    "index": index,
                    "psnr": psnr(out_image, ref_image, max_db=config.psnr_max_db),
                    "lpips": _or_none(lpips_value),
                    "id_to_reference": _or_none(cosine_similarity(out_emb, ref_emb)),
                    "id_to_previous": _or_none(cosine_similarity(out_emb, previous)),
                    "face_found": out_face is not None,
                    "reference_face_found": ref_face is not None,
                }
            )
            if tracks is not None and people is not None:
                frames[-1]["people"] = score_people(
                    tracks,
                    people,
                    index,
                    out_image=out_image,
                    ref_image=ref_image,
                    out_faces=out_all,
                    describe=describe,
                    max_db=config.psnr_max_db,
                )
            task.advance()
    if not frames:
        raise ReenactError("no frames to evaluate: the clips are empty")
    if lpips is None and lpips_note is None:
        lpips_note = "LPIPS not computed (no model given)"
    report = _summarise(
        frames,
        out_embeddings=np.stack(out_embeddings),
        ref_embeddings=np.stack(ref_embeddings),
        out_points=np.stack(out_points),
        ref_points=np.stack(ref_points),
        segments=segments_from_cuts(cuts, len(frames)),
        config=config,
        lpips_note=lpips_note,
    )
    if driver is not None:
        paired = len(drv_embeddings)

        def rows(values: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
            return np.stack(values[:paired]) if paired else np.zeros((0, *shape))

        points, embedding = (NUM_LANDMARKS, 2), (DESCRIPTOR_DIM,)
        report.summary["driver"] = _json_safe(
            driver_figures(
                out_points=rows(out_points, points),
                ref_points=rows(ref_points, points),
                drv_points=rows(drv_points, points),
                out_embeddings=rows(out_embeddings, embedding),
                ref_embeddings=rows(ref_embeddings, embedding),
                drv_embeddings=rows(drv_embeddings, embedding),
            )
        )
    if tracks is not None and people is not None:
        shots = sorted({*cuts, *people.starts})
        report.people = _json_safe(
            [person_figures(track, num_frames=len(frames), cuts=shots, config=config) for track in tracks]
        )
    return report


def _descriptor_memo(embedder: IdentityEmbedder) -> Callable[[np.ndarray, FaceDetection], np.ndarray]:
    """`embedder.embed_face` that describes a face of an image once (one frame's: the whole-clip figures'
    largest face is often a person's face too)."""
    known: dict[tuple[int, bytes], np.ndarray] = {}

    def describe(image: np.ndarray, face: FaceDetection) -> np.ndarray:
        key = (id(image), np.asarray(face.points, np.float64).tobytes())
        if key not in known:
            known[key] = embedder.embed_face(image, face)
        return known[key]

    return describe


def _summarise(
    frames: list[dict[str, Any]],
    *,
    out_embeddings: np.ndarray,  # [N, 128]
    ref_embeddings: np.ndarray,  # [N, 128]
    out_points: np.ndarray,  # [N, 68, 2]
    ref_points: np.ndarray,  # [N, 68, 2]
    segments: list[tuple[int, int]],
    config: MetricsConfig,
    lpips_note: str | None,
) -> EvaluationReport:
    out_tl, out_tg = identity_similarity_stats(out_embeddings, tg_max_frames=config.tg_max_frames)
    ref_tl, ref_tg = identity_similarity_stats(ref_embeddings, tg_max_frames=config.tg_max_frames)
    psnrs = np.array([frame["psnr"] for frame in frames])
    lpips_values = frame_column(frames, "lpips")
    to_reference = frame_column(frames, "id_to_reference")
    faced_frames = int(np.isfinite(out_embeddings).all(axis=1).sum())
    summary: dict[str, Any] = {
        "frames": len(frames),
        **identity_consistency(out_tl, ref_tl, out_tg, ref_tg),
        "tg_frames_used": min(faced_frames, config.tg_max_frames),
        "id_to_reference_mean": float(np.nanmean(to_reference)) if np.isfinite(to_reference).any() else None,
        "identity_similarity": SIMILARITY_NOTE,
        "jitter_output": landmark_jitter(out_points, segments),
        "jitter_reference": landmark_jitter(ref_points, segments),
        "segments": [list(segment) for segment in segments],
        "psnr_mean": float(psnrs.mean()),
        "psnr_min": float(psnrs.min()),
        "psnr_max_db": config.psnr_max_db,
        "lpips_mean": float(lpips_values.mean()) if lpips_note is None else None,
        "lpips_net": config.lpips_net if lpips_note is None else None,
        "lpips_note": lpips_note,
        "frames_without_face": len(frames) - faced_frames,
        "reference_frames_without_face": int((~np.isfinite(ref_embeddings).all(axis=1)).sum()),
    }
    return EvaluationReport(summary=_json_safe(summary), frames=_json_safe(frames))


def evaluate_videos(
    output: Path | str,
    reference: Path | str,
    *,
    config: MetricsConfig | None = None,
    faces: FacesConfig | None = None,
    embedder: IdentityEmbedder | None = None,
    lpips: torch.nn.Module | None = None,
    use_lpips: bool = True,
    device: torch.device | str = "cpu",
    progress: Progress = SILENT,
    window: Window | None = None,
    people: ClipPeople | Callable[[], ClipPeople] | None = None,
    output_faces: LandmarkBackend | None = None,
    driver: Path | str | None = None,
    fps: Fraction | None = None,
) -> EvaluationReport:
    """Score an output clip against the reference clip it was made from (frames paired by index; of a
    slice `window` of the reference: `paired_frames`).

    `lpips`: an LPIPS module to use (tests pass one with random weights); else the real one is loaded
    when `use_lpips`, and a missing weight file leaves LPIPS null with a note. `progress` gets an
    "evaluate" task, opened only once the clips' frame counts agree.
    `people`: the reference's (or its window's) people, or what finds them (called once the frame counts
    agree), to score each (`evaluate_frames`); `output_faces` finds the output's faces for them (a
    landmarks file is asked for the output's own frame numbers). `driver`: the clip the output was
    driven by, from its first frame (`driver_figures`). `fps`: the frame rate of the clips that are image
    sequences (`--fps`).
    """
    config = config or MetricsConfig()
    faces = faces or FacesConfig()
    length, pairs = paired_frames(Path(output), Path(reference), window=window, fps=fps)
    if callable(people):
        people = people()
    out_window = output_window(Path(output), window, fps=fps) if output_faces is not None else None
    note: str | None = None
    if lpips is None:
        if use_lpips:
            lpips, note = load_lpips(config.lpips_net, device=device)
        else:
            note = "LPIPS not computed (switched off)"
    return evaluate_frames(
        pairs,
        embedder=embedder or IdentityEmbedder(faces=faces),
        config=config,
        faces=faces,
        lpips=lpips,
        lpips_note=note,
        device=device,
        progress=progress,
        total=length or None,
        people=people,
        output_faces=output_faces,
        output_first=0 if out_window is None else out_window.first,
        driver=None
        if driver is None
        else (frame.image for frame in VideoReader(Path(driver), fps=fps).frames(upright=True)),
    )


# ----------------------------------------------------------------------------------------------------
# Plot (`reenact.plots`: OpenCV only)

PSNR_STEP_DB = 5.0
"""PSNR axis limits are rounded out to multiples of this."""
SIMILARITY_STEP = 0.1
PSNR_COLOUR = (200, 90, 30)  # BGR: blue
IDENTITY_COLOUR = (30, 120, 230)  # BGR: orange


def render_plot(report: EvaluationReport) -> np.ndarray:
    """BGR uint8 image [H, W, 3]: per-frame PSNR (left axis) and identity similarity to the reference's
    same frame (right axis) against the frame index."""
    indices = np.array([frame["index"] for frame in report.frames], dtype=np.float64)
    psnrs = Series(indices, frame_column(report.frames, "psnr"), PSNR_COLOUR, "PSNR vs reference")
    sims = Series(
        indices, frame_column(report.frames, "id_to_reference"), IDENTITY_COLOUR, "identity sim. to reference"
    )
    summary = report.summary
    return two_axis_plot(
        left=Axis("PSNR (dB)", (psnrs,), step=PSNR_STEP_DB, colour=PSNR_COLOUR),
        right=Axis(
            "identity sim.", (sims,), step=SIMILARITY_STEP, colour=IDENTITY_COLOUR, ceiling=1.0, decimals=2
        ),
        x_name="frame",
        title=f"TL-ID {_fmt(summary.get('tl_id'))}  TG-ID {_fmt(summary.get('tg_id'))}",
    )


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_plot(report: EvaluationReport, path: Path | str) -> Path:
    """Draw `render_plot` and write it as a PNG at `path`."""
    return write_plot_png(render_plot(report), path)
