"""Paste-back and encode: the last step, whose result is the output file, not a workspace entry.

Streams the input's frames: a frame with a latent gets its rendered crop pasted back (inverse warp,
feathered landmark mask, colour match: `reenact.composite`), a frame without one passes through
untouched; every frame is encoded at its own timestamp with the audio copied (`reenact.video`). The
crops come in slot order from the render as it runs (`stages.render.RenderStream`), each where it was
rendered: on a CUDA run the paste-back takes it on the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from reenact import video
from reenact.colour import FACE_COLOUR, SourceColour, from_face_space
from reenact.composite import face_mask, paste_back, paste_weights
from reenact.config import Config
from reenact.progress import SILENT, Progress
from reenact.stages.align import ClipAlignment
from reenact.timeline import Window

if TYPE_CHECKING:
    import torch


class CropReader(Protocol):
    """Rendered crops [R, R, 3] uint8 by slot, one at a time, slots in order: a `RenderStream` still
    rendering (a crop on the render's device, or on the host), or a `CropStore`."""

    def __len__(self) -> int: ...

    def crop(self, slot: int) -> np.ndarray | torch.Tensor: ...


Weights = tuple[tuple[tuple[slice, slice], np.ndarray], ...]
"""A frame's blend weights, face by face in paste order: the frame box each touched and its weights
[h, w] float32 in 0..1 (`composite.paste_weights`); empty where no face was pasted."""
Composited = tuple[video.Frame, np.ndarray, Weights]
"""A decoded frame, the output image made of it and the blend weights that made it."""


def matte_of(weights: Weights, shape: tuple[int, ...]) -> np.ndarray:
    """[H, W] float32: how much of each output pixel is pasted face, the faces' weights composed in paste
    order (each over the ones before: m <- m + a (1 - m)); 0 exactly where the frame was left alone."""
    matte = np.zeros(shape[:2], np.float32)
    for box, alpha in weights:
        region = matte[box]
        region += alpha * (1.0 - region)
    return matte


def slots_for(alignment: ClipAlignment, frames: np.ndarray) -> np.ndarray:
    """[T] latent slot of each frame (-1 where the frame has no latent)."""
    slots = np.full(alignment.num_frames, -1, dtype=np.int64)
    slots[frames] = np.arange(len(frames))
    return slots


def composite_frames(
    frames: Iterator[video.Frame],
    *,
    alignment: ClipAlignment,
    crops: CropReader,
    slots: np.ndarray,
    settings: Config,
    device: torch.device | str = "cpu",
    colour: SourceColour = FACE_COLOUR,
) -> Iterator[Composited]:
    """Each frame with its rendered face pasted back; frames without a face (slot -1) pass through unchanged.
    `colour`: the frames', which each face is moved into first (`colour.from_face_space`).

    `slots[t]` is the crop index for frame `t` (or -1); the paste-back runs on the run's `device`
    (`paste_back`). Yields (decoded frame, output image, blend weights).
    """
    return cast_frames(
        frames, faces=[PastedFace(alignment, slots, crops, colour=colour)], settings=settings, device=device
    )


class PastedFace:
    """One person's faces for `cast_frames`: their alignment, each frame's crop slot (-1: none), the
    crops, and the colour of the frames they go into (`colour.from_face_space`)."""

    def __init__(
        self,
        alignment: ClipAlignment,
        slots: np.ndarray,
        crops: CropReader,
        *,
        colour: SourceColour = FACE_COLOUR,
    ) -> None:
        self.alignment, self.slots, self.crops, self.colour = alignment, slots, crops, colour

    def size(self, index: int) -> float:
        """The face's size in frame `index` (its quad's side, pixels): nearer faces are larger."""
        quad = self.alignment.quads[index]
        return float(np.linalg.norm(quad[1] - quad[0]))


def cast_frames(
    frames: Iterator[video.Frame],
    *,
    faces: list[PastedFace],
    settings: Config,
    device: torch.device | str = "cpu",
) -> Iterator[Composited]:
    """Each frame with every person's rendered face pasted back, in depth order: the smaller faces first,
    so the larger (nearer) one is pasted over them. A frame where nobody has a face passes through
    unchanged. Each person's crops are asked for in slot order; each paste's blend weights come along."""
    for frame in frames:
        present = []
        for face in faces:
            index = min(frame.index, face.alignment.num_frames - 1)
            if face.slots[index] >= 0:
                present.append((face.size(index), face, index))
        image = frame.image
        weights = []
        for _, face, index in sorted(present, key=lambda item: item[0]):
            alignment = face.alignment
            matrix = alignment.matrices[index]
            mask = face_mask(
                alignment.track.points[index] if alignment.track.found[index] else None,
                matrix=matrix,
                resolution=alignment.resolution,
                config=settings.composite,
            )
            crop = from_face_space(face.crops.crop(int(face.slots[index])), face.colour)
            image = paste_back(
                image, crop, matrix=matrix, mask_crop=mask, config=settings.composite, device=device
            )
            pasted = paste_weights(mask, matrix=matrix, frame_shape=image.shape)
            if pasted is not None:
                weights.append(pasted)
        yield frame, image, tuple(weights)


def still_frames(
    timeline: Iterator[video.Frame],
    *,
    alignment: ClipAlignment,
    crops: CropReader,
    settings: Config,
    device: torch.device | str = "cpu",
    colour: SourceColour = FACE_COLOUR,
) -> Iterator[Composited]:
    """A photo (of colour `colour`) with step `t`'s rendered face for each frame `t` of another clip's
    timeline."""
    matrix = alignment.matrices[0]
    mask = face_mask(
        alignment.track.points[0], matrix=matrix, resolution=alignment.resolution, config=settings.composite
    )
    pasted = None
    for position, frame in enumerate(timeline):
        crop = from_face_space(crops.crop(min(position, len(crops) - 1)), colour)
        if pasted is None:
            pasted = paste_weights(mask, matrix=matrix, frame_shape=frame.image.shape)
        image = paste_back(
            frame.image, crop, matrix=matrix, mask_crop=mask, config=settings.composite, device=device
        )
        yield frame, image, () if pasted is None else (pasted,)


def write_video(
    output: Path,
    frames: Iterator[Composited],
    *,
    like: video.VideoInfo,
    audio_from: Path | None,
    inputs: tuple[Path, ...],
    settings: Config,
    overwrite: bool,
    total: int,
    progress: Progress = SILENT,
    audio_window: Window | None = None,
    matte: Path | None = None,
) -> int:
    """Encode the composited frames' images at the frames' own timestamps with the audio copied (of a
    slice: its `audio_window`, shifted as its frames are); with `matte`, each frame's blend weights beside
    it (`video.MatteWriter`), the same frames at the same timestamps; the same matte in the output's alpha
    channel when it has one (`video.alpha`). Returns frames."""
    written = 0
    with (
        video.MatteWriter(
            matte,
            like=like,
            overwrite=overwrite,
            upright_frames=True,
            inputs=(*inputs, output),
            window=audio_window,
        )
        if matte is not None
        else contextlib.nullcontext() as matte_writer,  # published after the video
        video.open_writer(
            output,
            like=like,
            config=settings.video,
            audio_from=audio_from,
            overwrite=overwrite,
            upright_frames=True,
            inputs=inputs,
            audio_window=audio_window,
        ) as writer,
        progress.task("encode", total=total, unit="frame") as task,
    ):
        for frame, image, weights in frames:
            wanted = matte_writer is not None or writer.format.alpha
            face_matte = matte_of(weights, image.shape) if wanted else None  # [H, W]
            writer.write(image, pts=frame.pts, source=frame, alpha=face_matte)
            if matte_writer is not None and face_matte is not None:
                matte_writer.write(face_matte, pts=frame.pts)
            written += 1
            task.advance()
    return written
