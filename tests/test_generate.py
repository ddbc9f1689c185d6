"""`reenact generate`: seeds parsed, one PNG per seed, the same image for a seed whatever the others."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from reenact.errors import UsageError
from reenact.gan.checkpoints import save_generator
from reenact.gan.random import random_generator_from_spec
from reenact.sampling import GRID_NAME, parse_seeds, render_seeds, seed_file_name, seed_latents
from reenact_cli.main import EXIT_ERROR, EXIT_USAGE, run

pytestmark = pytest.mark.usefixtures("single_thread")

GENERATOR = "random:tiny-16"


def read_png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_seed_lists_and_ranges() -> None:
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(" 5 ") == [5]
    assert parse_seeds("10-10,2") == [10, 2]
    assert len(parse_seeds("0-63")) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a seed"),
        ("a", "is not a seed"),
        ("1,,2", "is not a seed"),
        ("-3", "is not a seed"),
        ("5-2", "runs backwards"),
        ("1,0-2", "listed twice"),
        ("4294967296", "larger than the largest seed"),
        ("0-100000", "more than 100000 seeds"),
    ],
)
def test_bad_seed_lists_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_seeds(text)


def test_a_seed_is_the_same_image_whatever_the_other_seeds() -> None:
    generator = random_generator_from_spec(GENERATOR)
    alone = render_seeds(generator, [5], truncation=0.7)
    among = render_seeds(generator, list(range(20)), truncation=0.7, batch=8)
    assert np.array_equal(alone[0], among[5])
    assert not np.array_equal(among[4], among[5])
    z = seed_latents([5, 6], z_dim=8)
    assert np.array_equal(z[0].numpy(), np.random.RandomState(5).randn(8).astype(np.float32))


def test_generate_writes_a_png_per_seed_and_a_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "samples"
    args = ["generate", "--generator", GENERATOR, "--seeds", "3,0-1", "--trunc", "0.7", "-o", str(out)]
    assert run([*args, "--grid", "--threads", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        GRID_NAME,
        "seed0000.png",
        "seed0001.png",
        "seed0003.png",
    ]
    expected = render_seeds(random_generator_from_spec(GENERATOR), [3, 0, 1], truncation=0.7)
    for seed, image in zip([3, 0, 1], expected, strict=True):
        assert np.array_equal(read_png(out / seed_file_name(seed)), image)
    grid = read_png(out / GRID_NAME)
    assert grid.shape == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2, 3)  # 2 x 2 tiles, 2 px apart
    assert np.array_equal(grid[2:18, 2:18], expected[0])
    assert "3 images of random:tiny-16" in capsys.readouterr().out

    assert run(args) == EXIT_ERROR  # the files exist
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--overwrite" in err
    assert run([*args, "--overwrite"]) == 0


def test_generate_reads_a_safetensors_generator(tmp_path: Path) -> None:
    generator = random_generator_from_spec(GENERATOR)
    path = save_generator(generator, tmp_path / "g.safetensors")
    assert run(["generate", "--generator", str(path), "--seeds", "7", "-o", str(tmp_path / "out")]) == 0
    expected = render_seeds(generator, [7], truncation=1.0)[0]
    assert np.array_equal(read_png(tmp_path / "out" / seed_file_name(7)), expected)


def test_generate_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert run(["generate", "--generator", GENERATOR, "--seeds", "9-1", "-o", out]) == EXIT_USAGE
    assert capsys.readouterr().err == "error: --seeds: the range 9-1 runs backwards\n"
    assert (
        run(["generate", "--generator", str(tmp_path / "nope.pkl"), "--seeds", "1", "-o", out]) == EXIT_ERROR
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a file nor a known weight name" in err
    assert (
        run(["generate", "--generator", GENERATOR, "--seeds", "1", "--trunc", "nan", "-o", out]) == EXIT_USAGE
    )
    assert capsys.readouterr().err == "error: --trunc must be a finite number, got nan\n"
    assert run(["generate", "--generator", GENERATOR, "-o", out]) == EXIT_USAGE  # --seeds is required
    assert not (tmp_path / "out").exists()
