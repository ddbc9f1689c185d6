"""File helpers every module shares: atomic writes, safetensors with metadata, `.npz` arrays, hashing.

Every file reenact writes appears in one step: it is written under a temporary name that is unique per
process and per call (so several processes may write into one folder, e.g. a shared workspace), then
renamed over the destination. A reader never sees half a file; an interrupted writer leaves only a
hidden `.NAME.tmp-*` file behind, never something that looks finished.

torch is imported by the functions that take or make tensors, not here: the weight cache uses this
module, and `reenact weights list` answers without torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from reenact.errors import ReenactError

if TYPE_CHECKING:
    import torch

HASH_CHUNK_BYTES = 1 << 20
OS_ERROR_CODE = re.compile(r"os error (\d+)")
"""How the safetensors library reports the errno of a failed write, e.g. `(os error 28)`."""
TMP_MARKER = ".tmp-"
"""Part of every temporary name: `.NAME.tmp-XXXX`."""
IMAGES_MAGIC = b"RNIMAGE1"
"""Last bytes of an image part file (`ImageWriter`): the file is complete and in this layout."""
IMAGES_FOOTER = struct.Struct("<4q8s")
"""An image part file's footer: images, height, width, channels, `IMAGES_MAGIC`."""
OFFSET = np.dtype("<i8")
"""An image part file's offsets: where each encoded image starts, and where the last ends."""
PNG_EXTENSION = ".png"


def new_file_mode() -> int:
    """The mode an ordinary new file gets under this process's umask (`tempfile.mkstemp` makes 0600,
    which would keep a finished output from the rest of a shared farm)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a unique temporary path beside `path`; on success it is renamed to `path` (with the mode of an
    ordinary new file), else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARKER}", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, new_file_mode())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.filename == str(temporary):  # name the file the user knows, not the hidden one
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def save_tensors(
    path: Path | str, tensors: Mapping[str, torch.Tensor], *, metadata: Mapping[str, str] | None = None
) -> Path:
    """A safetensors file of named tensors (moved to the CPU), with string metadata, written atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as temporary:
        try:
            save_file(
                {name: value.detach().to("cpu").contiguous() for name, value in tensors.items()},
                str(temporary),
                metadata=dict(metadata or {}),
            )
        except SafetensorError as exc:  # its I/O failures carry the OS error only in the text
            code = OS_ERROR_CODE.search(str(exc))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(temporary)) from None
    return Path(path)


def read_safetensors(
    path: Path | str, *, device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a safetensors file and its metadata (empty when it has none)."""
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        metadata = dict(handle.metadata() or {})
        return {name: handle.get_tensor(name) for name in handle.keys()}, metadata  # noqa: SIM118


def save_arrays(path: Path | str, **arrays: np.ndarray) -> Path:
    """An `.npz` of arrays (no pickles), written atomically."""
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def save_array(path: Path | str, array: np.ndarray) -> Path:
    """One array as an `.npy`, written atomically."""
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
    return Path(path)


def load_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` (pickled objects refused)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


class RowWriter:
    """A `.npy` file of `rows` equal rows written one row (or a few) at a time, so an array bigger than
    memory never has to exist: the header first, then the rows' bytes in order. Use as a context manager
    on a private path (a stage's part folder); closing checks that every row was written."""

    def __init__(self, path: Path | str, *, rows: int, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = Path(path)
        self.rows = rows
        self.row_shape = row_shape
        self.dtype = np.dtype(dtype)
        self.written = 0
        self._handle = self.path.open("wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (rows, *row_shape),
        }
        np.lib.format.write_array_header_2_0(self._handle, header)

    def __enter__(self) -> RowWriter:
        return self

    def write(self, block: np.ndarray) -> None:
        """Append rows `block` [k, *row_shape] (or one row [*row_shape])."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape == self.row_shape:
            block = block[None]
        if block.shape[1:] != self.row_shape or self.written + len(block) > self.rows:
            raise ValueError(
                f"rows {block.shape} do not fit {self.rows} x {self.row_shape} at row {self.written}"
            )
        self._handle.write(block.tobytes())
        self.written += len(block)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._handle.close()
        if exc_type is None and self.written != self.rows:
            raise ValueError(f"{self.path}: {self.written} of {self.rows} rows written")


class PartTable:
    """Rows of a folder's part files `PREFIX-START-...` (in order of START) addressed as one table
    [N, *row_shape]: `files`, the first row of each (`starts`) and `read_part` are the kind's own."""

    files: list[Path]
    starts: np.ndarray  # [P + 1] first row of each file, then the row count
    row_shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def disk_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    def read_part(self, path: Path, rows: np.ndarray) -> np.ndarray:
        """Rows [n, *row_shape] of one file."""
        raise NotImplementedError

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows [n, *row_shape] at the indices `rows` [n], in their order; each file is opened once."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows {rows.min()}..{rows.max()} outside a table of {len(self)}")
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        parts = np.searchsorted(self.starts, rows, side="right") - 1  # [n]
        for part in np.unique(parts):
            where = np.flatnonzero(parts == part)
            out[where] = self.read_part(self.files[part], rows[where] - self.starts[part])
        return out


def part_files(directory: Path, *, prefix: str, suffix: str) -> list[Path]:
    """The part files `PREFIX-START-...SUFFIX` of a folder, in order of START."""
    return sorted(
        directory.glob(f"{prefix}*{suffix}"), key=lambda path: int(path.name[len(prefix) :].split("-")[0])
    )


class RowParts(PartTable):
    """The rows of a folder's `.npy` part files `PREFIX-START-STOP.npy` (in order of START), addressed as
    one table [N, *row_shape]. A read maps only the files its rows are in and lets them go, so the pages
    it touched stop counting towards the process: a reader never holds more than what it asked for."""

    def __init__(self, directory: Path, *, prefix: str) -> None:
        self.files = part_files(directory, prefix=prefix, suffix=".npy")
        headers = [np.load(path, mmap_mode="r") for path in self.files]  # headers only
        self.starts = np.concatenate([[0], np.cumsum([len(h) for h in headers])]).astype(np.int64)
        self.row_shape = tuple(headers[0].shape[1:]) if headers else ()
        self.dtype = headers[0].dtype if headers else np.dtype(np.float32)
        del headers

    def read_part(self, path: Path, rows: np.ndarray) -> np.ndarray:
        return read_rows(path, rows)


def read_rows(path: Path, rows: np.ndarray | int) -> np.ndarray:
    """Rows of one `.npy` (`rows` [n], or one index), copied out through a mapping that is let go at
    once, so the pages read stop counting towards the process."""
    stored = np.load(path, mmap_mode="r")
    out = np.array(stored[rows])
    del stored  # unmapped
    return out


class ImageWriter:
    """A part file of `rows` equal uint8 images [H, W, C], each stored losslessly as a PNG (zlib level
    `level`), written one at a time so a part bigger than memory never has to exist. Layout: the encoded
    images back to back, then their offsets [rows + 1] int64, then `IMAGES_FOOTER`; any image can be read
    alone (`read_images`). Use as a context manager on a private path; closing checks every row came."""

    def __init__(self, path: Path | str, *, rows: int, image_shape: tuple[int, int, int], level: int) -> None:
        import cv2

        self.path = Path(path)
        self.rows = rows
        self.image_shape = image_shape
        self.params = [cv2.IMWRITE_PNG_COMPRESSION, level]
        self.offsets = [0]
        self._handle = self.path.open("wb")

    def __enter__(self) -> ImageWriter:
        return self

    def write(self, block: np.ndarray) -> None:
        """Append images `block` [k, H, W, C] (or one image [H, W, C]) uint8."""
        import cv2

        if block.shape == self.image_shape:
            block = block[None]
        if block.dtype != np.uint8 or block.shape[1:] != self.image_shape:
            raise ValueError(f"images {block.dtype} {block.shape} are not uint8 {self.image_shape}")
        if len(self.offsets) - 1 + len(block) > self.rows:
            raise ValueError(f"{len(block)} more images do not fit {self.rows} at {len(self.offsets) - 1}")
        for image in block:
            ok, encoded = cv2.imencode(PNG_EXTENSION, image, self.params)
            if not ok:
                raise ValueError(f"{self.path}: an image of {image.shape} did not encode")
            self._handle.write(encoded.tobytes())
            self.offsets.append(self.offsets[-1] + encoded.nbytes)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                written = len(self.offsets) - 1
                if written != self.rows:
                    raise ValueError(f"{self.path}: {written} of {self.rows} images written")
                self._handle.write(np.asarray(self.offsets, dtype=OFFSET).tobytes())
                self._handle.write(IMAGES_FOOTER.pack(self.rows, *self.image_shape, IMAGES_MAGIC))
        finally:
            self._handle.close()


def image_count(path: Path) -> tuple[int, tuple[int, int, int]]:
    """Images in an image part file, and their shape (H, W, C), from its footer alone."""
    with path.open("rb") as handle:
        handle.seek(-IMAGES_FOOTER.size, os.SEEK_END)
        rows, height, width, channels, magic = IMAGES_FOOTER.unpack(handle.read(IMAGES_FOOTER.size))
    if magic != IMAGES_MAGIC:
        raise ValueError(f"{path} is not a complete image part file")
    return rows, (height, width, channels)


def read_images(path: Path, rows: np.ndarray | int) -> np.ndarray:
    """Images [n, H, W, C] uint8 of one image part file at `rows` [n] (or one image [H, W, C] for one
    index), decoding only those."""
    import cv2

    count, shape = image_count(path)
    single = np.ndim(rows) == 0
    wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(wanted) and (wanted.min() < 0 or wanted.max() >= count):
        raise IndexError(f"images {wanted.min()}..{wanted.max()} outside {count} in {path}")
    out = np.empty((len(wanted), *shape), dtype=np.uint8)
    with path.open("rb") as handle:
        handle.seek(-IMAGES_FOOTER.size - (count + 1) * OFFSET.itemsize, os.SEEK_END)
        offsets = np.frombuffer(handle.read((count + 1) * OFFSET.itemsize), dtype=OFFSET)  # [count + 1]
        for index, row in enumerate(wanted):
            handle.seek(int(offsets[row]))
            encoded = np.frombuffer(handle.read(int(offsets[row + 1] - offsets[row])), dtype=np.uint8)
            image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError(f"{path}: image {row} does not decode")
            out[index] = image.reshape(shape)
    return out[0] if single else out


class ImageParts(PartTable):
    """The images of a folder's image part files `PREFIX-START-STOP.SUFFIX` (in order of START),
    addressed as one table [N, H, W, C] uint8, like `RowParts`: a read opens only the files its rows
    are in and decodes only those rows."""

    def __init__(self, directory: Path, *, prefix: str, suffix: str) -> None:
        self.files = part_files(directory, prefix=prefix, suffix=suffix)
        counts = [image_count(path) for path in self.files]  # footers only
        self.starts = np.concatenate([[0], np.cumsum([rows for rows, _ in counts])]).astype(np.int64)
        self.row_shape = counts[0][1] if counts else ()
        self.dtype = np.dtype(np.uint8)

    def read_part(self, path: Path, rows: np.ndarray) -> np.ndarray:
        return read_images(path, rows)


def index_rows(index: slice | torch.Tensor | np.ndarray | int, *, length: int) -> np.ndarray:
    """A slice, an index tensor or array, or one index, as row indices [n] int64 of a table of `length`."""
    import torch

    if isinstance(index, slice):
        return np.arange(*index.indices(length), dtype=np.int64)
    if isinstance(index, torch.Tensor):
        index = index.cpu().numpy()
    return np.asarray(index, dtype=np.int64).reshape(-1)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_unpacked_size(path: Path | str, *, limit: int, what: str) -> None:
    """Refuse a zip container (torch's `.pt` format) whose members unpack to more than `limit` bytes,
    before anything is read from it: a small file that inflates to gigabytes never reaches memory."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReenactError(f"{path} is not a readable {what} ({exc})") from None
    if declared > limit:
        raise ReenactError(
            f"refusing {path}: it unpacks to {declared / 2**20:.0f} MiB, more than a {what} can be "
            f"({limit / 2**20:.0f} MiB)"
        )
