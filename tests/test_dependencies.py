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
OURS = {"o11y_data", "ui", "pages", "app", "tests", "bench"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.lower())


def declared() -> set[str]:
    """Distribution names listed in requirements.txt and requirements-dev.txt."""
    names = set()
    for path in (REPO / "requirements.txt", REPO / "requirements-dev.txt"):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
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


def test_every_module_the_tests_and_benchmarks_import_is_declared():
    dists = packages_distributions()
    have = declared()
    missing = {}
    for folder in (REPO / "tests", REPO / "bench"):
        for mod, files in imported(folder).items():
            if mod in sys.stdlib_module_names or mod in OURS or mod == "__future__":
                continue
            names = {_name(d) for d in dists.get(mod, [])}
            if not names & have:
                missing[mod] = (sorted(names) or ["not installed"], sorted(files)[:3])
    assert missing == {}, missing
