"""W+ inversion of clips on the synthetic world: recovery, warm start against cold start, coherence."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reenact.adam import AdamMoments
from reenact.config import Config, InvertConfig
from reenact.device import resolve_runtime
from reenact.invert import (
    AdamBatch,
    AdamWindow,
    Batch,
    FrameTable,
    InversionResult,
    InvertReport,
    LbfgsBatch,
    Problem,
    invert_clip,
    latent_speed,
    layer_spread,
    plan_regimes,
    plateaued,
    psnr,
    refit_frames,
    start_latents,
)
from reenact.losses import Image2StyleGANPerceptual
from reenact.synthetic import (
    TINY_W_DIM,
    SyntheticConfig,
    SyntheticWorld,
    make_world,
    quick_invert_config,
    synthetic_settings,
)
from tests.progresstools import RecordingProgress

NUM_FRAMES = 16
IN_DOMAIN_PSNR_DB = 30.0
PSNR_PARITY_DB = 0.5
MIN_EVAL_RATIO = 4.0
MAX_SPEED_RATIO = 1.5
START_SAMPLES = 64
WORLD_W_DIM = TINY_W_DIM
"""`tiny`'s width: its W+ has many directions the images barely constrain, like FFHQ's 18 x 512, which
is what the warm start is for (cold starts land on unrelated solutions). On the default 8-wide world
the latents are identifiable: cold and warm both reach 60-70 dB and neither jitters."""
FAST = quick_invert_config()
LBFGS = synthetic_settings().invert
LBFGS_FRAMES = 8
LBFGS_IN_DOMAIN_DB = 60.0
"""In-domain on the identifiable 8-wide world, L-BFGS fits clean crops to 80+ dB in its budget."""
LBFGS_GAIN_DB = 10.0
"""...and by at least this much more than Adam given as many renders (measured: 82 against 60 dB)."""
SPREAD_WEIGHT = 0.01
SPREAD_REDUCTION = 0.5
"""The pulled fit's layer spread is at most this share of the free fit's."""
MAX_SPREAD_FIT_LOSS_DB = 3.0
"""...and its PSNR against the crops at most this much lower."""
CPU = resolve_runtime("cpu")
"""fp32 on the CPU."""


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_world(SyntheticConfig(num_frames=NUM_FRAMES, w_dim=WORLD_W_DIM))


@pytest.fixture(scope="module")
def runs(world: SyntheticWorld) -> dict[str, InversionResult]:
    """The target clip inverted three ways (shared by the tests below)."""
    targets = world.target.crops
    broken = dataclasses.replace(FAST, mode="cold", first_steps=FAST.warm_steps)  # w_avg, reduced budget
    return {
        "warm": invert_clip(world.generator, targets, config=FAST, perceptual=None, runtime=CPU),
        "cold": invert_clip(
            world.generator,
            targets,
            config=dataclasses.replace(FAST, mode="cold"),
            perceptual=None,
            runtime=CPU,
        ),
        "broken": invert_clip(world.generator, targets, config=broken, perceptual=None, runtime=CPU),
    }


def test_in_domain_frames_are_recovered(world: SyntheticWorld, runs: dict[str, InversionResult]) -> None:
    warm = runs["warm"]
    assert warm.pivots.shape == world.target.ws.shape
    assert float(warm.psnr.mean()) >= IN_DOMAIN_PSNR_DB
    # The reported PSNR is that of the returned pivots.
    with torch.no_grad():
        rendered = world.generator.synthesis(warm.pivots)
    torch.testing.assert_close(psnr(rendered, world.target.crops), warm.psnr, atol=0, rtol=1e-4)


def test_warm_start_matches_cold_start_with_fewer_evaluations(runs: dict[str, InversionResult]) -> None:
    warm, cold, broken = runs["warm"], runs["cold"], runs["broken"]
    assert cold.renders.total == NUM_FRAMES * FAST.first_steps
    assert warm.renders.total == FAST.first_steps + (NUM_FRAMES - 1) * FAST.warm_steps
    assert cold.renders.total / warm.renders.total >= MIN_EVAL_RATIO
    assert float(warm.psnr.mean()) >= float(cold.psnr.mean()) - PSNR_PARITY_DB
    # Without the warm start, the same small budget per frame falls far short.
    assert broken.renders.total <= warm.renders.total
    assert float(broken.psnr.mean()) < float(cold.psnr.mean()) - PSNR_PARITY_DB


def test_warm_started_pivots_move_like_the_truth(
    world: SyntheticWorld, runs: dict[str, InversionResult]
) -> None:
    truth = float(latent_speed(world.target.ws).mean())
    assert float(latent_speed(runs["warm"].pivots).mean()) <= MAX_SPEED_RATIO * truth
    # Frame-by-frame cold starts land on unrelated W+ solutions: far more jitter.
    assert float(latent_speed(runs["cold"].pivots).mean()) > MAX_SPEED_RATIO * truth


def test_w_space_shares_one_latent_across_layers(world: SyntheticWorld) -> None:
    config = dataclasses.replace(FAST, space="w", first_steps=150, warm_steps=30)
    result = invert_clip(world.generator, world.target.crops[:3], config=config, perceptual=None, runtime=CPU)
    assert torch.equal(result.pivots, result.pivots[:, :1].expand_as(result.pivots))
    start = world.generator.mapping.w_avg.expand(1, world.generator.num_ws, -1)
    with torch.no_grad():
        start_psnr = float(psnr(world.generator.synthesis(start), world.target.crops[:1]))
    assert float(result.psnr.min()) > start_psnr + 5.0


def test_deterministic_and_generator_untouched(world: SyntheticWorld) -> None:
    generator = world.generator
    generator.requires_grad_(True)  # even a trainable G gets no gradients from an inversion
    try:
        config = dataclasses.replace(FAST, first_steps=20, warm_steps=5)
        first = invert_clip(generator, world.target.crops[:4], config=config, perceptual=None, runtime=CPU)
        again = invert_clip(generator, world.target.crops[:4], config=config, perceptual=None, runtime=CPU)
        assert all(param.grad is None for param in generator.parameters())
    finally:
        generator.requires_grad_(False)
    assert torch.equal(first.pivots, again.pivots)
    assert torch.equal(first.loss, again.loss)


def test_plateau_stops_early_and_counts_evaluations(world: SyntheticWorld) -> None:
    assert plateaued([1.0, 0.9995, 0.999], window=2, tolerance=1e-2)
    assert not plateaued([1.0, 0.9, 0.8], window=2, tolerance=1e-2)
    assert not plateaued([1.0, 1.0], window=2, tolerance=1e-2)  # not enough history yet
    assert not plateaued([1.0, 1.0, 1.0], window=0, tolerance=1e-2)  # window 0: never
    config = dataclasses.replace(FAST, plateau_window=10, plateau_tolerance=0.5)
    reports: list[InvertReport] = []
    progress = RecordingProgress()
    result = invert_clip(
        world.generator,
        world.target.crops[:5],
        config=config,
        perceptual=None,
        runtime=CPU,
        progress=progress,
        on_batch=reports.append,
    )
    budgets = [config.first_steps] + [config.warm_steps] * 4
    assert all(taken < budget for taken, budget in zip(result.steps, budgets, strict=True))
    assert result.renders.total == sum(result.steps), "each frame renders once a step until it stops"
    assert [r.frames_done for r in reports] == [1, 2, 3, 4, 5]
    assert [r.steps for r in reports] == result.steps
    assert progress.tasks == [("invert", 5, "frame", 0, [1, 1, 1, 1, 1], True)]


def test_perceptual_loss_with_random_backbone(world: SyntheticWorld) -> None:
    """The perceptual term is used (test backbone: random VGG16 weights, never for real runs)."""
    perceptual = Image2StyleGANPerceptual(random_backbone=True, seed=0)
    targets = world.target.crops[:2]
    config = dataclasses.replace(FAST, first_steps=40, warm_steps=10, perceptual_weight=1.0, mse_weight=0.0)
    result = invert_clip(world.generator, targets, config=config, perceptual=perceptual, runtime=CPU)
    start = world.generator.mapping.w_avg.expand(2, world.generator.num_ws, -1)
    with torch.no_grad():
        start_loss = perceptual(world.generator.synthesis(start), targets)
    assert torch.all(result.loss < 0.5 * start_loss)


def test_rejects_wrong_target_shape(world: SyntheticWorld) -> None:
    with pytest.raises(ValueError, match="targets must be"):
        invert_clip(world.generator, torch.zeros(2, 3, 16, 16), config=FAST, perceptual=None, runtime=CPU)


def test_start_samples_pick_the_closest_seeded_sample(world: SyntheticWorld) -> None:
    generator, targets = world.generator, world.target.crops[:3]
    from_avg = start_latents(generator, targets, config=FAST, layers=generator.num_ws)
    torch.testing.assert_close(from_avg, generator.mapping.w_avg.expand_as(from_avg), atol=0, rtol=0)
    config = dataclasses.replace(FAST, start_samples=START_SAMPLES)
    chosen = start_latents(generator, targets, config=config, layers=generator.num_ws)  # [3, L, D]
    assert torch.equal(chosen, start_latents(generator, targets, config=config, layers=generator.num_ws))
    assert torch.equal(chosen, chosen[:, :1].expand_as(chosen)), "a sample is one w on every layer"
    z = torch.randn(
        START_SAMPLES, generator.z_dim, generator=torch.Generator().manual_seed(config.start_seed)
    )
    with torch.no_grad():
        samples = generator.synthesis(generator.mapping(z))  # [S, 3, R, R]
        chosen_psnr = psnr(generator.synthesis(chosen), targets)  # [3]
        average_psnr = psnr(generator.synthesis(from_avg), targets)  # [3]
        for index, target in enumerate(targets):
            best = psnr(samples, target[None].expand_as(samples)).max()
            assert float(chosen_psnr[index]) == pytest.approx(float(best), abs=1e-4), f"frame {index}"
    assert bool((chosen_psnr > average_psnr).all()), "the closest sample starts nearer than w_avg"


@pytest.fixture(scope="module")
def identifiable() -> SyntheticWorld:
    """The default (8-wide) synthetic world, whose latents the images determine."""
    return make_world(SyntheticConfig(num_frames=LBFGS_FRAMES))


def test_lbfgs_fits_far_better_than_adam_with_as_many_renders(identifiable: SyntheticWorld) -> None:
    generator, targets = identifiable.generator, identifiable.target.crops
    lbfgs = invert_clip(generator, targets, config=LBFGS, perceptual=None, runtime=CPU)
    budgets = [LBFGS.first_steps] + [LBFGS.warm_steps] * (LBFGS_FRAMES - 1)
    assert len(lbfgs.steps) == LBFGS_FRAMES, "L-BFGS runs one frame at a time"
    assert all(0 < taken <= budget for taken, budget in zip(lbfgs.steps, budgets, strict=True))
    assert lbfgs.renders.backward >= sum(lbfgs.steps), "every iteration renders at least once"
    # Adam (the old synthetic settings) with the same number of renders: frame 0 as many as L-BFGS's.
    first_renders = LBFGS.first_steps + LBFGS.first_steps // 4
    warm = (lbfgs.renders.backward - first_renders) // (LBFGS_FRAMES - 1)
    adam_config = dataclasses.replace(
        LBFGS,
        optimiser="adam",
        first_steps=first_renders,
        warm_steps=warm,
        learning_rate=0.05,
        warm_learning_rate=0.05,
    )
    adam = invert_clip(generator, targets, config=adam_config, perceptual=None, runtime=CPU)
    assert adam.renders.backward <= lbfgs.renders.total
    assert float(lbfgs.psnr.mean()) >= LBFGS_IN_DOMAIN_DB
    assert float(lbfgs.psnr.mean()) >= float(adam.psnr.mean()) + LBFGS_GAIN_DB
    # The reported PSNR is that of the returned pivots.
    with torch.no_grad():
        rendered = generator.synthesis(lbfgs.pivots)
    torch.testing.assert_close(psnr(rendered, targets), lbfgs.psnr, atol=0, rtol=1e-4)


def test_lbfgs_runs_in_full_precision_under_autocast(identifiable: SyntheticWorld) -> None:
    """Its line search compares nearby losses: the run's bf16 autocast must not reach it."""
    config = dataclasses.replace(LBFGS, first_steps=20, warm_steps=5, start_samples=0)  # start: w_avg
    targets = identifiable.target.crops[:3]
    plain = invert_clip(identifiable.generator, targets, config=config, perceptual=None, runtime=CPU)
    bf16 = resolve_runtime("cpu", precision="bf16")
    under = invert_clip(identifiable.generator, targets, config=config, perceptual=None, runtime=bf16)
    assert torch.equal(plain.pivots, under.pivots)
    # Adam, by contrast, renders under the run's autocast.
    adam = dataclasses.replace(config, optimiser="adam")
    plain = invert_clip(identifiable.generator, targets, config=adam, perceptual=None, runtime=CPU)
    under = invert_clip(identifiable.generator, targets, config=adam, perceptual=None, runtime=bf16)
    assert not torch.equal(plain.pivots, under.pivots), "autocast was applied"


SEGMENT = 8
MAX_SEAM_JUMP = 4.0
"""Step into a segment's first frame over the clip's median step. A warm chain's largest step is ~3x its
median here (measured: 2.9 in one run, 3.1 at the seam of a chained one); a segment started afresh
lands elsewhere in W+ for the same picture (15x here; 24-28x in bench_invert --segment)."""


def seam_jump(pivots: torch.Tensor, *, segment: int) -> float:
    steps = latent_speed(pivots)  # [N - 1]
    return float(steps[torch.arange(segment, len(pivots), segment) - 1].max() / steps.median())


def test_a_segment_continues_the_chain_of_the_one_before_without_a_seam(world: SyntheticWorld) -> None:
    """Segments handed the last pivot before them (the inversion stage's parts) form one warm chain:
    no jump where one hands over, and the quality of one run; segments started afresh jump."""
    targets = world.target.crops

    def segments(*, chained: bool) -> torch.Tensor:
        pivots: list[torch.Tensor] = []
        for first in range(0, len(targets), SEGMENT):
            start = pivots[-1][-1:] if (chained and pivots) else None
            part = targets[first : first + SEGMENT]
            pivots.append(
                invert_clip(
                    world.generator, part, config=FAST, perceptual=None, runtime=CPU, start=start
                ).pivots
            )
        return torch.cat(pivots)

    chained, fresh = segments(chained=True), segments(chained=False)
    assert seam_jump(chained, segment=SEGMENT) < MAX_SEAM_JUMP
    assert seam_jump(fresh, segment=SEGMENT) > MAX_SEAM_JUMP, "fresh segments should show the seam"
    with torch.no_grad():
        quality = psnr(world.generator.synthesis(chained, noise_mode="const"), targets)
    whole = invert_clip(world.generator, targets, config=FAST, perceptual=None, runtime=CPU)
    assert float(quality.mean()) > float(whole.psnr.mean()) - PSNR_PARITY_DB


PREDICT_FRAMES = 125
MIN_PREDICT_GAIN_DB = 1.0
"""The default world's clips at the balanced budget: predicting the motion gains 1.6-2.4 dB (measured)."""


@pytest.mark.slow
def test_predicted_warm_starts_fit_better_at_the_same_renders() -> None:
    """Moving the start on by half the last finished step (`invert.predict`) fits every clip better than
    starting from the predecessor as it is, for the same renders and without jitter."""
    world = make_world(SyntheticConfig(num_frames=PREDICT_FRAMES))
    config = dataclasses.replace(Config().invert, perceptual_weight=0.0, start_samples=START_SAMPLES)
    for clip in (world.target, world.driver):
        runs = {
            predict: invert_clip(
                world.generator,
                clip.crops,
                config=dataclasses.replace(config, predict=predict),
                perceptual=None,
                runtime=CPU,
            )
            for predict in (0.0, config.predict)
        }
        still, moving = runs[0.0], runs[config.predict]
        assert moving.renders == still.renders
        assert float(moving.psnr.mean()) >= float(still.psnr.mean()) + MIN_PREDICT_GAIN_DB
        truth = float(latent_speed(clip.ws).mean())
        assert float(latent_speed(moving.pivots).mean()) <= MAX_SPEED_RATIO * truth


def problem_for(world: SyntheticWorld, config: InvertConfig) -> Problem:
    generator = world.generator
    return Problem(
        generator=generator,
        targets=world.target.crops,
        perceptual=None,
        config=config,
        device=torch.device("cpu"),
        layers=generator.num_ws,
    )


def test_the_plan_names_each_regime(world: SyntheticWorld) -> None:
    """cold: Adam batches; warm Adam: frame 0 alone, then the window; chained: the window only; warm
    L-BFGS: frame 0, then one frame at a time from its neighbour."""
    frames = 10
    adam = dataclasses.replace(FAST, optimiser="adam", batch_size=4)

    def shape(config: InvertConfig, *, chained: bool = False) -> list[tuple[type, range, int, bool]]:
        regimes = plan_regimes(problem_for(world, config), frames, chained=chained)
        return [
            (type(r), r.frames, r.steps, isinstance(r, AdamWindow) or (isinstance(r, Batch) and r.warm))
            for r in regimes
        ]

    first, warm = FAST.first_steps, FAST.warm_steps
    assert shape(dataclasses.replace(adam, mode="cold")) == [
        (AdamBatch, range(0, 4), first, False),
        (AdamBatch, range(4, 8), first, False),
        (AdamBatch, range(8, 10), first, False),
    ]
    assert shape(adam) == [(AdamBatch, range(0, 1), first, False), (AdamWindow, range(1, 10), warm, True)]
    assert shape(adam, chained=True) == [(AdamWindow, range(0, 10), warm, True)]
    lbfgs = shape(dataclasses.replace(LBFGS, mode="warm"))
    assert lbfgs[0] == (LbfgsBatch, range(0, 1), LBFGS.first_steps, False)
    assert lbfgs[1:] == [(LbfgsBatch, range(f, f + 1), LBFGS.warm_steps, True) for f in range(1, frames)]


def test_rows_leave_every_per_frame_array_together(world: SyntheticWorld) -> None:
    """Removing a row from the table removes it from latents, targets, best, steps, histories and Adam."""
    problem = problem_for(world, FAST)
    table = FrameTable(problem, arithmetic="tensor")
    generator = world.generator
    for frame in range(3):
        start = torch.full((1, generator.num_ws, generator.w_dim), float(frame))
        moments = AdamMoments(
            steps=torch.tensor([float(10 * frame)]), exp_avg=start + 1, exp_avg_sq=start + 2
        )
        table.enter(range(frame, frame + 1), start, problem.crops(range(frame, frame + 1)), moments)
        table.taken[-1] = 100 + frame
        table.histories[-1].append(float(frame))
    table.remove([1])
    assert table.frames == [0, 2] and table.entered == 3
    assert table.latents[:, 0, 0].tolist() == [0.0, 2.0]
    assert table.best.latents[:, 0, 0].tolist() == [0.0, 2.0]
    assert torch.equal(table.targets, problem.crops(range(0, 3))[[0, 2]])
    assert table.taken.tolist() == [100, 102]
    assert table.histories == [[0.0], [2.0]]
    assert table.adam.moments.steps.tolist() == [0.0, 20.0]
    assert table.adam.moments.exp_avg[:, 0, 0].tolist() == [1.0, 3.0]
    assert table.adam.moments.exp_avg_sq[:, 0, 0].tolist() == [2.0, 4.0]
    finished = table.finished(1, 2)
    assert finished.frames == range(2, 3) and finished.steps == 102


def test_layer_spread_is_zero_in_w_and_the_mean_square_about_the_layers_mean() -> None:
    w = torch.randn(3, 1, 5).expand(3, 4, 5)  # [A, K, w_dim]: a code in W
    assert torch.equal(layer_spread(w), torch.zeros(3))
    spread = w.clone()
    spread[:, 0] += 2.0  # one layer off by 2 in every dimension: mean over layers moves by 0.5
    expected = (1.5**2 + 3 * 0.5**2) / 4  # per dimension, averaged over the 4 layers
    assert torch.allclose(layer_spread(spread), torch.full((3,), expected))


def test_spread_weight_pulls_an_out_of_domain_fit_towards_w(world: SyntheticWorld) -> None:
    """Crops the generator cannot render exactly (blurred): without the pull a W+ fit spreads its layers
    apart; with `invert.spread_weight` it stays nearer W, at a small cost in fit."""
    blurred = torch.nn.functional.avg_pool2d(world.target.crops[:2], 3, stride=1, padding=1)  # [2, 3, R, R]
    free = invert_clip(world.generator, blurred, config=LBFGS, perceptual=None, runtime=CPU)
    pulled_config = dataclasses.replace(LBFGS, spread_weight=SPREAD_WEIGHT)
    pulled = invert_clip(world.generator, blurred, config=pulled_config, perceptual=None, runtime=CPU)
    free_spread, pulled_spread = (
        float(layer_spread(free.pivots).mean()),
        float(layer_spread(pulled.pivots).mean()),
    )
    print(
        f"layer spread {free_spread:.4f} free, {pulled_spread:.4f} pulled; PSNR {free.psnr.mean():.2f} / "
        f"{pulled.psnr.mean():.2f} dB"
    )
    assert pulled_spread < SPREAD_REDUCTION * free_spread, (free_spread, pulled_spread)
    assert float(pulled.psnr.mean()) > float(free.psnr.mean()) - MAX_SPREAD_FIT_LOSS_DB


def test_spread_weight_must_not_be_negative() -> None:
    with pytest.raises(Exception, match="spread_weight"):
        InvertConfig(spread_weight=-1.0)


FREE_FIT_DB = 50.0
"""Fitted on its free layers alone, an identifiable world's frame (the rest held at its truth) is
recovered to at least this PSNR; started from another frame's free layers it is far below."""


def test_a_refit_of_free_layers_holds_every_other_layer_and_recovers_the_free_ones(
    identifiable: SyntheticWorld,
) -> None:
    generator = identifiable.generator
    truth = identifiable.driver.ws[:LBFGS_FRAMES]  # [N, L, W]
    with torch.no_grad():
        targets = generator.synthesis(truth, noise_mode="const")  # [N, 3, R, R]
    free = torch.zeros(generator.num_ws, dtype=torch.bool)
    free[generator.num_ws // 2 :] = True
    starts = truth.clone()
    starts[:, free] = truth[0:1, free]  # frame 0's free layers on every frame
    fitted, renders = refit_frames(
        generator,
        targets,
        starts,
        config=LBFGS,
        perceptual=None,
        runtime=CPU,
        steps=LBFGS.first_steps,
        free=free,
    )
    assert torch.equal(fitted[:, ~free], starts[:, ~free]), "the held layers are the starts' own"
    assert renders.backward > 0
    with torch.no_grad():
        before = psnr(generator.synthesis(starts, noise_mode="const"), targets)[1:]
        after = psnr(generator.synthesis(fitted, noise_mode="const"), targets)[1:]
    assert float(after.min()) >= FREE_FIT_DB
    assert float(before.max()) < FREE_FIT_DB, "the do-nothing start must fail the bound"
