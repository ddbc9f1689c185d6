"""How many CPU threads a run computes with, and how its idle threads wait.

torch starts one intra-op thread per core, and in this wheel those threads are an OpenMP (libgomp)
team whose idle members spin before they sleep. Two such processes on one machine, or one beside any
other busy program, thrash: each spins on the cores the other needs. So a run takes the cores this
process may use (`os.sched_getaffinity`, capped by a container's CPU quota), shared out between the
local ranks under `torchrun`, and its idle OpenMP threads spin only briefly before they sleep
(`GOMP_SPINCOUNT`): long enough to catch the next small operation, short enough to leave a busy
machine's cores to whoever computes. (Sleeping at once, `OMP_WAIT_POLICY=passive`, was clearly slower
alone in `benchmarks/bench_threads.py --generator-steps`.)

The count: `--threads N`, else `REENACT_THREADS`, else `OMP_NUM_THREADS` (outside `torchrun`, which sets
it to 1 on its own), else the usable cores divided by `LOCAL_WORLD_SIZE` (at least 1) — except for small
work: a generator of at most `SMALL_WORK_RESOLUTION` px (the demo's world, `random:tiny`) runs each
operation in microseconds, less than a sleeping thread takes to wake, so there a second thread only costs
(`benchmarks/bench_threads.py`: one thread is faster alone, beside a second job and beside busy loops)
and such work gets one thread unless a count is given. `use_threads`
applies it to torch (intra-op and, while still possible, inter-op) and to OpenCV.

The wait policy is read once, when the OpenMP runtime loads, that is when torch is first imported:
`short_spinning` must run before that. The CLI calls it at its entry, before any command imports
torch. A Python program that imported torch already keeps libgomp's default spinning; set
`GOMP_SPINCOUNT=1000` in the environment before starting Python to get it there too. A policy the
user set (`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT`) is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from reenact.errors import UsageError

THREADS_ENV = "REENACT_THREADS"
"""Environment variable with the thread count, for when `--threads` is not given."""
OPENMP_THREADS_ENV = "OMP_NUM_THREADS"
"""OpenMP's standard thread count, which torch follows: kept when set, except under `torchrun`, which sets
it to 1 itself for every run of more than one process, so there it says nothing about the user's wish."""
LOCAL_WORLD_ENV = "LOCAL_WORLD_SIZE"
"""Set by `torchrun`: how many ranks run on this machine and share its cores."""
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
"""OpenMP's standard switch between spinning (active) and sleeping (passive) idle threads."""
SPIN_COUNT_ENV = "GOMP_SPINCOUNT"
"""libgomp's own knob for how long idle threads spin; a user who sets it has chosen a policy."""
SHORT_SPIN_COUNT = "1000"
"""Spins an idle libgomp thread makes before it sleeps (about 10 µs; libgomp's default is 300,000, about
3 ms, which two processes on the same cores spend spinning on each other's time)."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where Linux mounts the control groups; a container sees its own group at the root."""
CGROUP_V1_CPU = ("cpu", "cpu,cpuacct")
"""The folders under `CGROUP_ROOT` where cgroup v1 keeps the CPU controller's quota."""
SMALL_WORK_RESOLUTION = 64
"""Generators of at most this many pixels a side are small work: one thread by default (module docstring)."""


def usable_cores(*, cgroup_root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on: its affinity mask (all of them where there is none), capped by
    its cgroup's CPU quota (`cpu_quota_cores`), as a container limited to 2 CPUs on a large host is."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota_cores(cgroup_root)
    return cores if quota is None else max(1, min(cores, quota))


def cpu_quota_cores(root: Path = CGROUP_ROOT) -> int | None:
    """The whole cores a CPU quota allows (quota over period, rounded up), from the cgroup root this process
    sees (a container's own): cgroup v2's `cpu.max`, else v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`.
    None where there is no quota or it cannot be read: the affinity mask alone then counts."""
    v2 = _read_text(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.strip().partition(" ")
        return _whole_cores(quota, period)
    for folder in CGROUP_V1_CPU:
        quota, period = (
            _read_text(root / folder / name) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        )
        if quota is not None and period is not None:
            return _whole_cores(quota, period)
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _whole_cores(quota: str, period: str) -> int | None:
    """`quota` over `period` (microseconds) rounded up; None for no quota (`max`, -1) or an unreadable one."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return math.ceil(quota_us / period_us) if quota_us > 0 and period_us > 0 else None


def _positive(text: str, *, source: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{source} must be a whole number, 1 or more; got {text!r}") from None
    if value < 1:
        raise UsageError(f"{source} must be 1 or more, got {value}")
    return value


def decide_threads(
    requested: int | None, *, environ: Mapping[str, str], cores: int, small_work: bool = False
) -> int:
    """The thread count: `requested` (`--threads`), else `REENACT_THREADS`, else `OMP_NUM_THREADS` outside
    `torchrun`, else one for `small_work`, else `cores` shared out between the `LOCAL_WORLD_SIZE` ranks on
    this machine (at least 1). Raises `UsageError` for a count below 1 or a `REENACT_THREADS` that is not a
    whole number."""
    if requested is not None:
        return _positive(str(requested), source="--threads")
    given = environ.get(THREADS_ENV, "").strip()
    if given:
        return _positive(given, source=THREADS_ENV)
    local_ranks = environ.get(LOCAL_WORLD_ENV, "").strip()
    if local_ranks:
        share = max(1, cores // _positive(local_ranks, source=LOCAL_WORLD_ENV))
    else:
        openmp = _openmp_threads(environ.get(OPENMP_THREADS_ENV, ""))
        if openmp is not None:
            return openmp
        share = max(1, cores)
    return 1 if small_work else share


def _openmp_threads(text: str) -> int | None:
    """The first level of an `OMP_NUM_THREADS` value (`4` or `4,2`); None when unset or not a count, which
    is OpenMP's to judge, not ours."""
    first = text.split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) >= 1 else None


def short_spinning(environ: MutableMapping[str, str]) -> bool:
    """Ask libgomp's idle threads to spin only briefly before they sleep, unless the user chose a policy;
    True when it set it. Effective only before torch is imported (see the module's docstring)."""
    if WAIT_POLICY_ENV in environ or SPIN_COUNT_ENV in environ:
        return False
    environ[SPIN_COUNT_ENV] = SHORT_SPIN_COUNT
    return True


def is_small_work(resolution: int) -> bool:
    """Whether a generator of `resolution` px is small work (one thread by default)."""
    return resolution <= SMALL_WORK_RESOLUTION


def use_threads(requested: int | None = None, *, small_work: bool = False) -> int:
    """Decide the thread count (`decide_threads` on this process's environment and cores) and apply it to
    torch and OpenCV; returns it. A command calls it first, and again with `small_work` once it knows its
    generator is small. Inter-op threads can only be set before torch's first parallel work, so later calls
    leave them as they are."""
    import cv2
    import torch

    threads = decide_threads(requested, environ=os.environ, cores=usable_cores(), small_work=small_work)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or inter-op work started: torch allows it once
        torch.set_num_interop_threads(threads)
    cv2.setNumThreads(threads)
    return threads
