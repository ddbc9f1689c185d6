"""The GAN objective that trains reenact's generator: non-saturating logistic loss, lazy R1, EMA of G.

As in NVlabs stylegan2-ada-pytorch `training/loss.py` (`StyleGAN2Loss`) and `training/training_loop.py`
(the EMA and the lazy regularisation's scaling). Pure functions: the trainer (`reenact.train`) owns
the networks, the optimisers and the order of the phases.

Lazy regularisation (StyleGAN2, appendix B): R1 is evaluated only every `interval` discriminator steps
and its loss is multiplied by `interval`, so on average it weighs as if applied every step; the Adam
hyper-parameters of D are adjusted by `lazy_adam` so that the optimiser sees the same per-step dynamics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HALF = 0.5
"""What is left of a weight after one half-life."""
MIN_HALF_LIFE_IMAGES = 1e-8
"""Floor of the EMA half-life (at the first step, with ramp-up, it is 0: the EMA then copies G)."""


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: mean softplus(-D(G(z))) = -log sigmoid(D(G(z))). fake_logits: [N, 1]."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic D loss: mean softplus(D(fake)) + mean softplus(-D(real)). Logits: [N, 1] each."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_images: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm of D at each real image, |dD(x)/dx|^2: [N].

    `real_images` [N, C, H, W] must require grad and `real_logits` [N, 1] be computed from it; the graph
    is kept (create_graph) so the penalty trains D."""
    (grads,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_images, create_graph=True)
    return grads.square().sum(dim=[1, 2, 3])


def r1_loss(penalty: torch.Tensor, *, gamma: float, interval: int) -> torch.Tensor:
    """The lazy R1 term added to D's loss on a regularisation step: mean(penalty) * gamma / 2 * interval."""
    return penalty.mean() * (gamma / 2.0) * interval


def lazy_adam(*, lr: float, betas: tuple[float, float], interval: int) -> tuple[float, tuple[float, float]]:
    """Adam lr and betas for a network whose loss carries a lazy regulariser every `interval` steps.

    The official ratio interval / (interval + 1) (`training_loop.py`): the extra regularisation step per
    `interval` steps is compensated so that the optimiser's effective lr and momentum stay the same."""
    ratio = interval / (interval + 1)
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)


def ema_beta(*, batch: int, half_life_images: float, images_seen: int, rampup: float | None) -> float:
    """Decay of the EMA generator for one step of `batch` images: 0.5 ** (batch / half-life).

    With `rampup` the half-life is at most `rampup * images_seen` (the official `ema_rampup`): early on
    the EMA forgets the random initialisation quickly instead of averaging it in for a whole half-life."""
    half_life = half_life_images
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    return HALF ** (batch / max(half_life, MIN_HALF_LIFE_IMAGES))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, *, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters; buffers (w_avg, noise) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
