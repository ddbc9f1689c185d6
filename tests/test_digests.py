"""Refactors keep every bit: pivots, tuned weights and the output against digests stored before them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.digests import DIGESTS_FILE, compute, platform, records_for


def test_run_is_bit_identical_to_the_stored_digests(tmp_path: Path) -> None:
    records = records_for(json.loads(DIGESTS_FILE.read_text()), platform())
    if not records:
        pytest.skip(f"no digests were recorded on this platform ({platform()})")
    digests = compute(tmp_path)
    changes = [sorted(name for name, digest in old.items() if digests.get(name) != digest) for old in records]
    assert [] in changes, f"changed bits: {min(changes, key=len)}"
    assert all(digests.keys() == old.keys() for old in records)
