"""W+ latent tables that are never held whole: one row [num_ws, w_dim] per frame, read a batch at a time.

A clip's pivots, its driver's expression offsets and the output latents are all one row per frame, so
at 1024 px each is a table that grows with the clip. Every stage that uses them asks for the rows of
one batch:

- a [N, num_ws, w_dim] tensor is a `LatentSource` as it is (tests, short sequences such as a morph);
- `StoredLatents` reads rows from a stage's `.npy` part files (the stored pivots);
- `ComputedLatents` computes rows on demand from other sources (an edit of stored pivots).

A table is written the same way: `LatentWriter` stores rows as they are computed (the inversion's
finished frames), so a long run's key pivots are never gathered either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from reenact.files import RowParts, RowWriter, index_rows

LATENT_BATCH = 256
"""Rows per batch when a whole table is swept (hashing, statistics)."""


class LatentSource(Protocol):
    """W+ rows addressed by index: `source[a:b]` or `source[indices]` gives float32 [n, num_ws, w_dim]."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> torch.Tensor: ...


class StoredLatents:
    """Rows of `.npy` part files `PREFIX-START-STOP.npy` in a stage's result folder (float32, CPU)."""

    def __init__(self, directory: Path, *, prefix: str) -> None:
        self.rows = RowParts(directory, prefix=prefix)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.rows.row_shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.rows.read(index_rows(index, length=len(self)))).float()


class ComputedLatents:
    """`count` rows of shape `row_shape`, each batch computed by `rows(indices [n]) -> [n, *row_shape]`."""

    def __init__(
        self, count: int, *, row_shape: tuple[int, ...], rows: Callable[[np.ndarray], torch.Tensor]
    ) -> None:
        self.count = count
        self.row_shape = row_shape
        self.rows = rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.row_shape)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.rows(index_rows(index, length=self.count))


class LatentWriter:
    """A `.npy` table of `rows` W+ rows (float32) written as runs of consecutive rows come, in any order:
    a run that comes before the rows ahead of it waits until they are written, so only the runs that came
    early are held (the inversion's window finishes frames at most its width out of order). Use as a
    context manager on a private path (a stage's part folder); closing checks every row came."""

    def __init__(self, path: Path, *, rows: int, row_shape: tuple[int, ...]) -> None:
        self.out = RowWriter(path, rows=rows, row_shape=row_shape, dtype=np.dtype(np.float32))
        self.waiting: dict[int, np.ndarray] = {}  # first row -> a run [n, *row_shape] that came early

    def __enter__(self) -> LatentWriter:
        return self

    def write(self, start: int, rows: torch.Tensor) -> None:
        """Rows `rows` [n, *row_shape] of the table from row `start` on."""
        self.waiting[start] = rows.detach().to(device="cpu", dtype=torch.float32).numpy()
        while self.out.written in self.waiting:
            self.out.write(self.waiting.pop(self.out.written))

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.out.__exit__(exc_type, *rest)


def latent_batches(source: LatentSource, *, size: int = LATENT_BATCH) -> Iterator[torch.Tensor]:
    """The rows of `source` in order, `size` at a time: [<= size, num_ws, w_dim] each."""
    for start in range(0, len(source), size):
        yield source[start : min(start + size, len(source))]


def latent_digest(source: LatentSource) -> str:
    """sha256 of a table's float32 rows (and shape), swept a batch at a time: the same rows give the same
    digest whatever holds them."""
    digest = hashlib.sha256(f"latents:{tuple(source.shape)};".encode())
    for batch in latent_batches(source):
        digest.update(batch.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy())  # in place
    return digest.hexdigest()
