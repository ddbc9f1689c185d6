"""The per-row Adam: torch.optim.Adam's numbers row by row, rows entering and leaving at any step."""

from __future__ import annotations

import pytest
import torch

from reenact.adam import AdamArithmetic, AdamMoments, RowAdam

ROW_SHAPE = (3, 37)
"""[K, D] of one row: 111 elements, not a multiple of any vector width, so kernels' tails are used."""
STEPS = 12
ENTRIES = {0: 0, 1: 2, 2: 5}
"""Row -> the step it enters at."""
LEAVES = {1: 9}
"""Row -> the step it leaves before."""
RATES = {0: 0.1, 1: 0.03, 2: 0.2}
"""Each row's base learning rate; a row's rate also changes with its own step (a ramp)."""


def gradient(row: int, step: int) -> torch.Tensor:
    """A seeded gradient [1, K, D] for `row` at its `step`: same on every path."""
    rng = torch.Generator().manual_seed(1000 * row + step)
    return torch.randn(1, *ROW_SHAPE, generator=rng) * (1 + step)


def rate(row: int, step: int) -> float:
    return RATES[row] * (step + 1) / STEPS


def start(row: int) -> torch.Tensor:
    return torch.full((1, *ROW_SHAPE), float(row))


def run_rows(arithmetic: AdamArithmetic) -> dict[int, list[torch.Tensor]]:
    """Rows through one `RowAdam`, entering and leaving at ENTRIES and LEAVES: each row's params after
    each of its steps."""
    adam = RowAdam(start(0), arithmetic=arithmetic)
    params = start(0)[:0]  # [A, K, D]
    rows: list[int] = []
    taken: dict[int, int] = {}
    trace: dict[int, list[torch.Tensor]] = {row: [] for row in ENTRIES}
    for step in range(STEPS):
        leaving = [slot for slot, row in enumerate(rows) if LEAVES.get(row) == step]
        if leaving:
            keep = [slot for slot in range(len(rows)) if slot not in leaving]
            adam.keep(torch.tensor(keep, dtype=torch.long))
            params, rows = params[keep], [rows[slot] for slot in keep]
        for row, entry in ENTRIES.items():
            if entry == step:
                adam.enter(AdamMoments.zeros(start(row)))
                params, rows = torch.cat([params, start(row)]), [*rows, row]
                taken[row] = 0
        grads = torch.cat([gradient(row, taken[row]) for row in rows])
        params = adam.step(params, grads, [rate(row, taken[row]) for row in rows])
        for slot, row in enumerate(rows):
            trace[row].append(params[slot : slot + 1].clone())
            taken[row] += 1
    return trace


def torch_rows() -> dict[int, list[torch.Tensor]]:
    """The same rows, each alone through its own `torch.optim.Adam` (the CPU default path)."""
    trace: dict[int, list[torch.Tensor]] = {}
    for row, entry in ENTRIES.items():
        param = start(row).requires_grad_(True)
        optimiser = torch.optim.Adam([param], lr=rate(row, 0))
        trace[row] = []
        for step in range(LEAVES.get(row, STEPS) - entry):
            optimiser.param_groups[0]["lr"] = rate(row, step)
            param.grad = gradient(row, step)
            optimiser.step()
            trace[row].append(param.detach().clone())
    return trace


def test_torch_arithmetic_is_torch_adam_bit_for_bit_row_by_row() -> None:
    ours, reference = run_rows("torch"), torch_rows()
    for row in ENTRIES:
        assert len(ours[row]) == len(reference[row]) > 1
        for step, (mine, theirs) in enumerate(zip(ours[row], reference[row], strict=True)):
            assert torch.equal(mine, theirs), f"row {row} step {step}"


def test_tensor_arithmetic_is_adam_rounded_otherwise() -> None:
    """The window's arithmetic is the same Adam (close) but not the same bits: why it is a parameter."""
    ours, reference = run_rows("tensor"), torch_rows()
    differs = False
    for row in ENTRIES:
        for mine, theirs in zip(ours[row], reference[row], strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
            differs |= not torch.equal(mine, theirs)
    assert differs


@pytest.mark.parametrize("arithmetic", ["torch", "tensor"])
def test_handed_on_moments_continue_the_same_adam(arithmetic: AdamArithmetic) -> None:
    """A row entering with a finished row's moments moves as that row would have gone on."""
    steps = 6
    alone = RowAdam(start(0), arithmetic=arithmetic)
    alone.enter(AdamMoments.zeros(start(0)))
    param = start(0)
    for step in range(steps):
        param = alone.step(param, gradient(0, step), [rate(0, step)])
    table = RowAdam(start(0), arithmetic=arithmetic)
    table.enter(AdamMoments.zeros(start(0)))
    first = start(0)
    for step in range(steps // 2):
        first = table.step(first, gradient(0, step), [rate(0, step)])
    handed = table.rows(0, 1)
    table.keep(torch.zeros(0, dtype=torch.long))
    table.enter(handed)
    for step in range(steps // 2, steps):
        first = table.step(first, gradient(0, step), [rate(0, step)])
    assert torch.equal(first, param)
    assert torch.equal(table.moments.steps, torch.tensor([float(steps)]))


def test_mismatched_rows_are_refused() -> None:
    adam = RowAdam(start(0), arithmetic="torch")
    adam.enter(AdamMoments.zeros(start(0)))
    with pytest.raises(ValueError, match="learning rates"):
        adam.step(start(0), gradient(0, 0), [0.1, 0.1])
