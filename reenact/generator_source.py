"""The generator a run starts from: a registry name, a checkpoint file, or an explicitly random one.

It sits above both `reenact.gan` and `reenact.weights`: it resolves names through the weight cache,
whose format checks load generator files through `reenact.gan`, so neither folder imports the other
both ways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from reenact.config import DEFAULT_GENERATOR
from reenact.errors import ReenactError
from reenact.files import sha256_file
from reenact.gan.checkpoints import load_generator
from reenact.gan.random import is_random_spec, random_generator_from_spec
from reenact.gan.stylegan2 import Generator
from reenact.workspace import Workspace, tensor_digest


@dataclass(frozen=True)
class GeneratorSource:
    """The generator a run starts from, where it came from, and its content hash (part of stage keys)."""

    spec: str
    generator: Generator
    digest: str
    is_random: bool


def load_generator_spec(
    spec: str, *, device: torch.device | str = "cpu", workspace: Workspace | None = None
) -> GeneratorSource:
    """`NAME` from the weight registry, a checkpoint `PATH`, or `random:tiny[-RES]` (explicitly random).

    A missing registry file is a `ReenactError` naming the file and the `reenact weights` command. The
    digest of a file is its sha256, remembered by `workspace` when one is given.
    """
    from reenact import weights

    if is_random_spec(spec):
        generator = random_generator_from_spec(spec, device=device)
        return GeneratorSource(
            spec=spec, generator=generator, digest=tensor_digest(generator.state_dict()), is_random=True
        )
    path = Path(spec)
    if spec in weights.all_entries():
        entry = weights.get_entry(spec)
        if entry.kind != "generator":
            raise ReenactError(f"{spec} is a {entry.kind} weight, not a generator")
        path = weights.weight_path(spec)
    elif not path.exists():
        raise ReenactError(
            f"generator {spec!r} is neither a file nor a known weight name; see `reenact weights list` "
            f"(default {DEFAULT_GENERATOR}), or pass random:tiny for a random test generator"
        )
    if not path.is_file():
        digest = spec
    elif workspace is None:  # no run's workspace to remember the hash in: none is made in the cwd
        digest = sha256_file(path)
    else:
        digest = workspace.input_digest(path)
    generator = load_generator(path, device=device).eval().requires_grad_(False)
    return GeneratorSource(spec=spec, generator=generator, digest=digest, is_random=False)
