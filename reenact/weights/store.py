"""The weight cache: where each file lives, importing a downloaded file, and re-checking what is there.

Every stage asks for its file with `weight_path(name)` (or `backbone_path(arch)`, `lpips_heads_path(net)`):
it returns the cached path or raises a `ReenactError` that says which file is missing, where to get it
and how to put it in place (`reenact weights import FILE --as NAME` or `reenact weights fetch NAME`).
Nothing ever falls back to random weights.

Layout: `<cache>/weights/<name>/<filename>` where `<cache>` is `$REENACT_HOME`, else
`$XDG_CACHE_HOME/reenact`, else `~/.cache/reenact`. Next to each file a `<filename>.sha256` sidecar
records the checksum it had when it came in, so `verify()` catches later corruption even for files whose
checksum nobody published.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reenact.errors import ReenactError
from reenact.files import atomic_path, sha256_file, write_text_atomic
from reenact.weights.formats import check_format
from reenact.weights.registry import (
    WeightEntry,
    all_entries,
    backbone_entry_name,
    get_entry,
    lpips_heads_entry_name,
)

if TYPE_CHECKING:
    from reenact.backbones import BackboneArch, LpipsNet

VerifyStatus = Literal["ok", "corrupt", "unchecked"]
WeightSource = Literal["cache", "package", "torch-hub"]

SIDECAR_SUFFIX = ".sha256"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-checking one cached file."""

    name: str
    path: Path
    status: VerifyStatus
    detail: str


@dataclass(frozen=True)
class FoundFile:
    """Where the loaders find a weight file: the cache, an installed package or the torch hub folder."""

    path: Path
    source: WeightSource


# ---------------------------------------------------------------------------------------------------
# Where the files are.


def cache_dir() -> Path:
    """`$REENACT_HOME`, else `$XDG_CACHE_HOME/reenact`, else `~/.cache/reenact` (read on every call)."""
    home = os.environ.get("REENACT_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "reenact"
    return Path.home() / ".cache" / "reenact"


def weights_dir() -> Path:
    """The folder that holds one sub-folder per cached weight file."""
    return cache_dir() / "weights"


def cached_file(name: str) -> Path:
    """Where the file for `name` lives in the cache (whether or not it is there)."""
    entry = get_entry(name)
    return weights_dir() / entry.name / entry.filename


def is_cached(name: str) -> bool:
    return cached_file(name).is_file()


def package_copy(entry: WeightEntry) -> Path | None:
    """The copy of `entry`'s file that an installed package ships (`WeightEntry.package_copy`), found
    without importing the package (`lpips` imports torchvision); None when there is none.
    """
    if entry.package_copy is None:
        return None
    package, inside = entry.package_copy
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / inside
        if path.is_file():
            return path
    return None


def torch_hub_checkpoints() -> Path:
    """`<torch hub dir>/checkpoints` as torch computes it (`$TORCH_HOME/hub`, else
    `$XDG_CACHE_HOME/torch/hub`, else `~/.cache/torch/hub`), without importing torch."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(xdg, "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def locate(name: str) -> FoundFile | None:
    """Where the loaders find the file for `name`: an installed package's copy, the torch hub folder
    (face-alignment's files), else the cache; None when none has it. Cheap: no checksum (`weight_path`
    checks the size, `verify()` the checksum).
    """
    entry = get_entry(name)
    packaged = package_copy(entry)
    if packaged is not None:
        return FoundFile(packaged, "package")
    hub = torch_hub_checkpoints() / entry.filename
    if entry.in_torch_hub and hub.is_file():
        return FoundFile(hub, "torch-hub")
    path = cached_file(name)
    return FoundFile(path, "cache") if path.is_file() else None


def _how_to_get(entry: WeightEntry) -> str:
    if entry.urls:
        return (
            f"download {entry.urls[0]} and run `reenact weights import FILE --as {entry.name}`, "
            f"or `reenact weights fetch {entry.name}`"
        )
    return f"get it from {entry.page} and run `reenact weights import FILE --as {entry.name}`"


def weight_path(name: str) -> Path:
    """The file for `name` where the loaders find it (`locate`); `ReenactError` saying how to get it
    when it is missing.

    Cheap: checks existence and, where known, the size; `verify()` does the full checksum.
    """
    entry = get_entry(name)
    found = locate(name)
    if found is None:
        raise ReenactError(f"missing weight file {entry.filename} ({entry.name}): {_how_to_get(entry)}")
    path = found.path
    if entry.size is not None and path.stat().st_size != entry.size:
        raise ReenactError(
            f"weight file {path} ({entry.name}) has {path.stat().st_size} bytes, expected {entry.size}: "
            f"run `reenact weights fetch {entry.name}` or import a good copy"
        )
    return path


def backbone_path(arch: BackboneArch) -> Path:
    """torchvision's ImageNet weights for `arch` from the cache (`ReenactError` saying how to get them)."""
    return weight_path(backbone_entry_name(arch))


def lpips_heads_path(net: LpipsNet) -> Path:
    """The LPIPS v0.1 linear-head file for `net`: the installed `lpips` package's own file, else the
    cache's `lpips-<net>` (`ReenactError` saying how to get it when neither is there).
    """
    return weight_path(lpips_heads_entry_name(net))


# ---------------------------------------------------------------------------------------------------
# Checksums and their sidecars.


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def record_checksum(path: Path, digest: str) -> None:
    """Write `path`'s sha256 sidecar (`<digest>  <filename>`, as sha256sum writes it), atomically."""
    write_text_atomic(_sidecar(path), f"{digest}  {path.name}\n")


def _recorded_checksum(path: Path) -> str | None:
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        return None
    fields = sidecar.read_text().split()
    return fields[0] if fields else None


def checksum_problem(entry: WeightEntry, digest: str, size: int) -> str | None:
    """Why a file with this sha256 and size cannot be `entry`, or None when it matches what is known."""
    if entry.sha256 is not None and digest != entry.sha256:
        return f"sha256 {digest} differs from the published {entry.sha256}"
    if entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix):
        return f"sha256 {digest[:16]}… does not start with {entry.sha256_prefix} (from its upstream filename)"
    if entry.size is not None and size != entry.size:
        return f"size {size} bytes differs from the known {entry.size}"
    return None


# ---------------------------------------------------------------------------------------------------
# Import.


def _identify(path: Path, digest: str) -> WeightEntry:
    entries = list(all_entries().values())
    by_checksum = [entry for entry in entries if entry.sha256 == digest]
    if len(by_checksum) == 1:
        return by_checksum[0]
    by_name = [entry for entry in entries if entry.filename == path.name]
    if len(by_name) == 1:
        return by_name[0]
    candidates = by_checksum or by_name
    listed = f" (it could be {', '.join(entry.name for entry in candidates)})" if candidates else ""
    raise ReenactError(
        f"cannot tell which weight file {path} is{listed}: "
        f"run `reenact weights import {path} --as NAME` (names: `reenact weights list`)"
    )


def import_file(path: Path | str, *, name: str | None = None) -> Path:
    """Copy a weight file the user downloaded into the cache, after checking it really is that file.

    The entry is `name`, else the one whose sha256 or upstream filename matches. A file whose
    checksum, size or format does not match is refused; the copy is atomic.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ReenactError(f"file not found: {source}")
    digest = sha256_file(source)
    entry = get_entry(name) if name is not None else _identify(source, digest)
    problem = checksum_problem(entry, digest, source.stat().st_size)
    if problem is not None:
        raise ReenactError(f"refusing to import {source} as {entry.name}: {problem}")
    try:
        check_format(entry, source)
    except ReenactError as exc:
        raise ReenactError(f"refusing to import {source} as {entry.name}: {exc}") from None
    dest = cached_file(entry.name)
    with atomic_path(dest) as temporary:
        shutil.copyfile(source, temporary)
    record_checksum(dest, digest)
    return dest


# ---------------------------------------------------------------------------------------------------
# Verification.


def verify_entry(name: str) -> VerifyResult | None:
    """Re-check the cached file for `name` (None when it is not cached)."""
    entry = get_entry(name)
    path = cached_file(name)
    if not path.is_file():
        return None
    digest = sha256_file(path)
    problem = checksum_problem(entry, digest, path.stat().st_size)
    if problem is not None:
        return VerifyResult(entry.name, path, "corrupt", problem)
    recorded = _recorded_checksum(path)
    if recorded is not None and recorded != digest:
        return VerifyResult(
            entry.name, path, "corrupt", f"sha256 {digest} differs from {recorded} recorded on import"
        )
    if entry.sha256 is not None:
        return VerifyResult(entry.name, path, "ok", "sha256 matches the published value")
    if recorded is not None:
        return VerifyResult(entry.name, path, "ok", "sha256 matches the one recorded on import")
    try:
        check_format(entry, path)
    except ReenactError as exc:
        return VerifyResult(entry.name, path, "corrupt", str(exc))
    return VerifyResult(entry.name, path, "unchecked", "no reference sha256; the format check passed")


def verify() -> list[VerifyResult]:
    """Recompute the checksums of every cached file; corrupt ones come back with status "corrupt"."""
    results = (verify_entry(name) for name in all_entries())
    return [result for result in results if result is not None]
