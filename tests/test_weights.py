"""The weight registry and cache: lookup, import, fetch (local server only), verify, and the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact import weights
from reenact.backbones import torchvision_feature_shapes
from reenact.errors import ReenactError
from reenact.weights.formats import FORMAT_CHECKS
from reenact.weights.registry import _REGISTRY
from reenact_cli.main import EXIT_ERROR, run
from tests.progresstools import RecordingProgress

SERVER_TIMEOUT_S = 10.0
SYNTHETIC = "test-direction"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache and torch hub folder per test; no proxy may route the test server elsewhere."""
    root = tmp_path / "home"
    monkeypatch.setenv("REENACT_HOME", str(root))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return root


def npy_bytes(seed: int) -> bytes:
    """A (1, 512) float32 unit-norm direction as .npy bytes (the InterFaceGAN format)."""
    vector = np.random.default_rng(seed).standard_normal((1, 512)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, vector / np.linalg.norm(vector))
    return buffer.getvalue()


def add_entry(
    monkeypatch: pytest.MonkeyPatch, payload: bytes | None, **changes: object
) -> weights.WeightEntry:
    """Register a synthetic direction entry (its sha256 that of `payload`, or None)."""
    entry = weights.WeightEntry(
        name=SYNTHETIC,
        filename="boundary_Test.npy",
        kind="direction",
        file_format="direction-npy",
        urls=("http://127.0.0.1:9/boundary_Test.npy",),
        page="https://example.invalid/",
        sha256=hashlib.sha256(payload).hexdigest() if payload is not None else None,
        sha256_prefix=None,
        size=len(payload) if payload is not None else None,
        license="MIT",
        citation="test",
    )
    entry = dataclasses.replace(entry, **changes)
    monkeypatch.setitem(_REGISTRY, entry.name, entry)
    return entry


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A bounded local HTTP server for one payload; records the Range header of every request."""

    def __init__(self, payload: bytes, *, honour_range: bool) -> None:
        self.payload = payload
        self.honour_range = honour_range
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                body, status = server.payload, 200
                if requested and server.honour_range:
                    start = int(requested.removeprefix("bytes=").rstrip("-"))
                    body, status = server.payload[start:], 206
                self.send_response(status)
                if status == 206:
                    total = len(server.payload)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = SERVER_TIMEOUT_S
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/boundary_Test.npy"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=SERVER_TIMEOUT_S)


@pytest.fixture
def payload() -> bytes:
    return npy_bytes(0)


@pytest.fixture
def served(payload: bytes, request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(payload, honour_range=getattr(request, "param", True)) as server:
        yield server


def single_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


# --- registry ---------------------------------------------------------------------------------------


def test_registry_entries_are_well_formed() -> None:
    entries = weights.all_entries()
    kinds = {entry.kind for entry in entries.values()}
    assert kinds == {"generator", "backbone", "lpips", "landmarks", "direction"}
    cached = {weights.cached_file(name) for name in entries}
    assert len(cached) == len(entries)
    for entry in entries.values():
        assert entry.file_format in FORMAT_CHECKS
        assert entry.license and entry.citation
        assert entry.page.startswith("https://") or entry.package_copy is not None, entry.name
        assert all(url.startswith("https://") for url in entry.urls)
        if entry.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        else:
            assert "sha256" in entry.note, f"{entry.name}: say why no sha256 is listed"
        assert (entry.size is None) != (entry.approx_size is None), f"{entry.name}: one size, exact or not"
        assert entry.size_source, f"{entry.name}: say where the size comes from"
        if entry.approx_size is not None:
            assert entry.size_source.startswith("approximate"), entry.name
        embedded = re.search(r"-([0-9a-f]{8,})\.", entry.filename)
        if embedded:  # torch hub convention: the filename embeds a sha256 prefix
            assert entry.sha256_prefix == embedded.group(1), entry.name
    for name in (
        "stylegan2-ffhq-1024",
        "stylegan2-ffhq-1024-rosinality",
        "stylegan2-ffhq-256-paper",
        "vgg16",
    ):
        assert name in entries
    assert entries["vgg16"].filename == "vgg16-397923af.pth"
    assert entries["alexnet"].filename == "alexnet-owt-7be5be79.pth"
    assert entries["fan-2d-torchscript"].filename == "2DFAN4-cd938726ad.zip"
    assert entries["s3fd"].filename == "s3fd-619a316812.pth"


def test_the_face_world_ships_in_the_package_with_its_checksum() -> None:
    """`--generator face-world` needs no download: the package's file, of the registry's size and sha256,
    loads as a generator through the same safe loader as any official file."""
    from reenact.face_world import FACE_WORLD_RESOLUTION
    from reenact.generator_source import load_generator_spec

    entry = weights.get_entry(weights.FACE_WORLD_NAME)
    path = weights.weight_path(entry.name)
    assert weights.locate(entry.name).source == "package"
    assert path.stat().st_size == entry.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    FORMAT_CHECKS[entry.file_format](path)
    source = load_generator_spec(entry.name)
    assert not source.is_random and source.generator.resolution == FACE_WORLD_RESOLUTION


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(ReenactError, match=r"unknown weight file 'vgg61'.*vgg16"):
        weights.get_entry("vgg61")


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert weights.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("REENACT_HOME")
    assert weights.cache_dir() == tmp_path / "b" / "reenact"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c" / ".cache" / "reenact"
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "a"))
    assert weights.cached_file("vgg16") == tmp_path / "a" / "weights" / "vgg16" / "vgg16-397923af.pth"


def test_weight_path_missing_says_what_to_do() -> None:
    with pytest.raises(ReenactError) as info:
        weights.weight_path("vgg16")
    assert str(info.value) == (
        "missing weight file vgg16-397923af.pth (vgg16): download "
        "https://download.pytorch.org/models/vgg16-397923af.pth and run "
        "`reenact weights import FILE --as vgg16`, or `reenact weights fetch vgg16`"
    )
    with pytest.raises(
        ReenactError, match=r"rosinality.*weights import FILE --as stylegan2-ffhq-1024-rosinality"
    ):
        weights.weight_path("stylegan2-ffhq-1024-rosinality")


# --- the real direction files -----------------------------------------------------------------------


def shared_files(directions_dir: Path) -> list[Path]:
    return sorted(path for path in directions_dir.rglob("*") if path.suffix in (".npy", ".pt"))


def test_direction_entries_match_the_real_files(directions_dir: Path) -> None:
    entries = [entry for entry in weights.all_entries().values() if entry.kind == "direction"]
    by_checksum = {entry.sha256: entry for entry in entries}
    files = shared_files(directions_dir)
    assert len(files) >= len(entries)
    matched = set()
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in by_checksum, f"{path} has no registry entry"
        entry = by_checksum[digest]
        assert entry.filename == path.name
        assert entry.size == path.stat().st_size
        weights.check_format(entry, path)
        matched.add(entry.name)
    assert matched == {entry.name for entry in entries}  # no entry without a real file behind it
    manifest = (directions_dir.parent / "MANIFEST.sha256").read_text().split()
    assert set(manifest[0::2]) == set(by_checksum)


def test_import_accepts_the_real_direction_files(
    directions_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in shared_files(directions_dir):
        weights.import_file(path)  # identified by its checksum
    assert run(["weights", "import", str(directions_dir / "ganspace_via_PTI" / "ffhq_pca.pt")]) == 0
    smile = weights.weight_path("interfacegan-smiling")
    assert np.load(smile).shape == (1, 512)
    assert torch.load(
        weights.weight_path("ganinverter-pose"), map_location="cpu", weights_only=True
    ).shape == (1, 18, 512)
    results = weights.verify()
    assert {result.status for result in results} == {"ok"}
    assert len(results) == len(
        [entry for entry in weights.all_entries().values() if entry.kind == "direction"]
    )
    capsys.readouterr()
    assert run(["weights", "list", "--json", "--kind", "direction"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["status"] for row in rows} == {"cached"}


# --- import -----------------------------------------------------------------------------------------


def test_import_refuses_a_wrong_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "boundary_Smiling.npy"
    fake.write_bytes(npy_bytes(1))  # right name and format, wrong content
    with pytest.raises(
        ReenactError, match=r"refusing to import .* as interfacegan-smiling: sha256 .* differs"
    ):
        weights.import_file(fake)
    not_vgg = tmp_path / "vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, not_vgg)
    assert run(["weights", "import", str(not_vgg), "--as", "vgg16"]) == EXIT_ERROR
    line = single_error_line(capsys.readouterr().err)
    assert "does not start with 397923af" in line
    anonymous = tmp_path / "something.bin"
    anonymous.write_bytes(b"x" * 100)
    with pytest.raises(ReenactError, match=r"cannot tell which weight file .* --as NAME"):
        weights.import_file(anonymous)
    assert not weights.is_cached("interfacegan-smiling") and not weights.is_cached("vgg16")


def test_import_runs_the_format_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    add_entry(monkeypatch, None)  # no published checksum: only the format can refuse a file
    wrong_shape = tmp_path / "a.npy"
    np.save(wrong_shape, np.zeros((1, 256), np.float32))
    with pytest.raises(ReenactError, match=r"not a W-space direction: shape \(1, 256\)"):
        weights.import_file(wrong_shape, name=SYNTHETIC)
    not_numpy = tmp_path / "b.npy"
    not_numpy.write_text("hello")
    with pytest.raises(ReenactError, match="not a NumPy"):
        weights.import_file(not_numpy, name=SYNTHETIC)
    good = tmp_path / "c.npy"
    good.write_bytes(npy_bytes(2))
    path = weights.import_file(good, name=SYNTHETIC)
    assert path.read_bytes() == good.read_bytes()
    assert weights.weight_path(SYNTHETIC) == path


# --- verify -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("published", [True, False])
def test_verify_catches_a_corrupted_file(
    published: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Caught against the published sha256, or the sidecar recorded on import when none is published."""
    content = npy_bytes(3)
    add_entry(monkeypatch, content if published else None)
    source = tmp_path / "boundary_Test.npy"
    source.write_bytes(content)
    cached = weights.import_file(source, name=SYNTHETIC)
    assert run(["weights", "verify"]) == 0
    assert "ok" in capsys.readouterr().out
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF  # same size, same format, one value changed
    cached.write_bytes(bytes(data))
    assert run(["weights", "verify"]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert f"corrupt    {SYNTHETIC}" in captured.out
    assert SYNTHETIC in single_error_line(captured.err)


# --- fetch ------------------------------------------------------------------------------------------


def test_fetch_offline_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/vgg16-397923af.pth"
    monkeypatch.setitem(_REGISTRY, "vgg16", dataclasses.replace(weights.get_entry("vgg16"), urls=(url,)))
    assert run(["weights", "fetch", "vgg16"]) == EXIT_ERROR
    line = single_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot download vgg16-397923af.pth (vgg16) from {url} (")
    assert line.endswith("`reenact weights import FILE --as vgg16`")
    assert not weights.is_cached("vgg16")


def test_fetch_resumes_a_partial_download(
    served: Server, payload: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_entry(monkeypatch, payload, urls=(served.url,))
    dest = weights.cached_file(SYNTHETIC)
    dest.parent.mkdir(parents=True)
    half = len(payload) // 2
    dest.with_name(dest.name + ".part").write_bytes(payload[:half])
    assert run(["weights", "fetch", SYNTHETIC, "--no-progress"]) == 0
    assert served.ranges == [f"bytes={half}-"]  # only the missing half was asked for
    assert dest.read_bytes() == payload
    assert not dest.with_name(dest.name + ".part").exists()
    assert capsys.readouterr().out.strip() == f"{SYNTHETIC}: {dest}"
    assert weights.fetch(SYNTHETIC) == dest  # cached and good: no new request
    assert len(served.ranges) == 1


def test_fetch_reports_the_bytes_to_its_progress(
    served: Server, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_entry(monkeypatch, payload, urls=(served.url,))
    dest = weights.cached_file(SYNTHETIC)
    dest.parent.mkdir(parents=True)
    half = len(payload) // 2
    dest.with_name(dest.name + ".part").write_bytes(payload[:half])
    progress = RecordingProgress()
    weights.fetch(SYNTHETIC, progress=progress)
    ((name, total, _, initial, advances, closed),) = progress.tasks
    assert (name, total, initial, closed) == ("boundary_Test.npy", len(payload), half, True)
    assert sum(advances) == len(payload) - half


@pytest.mark.parametrize("served", [False], indirect=True)
def test_fetch_starts_over_when_the_server_ignores_range(
    served: Server, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_entry(monkeypatch, payload, urls=(served.url,))
    dest = weights.cached_file(SYNTHETIC)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(payload[:100])
    assert weights.fetch(SYNTHETIC).read_bytes() == payload


def test_fetch_rejects_a_bad_checksum_and_drops_the_part_file(
    served: Server, payload: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_entry(monkeypatch, payload, urls=(served.url,))
    dest = weights.cached_file(SYNTHETIC)
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(b"\0" * 200)  # a stale part file from some other download
    assert run(["weights", "fetch", SYNTHETIC, "--no-progress"]) == EXIT_ERROR
    line = single_error_line(capsys.readouterr().err)
    assert "is not the expected file: sha256" in line and "fetch test-direction` again" in line
    assert not part.exists() and not dest.exists()
    assert run(["weights", "fetch", SYNTHETIC, "--no-progress"]) == 0  # the retry starts from scratch
    assert dest.read_bytes() == payload
    assert served.ranges == ["bytes=200-", None]


def test_fetch_without_a_url_points_to_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["weights", "fetch", "stylegan2-ffhq-1024-rosinality"]) == EXIT_ERROR
    assert "no direct download URL" in single_error_line(capsys.readouterr().err)


# --- CLI list / path ----------------------------------------------------------------------------------


def test_cli_list_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    content = npy_bytes(4)
    add_entry(monkeypatch, content)
    assert run(["weights", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(weights.all_entries())
    assert rows[SYNTHETIC]["status"] == "missing" and rows["vgg16"]["license"].startswith("BSD")
    assert run(["weights", "path", SYNTHETIC]) == EXIT_ERROR
    assert "missing weight file boundary_Test.npy" in single_error_line(capsys.readouterr().err)
    source = tmp_path / "boundary_Test.npy"
    source.write_bytes(content)
    assert run(["weights", "import", str(source)]) == 0  # recognised by its checksum
    capsys.readouterr()
    assert run(["weights", "path", SYNTHETIC]) == 0
    assert capsys.readouterr().out.strip() == str(weights.cached_file(SYNTHETIC))
    assert run(["weights", "list"]) == 0
    table = capsys.readouterr().out
    assert re.search(rf"^{SYNTHETIC}\s+direction\s+cached\s+2\.1 KiB\s+MIT$", table, re.MULTILINE)
    assert re.search(r"^vgg16\s+backbone\s+missing\s+527\.8 MiB\s+BSD", table, re.MULTILINE)
    assert re.search(r"^stylegan2-ffhq-1024\s+generator\s+missing\s+~364 MiB\s+NVIDIA", table, re.MULTILINE)


def test_cli_list_shows_a_size_for_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["weights", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(weights.all_entries())
    for row in rows:
        assert re.fullmatch(r"~?\d+(\.\d)? (KiB|MiB)", row["size_text"]), row
        assert (row["size"] is None) != (row["approx_size"] is None) and row["size_source"], row
    assert run(["weights", "list"]) == 0
    table = capsys.readouterr().out
    assert "?" not in table


def test_cli_list_finds_the_lpips_heads_in_the_package(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    assert run(["weights", "list", "--json", "--kind", "lpips"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for net, size in (("vgg", 7289), ("alex", 6009)):
        row = rows[f"lpips-{net}"]
        assert row["status"] == "package" and row["size"] == size
        path = Path(row["path"])
        assert path.parts[-4:] == ("lpips", "weights", "v0.1", f"{net}.pth") and path.stat().st_size == size
    assert run(["weights", "list", "--kind", "lpips"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^lpips-vgg\s+lpips\s+package\s+7\.1 KiB\s+BSD-2-Clause", table, re.MULTILINE)
    assert f"lpips-alex: {rows['lpips-alex']['path']} (from an installed package)" in table
    # without the package they are missing (nothing in this test's cache)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert run(["weights", "list", "--json", "--kind", "lpips"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["lpips-vgg"]["status"] == "missing"
    assert rows["lpips-vgg"]["path"] == str(weights.cached_file("lpips-vgg"))


def test_torch_hub_checkpoints_is_where_torch_puts_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # an earlier set_dir() would win over the env
    for variable, value in (("TORCH_HOME", None), ("XDG_CACHE_HOME", tmp_path / "xdg"), ("HOME", tmp_path)):
        if value is None:
            monkeypatch.delenv(variable)
        else:
            monkeypatch.setenv(variable, str(value))
        assert weights.torch_hub_checkpoints() == Path(torch.hub.get_dir()) / "checkpoints", variable
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.torch_hub_checkpoints() == Path(torch.hub.get_dir()) / "checkpoints"


def test_cli_list_finds_face_alignment_files_in_the_torch_hub(capsys: pytest.CaptureFixture[str]) -> None:
    hub_file = weights.torch_hub_checkpoints() / "s3fd-619a316812.pth"
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"\0" * 3000)
    assert run(["weights", "list", "--json", "--kind", "landmarks"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["s3fd"]["status"] == "hub" and rows["s3fd"]["path"] == str(hub_file)
    assert rows["s3fd"]["size"] == 3000 and rows["s3fd"]["size_text"] == "2.9 KiB"
    assert rows["fan-2d"]["status"] == "missing" and rows["fan-2d"]["size_text"] == "~92 MiB"
    assert run(["weights", "list", "--kind", "landmarks"]) == 0
    assert f"s3fd: {hub_file} (in the torch hub checkpoints" in capsys.readouterr().out
    (weights.torch_hub_checkpoints() / "vgg16-397923af.pth").write_bytes(b"\0")
    assert weights.locate("vgg16") is None, "reenact's own loaders read torchvision files from the cache only"


# --- format checks on same-format files ---------------------------------------------------------------


def test_generator_import_loads_the_file_safely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No checksum is published for NVIDIA's pickles, so a full safe load decides; the sidecar records
    the hash. A pickle that merely looks right (header, G_ema key) is refused."""
    from reenact.gan.stylegan2 import tiny
    from tests.gantools import randomized_generator
    from tests.test_checkpoints import write_ada_pickle

    pickle_file = tmp_path / "ffhq.pkl"
    write_ada_pickle(randomized_generator(tiny(16)), pickle_file, tmp_path / "marker", monkeypatch)
    hollow = tmp_path / "hollow" / "ffhq.pkl"
    hollow.parent.mkdir()
    hollow.write_bytes(__import__("pickle").dumps({"G_ema": None}, protocol=4))
    with pytest.raises(ReenactError, match="refusing to import"):
        weights.import_file(hollow, name="stylegan2-ffhq-1024")
    torch_zip = tmp_path / "other.pkl"
    torch.save({"g_ema": {}}, torch_zip)  # a rosinality-style torch zip under a .pkl name
    with pytest.raises(ReenactError, match="is a rosinality-pt file, expected stylegan2-ada-pkl"):
        weights.import_file(torch_zip, name="stylegan2-ffhq-1024")
    text = tmp_path / "notes.pkl"
    text.write_text("not a network")
    with pytest.raises(ReenactError, match="refusing to import"):
        weights.import_file(text, name="stylegan2-ffhq-1024")
    assert not (tmp_path / "marker").exists()
    cached = weights.import_file(pickle_file)  # recognised by its upstream filename
    assert cached == weights.cached_file("stylegan2-ffhq-1024")
    assert weights.verify_entry("stylegan2-ffhq-1024").status == "ok"
    cached.write_bytes(cached.read_bytes() + b"\0")
    assert weights.verify_entry("stylegan2-ffhq-1024").status == "corrupt"


def small_state(entries: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Tensors of the given shapes with one stored value each (stride 0), so files stay tiny."""
    return {key: torch.zeros(1).expand(shape) for key, shape in entries.items()}


def test_backbone_and_landmark_format_checks(tmp_path: Path) -> None:
    def check(name: str, state: object) -> None:
        path = tmp_path / f"{name}.pth"
        torch.save(state, path)
        weights.check_format(weights.get_entry(name), path)

    features = torchvision_feature_shapes("alexnet")
    check("alexnet", small_state(features))  # features alone (classifier dropped) are accepted
    classifier = {"classifier.1.weight": (4096, 9216), "classifier.4.weight": (4096, 4096)}
    classifier |= {"classifier.6.weight": (1000, 4096), "classifier.1.bias": (4096,)}
    classifier |= {"classifier.4.bias": (4096,), "classifier.6.bias": (1000,)}
    check("alexnet", small_state(features | classifier))  # 61,100,840 parameters
    with pytest.raises(ReenactError, match="parameters"):
        check("alexnet", small_state(features | classifier | {"extra": (10,)}))
    with pytest.raises(ReenactError, match=r"features\.0\.weight has shape"):
        check("alexnet", small_state(features | {"features.0.weight": (64, 3, 3, 3)}))
    with pytest.raises(ReenactError, match=r"not a torchvision vgg16 state dict"):
        check("vgg16", small_state(features))
    check("s3fd", small_state({"conv1_1.weight": (64, 3, 3, 3), "conv7_2_mbox_loc.weight": (4, 256, 3, 3)}))
    check("fan-2d", small_state({"conv1.weight": (64, 3, 7, 7), "l3.weight": (68, 256, 1, 1)}))
    with pytest.raises(ReenactError, match="2DFAN4"):
        check("fan-2d", small_state({"conv1.weight": (64, 3, 7, 7), "l3.weight": (98, 256, 1, 1)}))


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_torchscript_fan_check(tmp_path: Path) -> None:
    scripted = torch.jit.script(torch.nn.Conv2d(3, 4, 1))
    archive = tmp_path / "2DFAN4-cd938726ad.zip"
    torch.jit.save(scripted, str(archive))
    entry = weights.get_entry("fan-2d-torchscript")
    weights.check_format(entry, archive)
    plain = tmp_path / "plain.zip"
    torch.save({"a": torch.zeros(1)}, plain)  # a torch zip, but no TorchScript code
    with pytest.raises(ReenactError, match="not a TorchScript module"):
        weights.check_format(entry, plain)


def test_lpips_heads_entries_match_the_package_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    for net in ("vgg", "alex"):
        package_file = weights.lpips_heads_path(net)
        assert weights.import_file(package_file).parent.name == f"lpips-{net}"  # checksum matches the wheel
    # without the package the heads come from the cache
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert weights.lpips_heads_path("vgg") == weights.cached_file("lpips-vgg")
    weights.cached_file("lpips-alex").unlink()
    with pytest.raises(ReenactError, match=r"missing weight file alex\.pth \(lpips-alex\)"):
        weights.lpips_heads_path("alex")


# --- the loss networks' files -------------------------------------------------------------------------


def test_backbone_path_says_how_to_get_a_missing_file() -> None:
    with pytest.raises(
        ReenactError, match=r"missing weight file vgg16-397923af\.pth \(vgg16\).*weights import"
    ):
        weights.backbone_path("vgg16")
    with pytest.raises(ReenactError, match=r"alexnet-owt-7be5be79\.pth"):
        weights.backbone_path("alexnet")


def test_lpips_runs_on_the_cached_backbone(monkeypatch: pytest.MonkeyPatch) -> None:
    from reenact.losses import LPIPS

    state = {key: torch.randn(shape) * 0.01 for key, shape in torchvision_feature_shapes("alexnet").items()}
    target = weights.cached_file("alexnet")
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    with pytest.raises(ReenactError, match=f"expected {weights.get_entry('alexnet').size}"):
        weights.backbone_path("alexnet")  # a file of the wrong size is not the published one
    monkeypatch.setitem(
        _REGISTRY, "alexnet", dataclasses.replace(_REGISTRY["alexnet"], size=target.stat().st_size)
    )
    path = weights.backbone_path("alexnet")
    model = LPIPS(net="alex", backbone_weights=path, heads_path=weights.lpips_heads_path("alex"))
    assert torch.equal(model.backbone.features[3].weight, state["features.3.weight"])
