"""Every third-party module the tests and benchmarks import is declared in requirements*.txt, so
a fresh ``make dev`` runs them: one that is only pulled in by another package works by luck until
that package drops it."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = {"o11y_data", "ui", "pages", "app", "tests", "bench", "scripts"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.lower())


def declared(*files: str) -> set[str]:
    """Distribution names listed in ``files`` (default: requirements-dev.txt), following the
    ``-r`` includes as pip does."""
    names: set[str] = set()
    for path in [REPO / f for f in files or ("requirements-dev.txt",)]:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                names |= declared(line[3:].strip())
            elif line and not line.startswith("-"):
                names.add(_name(re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0]))
    return names


def imported(folder: Path) -> dict[str, set[str]]:
    """Top-level module name -> the files under ``folder`` that import it (absolute imports)."""
    out: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                out.setdefault(mod.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return out


def _undeclared(folders: list[Path], have: set[str]) -> dict[str, tuple[list[str], list[str]]]:
    dists = packages_distributions()
    missing = {}
    for folder in folders:
        for mod, files in imported(folder).items():
            if mod in sys.stdlib_module_names or mod in OURS or mod == "__future__":
                continue
            # Not installed here (an engine's optional module): judged by its own name.
            names = {_name(d) for d in dists.get(mod, [])} or {_name(mod)}
            if not names & have:
                missing[mod] = (sorted(names), sorted(files)[:3])
    return missing


def test_every_module_the_tests_benchmarks_and_scripts_import_is_declared():
    assert _undeclared([REPO / "tests", REPO / "bench", REPO / "scripts"], declared()) == {}


def test_every_module_the_app_imports_is_in_the_apps_own_requirements():
    # ``make run`` installs requirements.txt only: the app must not lean on the test tools. The
    # engines' optional modules (Daft's) import what requirements-engines.txt declares.
    app = [REPO / "o11y_data", REPO / "ui", REPO / "pages"]
    missing = _undeclared(app, declared("requirements.txt"))
    optional = {m for m, (_, files) in missing.items() if all(ENGINES in f for f in files)}
    assert {m: v for m, v in missing.items() if m not in optional} == {}
    assert _undeclared(app, declared("requirements-engines.txt", "requirements.txt")) == {}


ENGINES = "o11y_data/query/engines/"


def test_engine_dependencies_stay_out_of_the_apps_requirements_and_in_dev():
    engines = declared("requirements-engines.txt")
    assert {"daft", "ray", "pyiceberg"} <= engines
    assert not engines & declared("requirements.txt")
    assert engines <= declared()  # make dev / make test / CI install them
