"""A synthetic scene with several people (issue #25): who is where in every frame is known.

The synthetic world (`reenact.synthetic`) has one face per clip. Here the world's generator renders a few
people (each their own base w and smooth motion in W, no expression) into one clip of several shots. In
every shot each person sits in a slot (left, large; or right, smaller) or is absent, as `SCENE_SHOTS`
says: at the first cut the two swap sides (and so sizes), at the second person 1 leaves, at the third
they come back. A rule by position or size follows the wrong person after the first cut; a person keeps
their id through all of it. Each shot has its own tinted background, so the colour-histogram detector
finds every cut.

Known per frame: each person's W+ latents, FFHQ quad, frame -> crop matrix and 68 landmarks (NaN where
they are absent). `write_scene` writes the clip (H.264, 4:4:4, an AAC tone) and a landmarks sidecar
with every face of every frame, as a multi-face detector would give them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from reenact.config import CompositeConfig
from reenact.errors import ReenactError
from reenact.faces.align import crop_matrix, quads_from_params, rot90, transform_points
from reenact.faces.landmarks import NUM_LANDMARKS, write_landmarks
from reenact.gan.random import RANDOM_W_DIM, random_generator
from reenact.gan.stylegan2 import Generator
from reenact.imaging import images_to_uint8
from reenact.synthetic import (
    CUT_TINT_MIX,
    FACE_REGION_ALPHA,
    SyntheticConfig,
    SyntheticFiles,
    SyntheticWorld,
    drifting_background,
    landmark_template,
    make_world,
    measured_settings,
    motion_offsets,
    paste,
    sinusoids,
    w_std,
    write_tone,
)

SCENE_SHOTS: tuple[tuple[int | None, int | None], ...] = ((0, 1), (1, 0), (0, None), (1, 0))
"""Per shot, the person in the left and in the right slot (None: empty)."""
SLOT_X = (0.3, 0.72)
"""Centre of the left and the right slot, as a share of the frame's width."""
SLOT_SCALE = (1.0, 0.75)
"""Face size in the left and the right slot, as a share of `SceneConfig.face_size`."""
SHOT_TINTS = ((0.0, 0.0, 0.0), (40.0, 200.0, 90.0), (210.0, 70.0, 60.0), (60.0, 90.0, 220.0))
"""Colour each shot's background is pulled towards (by `CUT_TINT_MIX`; the first shot's is untinted), so
every cut shows in the colour histograms."""
FACE_WAVE_PERIODS = (1.3, 0.9)
"""Periods of a face's slow drift in the frame (x, y), as multiples of `SceneConfig.motion_period`."""


@dataclass(frozen=True)
class SceneConfig:
    """A multi-person synthetic scene (see the module docstring)."""

    seed: int = 0
    """Seed of the world's generator, the people, their motion and the backgrounds."""
    resolution: int = 32
    """Generator (and aligned crop) resolution."""
    w_dim: int = RANDOM_W_DIM
    """Width of the generator's w."""
    shot_frames: int = 8
    """Frames per shot."""
    fps: int = 25
    frame_width: int = 192
    frame_height: int = 96
    face_size: float = 56.0
    """Side of the left slot's face crop square in frame pixels: the one-person world's (`SyntheticConfig`),
    so a cast's faces are measured against their truth as the demo's face is."""
    motion: float = 0.1
    """Size of each person's smooth motion in W, in W standard deviations."""
    motion_period: float = 128.0
    """Frames per cycle of the slowest motion."""
    translation: float = 3.0
    """Amplitude of a face's drift in the frame, in pixels."""
    shots: tuple[tuple[int | None, int | None], ...] = SCENE_SHOTS
    """Per shot, the person in the left and in the right slot (None: empty); one shot per entry of
    `SHOT_TINTS` at most. A single shot with one person is the one-person clip of that person."""

    def __post_init__(self) -> None:
        if not 1 <= len(self.shots) <= len(SHOT_TINTS) or all(
            person is None for shot in self.shots for person in shot
        ):
            raise ReenactError(f"scene.shots must be 1 to {len(SHOT_TINTS)} shots with someone in them")
        if self.shot_frames < 2:
            raise ReenactError(f"scene.shot_frames must be >= 2, got {self.shot_frames}")
        if self.frame_width % 2 or self.frame_height % 2:
            raise ReenactError("scene.frame_width and frame_height must be even")
        if self.face_size > min(self.frame_height, self.frame_width * (SLOT_X[1] - SLOT_X[0])):
            raise ReenactError("scene.face_size must fit in the frame and leave the two slots apart")

    @property
    def num_frames(self) -> int:
        return self.shot_frames * len(self.shots)

    @property
    def num_people(self) -> int:
        return 1 + max(person for shot in self.shots for person in shot if person is not None)


@dataclass
class SyntheticScene:
    """A rendered scene and everything known about it."""

    config: SceneConfig
    generator: Generator
    """The world's generator, which rendered the faces."""
    ws: torch.Tensor
    """Each person's W+ latents in every frame [P, T, num_ws, w_dim] (also where they are absent)."""
    present: np.ndarray
    """[P, T] bool: the person is in the frame."""
    quads: np.ndarray
    """Each person's FFHQ quad [P, T, 4, 2]; NaN where absent."""
    matrices: np.ndarray
    """Each person's frame -> crop matrix [P, T, 3, 3]; NaN where absent."""
    landmarks: np.ndarray
    """Each person's 68 landmarks in frame pixels [P, T, 68, 2]; NaN where absent."""
    frames: np.ndarray
    """The video frames [T, H, W, 3] uint8."""
    shot_starts: list[int]

    def frames_of(self, person: int) -> np.ndarray:
        """The frames person `person` is in [n] int64, ascending."""
        return np.flatnonzero(self.present[person])


def slot_quads(num_frames: int, *, slot: int, config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """A face's quads [T, 4, 2] in slot `slot`: its crop square, upright, drifting slowly about the slot."""
    periods = tuple(config.motion_period * ratio for ratio in FACE_WAVE_PERIODS)
    waves = sinusoids(num_frames, periods=periods, phases=rng.uniform(0, 2 * math.pi, len(periods)))
    centre = np.array([SLOT_X[slot] * config.frame_width, (config.frame_height - 1) / 2])
    centres = centre + config.translation * waves  # [T, 2]
    half_side = 0.5 * config.face_size * SLOT_SCALE[slot]
    x = np.tile([half_side, 0.0], (num_frames, 1))  # [T, 2]
    return quads_from_params(centres, x, rot90(x))


def make_scene(
    config: SceneConfig,
    *,
    latents: dict[int, torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
) -> SyntheticScene:
    """Render the scene in memory (deterministic for a given config).

    `latents` gives some people their W+ latents [T, num_ws, w_dim] instead of their own: the one-person
    world's target clip, for example, so a cast transfer of that person compares frame by frame with
    the demo's transfer of the same face."""
    generator = random_generator(
        resolution=config.resolution, w_dim=config.w_dim, seed=config.seed, device=device
    )
    rng = np.random.default_rng([config.seed, len(SCENE_SHOTS)])
    people, frames_total, num_ws = config.num_people, config.num_frames, generator.num_ws
    spread = w_std(generator, seed=config.seed)
    z = torch.from_numpy(rng.standard_normal((people, generator.z_dim))).float().to(device)
    with torch.no_grad():
        bases = generator.mapping(z)[:, 0]  # [P, w_dim]
    ws = torch.stack(
        [
            (
                base
                + motion_offsets(
                    frames_total, w_std=spread, size=config.motion, period=config.motion_period, rng=rng
                )
            )[:, None, :].repeat(1, num_ws, 1)
            for base in bases
        ]
    )  # [P, T, num_ws, w_dim]
    for person, given in (latents or {}).items():
        if not 0 <= person < people or given.shape != ws[person].shape:
            raise ReenactError(
                f"scene latents for person {person} must be [{', '.join(map(str, ws[person].shape))}] "
                f"and the person one of 0..{people - 1}"
            )
        ws[person] = given.to(ws)
    with torch.no_grad():
        crops = np.stack(
            [images_to_uint8(generator.synthesis(person, noise_mode="const")).cpu().numpy() for person in ws]
        )  # [P, T, R, R, 3]
    present = np.zeros((people, frames_total), dtype=bool)
    quads = np.full((people, frames_total, 4, 2), np.nan)
    frames = np.empty((frames_total, config.frame_height, config.frame_width, 3), np.uint8)
    starts = [index * config.shot_frames for index in range(len(config.shots))]
    world = SyntheticConfig(  # what `drifting_background` reads: the frame's size
        frame_width=config.frame_width, frame_height=config.frame_height, face_size=config.face_size
    )
    for start, slots, tint in zip(starts, config.shots, SHOT_TINTS[: len(starts)], strict=True):
        shot = slice(start, start + config.shot_frames)
        background = drifting_background(config.shot_frames, config=world, rng=rng)
        mix = CUT_TINT_MIX if any(tint) else 0.0
        mixed = (1.0 - mix) * background + mix * np.asarray(tint)
        frames[shot] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
        for slot, person in enumerate(slots):
            if person is None:
                continue
            present[person, shot] = True
            quads[person, shot] = slot_quads(config.shot_frames, slot=slot, config=config, rng=rng)
    matrices = np.full((people, frames_total, 3, 3), np.nan)
    landmarks = np.full((people, frames_total, NUM_LANDMARKS, 2), np.nan)
    template = landmark_template(config.resolution)
    for person in range(people):
        for frame in np.flatnonzero(present[person]):
            matrices[person, frame] = crop_matrix(quads[person, frame], config.resolution)
            landmarks[person, frame] = transform_points(template, np.linalg.inv(matrices[person, frame]))
            frames[frame] = paste(frames[frame], crops[person, frame], matrices[person, frame])
    return SyntheticScene(
        config=config,
        generator=generator,
        ws=ws,
        present=present,
        quads=quads,
        matrices=matrices,
        landmarks=landmarks,
        frames=frames,
        shot_starts=starts,
    )


SECOND_WORLD_SEED = 1000
"""`worlds_scene`: person 1's world is drawn with this seed offset, by person 0's world's generator."""


def worlds_scene(seed: int, *, motion: float) -> tuple[SyntheticScene, tuple[SyntheticWorld, SyntheticWorld]]:
    """The scene of `seed` whose two people are the targets of two one-person worlds drawn by its one
    generator (the world of `seed`, and one of `seed + SECOND_WORLD_SEED`), each with `motion` (W
    spreads): each person can then be reenacted in the scene (a cast, each with their world's driver) and
    alone (their world's transfer), the same face and driver frame by frame (issue #25's comparison with
    the one-person demo). Returns the scene and the two worlds."""
    config = SceneConfig(seed=seed)
    first = make_world(SyntheticConfig(seed=seed, num_frames=config.num_frames, motion=motion))
    second = make_world(
        SyntheticConfig(seed=seed + SECOND_WORLD_SEED, num_frames=config.num_frames, motion=motion),
        generator=first.generator,
    )
    scene = make_scene(config, latents={0: first.target.ws, 1: second.target.ws})
    if not torch.equal(scene.generator.mapping.w_avg, first.generator.mapping.w_avg):
        raise ReenactError(
            f"internal error: the scene and the world of seed {seed} have different generators"
        )
    return scene, (first, second)


def write_world_cast(path: Path, drivers: list[SyntheticFiles]) -> Path:
    """A cast file (`reenact.cast`) in which person i of a scene is driven by the driver clip of the
    written world `drivers[i]` (its landmarks sidecar, reference frame 0, strength 1)."""
    path.write_text(
        "".join(
            f'[[person]]\nid = {person}\ndriver = "{files.driver_video}"\n'
            f'driver_landmarks = "{files.driver_landmarks}"\nstrength = 1.0\ndriver_frame = 0\n\n'
            for person, files in enumerate(drivers)
        )
    )
    return path


def true_cast_frames(
    scene: SyntheticScene,
    source: np.ndarray,
    drivers: list[tuple[torch.Tensor, float]],
    *,
    layer_mask: torch.Tensor,
    composite: CompositeConfig,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The true output of a cast on the scene's clip `source` [T, H, W, 3] uint8 (as written): each
    person's true latents plus their driver's offsets (`drivers`: latents [T, num_ws, w_dim] and strength,
    per person) from its frame 0 on `layer_mask`'s layers [num_ws], rendered and pasted in depth order
    (the smaller face first, as the pipeline composites). Returns the frames and each person's face region
    [T, H, W] bool (where the mask's alpha > `FACE_REGION_ALPHA`)."""
    from reenact.composite import composite_face, face_mask
    from reenact.faces.align import warp_to_frame

    mask_layers = layer_mask[None, :, None]
    crops = []
    for person, (driver, strength) in enumerate(drivers):
        latents = scene.ws[person] + strength * (driver - driver[0:1]) * mask_layers
        with torch.no_grad():
            crops.append(images_to_uint8(scene.generator.synthesis(latents, noise_mode="const")).numpy())
    truth = source.copy()
    regions = [np.zeros(source.shape[:3], dtype=bool) for _ in crops]
    for frame in range(len(source)):
        present = [p for p in range(len(crops)) if scene.present[p, frame]]
        sizes = {
            p: float(np.linalg.norm(scene.quads[p, frame, 1] - scene.quads[p, frame, 0])) for p in present
        }
        for person in sorted(present, key=sizes.get):
            matrix = scene.matrices[person, frame]
            mask = face_mask(
                scene.landmarks[person, frame],
                matrix=matrix,
                resolution=scene.config.resolution,
                config=composite,
            )
            truth[frame] = composite_face(
                truth[frame], crops[person][frame], matrix=matrix, mask_crop=mask, config=composite
            )
            alpha = warp_to_frame(mask.astype(np.float32), matrix, source[frame].shape)
            regions[person][frame] = alpha > FACE_REGION_ALPHA
    return truth, regions


def write_scene(scene: SyntheticScene, directory: Path | str) -> tuple[Path, Path]:
    """Write the scene's clip (`video.mp4`, 4:4:4 with an AAC tone) and its landmarks sidecar
    (`landmarks.npz`: every person's face in every frame they are in, in person order); returns both
    paths."""
    from reenact.video import VideoWriter, new_video_info

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = scene.config
    audio = write_tone(directory / "tone.m4a", duration_s=config.num_frames / config.fps, frequency=440.0)
    info = new_video_info(width=config.frame_width, height=config.frame_height, fps=Fraction(config.fps))
    clip = directory / "video.mp4"
    with VideoWriter(clip, like=info, config=measured_settings().video, audio_from=audio) as writer:
        for index, frame in enumerate(scene.frames):
            writer.write(frame, pts=index)
    landmarks = write_landmarks(directory / "landmarks.npz", scene.landmarks.transpose(1, 0, 2, 3))
    return clip, landmarks
