"""Scene cuts and inversion segments in the synthetic world (#28), against the ground truth.

The aligner must find each cut at its frame. The transfer through the CLI must match the truth on both
sides of each cut as well as the cut-free world's transfer does on the same frames (same seed: the first
shots are the same pictures), and show no step at a cut beyond the truth's own: a chain that starts afresh
at a cut lands elsewhere in W+, and the driver's offsets or the target's pivots would carry that jump.
The same holds where a shot is cut into inversion segments (the parts ranks share out).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact.demo import MIN_MSE, decode, face_errors, face_psnr
from reenact.gan.checkpoints import save_generator
from reenact.imaging import UINT8_PEAK, psnr_from_mse
from reenact.stages import keys
from reenact.stages.base import FrameRange
from reenact.synthetic import (
    SyntheticConfig,
    SyntheticWorld,
    make_world,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)
from reenact_cli.main import run
from tests.test_pipeline import World

TARGET_CUT = 6
"""The target's second shot starts here (before the driver's expression peaks)."""
DRIVER_CUT = 10
"""The driver's second shot starts here, mid-expression (after its peak): it has no neutral frame of its
own, so its offsets must be taken against the driver's one neutral frame, frame 0."""
CUT_SETTINGS = {"target_cut": TARGET_CUT, "driver_cut": DRIVER_CUT}
MAX_CUT_LOSS_DB = 1.0
"""How far the transfer's face PSNR against the truth on one side of a cut may fall below the cut-free
world's transfer on the same frames (#28's Must show)."""
MAX_CUT_STEP_DB = 4.5
"""How far the two frames next to a cut may fall below their clip's median per-frame face PSNR, beyond how
far the same frames fall in the cut-free world's transfer: far below what a per-shot driver reference
does (over 100 dB), above the spread between CPUs (one frame's face PSNR moves by a dB or more from one
x86 model to another; the target's cut gave 1.36 dB on one Xeon, 2.60 on another and 3.03 on a third,
the last frame of a shot being the worst, as the cut-free clip's last frame is)."""
MAX_SEAM_LOSS_DB = 1.5
"""How far the split shot's face PSNR on one side of its seam may fall below the one-segment run's. The
registration to the key chain moves error from one side to the other (the whole shot's mean is unchanged):
frames 4-9 lose up to 2 dB and 11-15 gain about 1, so the first side lost 1.05 dB on an AVX512 Xeon
(family 6, model 207) and less than 1 on CI's CPU. Doing nothing falls 7 dB below."""
SEAM_SEGMENT = 8
"""Inversion segments of this many frames (`invert.segment_frames`, 64 by default, more than the world's
16 frames): every shot of the cut-free world is split at its frame 8."""
SEAM_SETTINGS = [
    "--set",
    f"invert.segment_frames={SEAM_SEGMENT}",
    "--set",
    f"invert.key_stride={SEAM_SEGMENT // 2}",
]


@dataclass
class Transfer:
    """A written world, its transfer's output and the ground truth, all decoded."""

    world: World
    output: np.ndarray
    """The transfer's frames [T, H, W, 3] uint8."""
    truth: np.ndarray
    """The ground truth's frames [T, H, W, 3] uint8."""
    regions: np.ndarray
    """Each frame's face region [T, H, W] bool."""
    summary: dict

    @property
    def synthetic(self) -> SyntheticWorld:
        return self.world.files.world

    def target(self) -> np.ndarray:
        """Doing nothing: the target clip itself as the output, [T, H, W, 3] uint8."""
        return decode(self.world.files.target_video)


def _cli(args: list[str]) -> dict:
    """Run the CLI with `--json`, its summary (module fixtures cannot take `capsys`)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(args)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


def _world(root: Path, config: SyntheticConfig) -> World:
    files = write_world(make_world(config), root / "files")
    return World(
        files=files, generator=save_generator(files.world.generator, root / "g.safetensors"), root=root
    )


def _run_transfer(root: Path, config: SyntheticConfig, *extra: str, world: World | None = None) -> Transfer:
    """The transfer on a world written in `root`, or on `world`'s files (then the two runs compare on the
    very same input clips: x264 does not always write the same file twice, see `with_seams`)."""
    world = world or _world(root, config)
    output = root / "transfer.mp4"
    summary = _cli(world.transfer_args(output, *extra, workdir=root / "work"))
    frames, regions = true_transfer_frames(world.files.world, composite=synthetic_settings().composite, ref=0)
    return Transfer(world=world, output=decode(output), truth=frames, regions=regions, summary=summary)


@pytest.fixture(scope="module")
def cut_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _world(tmp_path_factory.mktemp("cut-world"), SyntheticConfig(**CUT_SETTINGS))


@pytest.fixture(scope="module")
def with_cuts(tmp_path_factory: pytest.TempPathFactory) -> Transfer:
    return _run_transfer(tmp_path_factory.mktemp("with-cuts"), SyntheticConfig(**CUT_SETTINGS))


@pytest.fixture(scope="module")
def without_cuts(tmp_path_factory: pytest.TempPathFactory) -> Transfer:
    return _run_transfer(tmp_path_factory.mktemp("without-cuts"), SyntheticConfig())


@pytest.fixture(scope="module")
def with_seams(tmp_path_factory: pytest.TempPathFactory, without_cuts: Transfer) -> Transfer:
    """The cut-free world's own files, inverted in segments: compared with `without_cuts` on identical
    inputs, since encoding the world again can code its frames a little differently (about 0.3 dB)."""
    return _run_transfer(
        tmp_path_factory.mktemp("with-seams"), SyntheticConfig(), *SEAM_SETTINGS, world=without_cuts.world
    )


def frame_psnrs(frames: np.ndarray, truth: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Face PSNR (dB) of every frame against the truth, [T]."""
    errors = np.maximum(face_errors(frames, truth, regions), MIN_MSE)
    return np.array([float(psnr_from_mse(error, peak=UINT8_PEAK)) for error in errors])


def cut_dip(psnrs: np.ndarray, cut: int) -> float:
    """How far (dB) the worse of the two frames next to `cut` falls below the clip's median frame."""
    return float(np.median(psnrs) - min(psnrs[cut - 1], psnrs[cut]))


def sides(world: SyntheticWorld) -> list[tuple[str, int, int]]:
    """Each side of each cut: (clip name, start, stop) for every shot of the target and of the driver."""
    return [
        (name, start, stop)
        for name, clip in (("target", world.target), ("driver", world.driver))
        for start, stop in clip.shots()
    ]


def test_aligner_finds_each_cut_at_its_frame(cut_world: World) -> None:
    """`reenact align` on each written clip reports the shots the world drew, and the cut-free clips are
    one shot each (so the check can fail)."""
    files = cut_world.files
    for name, clip in (("target", files.world.target), ("driver", files.world.driver)):
        video, sidecar = getattr(files, f"{name}_video"), getattr(files, f"{name}_landmarks")
        args = ["align", str(video), "--landmarks", str(sidecar), "--workdir", str(cut_world.root / "work")]
        summary = _cli([*args, "--json"])
        assert clip.cut is not None
        assert summary["segments"] == [list(shot) for shot in clip.shots()], (name, summary["segments"])
    plain = make_world(SyntheticConfig())
    assert all(clip.shots() == [(0, plain.config.num_frames)] for clip in (plain.target, plain.driver))


@pytest.mark.slow
def test_transfer_matches_the_truth_on_both_sides_of_each_cut(
    with_cuts: Transfer, without_cuts: Transfer
) -> None:
    """Face PSNR against the truth on each shot of each clip is within `MAX_CUT_LOSS_DB` of the cut-free
    world's transfer on the same frames; doing nothing (the target as output) falls short on every side."""
    assert with_cuts.summary["driver_ref"] == 0, "the driver's one neutral frame is its frame 0"
    shortfalls = side_shortfalls(with_cuts, without_cuts)
    assert max(shortfalls.values()) <= MAX_CUT_LOSS_DB, shortfalls


def side_shortfalls(with_cuts: Transfer, without_cuts: Transfer) -> dict[str, float]:
    """How far (dB) the transfer's face PSNR on each side of each cut falls below the cut-free world's on
    the same frames; doing nothing (the target as output) must fall further than `MAX_CUT_LOSS_DB`."""
    target = with_cuts.target()
    shortfalls = {}
    for name, start, stop in sides(with_cuts.synthetic):
        frames = slice(start, stop)
        got = face_psnr(with_cuts.output[frames], with_cuts.truth[frames], with_cuts.regions[frames])
        cut_free = face_psnr(
            without_cuts.output[frames], without_cuts.truth[frames], without_cuts.regions[frames]
        )
        nothing = face_psnr(target[frames], with_cuts.truth[frames], with_cuts.regions[frames])
        print(
            f"{name} [{start}, {stop}): transfer {got:.2f} dB, cut-free {cut_free:.2f}, nothing {nothing:.2f}"
        )
        assert nothing < cut_free - MAX_CUT_LOSS_DB, "doing nothing must fail the bound"
        shortfalls[f"{name} [{start}, {stop})"] = cut_free - got
    return shortfalls


OTHER_SEEDS = (1, 3)
"""Worlds where a chain started afresh at the driver's cut cost its second shot 9 dB, and where the
second shots still fall 2-4 dB short of the cut-free world with any start (#28 item 2 at cuts)."""
MAX_START_LOSS_DB = 1.0
"""How far the transfer's face PSNR on one side of a cut may fall below the same run's with every chain
after a cut started from the true code of its first frame (the best start there is)."""


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="#28: on these worlds the second shots' crops (a smaller face, placed anew) fit worse and the "
    "driver's offsets amplify it: chains started from the true code fall as short (docs/distributed.md)",
)
@pytest.mark.parametrize("seed", OTHER_SEEDS)
def test_other_worlds_match_the_truth_on_both_sides_of_each_cut(tmp_path: Path, seed: int) -> None:
    """The same bound on worlds of other seeds: their second shots fall 2-4 dB short."""
    with_cuts = _run_transfer(tmp_path / "cuts", SyntheticConfig(seed=seed, **CUT_SETTINGS))
    without_cuts = _run_transfer(tmp_path / "free", SyntheticConfig(seed=seed))
    shortfalls = side_shortfalls(with_cuts, without_cuts)
    assert max(shortfalls.values()) <= MAX_CUT_LOSS_DB, shortfalls


def side_psnrs(transfer: Transfer) -> np.ndarray:
    """Face PSNR against the truth on each side of each cut (`sides`), [S]."""
    return np.array(
        [
            face_psnr(transfer.output[start:stop], transfer.truth[start:stop], transfer.regions[start:stop])
            for _, start, stop in sides(transfer.synthetic)
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", OTHER_SEEDS)
def test_a_chain_continued_at_a_cut_lands_as_well_as_one_started_from_the_truth(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#28 item 2: a run after a cut continues the clip's key chain (`KeysStage.previous_pivot`), and the
    transfer is within `MAX_START_LOSS_DB` on every side of its cuts of the same run with each such chain
    started from the true code of the cut's frame. A chain started afresh there (the start point, as
    each run's used to) falls further short on some side."""
    config = SyntheticConfig(seed=seed, **CUT_SETTINGS)
    world = _world(tmp_path / "world", config)
    truth = {config.target_cut: world.files.world.target.ws, config.driver_cut: world.files.world.driver.ws}
    continued = keys.KeysStage.previous_pivot

    def true_code(stage: keys.KeysStage, frames: FrameRange, part: Path) -> torch.Tensor | None:
        own = continued(stage, frames, part)
        return None if own is None else truth[frames.start][frames.start : frames.start + 1].clone()

    runs = {}
    for name, start in (("continued", continued), ("true code", true_code), ("afresh", lambda *_: None)):
        monkeypatch.setattr(keys.KeysStage, "previous_pivot", start)
        runs[name] = side_psnrs(_run_transfer(tmp_path / name.replace(" ", "-"), config, world=world))
        print(f"seed {seed}, {name}:", np.round(runs[name], 2).tolist())
    assert np.max(runs["true code"] - runs["afresh"]) > MAX_START_LOSS_DB, "a fresh start must fail"
    assert np.max(runs["true code"] - runs["continued"]) <= MAX_START_LOSS_DB, runs


@pytest.mark.slow
def test_no_step_at_a_cut_beyond_the_truths_own(with_cuts: Transfer, without_cuts: Transfer) -> None:
    """The frames next to each cut fall below their clip's median face PSNR by no more than the same
    frames do in the cut-free world's transfer, plus `MAX_CUT_STEP_DB`. Offsets against a per-shot driver
    reference (a step the truth has not) fail it."""
    got = frame_psnrs(with_cuts.output, with_cuts.truth, with_cuts.regions)
    cut_free = frame_psnrs(without_cuts.output, without_cuts.truth, without_cuts.regions)
    print("per-frame face PSNR, with cuts:   ", np.round(got, 1).tolist())
    print("per-frame face PSNR, without cuts:", np.round(cut_free, 1).tolist())
    world = with_cuts.synthetic
    excess = {}
    for name, clip in (("target", world.target), ("driver", world.driver)):
        assert clip.cut is not None
        dips = cut_dip(got, clip.cut), cut_dip(cut_free, clip.cut)
        excess[name] = dips[0] - dips[1]
        print(f"{name} cut at {clip.cut}: dip {dips[0]:.2f} dB, cut-free {dips[1]:.2f}")
    per_shot_ref, _ = true_transfer_frames(world, composite=synthetic_settings().composite, ref=DRIVER_CUT)
    spliced = np.concatenate([with_cuts.truth[:DRIVER_CUT], per_shot_ref[DRIVER_CUT:]])
    wrong = frame_psnrs(spliced, with_cuts.truth, with_cuts.regions)
    wrong_excess = cut_dip(wrong, DRIVER_CUT) - cut_dip(cut_free, DRIVER_CUT)
    print(f"driver cut with a per-shot reference: dip beyond the cut-free one {wrong_excess:.2f} dB")
    assert wrong_excess > MAX_CUT_STEP_DB, "a step must fail"
    assert max(excess.values()) <= MAX_CUT_STEP_DB, excess


@pytest.mark.slow
def test_a_shot_split_into_inversion_segments_has_no_seam(
    with_seams: Transfer, without_cuts: Transfer
) -> None:
    """Target and driver inverted in segments of `SEAM_SEGMENT` frames (each continuing the key chain, as
    ranks share a long shot out): the transfer is within `MAX_SEAM_LOSS_DB` of the one-segment run on each
    side of the seam and within `MAX_CUT_LOSS_DB` over the whole shot, and the frames next to the seam dip
    no more than `MAX_CUT_STEP_DB` beyond the one-segment run's. Doing nothing fails the first bound."""
    num_frames = with_seams.synthetic.config.num_frames
    assert num_frames > SEAM_SEGMENT, "the world must be split"
    target = with_seams.target()
    for start, stop in ((0, SEAM_SEGMENT), (SEAM_SEGMENT, num_frames)):
        frames = slice(start, stop)
        got = face_psnr(with_seams.output[frames], with_seams.truth[frames], with_seams.regions[frames])
        whole = face_psnr(
            without_cuts.output[frames], without_cuts.truth[frames], without_cuts.regions[frames]
        )
        nothing = face_psnr(target[frames], with_seams.truth[frames], with_seams.regions[frames])
        print(f"[{start}, {stop}): segmented {got:.2f} dB, one segment {whole:.2f}, nothing {nothing:.2f}")
        assert nothing < whole - MAX_SEAM_LOSS_DB, "doing nothing must fail the bound"
        assert got >= whole - MAX_SEAM_LOSS_DB, (start, stop, got, whole)
    got = face_psnr(with_seams.output, with_seams.truth, with_seams.regions)
    whole = face_psnr(without_cuts.output, without_cuts.truth, without_cuts.regions)
    print(f"whole shot: segmented {got:.2f} dB, one segment {whole:.2f}")
    assert got >= whole - MAX_CUT_LOSS_DB, (got, whole)
    got = frame_psnrs(with_seams.output, with_seams.truth, with_seams.regions)
    whole = frame_psnrs(without_cuts.output, without_cuts.truth, without_cuts.regions)
    print("per-frame face PSNR, segmented:  ", np.round(got, 1).tolist())
    print("per-frame face PSNR, one segment:", np.round(whole, 1).tolist())
    dips = cut_dip(got, SEAM_SEGMENT), cut_dip(whole, SEAM_SEGMENT)
    print(f"seam at {SEAM_SEGMENT}: dip {dips[0]:.2f} dB, one segment {dips[1]:.2f}")
    assert dips[0] - dips[1] <= MAX_CUT_STEP_DB, dips
