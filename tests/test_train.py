"""Training reenact's generator: steps move the weights, a resumed run is bit-identical, it learns."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.errors import ReenactError
from reenact.gan.checkpoints import load_generator
from reenact.sampling import render_seeds
from reenact.train import (
    CHECKPOINT_NAME,
    D_LOSS_COLOUR,
    FACE_RATE_COLOUR,
    G_LOSS_COLOUR,
    GENERATOR_NAME,
    LOG_NAME,
    TrainConfig,
    Trainer,
    read_log,
    train,
    training_curves,
)

pytestmark = pytest.mark.usefixtures("single_thread")

COLOURS = np.array([[200, 40, 40], [220, 90, 30], [180, 30, 90], [240, 60, 60]], np.uint8)
"""The flat colours of the toy dataset: reds, far from a random generator's grey."""
TOY_IMAGES = 64
SAMPLE_SEEDS = list(range(32))
LEARN_STEPS = 300
LEARNED_SHARE = 0.2
"""After LEARN_STEPS the EMA samples' mean colour must be this much nearer the data's than at step 0
(measured: 90 -> 5 grey levels, a share of 0.06)."""
MIN_CURVE_PIXELS = 500
"""Pixels of a series' colour that a drawn curve reaches (a legend swatch and axis labels: about 200)."""


def toy_config(**changes: object) -> TrainConfig:
    """A generator and discriminator small enough for hundreds of steps in seconds on one thread."""
    base = TrainConfig(
        resolution=16,
        z_dim=16,
        w_dim=16,
        channel_base=256,
        channel_max=16,
        batch=8,
        steps=4,
        r1_interval=2,
        ema_half_life_images=200,
        checkpoint_every=1000,
        log_every=1,
        face_check_every=0,
    )
    return replace(base, **changes)


def toy_images(resolution: int = 16) -> np.ndarray:
    """uint8 [N, R, R, 3]: one flat colour per image, drawn from COLOURS."""
    picks = np.random.default_rng(0).integers(0, len(COLOURS), TOY_IMAGES)
    return np.ascontiguousarray(
        np.broadcast_to(COLOURS[picks][:, None, None, :], (TOY_IMAGES, resolution, resolution, 3))
    )


def states(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every tensor of the training state that a resumed run must reproduce."""
    out = {}
    for prefix, module in (("G", trainer.G), ("G_ema", trainer.G_ema), ("D", trainer.D)):
        out |= {f"{prefix}.{name}": value.clone() for name, value in module.state_dict().items()}
    return out


def test_steps_change_the_weights_with_finite_losses() -> None:
    trainer = Trainer(toy_config(), toy_images())
    before = states(trainer)
    figures = [trainer.train_step() for _ in range(3)]
    for step in figures:
        assert {"g_loss", "d_loss", "real_logit", "fake_logit"} <= set(step)
        assert all(np.isfinite(value) for value in step.values())
    assert "r1_penalty" in figures[0] and "r1_penalty" not in figures[1]  # lazy: steps 0, 2, ...
    after = states(trainer)
    for prefix in ("G.synthesis.b16.conv1.weight", "G_ema.synthesis.b16.conv1.weight", "D.b16.conv0.weight"):
        assert not torch.equal(before[prefix], after[prefix])
    assert trainer.step == 3 and trainer.images_seen == 24
    assert trainer.G.mapping.w_avg.abs().sum() > 0  # tracked, and copied to the EMA
    assert torch.equal(trainer.G_ema.mapping.w_avg, trainer.G.mapping.w_avg)


def test_training_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainer = Trainer(toy_config(), toy_images())
    trainer.train_step()
    assert torch.equal(torch.rand(3), expected)


def test_resumed_run_is_bit_identical(tmp_path: Path) -> None:
    images = toy_images()
    whole = tmp_path / "whole"
    result = train(toy_config(steps=6), images, run_dir=whole)
    assert result.step == 6
    split = tmp_path / "split"
    train(toy_config(steps=3), images, run_dir=split)  # stops at step 3, with a checkpoint
    train(toy_config(steps=6), images, run_dir=split)  # resumes there
    reference, resumed = Trainer(toy_config(), images), Trainer(toy_config(), images)
    reference.load(whole / CHECKPOINT_NAME)
    resumed.load(split / CHECKPOINT_NAME)
    assert resumed.step == reference.step == 6
    ref_states, res_states = states(reference), states(resumed)
    assert ref_states.keys() == res_states.keys()
    for name, value in ref_states.items():
        assert torch.equal(value, res_states[name]), name
    assert torch.equal(reference.rng.get_state(), resumed.rng.get_state())
    whole_log = [{k: v for k, v in e.items() if k != "seconds"} for e in read_log(whole / LOG_NAME)]
    split_log = [{k: v for k, v in e.items() if k != "seconds"} for e in read_log(split / LOG_NAME)]
    assert whole_log == split_log and [e["step"] for e in whole_log] == [1, 2, 3, 4, 5, 6]
    exported = load_generator(split / GENERATOR_NAME)
    for name, value in reference.G_ema.state_dict().items():
        assert torch.equal(exported.state_dict()[name], value), name


def test_resume_refuses_other_settings_or_data(tmp_path: Path) -> None:
    images = toy_images()
    train(toy_config(steps=2), images, run_dir=tmp_path)
    with pytest.raises(ReenactError, match=r"trained with g_lr=0\.0025, not 0\.001"):
        train(toy_config(steps=3, g_lr=0.001), images, run_dir=tmp_path)
    with pytest.raises(ReenactError, match="another dataset"):
        train(toy_config(steps=3), images[::-1].copy(), run_dir=tmp_path)


def test_resume_drops_log_lines_after_the_checkpoint(tmp_path: Path) -> None:
    images = toy_images()
    train(toy_config(steps=2), images, run_dir=tmp_path)
    with (tmp_path / LOG_NAME).open("a") as handle:  # as if the run went on past its checkpoint, then died
        handle.write(json.dumps({"step": 3, "g_loss": 9.0}) + "\n" + '{"step": 4, "g_lo')
    train(toy_config(steps=3), images, run_dir=tmp_path)
    entries = read_log(tmp_path / LOG_NAME)
    assert [e["step"] for e in entries] == [1, 2, 3] and entries[-1]["g_loss"] != 9.0


def test_bad_settings_and_data_are_refused() -> None:
    with pytest.raises(ReenactError, match="multiple of 4"):
        toy_config(batch=6)
    with pytest.raises(ReenactError, match="unknown augmentation"):
        toy_config(augment="zoom")
    with pytest.raises(ReenactError, match="uint8"):
        Trainer(toy_config(), toy_images(32))
    with pytest.raises(ReenactError, match="unknown fields"):
        TrainConfig.from_dict({"resolution": 64, "lr": 1.0})
    assert TrainConfig.from_dict(toy_config().to_dict()) == toy_config()


def colour_distance(trainer: Trainer, data_mean: np.ndarray) -> float:
    """Mean absolute difference (grey levels) between the EMA samples' mean colour and the data's."""
    samples = render_seeds(trainer.G_ema, SAMPLE_SEEDS, truncation=1.0)
    return float(np.abs(samples.reshape(-1, 3).mean(axis=0) - data_mean).mean())


def test_it_learns_the_colours_of_a_flat_colour_dataset() -> None:
    """A GAN that trains at all moves its samples' colour to the data's within a few hundred tiny steps,
    with the default augmentation policy (colour jitter included) on everything D sees."""
    images = toy_images()
    data_mean = images.reshape(-1, 3).mean(axis=0)
    trainer = Trainer(toy_config(steps=LEARN_STEPS), images)
    start = colour_distance(trainer, data_mean)
    for _ in range(LEARN_STEPS):
        trainer.train_step()
    assert colour_distance(trainer, data_mean) < LEARNED_SHARE * start


def test_the_training_curves_draw_both_losses_and_the_face_rate() -> None:
    """Each series of the log is drawn in its colour: a curve, far more pixels than its legend swatch."""
    entries = [
        {"step": step, "d_loss": 1.0 + 0.2 * math.sin(step / 300), "g_loss": 3.0 - step / 2000}
        | ({"face_rate": step / 4000} if step % 1000 == 0 else {})
        for step in range(50, 4001, 50)
    ]
    image = training_curves(entries)
    for colour in (D_LOSS_COLOUR, G_LOSS_COLOUR, FACE_RATE_COLOUR):
        assert (np.abs(image.astype(int) - np.array(colour)).sum(axis=2) < 30).sum() > MIN_CURVE_PIXELS, (
            colour
        )
    no_rate = training_curves(
        [{key: value for key, value in entry.items() if key != "face_rate"} for entry in entries]
    )
    rate_pixels = (np.abs(no_rate.astype(int) - np.array(FACE_RATE_COLOUR)).sum(axis=2) < 30).sum()
    assert rate_pixels < MIN_CURVE_PIXELS  # only the legend swatch and the axis labels
