"""What a workspace holds, and pruning it: `reenact cache list` / `reenact cache prune`.

Long footage makes the workspace large (a compressed crop per frame and clip), so users need to see it,
stage by stage (`stage_bytes`), and bound it. An entry is one stage result (`<stage>/<digest>/`) or the
scratch of an unfinished one (`<stage>/<digest>.resume/`). Its last use is the mtime of its `.use` file
(touched by every run that uses it), else of its folder. Pruning removes least recently used entries
first and never one that a running process holds: it takes the entry's compute lock and use lock without
waiting, and skips the entry when either is taken (a run computing or using it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reenact.workspace import LOCK_SUFFIX, MANIFEST, RESUME_SUFFIX, USE_SUFFIX

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Entry:
    """One stage result, or the scratch of an unfinished one."""

    stage: str
    digest: str
    path: Path
    finished: bool
    size_bytes: int
    last_used: float
    """Seconds since the epoch."""
    inputs: tuple[str, ...]
    """The input files it was computed from (through the stages it builds on)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "digest": self.digest,
            "path": str(self.path),
            "finished": self.finished,
            "size_bytes": self.size_bytes,
            "last_used": self.last_used,
            "inputs": list(self.inputs),
        }


def entries(root: Path) -> list[Entry]:
    """Every entry of the workspace at `root`, most recently used first."""
    if not root.is_dir():
        return []
    manifests: dict[str, dict] = {}
    found: list[tuple[str, str, Path, bool]] = []
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(p for p in stage_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            finished = not path.name.endswith(RESUME_SUFFIX)
            digest = path.name.removesuffix(RESUME_SUFFIX)
            if finished:
                try:
                    manifests[digest] = json.loads((path / MANIFEST).read_text())
                except (OSError, ValueError):
                    manifests[digest] = {}
            found.append((stage_dir.name, digest, path, finished))
    listed = [
        Entry(
            stage=stage,
            digest=digest,
            path=path,
            finished=finished,
            size_bytes=folder_bytes(path),
            last_used=last_used(path.parent, digest, path),
            inputs=tuple(sorted(_inputs(digest, manifests, seen=set()))),
        )
        for stage, digest, path, finished in found
    ]
    return sorted(listed, key=lambda entry: entry.last_used, reverse=True)


def stage_bytes(listed: list[Entry]) -> dict[str, int]:
    """Bytes on disk per stage (finished and unfinished entries together), largest first."""
    totals: dict[str, int] = {}
    for entry in listed:
        totals[entry.stage] = totals.get(entry.stage, 0) + entry.size_bytes
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def folder_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def last_used(stage_dir: Path, digest: str, path: Path) -> float:
    use = stage_dir / f"{digest}{USE_SUFFIX}"
    return use.stat().st_mtime if use.exists() else path.stat().st_mtime


def _inputs(digest: str, manifests: dict[str, dict], *, seen: set[str]) -> set[str]:
    """Input files named in this result's summary and in those of the results its key refers to."""
    if digest in seen or digest not in manifests:
        return set()
    seen.add(digest)
    manifest = manifests[digest]
    names = {str(manifest.get("summary", {}).get("input"))} - {"None"}
    for value in _values(manifest.get("parts", {})):
        if isinstance(value, str) and value in manifests:
            names |= _inputs(value, manifests, seen=seen)
    return names


def _values(parts: object) -> Iterator[object]:
    if isinstance(parts, dict):
        for value in parts.values():
            yield from _values(value)
    elif isinstance(parts, list):
        for value in parts:
            yield from _values(value)
    else:
        yield parts


@contextlib.contextmanager
def unused(entry: Entry) -> Iterator[bool]:
    """Whether no process computes or uses `entry` (True), holding both its locks meanwhile, so none
    starts to until the block ends."""
    with contextlib.ExitStack() as stack:
        for suffix in (LOCK_SUFFIX, USE_SUFFIX):
            path = entry.path.parent / f"{entry.digest}{suffix}"
            handle = stack.enter_context(path.open("a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


@dataclass(frozen=True)
class PruneReport:
    removed: list[Entry]
    kept_in_use: list[Entry]
    """Entries that the rules chose but a running process holds."""

    @property
    def freed_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.removed)


def prune(
    root: Path, *, older_than_days: float | None = None, max_bytes: int | None = None, dry_run: bool = False
) -> PruneReport:
    """Remove entries last used more than `older_than_days` ago, then the least recently used until the
    workspace holds at most `max_bytes`; entries a running process holds are kept."""
    listed = entries(root)
    now = time.time()
    total = sum(entry.size_bytes for entry in listed)
    removed: list[Entry] = []
    kept: list[Entry] = []
    for entry in reversed(listed):  # least recently used first
        too_old = older_than_days is not None and now - entry.last_used > older_than_days * SECONDS_PER_DAY
        too_big = max_bytes is not None and total > max_bytes
        if not (too_old or too_big):
            continue
        with unused(entry) as free:
            if not free:
                kept.append(entry)
                continue
            if not dry_run:
                shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry)
        total -= entry.size_bytes
    return PruneReport(removed=removed, kept_in_use=kept)
