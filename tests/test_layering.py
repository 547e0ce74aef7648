"""The data layer stands alone: it never imports the UI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_data_layer_source_never_imports_streamlit():
    offenders = []
    for path in (ROOT / "o11y_data").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in {"streamlit", "ui"}
            ]
    assert offenders == []


def test_importing_every_data_module_loads_no_streamlit():
    modules = sorted(
        f"o11y_data.{p.stem}" for p in (ROOT / "o11y_data").glob("*.py") if p.stem != "__main__"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'ui')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_wall_depends_on_the_shared_helpers_never_the_reverse():
    """One app: the wall imports the shared formats, parsers and rules; nothing shared (or any
    ordinary page) imports the wall's modules."""
    wall = {"ui.wall", "ui.wall_logic"}
    offenders = []
    sources = [*(ROOT / "ui").glob("*.py"), *(ROOT / "pages").glob("*.py")]
    for path in sources:
        if path.stem in {"wall", "wall_logic"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                offenders += [f"{path.name}: {n}" for n in names & wall]
    assert offenders == []
    logic = (ROOT / "ui" / "wall_logic.py").read_text()
    for shared in ("from ui.fmt import", "from ui.agents import", "from ui.filters import"):
        assert shared in logic
