"""Adam over the rows of a table of parameters, each row with its own step count and learning rate.

Inversion optimises many frames at once, one row of latents each; frames enter and leave at different
steps, so each row carries its own Adam moments and step count, and a row's moments can be handed to a
row that enters later. One update is Adam's (Kingma & Ba 2015, torch's defaults, no weight decay).

Two arithmetics, because two regimes were written against two Adams and must keep their numbers bit
for bit (the same maths, rounded differently):

- `"torch"`: as `torch.optim.Adam` computes it on the CPU (its single-tensor path, the default there):
  first moment by `lerp_`, bias corrections as Python (float64) scalars per row, the denominator
  `sqrt(v) / sqrt(1 - beta2^t) + eps`, the update by `addcdiv_` with `-lr / (1 - beta1^t)`. On CUDA
  torch defaults to its foreach path, the same operations in the same order through other kernels.
- `"tensor"`: first moment by `mul_` and `add_`, bias corrections as float32 tensors over the rows,
  the denominator `sqrt(v / (1 - beta2^t)) + eps`, the update `-lr * (m / (1 - beta1^t)) / denominator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
"""Adam's constants (torch's defaults)."""

AdamArithmetic = Literal["torch", "tensor"]


@dataclass(frozen=True)
class AdamMoments:
    """Adam's state of some rows: `steps` [n] float32 (updates behind each row's moments, as torch
    keeps it), `exp_avg` and `exp_avg_sq` [n, ...] (the rows' shape)."""

    steps: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor

    @staticmethod
    def zeros(like: torch.Tensor) -> AdamMoments:
        """Fresh moments for rows shaped like `like` [n, ...]: nothing seen yet."""
        return AdamMoments(
            steps=torch.zeros(like.shape[0], device=like.device),
            exp_avg=torch.zeros_like(like),
            exp_avg_sq=torch.zeros_like(like),
        )


class RowAdam:
    """Adam's moments for a table of rows [A, ...]; `step` updates every row at its own learning rate."""

    def __init__(
        self,
        like: torch.Tensor,
        *,
        arithmetic: AdamArithmetic,
        betas: tuple[float, float] = ADAM_BETAS,
        eps: float = ADAM_EPS,
    ) -> None:
        """An empty table for rows shaped like `like`'s [n, ...] (its device and dtype)."""
        empty = like.new_zeros((0, *like.shape[1:]))  # [0, ...]
        self.arithmetic: AdamArithmetic = arithmetic
        self.betas = betas
        self.eps = eps
        self.moments = AdamMoments.zeros(empty)

    def __len__(self) -> int:
        return len(self.moments.steps)

    def enter(self, moments: AdamMoments) -> None:
        """Rows join at the end, with their `moments` (e.g. `AdamMoments.zeros`, or a finished row's)."""
        self.moments = AdamMoments(
            steps=torch.cat([self.moments.steps, moments.steps.to(self.moments.steps)]),
            exp_avg=torch.cat([self.moments.exp_avg, moments.exp_avg]),
            exp_avg_sq=torch.cat([self.moments.exp_avg_sq, moments.exp_avg_sq]),
        )

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the rows at `rows` [A'] (long), in that order."""
        self.moments = AdamMoments(
            steps=self.moments.steps[rows],
            exp_avg=self.moments.exp_avg[rows],
            exp_avg_sq=self.moments.exp_avg_sq[rows],
        )

    def rows(self, start: int, stop: int) -> AdamMoments:
        """The moments of rows `start:stop` (views: a later `step` moves them, `keep` and `enter` do not)."""
        return AdamMoments(
            steps=self.moments.steps[start:stop],
            exp_avg=self.moments.exp_avg[start:stop],
            exp_avg_sq=self.moments.exp_avg_sq[start:stop],
        )

    @torch.no_grad()
    def step(self, params: torch.Tensor, grads: torch.Tensor, learning_rates: list[float]) -> torch.Tensor:
        """One Adam update of every row: `params` and `grads` [A, ...], one learning rate per row.
        Returns the updated parameters (a new tensor); the moments move in place."""
        if not len(learning_rates) == len(params) == len(self):
            raise ValueError(f"{len(params)} rows, {len(learning_rates)} learning rates, {len(self)} moments")
        if self.arithmetic == "torch":
            return self._torch_step(params, grads, learning_rates)
        return self._tensor_step(params, grads, learning_rates)

    def _torch_step(
        self, params: torch.Tensor, grads: torch.Tensor, learning_rates: list[float]
    ) -> torch.Tensor:
        """`torch.optim.Adam`'s single-tensor update, over runs of rows that share step and learning rate
        (all rows of a batch that entered together: one call, as torch's over the whole tensor)."""
        beta1, beta2 = self.betas
        exp_avg, exp_avg_sq, steps = self.moments.exp_avg, self.moments.exp_avg_sq, self.moments.steps
        exp_avg.lerp_(grads, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
        steps += 1
        updated = params.clone()
        counts = steps.tolist()
        for start, stop in _equal_runs(list(zip(counts, learning_rates, strict=True))):
            count, rate = counts[start], learning_rates[start]
            bias_correction1 = 1 - beta1**count
            bias_correction2_sqrt = (1 - beta2**count) ** 0.5
            denominator = (exp_avg_sq[start:stop].sqrt() / bias_correction2_sqrt).add_(self.eps)
            updated[start:stop].addcdiv_(exp_avg[start:stop], denominator, value=-(rate / bias_correction1))
        return updated

    def _tensor_step(
        self, params: torch.Tensor, grads: torch.Tensor, learning_rates: list[float]
    ) -> torch.Tensor:
        """The update with bias corrections as float32 tensors over the rows (see the module doc)."""
        beta1, beta2 = self.betas
        exp_avg, exp_avg_sq, steps = self.moments.exp_avg, self.moments.exp_avg_sq, self.moments.steps
        exp_avg.mul_(beta1).add_(grads, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
        steps += 1
        per_row = (-1,) + (1,) * (params.ndim - 1)
        step = steps.reshape(per_row)  # [A, 1, ...]
        rates = torch.tensor(learning_rates, device=params.device, dtype=params.dtype).reshape(per_row)
        denominator = (exp_avg_sq / (1 - beta2**step)).sqrt() + self.eps
        return params - rates * (exp_avg / (1 - beta1**step)) / denominator


def _equal_runs(keys: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Maximal runs `(start, stop)` of consecutive equal keys."""
    runs: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index] != keys[start]:
            runs.append((start, index))
            start = index
    return runs
