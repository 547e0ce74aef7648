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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _data_modules() -> list[str]:
    return sorted(
        _module_name(p) for p in (ROOT / "o11y_data").rglob("*.py") if p.stem != "__main__"
    )


def _imported_data_modules(path: Path) -> set[str]:
    """The ``o11y_data`` modules ``path`` imports, relative imports resolved."""
    package = _module_name(path).split(".")
    if path.stem != "__init__":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("o11y_data")}


# What each part of the data layer may import besides the package's shared foundations
# (config, errors, logs, locks, durations, routes, text): ingest reads the bucket into the store and
# knows nothing of questions; query asks the store; alerts ask query; the tools on top use all.
_FOUNDATIONS = {"config", "errors", "logs", "locks", "durations", "routes", "text"}
_MAY_IMPORT = {
    "ingest": {"ingest"},
    "query": {"query", "ingest"},
    "alerts": {"alerts", "query"},
}


def test_each_part_of_the_data_layer_imports_only_the_parts_below_it():
    offenders = []
    for part, allowed in _MAY_IMPORT.items():
        for path in (ROOT / "o11y_data" / part).rglob("*.py"):
            for mod in _imported_data_modules(path):
                top = mod.split(".")[1] if "." in mod else ""
                if top and top not in allowed | _FOUNDATIONS:
                    offenders.append(f"{path.relative_to(ROOT)}: {mod}")
    assert offenders == []


def test_the_foundations_import_no_part_of_the_data_layer():
    offenders = []
    for name in sorted(_FOUNDATIONS):
        path = ROOT / "o11y_data" / f"{name}.py"
        for mod in _imported_data_modules(path):
            top = mod.split(".")[1] if "." in mod else ""
            if top and top not in _FOUNDATIONS:
                offenders.append(f"{name}.py: {mod}")
    assert offenders == []


def test_importing_every_data_module_loads_no_streamlit():
    modules = _data_modules()
    assert "o11y_data.query.planner" in modules and "o11y_data.alerts.delivery" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'ui')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# The agent page judges an agent by the wall's own rules (one truth): it may read the wall's pure
# logic, never the wall's rendering.
_WALL_LOGIC_READERS = {ROOT / "ui" / "sections" / "agent.py"}


def test_the_wall_depends_on_the_shared_helpers_never_the_reverse():
    """One app: the wall imports the shared formats, parsers and rules; nothing shared (or any
    ordinary page) imports the wall's modules, except the agent page its pure status rules."""
    wall = {"ui.wall", "ui.wall_logic"}
    offenders = []
    sources = [*(ROOT / "ui").rglob("*.py"), *(ROOT / "pages").glob("*.py")]
    for path in sources:
        if path.stem in {"wall", "wall_logic"}:
            continue
        barred = {"ui.wall"} if path in _WALL_LOGIC_READERS else wall
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                offenders += [f"{path.name}: {n}" for n in names & barred]
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


def _code_lines(path: Path) -> int:
    """Non-blank lines of ``path`` that hold code (a docstring counts), comment-only lines not."""
    import tokenize

    text = path.read_text()
    lines = text.splitlines()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    skip |= {tokenize.ENCODING, tokenize.ENDMARKER}
    covered: set[int] = set()
    with path.open("rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type not in skip:
                covered.update(range(tok.start[0], tok.end[0] + 1))
    return sum(1 for n in covered if lines[n - 1].strip())


def test_every_page_script_is_at_most_60_lines_of_code():
    """A page reads as a table of contents; its sections live in ui/sections/<page>.py."""
    pages = sorted((ROOT / "pages").glob("*.py"))
    assert {"overview", "alerts", "health"} <= {p.stem for p in pages}
    sizes = {p.name: _code_lines(p) for p in pages}
    assert sizes["overview.py"] > 10  # the count sees code
    assert {name: n for name, n in sizes.items() if n > 60} == {}
