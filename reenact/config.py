"""Typed configuration: one dataclass per stage, defaults in one place.

Every setting has exactly one default, here. `configs/*.toml` are presets that override some of
them; `--set section.key=value` overrides one setting on the command line. Unknown sections or keys
are an error that names them, so a typo never silently does nothing.

Adding a stage: write its dataclass (a docstring line per field, checks in `__post_init__`) and add
it as a field of `Config`; the loader needs no change.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from reenact.errors import ReenactError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
MAX_CRF = 51


@dataclass
class VideoConfig:
    """Encoding of every video we write (H.264 through libx264)."""

    crf: int = 16
    """Constant rate factor, 0 (lossless) .. 51; lower is better quality and bigger files."""
    preset: str = "medium"
    """x264 speed/size trade-off, `ultrafast` .. `veryslow`."""
    pix_fmt: Literal["yuv420p", "yuv444p"] = "yuv420p"
    """Output pixel format; yuv420p plays everywhere."""

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= MAX_CRF:
            raise ReenactError(f"video.crf must be in 0..{MAX_CRF}, got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ReenactError(f"video.preset must be one of {', '.join(X264_PRESETS)}; got {self.preset!r}")


@dataclass
class Config:
    """All settings of all stages; each field is one section of a TOML preset."""

    video: VideoConfig = field(default_factory=VideoConfig)


def load_config(path: Path | str | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the TOML file at `path` (if given), then `section.key=value` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
    for item in overrides:
        keys, value = parse_override(item)
        _set_nested(data, keys, value)
    return config_from_dict(data)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a `Config` from nested mappings; unknown keys and wrong types raise `ReenactError`."""
    return _build(Config, data, prefix="")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (for manifests and `--json` output)."""
    return dataclasses.asdict(config)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse `section.key=value`; the value is read as a TOML value, else taken as a string."""
    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name or any(not part for part in name.split(".")):
        raise ReenactError(f"--set expects section.key=value, got {item!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name.split("."), value


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReenactError(f"config file not found: {path}")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ReenactError(f"config file {path} is not valid TOML: {exc}") from None


def _set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ReenactError(f"cannot set {'.'.join(keys)}: {key} is a value, not a section")
        node = child
    node[keys[-1]] = value


def _build(cls: type, data: Mapping[str, Any], *, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ReenactError(f"{prefix.rstrip('.') or 'config'} must be a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(prefix + key for key in unknown)
        raise ReenactError(f"unknown config key: {names} (known: {', '.join(sorted(known))})")
    kwargs = {key: _coerce(hints[key], value, name=prefix + key) for key, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, *, name: str) -> Any:
    """Check `value` against the annotation `tp`, converting where TOML is looser than Python."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, prefix=name + ".")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name=name)
            except ReenactError as exc:
                errors.append(str(exc))
        raise ReenactError(errors[0] if errors else f"{name}: bad value {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ReenactError(f"{name} must be one of {choices}; got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ReenactError(f"{name} must be a list, got {value!r}")
        args = get_args(tp)
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, name=name) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ReenactError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReenactError(f"{name} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReenactError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ReenactError(f"{name} must be a string, got {value!r}")
        return value
    raise ReenactError(f"{name}: unsupported setting type {tp!r}")
