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


def test_cli_status_and_summary_load_no_pandas_pyarrow_boto3_or_fastavro(tmp_path):
    # A local query over the store needs DuckDB only; the heavy imports cost ~0.5 s per run.
    code = (
        "import sys\n"
        "from o11y_data import cli\n"
        "for argv in (['status'], ['summary'], ['summary', '--format', 'csv']):\n"
        "    assert cli.main(argv) == 0, argv\n"
        "heavy = ('pandas', 'pyarrow', 'boto3', 'botocore', 'fastavro', 'numpy')\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print(bad, file=sys.stderr); sys.exit(1 if bad else 0)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "O11Y_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stdout + r.stderr
