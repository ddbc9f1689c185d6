"""Many processes on one clip or one batch: `torch.distributed`, launched by `torchrun`.

`torchrun` starts the processes and sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK` and the rendezvous
(`MASTER_ADDR`/`MASTER_PORT`, or a c10d endpoint across machines); `join()` reads them and opens the
process group: NCCL when the run is on CUDA GPUs (each process on `cuda:LOCAL_RANK`), gloo on the CPU.
Without `torchrun` it returns `SINGLE`, a group of one whose collectives do nothing, so every code path
is the same in one process.

The workspace, on a filesystem all processes share, is the artifact store: a stage's parts are split
between the ranks (`shard`), each rank writes its own parts, one rank merges them, and everyone loads
the result. The group only carries small messages: barriers, flags, error lines, gradients during
tuning and the per-rank work for the summary. There is no scheduler, socket or server of our own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from reenact.errors import ReenactError

WORLD_ENV = "WORLD_SIZE"
RANK_ENV = "RANK"
LOCAL_RANK_ENV = "LOCAL_RANK"
RESTART_ENV = "TORCHELASTIC_RESTART_COUNT"
AGENT_STORE_ENV = "TORCHELASTIC_USE_AGENT_STORE"
COLLECTIVE_TIMEOUT = timedelta(hours=12)
"""How long a rank waits for the others at one collective: rank 0 encodes the whole output while the
others wait for the summary, so it is long; a dead rank is noticed by `torchrun`, not by this timeout."""
MAIN_RANK = 0
"""The rank that merges stage results, writes checkpoints and the output, and prints the summary."""


@dataclass(frozen=True)
class Group:
    """The processes of one run: this one's `rank` among `size`, and its `local_rank` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == MAIN_RANK

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (small, picklable), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """The main rank's `value` (small, picklable), on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=MAIN_RANK)
        return box[0]

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the ranks, in place (a float tensor on the run's device)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def raise_any(self, error: str | None) -> None:
        """Every rank's error line gathered: if any rank failed, all raise the first one, so the whole group
        stops with the same one-line error instead of waiting for a rank that is gone."""
        errors = [line for line in self.gather(error) if line is not None]
        if errors:
            raise ReenactError(errors[0])


SINGLE = Group()
"""One process: no `torchrun`."""


def launched() -> bool:
    """Whether `torchrun` (or another launcher setting `WORLD_SIZE`) started this process."""
    return WORLD_ENV in os.environ


def join(device: torch.device) -> Group:
    """This process's group: `SINGLE` without a launcher, else the process group `torchrun` set up, opened
    here (NCCL on CUDA, gloo on the CPU). On CUDA, each process uses `cuda:LOCAL_RANK`."""
    if not launched():
        return SINGLE
    try:
        rank, size = int(os.environ[RANK_ENV]), int(os.environ[WORLD_ENV])
        local_rank = int(os.environ.get(LOCAL_RANK_ENV, "0"))
    except ValueError:
        raise ReenactError(f"{RANK_ENV}/{WORLD_ENV}/{LOCAL_RANK_ENV} must be integers") from None
    if size == 1:
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(
            backend=backend, store=attempt_store(rank=rank, size=size), rank=rank, world_size=size,
            timeout=COLLECTIVE_TIMEOUT,
        )  # fmt: skip
    return Group(rank=rank, size=size, local_rank=local_rank)


def attempt_store(*, rank: int, size: int) -> dist.Store:
    """The rendezvous store of this launch, under a prefix of its restart count. `torchrun` keeps one
    store for all restarts (`--max-restarts`), so without the prefix the processes of a restart read the
    addresses the dead processes left there and cannot connect."""
    shared = os.environ.get(AGENT_STORE_ENV) == str(True)  # torchrun's agent hosts the store
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size=size,
        is_master=rank == MAIN_RANK and not shared,
        timeout=COLLECTIVE_TIMEOUT,
    )
    return dist.PrefixStore(f"reenact/attempt-{os.environ.get(RESTART_ENV, '0')}", store)


def rank_device(device: torch.device) -> torch.device:
    """The device this process runs on: under a launcher, its own GPU (`cuda:LOCAL_RANK`) when the run is
    on CUDA, else `device`."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get(LOCAL_RANK_ENV, "0")))
    return device


def leave(*, finished: bool) -> None:
    """Close the process group at the end of a command. A command that `finished` first waits for the
    other ranks, so no rank tears its connections down while another still uses them; a rank that failed
    does not wait (the others may be gone), and a wait that fails because a rank left is not an error."""
    if dist.is_initialized():
        if finished:
            with contextlib.suppress(RuntimeError):
                dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ sharding


def shard(sizes: Sequence[int], *, shards: int) -> list[int]:
    """The shard (rank) of each of consecutive items of `sizes` frames: contiguous blocks of about equal
    frames, so each rank decodes one stretch of the clip. Item i goes to the shard its first frame falls
    in when the clip's frames are cut into `shards` equal stretches."""
    total = sum(sizes)
    owners, start = [], 0
    for size in sizes:
        owners.append(min(shards - 1, start * shards // total) if total else 0)
        start += size
    return owners


def shard_each(sizes: Sequence[Sequence[int]], *, shards: int) -> list[list[int]]:
    """`shard` over several lists of items taken as one (e.g. the parts of two clips' stages), the ranks
    handed back list by list."""
    owners = shard([size for group in sizes for size in group], shards=shards)
    split, start = [], 0
    for group in sizes:
        split.append(owners[start : start + len(group)])
        start += len(group)
    return split


def part_size(frames: int, *, limit: int, shards: int) -> int:
    """Frames per part: at most `limit`, and small enough that `shards` ranks each get one."""
    return max(1, min(limit, -(-frames // max(shards, 1))))
