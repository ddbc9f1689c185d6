"""Where the GAN work runs: device choice, bf16 autocast on CUDA, optional `torch.compile`.

The CLI's `--device auto|cpu|cuda` and `--precision auto|fp32|bf16` land here, so every stage gets an
explicit `torch.device` and autocast dtype instead of guessing on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from reenact.errors import ReenactError

DeviceChoice = Literal["auto", "cpu", "cuda"]
PrecisionChoice = Literal["auto", "fp32", "bf16"]
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Runtime:
    """Device and arithmetic of a run."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    """bf16 under `torch.autocast` (CUDA by default), None for plain fp32."""
    compile: bool
    """Wrap the generator's synthesis network in `torch.compile`."""

    def describe(self) -> str:
        """E.g. `cpu (fp32, 2 threads)` or `cuda (bf16 autocast, compiled)`."""
        precision = "fp32" if self.autocast_dtype is None else "bf16 autocast"
        threads = f", {torch.get_num_threads()} threads" if self.device.type == "cpu" else ""
        return f"{self.device.type} ({precision}{threads}{', compiled' if self.compile else ''})"


def resolve_device(choice: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without a GPU is an error, not a silent CPU run."""
    if choice not in DEVICE_CHOICES:
        raise ReenactError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, got {choice!r}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ReenactError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return torch.device(choice)


def resolve_runtime(device: str = "auto", *, precision: str = "auto", compile: bool = False) -> Runtime:
    """The run's device and precision: `auto` precision is bf16 autocast on CUDA and fp32 on CPU."""
    if precision not in PRECISION_CHOICES:
        raise ReenactError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    resolved = resolve_device(device)
    use_bf16 = precision == "bf16" or (precision == "auto" and resolved.type == "cuda")
    return Runtime(device=resolved, autocast_dtype=torch.bfloat16 if use_bf16 else None, compile=compile)


def numerics_key(runtime: Runtime) -> dict[str, str]:
    """What of the runtime changes a rendering stage's numbers: the autocast dtype, and `torch.compile`
    (its fused kernels round differently). Every stage that renders puts this in its key, so an fp32 and
    a bf16 run on one workdir never reuse each other's results."""
    return {"autocast": str(runtime.autocast_dtype), "compile": str(runtime.compile)}


@contextlib.contextmanager
def autocast(runtime: Runtime) -> Iterator[None]:
    """`torch.autocast` with the run's dtype, or nothing for fp32."""
    if runtime.autocast_dtype is None:
        yield
        return
    with torch.autocast(device_type=runtime.device.type, dtype=runtime.autocast_dtype):
        yield


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on `device` as float32: through pinned memory with a non-blocking copy on CUDA (the
    copy overlaps the work already queued), a plain conversion elsewhere."""
    batch = batch.to(dtype=torch.float32)
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def full_precision(device: torch.device) -> torch.autocast:
    """Switch an enclosing autocast off on `device`: for work that compares nearly equal numbers (an
    L-BFGS line search), which bf16 would blur."""
    return torch.autocast(device_type=device.type, enabled=False)


def maybe_compile(module: nn.Module, *, runtime: Runtime) -> nn.Module:
    """Compile `module`'s forward in place (`nn.Module.compile`) when asked for.

    In place, so parameter names (and thus saved checkpoints) stay the same as without compiling.
    """
    if runtime.compile:
        module.compile()
    return module
