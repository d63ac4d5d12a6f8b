"""The installed environment: every module imports, every import is declared.

Runs first in CI's fresh virtual environment, so a dependency missing from
pyproject.toml fails here with the module's name instead of as a node that
never comes up.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("mailnode", "coordinator", "mailctl", "archive", "devtools")
# Our own modules: the packages, the tests' and benches' files (imported by path) and
# the tests' packages (tests/harness, tests/unit).
OWN = (
    set(PACKAGES)
    | {p.stem for d in ("tests", "bench") for p in (ROOT / d).glob("*.py")}
    | {p.parent.name for p in (ROOT / "tests").glob("*/__init__.py")}
)


def _modules() -> list[str]:
    names = []
    for top in PACKAGES:
        pkg = importlib.import_module(top)
        names.append(top)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, top + ".")]
    return sorted(names)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return {_normalize(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in reqs}


def _third_party_imports(paths) -> dict[str, set[str]]:
    """Top-level module name -> files importing it, for everything not stdlib or ours."""
    found: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports(module):
    try:
        importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - the failure message is the point
        pytest.fail(
            f"{module} does not import in this environment: {e} "
            f"(is {e.name!r} declared in pyproject.toml?)"
        )


def _check_declared(paths, declared: set[str], where: str):
    dists = importlib.metadata.packages_distributions()
    missing = []
    for top, files in sorted(_third_party_imports(paths).items()):
        providers = {_normalize(d) for d in dists.get(top, [])}
        if not providers:
            missing.append(f"{top} (imported by {', '.join(sorted(files))}) is not installed")
        elif not providers & declared:
            missing.append(
                f"{top} (imported by {', '.join(sorted(files))}) comes from "
                f"{', '.join(sorted(providers))}, which {where} does not declare"
            )
    assert not missing, "\n".join(missing)


def test_package_imports_are_declared_dependencies():
    """Every third-party import of the package is a runtime dependency itself,
    not something another dependency happens to pull in."""
    files = [p for top in PACKAGES for p in (ROOT / top).rglob("*.py")]
    _check_declared(files, _declared(), "[project] dependencies")


def test_test_and_bench_imports_are_declared():
    files = list((ROOT / "tests").rglob("*.py")) + list((ROOT / "bench").glob("*.py"))
    _check_declared(files, _declared("test"), "dependencies + the test extra")


def test_environment_is_the_projects_own():
    """scripts/test runs in a virtual environment, so nothing of the system's
    Python (or a developer's) can stand in for a missing declaration."""
    assert sys.prefix != sys.base_prefix, f"not a virtual environment: {sys.prefix}"
    assert not any(
        p.endswith("site-packages") and not p.startswith(sys.prefix) for p in sys.path
    ), sys.path


def test_installed_versions_satisfy_declared_bounds():
    """The generated code and the aiosmtpd subclass need these; pyproject must say so."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        req = Requirement(line)
        have = importlib.metadata.version(req.name)
        assert req.specifier.contains(have, prereleases=True), (
            f"{req.name} {have} is outside {req.specifier}"
        )
    # The floors the committed generated files need (they refuse older runtimes).
    gen = (ROOT / "mailnode" / "proto" / "journal_pb2.py").read_text()
    protobuf_gen = re.search(r"Protobuf Python Version: (\S+)", gen).group(1)
    grpc_gen = re.search(
        r"GRPC_GENERATED_VERSION = '([^']+)'",
        (ROOT / "mailnode" / "proto" / "journal_pb2_grpc.py").read_text(),
    ).group(1)
    reqs = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    for name, need in (("protobuf", protobuf_gen), ("grpcio", grpc_gen)):
        floor = [s.version for s in reqs[name].specifier if s.operator == ">="]
        assert floor == [need], (
            f"pyproject's floor for {name} is {floor}, the generated code needs >= {need}"
        )
