"""Configuration: defaults in one place, presets mirror them, unknown keys and bad types are errors."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from reenact.config import (
    QUALITY_LEVELS,
    Config,
    VideoConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    preset_names,
)
from reenact.errors import ReenactError
from reenact.pti import pti_steps, tuning_batch
from reenact_cli.main import EXIT_USAGE, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


def test_default_preset_mirrors_the_dataclass_defaults_exactly() -> None:
    with (CONFIGS_DIR / "default.toml").open("rb") as handle:
        preset = tomllib.load(handle)
    defaults = config_to_dict(Config())
    assert preset.keys() == defaults.keys(), "every section in both places"
    for section, values in defaults.items():
        assert preset[section].keys() == values.keys(), f"[{section}] keys differ"
    assert config_from_dict(preset) == Config()


@pytest.mark.parametrize("preset", sorted(CONFIGS_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_preset_loads(preset: Path) -> None:
    assert isinstance(load_config(preset), Config)


def test_overrides_apply_after_the_file(tmp_path: Path) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_text('[video]\ncrf = 30\npreset = "fast"\n')
    config = load_config(preset, ["video.crf=12"])
    assert config.video == VideoConfig(crf=12, preset="fast")


def test_override_values_are_typed() -> None:
    assert parse_override("video.crf=18") == (["video", "crf"], 18)
    assert parse_override("video.preset=slow") == (["video", "preset"], "slow")
    assert parse_override('video.preset="slow"') == (["video", "preset"], "slow")
    with pytest.raises(ReenactError, match=r"section\.key=value"):
        parse_override("video.crf")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["video.crff=3"], "unknown config key: video.crff"),
        (["vidoe.crf=3"], "unknown config key: vidoe"),
        (["video.crf=fast"], "video.crf must be an integer"),
        (["video.crf=99"], "video.crf must be in 0..51"),
        (["video.preset=warp"], "video.preset must be one of"),
        (["video.pix_fmt=nv12"], "video.pix_fmt must be one of"),
        (["video=3"], "video must be a table"),
        (["invert.optimiser=sgd"], "invert.optimiser must be one of"),
        (["invert.optimiser=lbfgs", "invert.batch_size=8"], "lbfgs' fits one frame at a time"),
        (["invert.segment_frames=40"], r"segment_frames \(40\) must be a multiple of invert.key_stride"),
    ],
)
def test_bad_settings_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ReenactError, match=message):
        load_config(None, overrides)


def test_missing_or_broken_preset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReenactError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[video\ncrf = ")
    with pytest.raises(ReenactError, match="not valid TOML"):
        load_config(broken)


def test_every_setting_has_a_docstring() -> None:
    """Each field is documented where it is defined (the string literal right after it)."""
    source = (Path(__file__).resolve().parents[1] / "reenact" / "config.py").read_text()
    for section in dataclasses.fields(Config()):
        section_cls = type(getattr(Config(), section.name))
        for item in dataclasses.fields(section_cls):
            anchor = f"    {item.name}:"
            start = source.index(anchor, source.index(f"class {section_cls.__name__}"))
            following = source[start:].splitlines()[1].strip()
            assert following.startswith('"""'), f"{section_cls.__name__}.{item.name} has no docstring"


def test_cli_reports_a_bad_setting_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = run(["reencode", "in.mp4", "-o", str(tmp_path / "o.mp4"), "--set", "video.crff=3"])
    assert code == EXIT_USAGE  # a usage mistake, found before the missing input
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: unknown config key: video.crff (known: alpha, codec, crf, pix_fmt, preset, timecode)"
    ]


def test_packaged_presets_load_by_name_and_files_by_path(tmp_path: Path) -> None:
    assert {"default", "synthetic"} <= set(preset_names())
    assert Config.from_preset("default") == Config()
    synthetic = Config.from_preset("synthetic", overrides=["video.crf=20"])
    assert synthetic.invert.optimiser == "lbfgs" and synthetic.video.crf == 20
    mine = tmp_path / "mine.toml"
    mine.write_text("[edit]\nstrength = 0.5\n")
    assert Config.from_preset(mine).edit.strength == 0.5
    with pytest.raises(ReenactError, match="unknown preset 'fast'"):
        Config.from_preset("fast")


def test_generators_of_our_own_run_with_their_own_preset_unless_told() -> None:
    """`random:*` runs the synthetic preset and `face-world` its own, which uses pixel losses only (no VGG16
    or AlexNet weights reach this project); an official generator and an explicit `--preset` win."""
    from reenact_cli.pipeline_cmds import generator_preset

    assert generator_preset("random:tiny", None) == "synthetic"
    assert generator_preset("face-world", None) == "face-world"
    assert generator_preset("face-world", "best") == "best"
    assert generator_preset("stylegan2-ffhq-1024", None) is None
    faces = Config.from_preset("face-world")
    assert faces.invert.perceptual_weight == 0.0 and faces.pti.lpips_weight == 0.0
    assert Config().invert.perceptual_weight > 0 and Config().pti.lpips_weight > 0


def test_typed_overrides_are_checked_like_a_preset() -> None:
    assert Config().with_values(edit={"layers": "3-7"}).edit.layers == "3-7"
    with pytest.raises(ReenactError, match=r"edit\.strenght"):
        Config().with_values(edit={"strenght": 1.0})
    with pytest.raises(ReenactError, match=r"video\.crf must be in"):
        Config().with_values(video={"crf": 99})


def test_the_synthetic_world_is_not_a_production_setting() -> None:
    assert "synthetic" not in config_to_dict(Config())


def _quality_file(level: str) -> dict:
    with (CONFIGS_DIR / "quality" / f"{level}.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_quality_levels_name_only_what_they_change_from_the_defaults() -> None:
    """One default per setting: `balanced` is the defaults (its file sets nothing), and `fast` and `best`
    are deltas over them, so a level never repeats a default."""
    assert _quality_file("balanced") == {}
    assert Config.from_preset("default", quality="balanced") == Config()
    defaults = config_to_dict(Config())
    for level in ("fast", "best"):
        named = _quality_file(level)
        assert named and set(named) <= {"invert", "pti"}, level
        for section, values in named.items():
            for key, value in values.items():
                assert value != defaults[section][key], f"{level}: {section}.{key} repeats the default"
        assert Config.from_preset("default", quality=level) == Config().with_values(**named), level


def test_quality_levels_order_the_budgets() -> None:
    """fast < balanced < best in every clip length's tuning steps x batch and in the inversion's steps."""
    levels = [Config.from_preset("default", quality=level) for level in ("fast", "balanced", "best")]
    for frames in (1, 32, 125, 500):
        tuning = [pti_steps(frames, config=c.pti) * tuning_batch(frames, config=c.pti) for c in levels]
        assert tuning == sorted(tuning) and len(set(tuning)) == len(tuning), (frames, tuning)
    for field in ("first_steps", "warm_steps", "key_steps"):
        steps = [getattr(c.invert, field) for c in levels]
        assert steps[0] < steps[1] < steps[2], (field, steps)


def test_layers_compose_defaults_then_quality_then_preset_then_sets(tmp_path: Path) -> None:
    fast = Config.from_preset("default", quality="fast")
    assert (
        fast.invert.warm_steps == _quality_file("fast")["invert"]["warm_steps"] != Config().invert.warm_steps
    )
    mine = tmp_path / "mine.toml"
    mine.write_text("[invert]\nwarm_steps = 7\nbatch_size = 2\n")
    mixed = Config.from_preset(mine, quality="fast")
    assert mixed.invert.warm_steps == 7 and mixed.invert.batch_size == 2, "the preset wins where it speaks"
    assert mixed.invert.first_steps == fast.invert.first_steps and mixed.pti == fast.pti, "only there"
    assert mixed.invert.learning_rate == Config().invert.learning_rate, "the defaults under both"
    assert Config.from_preset(mine, quality="fast", overrides=["invert.warm_steps=9"]).invert.warm_steps == 9
    synthetic = Config.from_preset("synthetic")
    for level in QUALITY_LEVELS:
        assert Config.from_preset("synthetic", quality=level) == synthetic, (
            f"synthetic names every {level} budget"
        )
    assert (
        Config.from_preset("synthetic", quality="fast", overrides=["pti.max_steps=500"]).pti.max_steps == 500
    )
    with pytest.raises(ReenactError, match="unknown quality 'fastest'; use one of fast, balanced, best"):
        Config.from_preset("default", quality="fastest")


def test_cli_reports_an_unknown_quality_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = run(["invert", str(tmp_path / "in.mp4"), "--quality", "fastest", "--generator", "random:tiny"])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "fastest" in err[-1] and len(err) <= 2, err
