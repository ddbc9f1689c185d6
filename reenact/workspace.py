"""The per-clip artifact store: every stage's result under a key of what it was computed from.

A stage's key is the sha256 of a canonical JSON of its parts: the content hash of each input file,
the stage's config section, the generator's hash and the keys of the stages it builds on. So a
result is reused exactly when everything it depends on is the same, whatever the file is called,
and a changed setting never picks up a stale result.

Layout (`--workdir`, default `reenact-work/`):

    <root>/<stage>/<digest>/            a finished result: its files + manifest.json (written last)
    <root>/<stage>/<digest>.resume/     scratch of an unfinished run (checkpoints); kept on interrupt
    <root>/<stage>/.<digest>.tmp-*/     being written; renamed into place in one step on success
    <root>/<stage>/<digest>.lock        held (flock) by the process computing the result
    <root>/<stage>/<digest>.use         held shared (flock) by every process using the result; its
                                        mtime is the last use (`reenact cache` prunes by it)
    <root>/file-hashes.json             content hashes by (path, size, mtime), so big inputs hash once

A result directory appears atomically (rename of a complete directory), so an interrupted run never
leaves a half-written result that looks finished; the next run resumes from the scratch directory.
Artifacts are tensors (safetensors), arrays (.npz) and JSON, never pickles.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from reenact import __version__
from reenact.config import DEFAULT_WORKDIR
from reenact.errors import ReenactError
from reenact.files import sha256_file, write_text_atomic
from reenact.sequences import find_sequence, is_sequence_input

WORKSPACE_FORMAT = "reenact-workspace/1"
MANIFEST = "manifest.json"
HASH_INDEX = "file-hashes.json"
LOCK_SUFFIX = ".lock"
USE_SUFFIX = ".use"
RESUME_SUFFIX = ".resume"
DIGEST_CHARS = 16
"""Hex characters of a stage key kept in directory names (64 bits)."""


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 of named tensors (names, dtypes, shapes and bytes), e.g. a generator's state dict."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        if value.numel():
            digest.update(value.reshape(-1).view(torch.uint8).numpy())  # hashed in place, not copied
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same parts always give the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot put {type(value).__name__} into a stage key")


@dataclass(frozen=True)
class StageKey:
    """What a stage result is computed from, and its digest."""

    stage: str
    digest: str
    parts: dict[str, Any] = field(compare=False)

    def __str__(self) -> str:
        return f"{self.stage}/{self.digest}"


def stage_key(stage: str, parts: Mapping[str, Any]) -> StageKey:
    """Key of `stage` computed from `parts` (JSON-able: hashes, config dicts, other keys' digests)."""
    text = canonical_json({"stage": stage, "parts": parts})
    digest = hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]
    return StageKey(stage=stage, digest=digest, parts=json.loads(text)["parts"])


class Workspace:
    """A directory of stage results keyed by `StageKey`s."""

    def __init__(self, root: Path | str = DEFAULT_WORKDIR) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ReenactError(f"--workdir {self.root} exists and is not a folder")
        self._hashes: dict[str, str] | None = None
        self._verified: set[str] = set()
        """Digests of results whose files were hashed and found intact by this process."""
        self._held: dict[str, IO[str]] = {}
        """Open `.use` files of the results this process uses (shared locks, released at exit)."""

    # ---------------------------------------------------------------------------------- inputs

    def input_digest(self, path: Path) -> str:
        """Content hash of an input file, remembered by (absolute path, size, mtime); of an image sequence
        (`reenact.sequences`), the hash of its first frame number and its files' hashes in order."""
        path = Path(path)
        sequence = find_sequence(path) if is_sequence_input(path) else None
        files = [path] if sequence is None else sequence.files()
        hashes = self._load_hashes()
        digests, added = [], False
        for file in files:
            stat = file.stat()
            memo = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
            if memo not in hashes:
                hashes[memo], added = sha256_file(file), True
            digests.append(hashes[memo])
        if added:  # saved once, not once a file
            self._save_hashes(hashes)
        if sequence is None:
            return digests[0]
        return hashlib.sha256("|".join([str(sequence.first), *digests]).encode()).hexdigest()

    def _load_hashes(self) -> dict[str, str]:
        if self._hashes is None:
            index = self.root / HASH_INDEX
            try:
                self._hashes = json.loads(index.read_text()) if index.is_file() else {}
            except (OSError, ValueError):
                self._hashes = {}  # a damaged index only costs a re-hash
        return self._hashes

    def _save_hashes(self, hashes: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.root / HASH_INDEX, json.dumps(hashes, indent=1, sort_keys=True))

    # ---------------------------------------------------------------------------------- results

    def path(self, key: StageKey) -> Path:
        """Directory of the finished result of `key` (it may not exist yet)."""
        return self.root / key.stage / key.digest

    def done(self, key: StageKey) -> bool:
        """True when `key`'s result is complete (its manifest, written last, exists)."""
        return (self.path(key) / MANIFEST).is_file()

    @contextlib.contextmanager
    def lock(self, key: StageKey, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold `key`'s lock (an exclusive `flock` on `<stage>/<digest>.lock`) while computing it.

        A second process asking for the same key blocks here (`on_wait` is called once first) until the
        first is done. The kernel drops a lock when its process dies, so a killed run never leaves a
        stale lock; the small lock file stays.
        """
        path = self.root / key.stage / f"{key.digest}{LOCK_SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def hold(self, key: StageKey) -> None:
        """Mark `key`'s result as used by this process until it exits (a shared `flock` on `.use`, whose
        mtime records the use), so `reenact cache prune` leaves it alone meanwhile. Taken before the
        result is looked at: a prune in progress finishes first."""
        if key.digest in self._held:
            return
        path = self.root / key.stage / f"{key.digest}{USE_SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
        fcntl.flock(handle, fcntl.LOCK_SH)
        os.utime(path)
        self._held[key.digest] = handle

    def scratch(self, key: StageKey) -> Path:
        """A directory for an unfinished run's checkpoints; survives interrupts, removed on success."""
        path = self.root / key.stage / f"{key.digest}{RESUME_SUFFIX}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def build(self, key: StageKey, *, summary: Mapping[str, Any] | None = None) -> Iterator[Path]:
        """Write `key`'s result: yields a private directory that becomes the result only on success.

        `summary` goes into the manifest, read when the block ends (so the block may still fill it in).
        On an exception the directory is removed and nothing appears under the key.
        """
        stage_dir = self.root / key.stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{key.digest}.tmp-", dir=stage_dir))
        try:
            yield building
            manifest = {
                "format": WORKSPACE_FORMAT,
                "stage": key.stage,
                "digest": key.digest,
                "parts": key.parts,
                "files": file_hashes(building),
                "summary": dict(summary or {}),
                "reenact": __version__,
                "torch": torch.__version__,
            }
            write_text_atomic(building / MANIFEST, canonical_json(manifest))
            final = self.path(key)
            if final.exists():  # finished meanwhile by another run: keep that one
                shutil.rmtree(building)
            else:
                os.replace(building, final)
                self._verified.add(key.digest)  # just hashed into its manifest
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        shutil.rmtree(self.root / key.stage / f"{key.digest}{RESUME_SUFFIX}", ignore_errors=True)

    def manifest(self, key: StageKey) -> dict[str, Any]:
        """The manifest of a finished result."""
        return json.loads((self.path(key) / MANIFEST).read_text())

    def damage(self, key: StageKey) -> str | None:
        """Why `key`'s stored result cannot be trusted (a missing, changed or extra file, an unreadable
        manifest), or None when every file is what its manifest says. Each result is hashed once per
        process; a damaged one is never used."""
        if key.digest in self._verified:
            return None
        directory = self.path(key)
        try:
            manifest = self.manifest(key)
            expected = manifest["files"]
            if manifest.get("digest") != key.digest or not isinstance(expected, dict):
                return "its manifest belongs to another result"
        except (OSError, ValueError, KeyError, TypeError):
            return "its manifest is unreadable"
        actual = file_hashes(directory, skip=(MANIFEST,))
        for name in sorted(set(expected) | set(actual)):
            if name not in actual:
                return f"{name} is missing"
            if name not in expected:
                return f"{name} is not in its manifest"
            if actual[name] != expected[name]:
                return f"{name} does not match its hash"
        self._verified.add(key.digest)
        return None

    def drop(self, key: StageKey) -> bool:
        """Remove `key`'s result and scratch once no longer needed (renders after their encode), unless
        another process uses it too (False). The result is renamed to a hidden name first, so a kill
        midway never leaves a damaged-looking one."""
        held = self._held.get(key.digest)
        if held is not None:
            try:  # only this process holds it: its shared lock becomes the only, exclusive, one
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        try:
            self._verified.discard(key.digest)
            stage_dir = self.root / key.stage
            for path in (self.path(key), stage_dir / f"{key.digest}{RESUME_SUFFIX}"):
                if not path.exists():
                    continue
                hidden = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=stage_dir))
                os.replace(path, hidden / path.name)
                shutil.rmtree(hidden, ignore_errors=True)
        finally:
            if held is not None:
                fcntl.flock(held, fcntl.LOCK_SH)
        return True

    def release(self, key: StageKey) -> None:
        """Stop holding `key`'s result (`hold`): this process no longer uses it, so `drop` by another
        process (the main rank's, of the renders) may remove it."""
        handle = self._held.pop(key.digest, None)
        if handle is not None:
            handle.close()  # the lock goes with the last descriptor

    def discard(self, key: StageKey) -> None:
        """Remove `key`'s stored result (a damaged one), so it is computed again."""
        self._verified.discard(key.digest)
        shutil.rmtree(self.path(key), ignore_errors=True)


def file_hashes(directory: Path, *, skip: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """sha256 of every file below `directory` by relative path (`skip`: names left out)."""
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in skip
    }
