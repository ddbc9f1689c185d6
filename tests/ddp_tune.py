"""Tune the synthetic world's generator for a few steps and save its synthesis weights: run by
`test_distributed` once alone and once under `torchrun` with 2 ranks (data-parallel), to compare.

    python tests/ddp_tune.py OUT.safetensors            # one process
    torchrun --standalone --nproc_per_node=2 tests/ddp_tune.py OUT.safetensors
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from reenact import distributed
from reenact.device import resolve_runtime
from reenact.files import save_tensors
from reenact.pti import tune_generator
from reenact.synthetic import SyntheticConfig, make_world, synthetic_settings

FRAMES = 8
STEPS = 6
BATCH = 4
IDENTITY_NOISE = 1.0
"""The global batch: 4 frames a step, on one rank or shared by two."""


def main(output: Path) -> None:
    torch.set_num_threads(1)
    runtime = resolve_runtime("cpu")
    group = distributed.join(runtime.device)
    world = make_world(SyntheticConfig(seed=0, num_frames=FRAMES, identity_noise=IDENTITY_NOISE))
    config = dataclasses.replace(
        synthetic_settings().pti, batch_size=BATCH, base_steps=STEPS, max_steps=STEPS, locality_interval=2
    )
    result = tune_generator(
        world.generator,
        world.target.crops,
        world.target.ws,
        config=config,
        perceptual=None,
        runtime=runtime,
        group=group,
    )
    if group.is_main:
        save_tensors(
            output, dict(result.generator.synthesis.state_dict()), metadata={"steps": str(result.steps)}
        )
    distributed.leave(finished=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
