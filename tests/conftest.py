"""Shared fixtures: the real test clips in ../shared/testdata (skipped cleanly when absent)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
TESTDATA_DIR = SHARED_DIR / "testdata"
DIRECTIONS_DIR = SHARED_DIR / "weights" / "directions"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not available: {path}")
    return path


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The folder of real clips and photos; its MANIFEST.tsv describes each file."""
    return _require(TESTDATA_DIR)


@pytest.fixture(scope="session")
def directions_dir() -> Path:
    """Real InterFaceGAN / e4e / GANSpace direction files for the official FFHQ generator."""
    return _require(DIRECTIONS_DIR)


def testdata_file(name: str) -> Path:
    """Path of one test clip, skipping the test when the folder is absent."""
    return _require(TESTDATA_DIR / name)


testdata_file.__test__ = False  # a helper, not a test (its name starts with "test")


def manifest_rows() -> list[dict[str, str]]:
    """Rows of testdata/MANIFEST.tsv ([] when the folder is absent)."""
    manifest = TESTDATA_DIR / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    lines = manifest.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line.strip()]


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Tiny convolutions are fastest on one thread (and do not fight other jobs for the CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
