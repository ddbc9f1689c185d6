"""Download a registered weight file into the cache: resumable, checksum- and format-checked.

The bytes go into `<cached file>.part`, which a broken download leaves behind so the next `fetch` asks
the server only for the rest (HTTP Range). Only a file whose checksum and format match the registry
entry is renamed into place; a bad one is deleted.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from reenact import __version__
from reenact.errors import ReenactError
from reenact.files import sha256_file
from reenact.progress import SILENT, Progress
from reenact.weights.formats import check_format
from reenact.weights.registry import get_entry
from reenact.weights.store import cached_file, checksum_problem, record_checksum

DOWNLOAD_CHUNK_BYTES = 1 << 16
DOWNLOAD_TIMEOUT_S = 30.0
HTTP_PARTIAL_CONTENT = 206
HTTP_RANGE_NOT_SATISFIABLE = 416
PART_SUFFIX = ".part"
PROGRESS_UNIT = "byte"


class _DownloadError(Exception):
    """A network problem with one URL (the caller tries the next, then reports them all)."""


def _download(
    url: str, part: Path, *, label: str, expected_size: int | None, progress: Progress, timeout_s: float
) -> None:
    """Download `url` into `part`, resuming from what `part` already holds when the server allows it."""
    start = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and start > expected_size:
        part.unlink()
        start = 0
    headers = {"User-Agent": f"reenact/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == HTTP_RANGE_NOT_SATISFIABLE and start:
            return  # the part file already holds the whole file; the checksum decides
        raise _DownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _DownloadError(str(reason)) from None
    with response:
        content_range = response.headers.get("Content-Range", "")
        resumed = (
            start > 0
            and response.status == HTTP_PARTIAL_CONTENT
            and content_range.startswith(f"bytes {start}-")
        )
        if not resumed:
            start = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else expected_size
        try:
            with (
                part.open("ab" if resumed else "wb") as out,
                progress.task(label, total=total, unit=PROGRESS_UNIT, initial=start) as task,
            ):
                while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)
                    task.advance(len(chunk))
        except OSError as exc:
            raise _DownloadError(
                f"connection broke off ({exc}); the partial file is kept for resuming"
            ) from None


def fetch(
    name: str, *, progress: Progress = SILENT, force: bool = False, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download the file for `name` into the cache (resuming a `.part` file), check it, move it in place.

    Returns the cached path. A file already cached and matching what is known is kept unless `force`.
    `progress` shows the bytes as they arrive (silent by default).
    """
    entry = get_entry(name)
    dest = cached_file(name)
    if dest.is_file() and not force:
        problem = checksum_problem(entry, sha256_file(dest), dest.stat().st_size)
        if problem is None:
            return dest
    if not entry.urls:
        raise ReenactError(
            f"{entry.filename} ({entry.name}) has no direct download URL: get it from {entry.page} "
            f"and run `reenact weights import FILE --as {entry.name}`"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    failures = []
    for url in entry.urls:
        try:
            _download(
                url,
                part,
                label=entry.filename,
                expected_size=entry.size,
                progress=progress,
                timeout_s=timeout_s,
            )
            break
        except _DownloadError as exc:
            failures.append(f"{url} ({exc})")
    else:
        raise ReenactError(
            f"cannot download {entry.filename} ({entry.name}) from {'; '.join(failures)}: "
            f"get the file another way and run `reenact weights import FILE --as {entry.name}`"
        )
    digest = sha256_file(part)
    problem = checksum_problem(entry, digest, part.stat().st_size)
    if problem is None:
        try:
            check_format(entry, part)
        except ReenactError as exc:
            problem = str(exc)
    if problem is not None:
        part.unlink()
        raise ReenactError(
            f"downloaded {entry.filename} ({entry.name}) is not the expected file: {problem}; "
            f"removed it, run `reenact weights fetch {entry.name}` again"
        )
    os.replace(part, dest)  # the checked part file itself moves into place: nothing is copied
    record_checksum(dest, digest)
    return dest
