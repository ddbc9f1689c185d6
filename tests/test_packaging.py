"""Packaging: every package folder is installed, the CLI package under its own import name."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_every_package_folder_is_listed() -> None:
    settings = _pyproject()["tool"]["setuptools"]
    listed = set(settings["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "reenact").rglob("__init__.py")
    }
    assert on_disk <= listed, f"missing from pyproject packages: {sorted(on_disk - listed)}"
    assert settings["package-dir"]["reenact_cli"] == "cli"
    assert "reenact_cli" in listed
    assert settings["package-dir"]["reenact.configs"] == "configs", "presets ship with the package"
    assert "*.toml" in _pyproject()["tool"]["setuptools"]["package-data"]["reenact.configs"]


def test_console_script_points_at_the_cli() -> None:
    assert _pyproject()["project"]["scripts"]["reenact"] == "reenact_cli.main:entry"


def test_torch_is_pinned_by_the_constraints_file() -> None:
    constraints = (REPO_ROOT / "constraints.txt").read_text().split()
    assert "torch==2.13.0" in constraints
    readme = (REPO_ROOT / "README.md").read_text()
    assert "pip install -c constraints.txt" in readme
