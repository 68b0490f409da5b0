"""The arrows between the packages point one way (issue 13): vc4cli -> nnlib -> driver -> simulator ->
vc4common -> qpuasm. Every import in every module (lazy ones inside functions too) is read with
`ast`; an import of a package above the importer fails here, naming the file and line."""

from __future__ import annotations

import ast

import pytest

from .conftest import ROOT

LAYERS = ["qpuasm", "vc4common", "simulator", "driver", "nnlib", "vc4cli"]
# Downward arrows that skip the way the design wants: nnlib reads the timing model's parameters and
# the run report from vc4common, never from the simulator; only the driver's simulator backend (the
# hardware-free backend) reaches into the simulator.
FORBIDDEN = {("nnlib", "simulator")}
ALLOWED_FILES = {("driver", "simulator"): {"driver/backend.py"}}


def imports(path):
    """(line, top-level package) of every absolute import in a module."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def modules():
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path


def test_every_package_of_the_project_has_a_layer():
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks", "examples"}
    assert found == set(LAYERS)


@pytest.mark.parametrize("package, path", list(modules()), ids=lambda x: str(x).replace(str(ROOT) + "/", ""))
def test_no_import_points_upward(package, path):
    rank = LAYERS.index(package)
    relative = str(path.relative_to(ROOT))
    wrong = []
    for line, target in imports(path):
        if target not in LAYERS or target == package:
            continue
        if LAYERS.index(target) > rank:
            wrong.append(f"{relative}:{line}: {package} imports {target}, a layer above it")
        elif (package, target) in FORBIDDEN:
            wrong.append(f"{relative}:{line}: {package} imports {target} (read vc4common instead)")
        elif (package, target) in ALLOWED_FILES and relative not in ALLOWED_FILES[(package, target)]:
            wrong.append(f"{relative}:{line}: {package} imports {target} outside "
                         f"{', '.join(sorted(ALLOWED_FILES[(package, target)]))}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    """The reader finds lazy imports too (the cycle the issue found was one: driver/cli.py -> nnlib)."""
    module = tmp_path / "m.py"
    module.write_text("import numpy\n\ndef f():\n    from nnlib import bench\n    import driver.v3d\n")
    assert list(imports(module)) == [(1, "numpy"), (4, "nnlib"), (5, "driver")]
