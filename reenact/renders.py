"""Generator renders counted by kind: the unit a run's cost is measured in.

A render is one image out of the synthesis network. Those that an optimiser also differentiates
(inversion steps, tuning steps, the regulariser's tuned render) cost a forward and a backward pass; the
others (the final renders, the regulariser's reference, report-only PSNR passes, start-point searches)
cost a forward pass only. Every stage returns what it rendered, and the run summary adds them up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Renders:
    """Images rendered: with a backward pass through the generator, and forward only."""

    backward: int = 0
    """Renders that were also back-propagated (forward + backward)."""
    forward: int = 0
    """Renders without a backward pass."""

    def __add__(self, other: Renders) -> Renders:
        return Renders(backward=self.backward + other.backward, forward=self.forward + other.forward)

    @property
    def total(self) -> int:
        return self.backward + self.forward


NONE = Renders()
"""What a stage without a generator renders."""
