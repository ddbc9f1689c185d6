"""Direction files: the published formats load with the right shapes and norms, wrong files are refused
with a one-line error, nothing in a file is executed, and `--direction NAME=STRENGTH` resolves."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reenact import weights
from reenact.directions import load_direction, parse_direction_arg, resolve_direction
from reenact.edit import apply_direction, layer_mask
from reenact.errors import ReenactError
from reenact.gan.stylegan2 import FFHQ_W_DIM

FFHQ_NUM_WS = 18
UNIT_NORM_TOLERANCE = 1e-5


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weight cache."""
    monkeypatch.setenv("REENACT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def put_in_cache(source: Path, name: str) -> Path:
    target = weights.cached_file(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def ganspace_file(path: Path, *, num_components: int = 5) -> Path:
    """A GANSpace-format PCA file: orthonormal components, decreasing stdevs."""
    basis, _ = torch.linalg.qr(
        torch.randn(FFHQ_W_DIM, num_components, generator=torch.Generator().manual_seed(0))
    )
    state = {
        "mean": torch.randn(1, FFHQ_W_DIM),
        "comp": basis.T.reshape(num_components, 1, FFHQ_W_DIM).contiguous(),
        "std": torch.linspace(3.0, 1.0, num_components),
    }
    torch.save(state, path)
    return path


# ---------------------------------------------------------------------------------------------------
# The real files


def test_interfacegan_boundaries_are_unit_normals(directions_dir: Path) -> None:
    files = sorted((directions_dir / "interfacegan_pp_stylegan2_ffhq_w").glob("boundary_*.npy"))
    assert len(files) >= 30
    for path in files:
        direction = load_direction(path)
        assert direction.vector.shape == (1, FFHQ_W_DIM), path.name
        assert direction.source_format == "interfacegan-npy"
        assert abs(float(direction.vector.norm()) - 1) < UNIT_NORM_TOLERANCE, path.name
        assert direction.name == path.stem


@pytest.mark.parametrize("folder", ["e4e_interfacegan_via_PTI", "ganinverter_interfacegan"])
def test_e4e_directions_are_unit_vectors(directions_dir: Path, folder: str) -> None:
    for attribute in ("age", "smile"):
        direction = load_direction(directions_dir / folder / f"{attribute}.pt")
        assert direction.vector.shape == (1, FFHQ_W_DIM)
        assert direction.source_format == "tensor-pt"
        assert abs(float(direction.vector.norm()) - 1) < UNIT_NORM_TOLERANCE


def test_ganinverter_pose_is_per_layer(directions_dir: Path) -> None:
    pose = load_direction(directions_dir / "ganinverter_interfacegan" / "pose.pt")
    assert pose.vector.shape == (FFHQ_NUM_WS, FFHQ_W_DIM)
    assert pose.source_format == "per-layer-pt"
    norms = pose.vector.norm(dim=1)
    assert float((norms - 1).abs().max()) < UNIT_NORM_TOLERANCE
    # It is e4e's rotation direction on every layer.
    rotation = load_direction(directions_dir / "e4e_interfacegan_via_PTI" / "rotation.pt")
    assert float((pose.vector @ rotation.vector[0]).min()) > 1 - UNIT_NORM_TOLERANCE


def test_ganspace_components_are_orthonormal_and_scaled_by_their_stdev(directions_dir: Path) -> None:
    path = directions_dir / "ganspace_via_PTI" / "ffhq_pca.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    num_components = state["comp"].shape[0]
    components = state["comp"].reshape(num_components, FFHQ_W_DIM)
    torch.testing.assert_close(components @ components.T, torch.eye(num_components), atol=1e-5, rtol=0)
    assert bool((state["std"] > 0).all())
    for index in (0, 3, num_components - 1):
        direction = load_direction(path, component=index)
        assert direction.vector.shape == (1, FFHQ_W_DIM)
        assert direction.source_format == "ganspace-pca"
        assert direction.name == f"ffhq_pca:{index}"
        torch.testing.assert_close(direction.vector[0], components[index] * state["std"][index])
    with pytest.raises(ReenactError, match=f"{num_components} components: choose one"):
        load_direction(path)
    with pytest.raises(ReenactError, match=f"components 0..{num_components - 1}, not {num_components}"):
        load_direction(path, component=num_components)


def test_a_real_direction_moves_only_the_chosen_layers_by_strength_times_vector(directions_dir: Path) -> None:
    smile = load_direction(directions_dir / "e4e_interfacegan_via_PTI" / "smile.pt")
    ws = torch.randn(4, FFHQ_NUM_WS, FFHQ_W_DIM, generator=torch.Generator().manual_seed(1))
    layers = layer_mask("expression", num_ws=FFHQ_NUM_WS)
    edited = apply_direction(ws, smile, strength=2.5, layers=layers)
    assert torch.equal(edited[:, ~layers], ws[:, ~layers])
    torch.testing.assert_close(
        edited[:, layers] - ws[:, layers], (2.5 * smile.vector).expand(4, 4, FFHQ_W_DIM)
    )
    # The edit moves each chosen layer by exactly |strength| along the unit direction.
    moved = (edited - ws)[:, layers] @ smile.vector[0]
    torch.testing.assert_close(moved, torch.full((4, 4), 2.5))


# ---------------------------------------------------------------------------------------------------
# Files the tests write


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((FFHQ_W_DIM,), (1, FFHQ_W_DIM)),
        ((1, FFHQ_W_DIM), (1, FFHQ_W_DIM)),
        ((1, 6, FFHQ_W_DIM), (6, FFHQ_W_DIM)),
    ],
)
def test_accepted_shapes(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).standard_normal(shape)  # float64: stored as float32
    np.save(tmp_path / "d.npy", array)
    torch.save(torch.from_numpy(array), tmp_path / "d.pt")
    for path in (tmp_path / "d.npy", tmp_path / "d.pt"):
        direction = load_direction(path, name="mine")
        assert direction.vector.shape == expected and direction.vector.dtype == torch.float32
        assert direction.name == "mine"
        np.testing.assert_allclose(direction.vector.numpy().ravel(), array.ravel(), rtol=1e-6)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda p: np.save(p / "x.npy", np.zeros((1, 511), np.float32)),
            r"shape \(1, 511\), expected \(1, 512\)",
        ),
        (lambda p: np.save(p / "x.npy", np.zeros((2, 3, FFHQ_W_DIM), np.float32)), "not a W-space direction"),
        (lambda p: np.save(p / "x.npy", np.zeros((1, FFHQ_W_DIM), np.int64)), "expected a floating-point"),
        (lambda p: np.save(p / "x.npy", np.full((1, FFHQ_W_DIM), np.nan, np.float32)), "non-finite"),
        (lambda p: np.save(p / "x.npy", np.array([{"a": 1}], dtype=object)), "not a NumPy .npy array"),
        (lambda p: (p / "x.npy").write_text("not numpy"), "not a NumPy .npy array"),
        (lambda p: torch.save([torch.zeros(1, FFHQ_W_DIM)], p / "x.pt"), "holds a list"),
        (lambda p: torch.save({"w": torch.zeros(1, FFHQ_W_DIM)}, p / "x.pt"), "holds a dict"),
        (lambda p: (p / "x.pt").write_bytes(b"garbage"), "cannot load safely|can load safely"),
        (lambda p: (p / "x.txt").write_text("0.1"), "unknown direction format '.txt'"),
    ],
)
def test_wrong_files_are_refused_with_a_one_line_error(tmp_path: Path, write, message: str) -> None:
    write(tmp_path)
    (path,) = tmp_path.iterdir()
    with pytest.raises(ReenactError, match=message) as info:
        load_direction(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_cache_refuses_what_the_loader_refuses(tmp_path: Path) -> None:
    """One home for the direction checks: importing and loading a bad file give the same error."""
    path = tmp_path / "smile.pt"
    torch.save(torch.zeros(2, 3, FFHQ_W_DIM), path)
    with pytest.raises(ReenactError) as loading:
        load_direction(path)
    with pytest.raises(ReenactError) as checking:
        weights.check_format(weights.get_entry("e4e-smile"), path)
    assert str(checking.value) == str(loading.value)
    assert "not a W-space direction: shape (2, 3, 512)" in str(loading.value)


class _Payload:
    """Unpickling this would create a file: the safe loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_pickle_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"vector": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ReenactError, match="safely"):
        load_direction(tmp_path / "evil.pt")
    assert not marker.exists()


def test_component_only_for_ganspace_files(tmp_path: Path) -> None:
    torch.save(torch.randn(1, FFHQ_W_DIM), tmp_path / "single.pt")
    with pytest.raises(ReenactError, match="no component 2"):
        load_direction(tmp_path / "single.pt", component=2)
    pca = ganspace_file(tmp_path / "pca.pt")
    direction = load_direction(pca, component=1)
    assert abs(float(direction.vector.norm()) - 2.5) < 1e-5, "unit component times its stdev (2.5)"
    with pytest.raises(ReenactError, match="not found"):
        load_direction(tmp_path / "missing.npy")


# ---------------------------------------------------------------------------------------------------
# The --direction argument


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smile=1.5", ("smile", 1.5)),
        ("pca:3=2.0", ("pca:3", 2.0)),
        ("age=-3", ("age", -3.0)),
        (" smile = 0.5 ", ("smile", 0.5)),
        ("dirs/a=b.npy=1e-1", ("dirs/a=b.npy", 0.1)),
    ],
)
def test_parse_direction_arg(text: str, expected: tuple[str, float]) -> None:
    assert parse_direction_arg(text) == expected


@pytest.mark.parametrize("text", ["smile", "=1.5", "smile=", "smile=strong", "smile=nan", "smile=inf"])
def test_parse_direction_arg_errors(text: str) -> None:
    with pytest.raises(ReenactError, match="NAME=STRENGTH"):
        parse_direction_arg(text)


def test_resolve_a_path_and_a_ganspace_path_component(tmp_path: Path) -> None:
    vector = torch.randn(1, FFHQ_W_DIM)
    torch.save(vector, tmp_path / "mine.pt")
    assert torch.equal(resolve_direction(str(tmp_path / "mine.pt")).vector, vector)
    pca = ganspace_file(tmp_path / "pca.pt")
    direction = resolve_direction(f"{pca}:0")
    assert direction.name == f"{pca}:0" and abs(float(direction.vector.norm()) - 3.0) < 1e-5
    with pytest.raises(ReenactError, match="not found"):
        resolve_direction(str(tmp_path / "nope.npy"))


def test_resolve_registry_names_through_the_cache(cache: Path, directions_dir: Path) -> None:
    with pytest.raises(ReenactError, match="reenact weights import FILE --as e4e-smile"):
        resolve_direction("smile")
    with pytest.raises(ReenactError, match="ganspace-ffhq-pca"):
        resolve_direction("pca:3")
    put_in_cache(directions_dir / "e4e_interfacegan_via_PTI" / "smile.pt", "e4e-smile")
    smile = resolve_direction("smile")
    assert smile.name == "smile" and smile.vector.shape == (1, FFHQ_W_DIM)
    assert torch.equal(resolve_direction("e4e-smile").vector, smile.vector)
    put_in_cache(directions_dir / "ganspace_via_PTI" / "ffhq_pca.pt", "ganspace-ffhq-pca")
    assert resolve_direction("pca:3").name == "pca:3"
    with pytest.raises(ReenactError, match="pca:K"):
        resolve_direction("ganspace-ffhq-pca")
    put_in_cache(
        directions_dir / "interfacegan_pp_stylegan2_ffhq_w" / "boundary_Smiling.npy", "interfacegan-smiling"
    )
    assert abs(float(resolve_direction("interfacegan-smiling").vector.norm()) - 1) < UNIT_NORM_TOLERANCE


def test_resolve_unknown_and_non_direction_names(cache: Path) -> None:
    with pytest.raises(ReenactError, match="did you mean"):
        resolve_direction("e4e-smiel")
    generator = next(name for name, entry in weights.all_entries().items() if entry.kind == "generator")
    with pytest.raises(ReenactError, match="not a direction"):
        resolve_direction(generator)
