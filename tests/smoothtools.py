"""Tracks for the smoothing tests and benchmarks/bench_smoothing.py: the synthetic world's face quads made
fast, with dlib-like noise, and a causal moving average as the laggy reference filter."""

from __future__ import annotations

import numpy as np

from reenact.faces.align import quad_params, quads_from_params, rot90
from reenact.synthetic import SyntheticConfig, face_quads

SYNTH_FRAMES = 300
SYNTH_MOTION_PERIOD = 40.0
"""Frames per cycle of the synthetic motion (translation 52, zoom 36, roll 28 frames: fast head turns)."""
SYNTH_TRANSLATION = 12.0
"""Synthetic translation amplitude in pixels (face 56 px): peak speed ~0.026 quad sides per frame,
about twice the fastest real clip's (lp_driving_d3)."""
SYNTH_ROTATION = 10.0
SYNTH_SCALE = 0.1
SYNTH_NOISE = 0.003
"""Landmark-induced noise of the quad centre, in quad sides (real clips: 0.0015-0.004); the axes get half."""
SYNTH_OUTLIER_RATE = 0.04
SYNTH_OUTLIER_GAIN = 5.0
"""A fraction of frames gets this many times the noise: the heavy tail of dlib tracks."""
CAUSAL_WINDOW = 5
"""The laggy reference: a causal moving average over this many frames (delay (W - 1) / 2 = 2 frames)."""


def fast_synthetic_track(seed: int, *, num_frames: int = SYNTH_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """(truth, noisy) quads [T, 4, 2]: the synthetic world's face quads made fast, plus dlib-like noise."""
    config = SyntheticConfig(
        seed=seed,
        num_frames=num_frames,
        frame_width=256,
        frame_height=256,
        motion_period=SYNTH_MOTION_PERIOD,
        translation=SYNTH_TRANSLATION,
        rotation=SYNTH_ROTATION,
        scale=SYNTH_SCALE,
    )
    truth, _ = face_quads(num_frames, config=config, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    size = config.face_size
    centre, x, _ = quad_params(truth)
    gain = np.where(rng.random(num_frames) < SYNTH_OUTLIER_RATE, SYNTH_OUTLIER_GAIN, 1.0)[:, None]  # [T, 1]
    noisy_centre = centre + gain * rng.normal(0.0, SYNTH_NOISE * size, centre.shape)
    noisy_x = x + gain * rng.normal(0.0, 0.5 * SYNTH_NOISE * size, x.shape)
    return truth, quads_from_params(noisy_centre, noisy_x, rot90(noisy_x))


def causal_average(quads: np.ndarray, *, window: int) -> np.ndarray:
    """Causal moving average of quads [T, 4, 2] over the last `window` frames (shorter at the start)."""
    totals = np.cumsum(quads, axis=0)  # [T, 4, 2]
    out = totals.copy()
    out[window:] = totals[window:] - totals[:-window]
    counts = np.minimum(np.arange(1, len(quads) + 1), window)  # [T]
    return out / counts[:, None, None]
