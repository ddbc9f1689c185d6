"""Latent tables written as their rows come (`reenact.latents.LatentWriter`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reenact.latents import LatentWriter, StoredLatents


def test_rows_that_come_out_of_order_are_written_in_order_and_only_the_early_ones_wait(
    tmp_path: Path,
) -> None:
    table = torch.randn(7, 3, 4)  # [N, num_ws, w_dim]
    path = tmp_path / "rows-00000000-00000007.npy"
    with LatentWriter(path, rows=len(table), row_shape=(3, 4)) as out:
        out.write(0, table[0:2])
        assert not out.waiting and out.out.written == 2
        out.write(3, table[3:4])  # row 2 is still in work (the inversion's window)
        out.write(4, table[4:6])
        assert sorted(out.waiting) == [3, 4] and out.out.written == 2
        out.write(2, table[2:3])
        assert not out.waiting and out.out.written == 6
        out.write(6, table[6:7])
    assert torch.equal(StoredLatents(tmp_path, prefix="rows-")[0:7], table)


def test_a_table_with_a_row_missing_is_refused(tmp_path: Path) -> None:
    table = torch.randn(3, 2, 2)
    with (
        pytest.raises(ValueError, match="1 of 3 rows"),
        LatentWriter(tmp_path / "rows.npy", rows=3, row_shape=(2, 2)) as out,
    ):
        out.write(0, table[0:1])
        out.write(2, table[2:3])
