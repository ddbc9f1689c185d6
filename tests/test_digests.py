"""Refactors keep every bit: pivots, tuned weights and the output against digests stored before them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.digests import DIGESTS_FILE, compute, platform


def test_run_is_bit_identical_to_the_stored_digests(tmp_path: Path) -> None:
    stored = json.loads(DIGESTS_FILE.read_text())
    if stored["platform"] != platform():
        pytest.skip(f"digests were recorded on {stored['platform']}, this is {platform()}")
    digests = compute(tmp_path)
    changed = sorted(name for name, digest in stored["digests"].items() if digests.get(name) != digest)
    assert not changed, f"changed bits: {changed}"
    assert digests.keys() == stored["digests"].keys()
