"""Import boundaries, as rules over every module of `reenact/` and `cli/` (read with ast, nothing imported):
only the demo imports the synthetic world, the package's folders import each other one way only, and
the loss networks and the weight cache stay apart."""

from __future__ import annotations

import ast
import graphlib

from tests.conftest import REPO_ROOT

PACKAGES = ("reenact", "cli")
SYNTHETIC_WORLD = "reenact.synthetic"
MAY_IMPORT_THE_SYNTHETIC_WORLD = frozenset(
    {"reenact/demo.py", "reenact/face_world.py", "reenact/synthetic.py", "reenact/synthetic_scene.py"}
)
"""The demo and the worlds themselves (the multi-person scene, the face world's demo world); tests and
benchmarks live outside the package."""


def imported_modules(source: str, *, package: str) -> set[str]:
    """Every module `source` imports anywhere, lazily too (`from a import b` counts as a and a.b), with
    relative imports resolved against `package`, the dotted package the source lives in."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parent = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            base = ".".join([*parent, *([node.module] if node.module else [])])
            names |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return names


def package_modules() -> dict[str, set[str]]:
    """Each module of the packages (its path relative to the repository) -> the modules it imports."""
    modules = {}
    for root in PACKAGES:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            package = ".".join(relative.parent.parts)
            modules[relative.as_posix()] = imported_modules(path.read_text(), package=package)
    return modules


def imports(names: set[str], module: str) -> bool:
    return any(name == module or name.startswith(f"{module}.") for name in names)


def synthetic_importers(modules: dict[str, set[str]]) -> list[str]:
    """The modules that import the synthetic world without leave."""
    return sorted(
        path
        for path, names in modules.items()
        if imports(names, SYNTHETIC_WORLD) and path not in MAY_IMPORT_THE_SYNTHETIC_WORLD
    )


def test_only_the_demo_imports_the_synthetic_world() -> None:
    modules = package_modules()
    assert {"reenact/pipeline.py", "reenact/stages/invert.py", "cli/main.py"} <= set(modules)
    assert imports(modules["reenact/demo.py"], SYNTHETIC_WORLD), "the rule sees the demo's import"
    assert synthetic_importers(modules) == []


def test_the_synthetic_rule_sees_every_form_of_import() -> None:
    forms = {
        "import reenact.synthetic": "reenact",
        "from reenact import synthetic": "reenact",
        "from reenact.synthetic import make_world as world": "reenact",
        "def later():\n    from reenact.synthetic import make_world": "reenact",
        "from .synthetic import make_world": "reenact",
        "from .. import synthetic": "reenact.stages",
    }
    for source, package in forms.items():
        modules = {"reenact/stages/x.py": imported_modules(source, package=package)}
        assert synthetic_importers(modules) == ["reenact/stages/x.py"], source
    fine = {"reenact/x.py": imported_modules("from reenact import config, synthetic_free", package="reenact")}
    assert synthetic_importers(fine) == []
    assert synthetic_importers({"reenact/demo.py": {SYNTHETIC_WORLD}}) == []


def folder_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each folder of `reenact/` -> the other folders its modules import."""
    folders = {path.split("/")[1] for path in modules if path.startswith("reenact/") and path.count("/") > 1}
    graph: dict[str, set[str]] = {folder: set() for folder in folders}
    for path, names in modules.items():
        source = path.split("/")[1] if path.startswith("reenact/") and path.count("/") > 1 else None
        if source is not None:
            graph[source] |= {f for f in folders - {source} if imports(names, f"reenact.{f}")}
    return graph


def test_the_package_folders_import_each_other_one_way_only() -> None:
    graph = folder_graph(package_modules())
    assert {"faces", "gan", "stages", "weights"} <= set(graph)
    graphlib.TopologicalSorter(graph).prepare()  # CycleError names a loop
    loop = {"reenact/gan/a.py": {"reenact.weights"}, "reenact/weights/b.py": {"reenact.gan.checkpoints"}}
    try:
        graphlib.TopologicalSorter(folder_graph(loop)).prepare()
    except graphlib.CycleError:
        pass
    else:
        raise AssertionError("a folder loop went unnoticed")


def test_losses_and_weights_do_not_import_each_other() -> None:
    """The loss networks take file paths and know nothing of the cache; the cache's format checks use
    `reenact.backbones`, never the losses."""
    modules = package_modules()
    assert not imports(modules["reenact/losses.py"], "reenact.weights")
    weights = [path for path in modules if path.startswith("reenact/weights/")]
    assert weights and not any(imports(modules[path], "reenact.losses") for path in weights)
