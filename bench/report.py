"""Render the benchmark's figures: a console table and ``bench/RESULTS.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GB = 1024 * 1024  # kB in a GiB


def _ms(s: float | None) -> str:
    return "—" if s is None else f"{s * 1000:,.0f} ms" if s >= 0.01 else f"{s * 1000:.1f} ms"


def _s(s: float | None) -> str:
    return "—" if s is None else f"{s:,.1f} s" if s >= 1 else _ms(s)


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:,.1f}×" if v < 100 else f"{v:,.0f}×"


def _largest(results: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    sizes = results.get("sizes") or {}
    if not sizes:
        return None
    name = max(sizes, key=lambda k: sizes[k].get("events", 0))
    return name, sizes[name]


def _screen_max(r: dict[str, Any], window: str, key: str) -> tuple[float | None, str]:
    rows = [(v.get(key), k) for k, v in (r.get("screens") or {}).items() if k.endswith(window)]
    rows = [x for x in rows if x[0] is not None]
    if not rows:
        return None, ""
    v, k = max(rows)
    return v, k.split()[0]


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, target, measured, PASS/MISS/—) at the largest size run."""
    got = _largest(results)
    if got is None:
        return []
    _name, r = got
    out = []

    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("PASS" if ok else "MISS")

    sm = r.get("summary") or {}
    sp = sm.get("speedup_cold")
    out.append(
        (
            "summary vs the seed's query (fresh EventsDB)",
            "≥ 30× faster",
            f"{_x(sp)} (seed {_s(sm.get('seed_s'))}, ours {_ms(sm.get('ours_cold_s'))}; "
            f"warm {_x(sm.get('speedup_warm'))})"
            if sp
            else "—",
            verdict(sp >= 30 if sp else None),
        )
    )
    for window, label in (("24h", "last 24 h"), ("all", "all time")):
        v, k = _screen_max(r, window, "warm_s")
        out.append(
            (
                f"each screen's data, warm, {label}, uncached DuckDB (slowest: {k})",
                "≤ 150 ms",
                _ms(v),
                verdict(v <= 0.150 if v is not None else None),
            )
        )
    v, k = max(
        (_screen_max(r, w, "app_cached_s") for w in ("24h", "all")),
        key=lambda x: x[0] or 0,
    )
    out.append(
        (
            f"each screen's data, warm, app cache (st.cache_data repeat; slowest: {k})",
            "≤ 150 ms",
            _ms(v),
            verdict(v <= 0.150 if v is not None else None),
        )
    )
    for window, label in (("24h", "last 24 h"), ("all", "all time")):
        v, k = _screen_max(r, window, "cold_s")
        out.append(
            (
                f"each screen's data, cold after start, {label} (slowest: {k})",
                "≤ 2 s",
                _ms(v),
                verdict(v <= 2.0 if v is not None else None),
            )
        )
    fs = r.get("full_sync") or {}
    ratio = fs.get("ratio")
    out.append(
        (
            "full sync vs `aws s3 sync`",
            "≤ 1.0× its time",
            f"{ratio:.2f}× ({_s(fs.get('ours_s'))} vs {_s(fs.get('aws_s'))})" if ratio else "—",
            verdict(ratio <= 1.0 if ratio else None),
        )
    )
    nn = r.get("nothing_new") or {}
    sp = nn.get("speedup")
    out.append(
        (
            "nothing-new sync vs `aws s3 sync` nothing-new",
            "≥ 10× faster",
            f"{_x(sp)} ({_ms(nn.get('ours_s'))} vs {_s(nn.get('aws_s'))})" if sp else "—",
            verdict(sp >= 10 if sp else None),
        )
    )
    app = r.get("app") or {}
    hwm = app.get("vm_hwm_kb")
    out.append(
        (
            "app server peak RSS (VmHWM, every page, 24 h and all)",
            "≤ 1.5 GB",
            f"{hwm / GB:.2f} GB" if hwm else "—",
            verdict(hwm <= 1.5 * GB if hwm else None),
        )
    )
    fc = app.get("first_chart_s")
    out.append(
        (
            "`streamlit run` to first chart in a browser",
            "≤ 10 s",
            _s(fc),
            verdict(fc <= 10 if fc else None),
        )
    )
    return out


def size_lines(name: str, r: dict[str, Any]) -> list[str]:
    lines = [
        f"### {name}: {r.get('events', 0):,} events in {r.get('files', 0):,} files "
        f"({r.get('bytes', 0) / 1e6:,.0f} MB of Parquet)",
        "",
        "| figure | ours | `aws s3 sync` / seed | ratio |",
        "| --- | --- | --- | --- |",
    ]
    up = r.get("upload")
    fs, nn, nf, sm = (r.get(k) or {} for k in ("full_sync", "nothing_new", "new_files", "summary"))
    if fs:
        lines.append(
            f"| full sync ({fs.get('ours_files', 0):,} files; aws {fs.get('aws_files', 0):,}) "
            f"| {_s(fs['ours_s'])} | {_s(fs['aws_s'])} | {fs['ratio']:.2f}× the time |"
        )
    ph = fs.get("phases") if fs else None
    if ph:
        parts = ", ".join(f"{k} {_s(v)}" for k, v in ph.items() if k != "total")
        lines.append(f"| full sync, our phases (first to last progress report) | {parts} | | |")
    if nn:
        lines.append(
            f"| nothing new (median) | {_ms(nn['ours_s'])} | {_s(nn['aws_s'])} "
            f"| {_x(nn['speedup'])} faster |"
        )
    if nf:
        lines.append(
            f"| after {nf['files']} new files | {_s(nf['ours_s'])} | {_s(nf['aws_s'])} "
            f"| {_x(nf['aws_s'] / nf['ours_s'])} faster |"
        )
    if sm:
        lines.append(
            f"| summary, all time: cold (fresh EventsDB) | {_ms(sm['ours_cold_s'])} "
            f"| seed {_s(sm['seed_s'])} | {_x(sm['speedup_cold'])} faster |"
        )
        lines.append(
            f"| summary, all time: warm (repeat) | {_ms(sm['ours_warm_s'])} "
            f"| seed {_s(sm['seed_s'])} | {_x(sm['speedup_warm'])} faster |"
        )
        lines.append(
            f"| summary equals the seed's table | {'yes' if sm.get('same_result') else 'NO'} "
            f"| {sm.get('groups', 0)} groups | |"
        )
    if up:
        lines.append(
            f"| (setup) moto_server loaded: {up.get('how', 'HTTP PUT')} | {_s(up['seconds'])} for "
            f"{up['objects']:,} objects | | {up['objects'] / max(up['seconds'], 1e-9):,.0f}/s |"
        )
    scr = r.get("screens") or {}
    if scr:
        lines += [
            "",
            f"Screens (data functions as `pages/*.py` call them; 24 h = the day ending at "
            f"{r.get('now', '?')[:16]}Z; cold = first pass in a fresh process incl. `EventsDB()`;"
            " warm = median repeat, uncached DuckDB; app cache = median repeat through "
            "`ui.data.cached`):",
            "",
            "| screen | window | cold | warm (uncached) | warm (app cache) | slowest call, warm |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for key, v in scr.items():
            screen, window = key.split()
            slow = max(v["warm"].items(), key=lambda kv: kv[1])
            wnd = "1 h (own)" if screen == "wall" else window
            lines.append(
                f"| {screen} | {wnd} | {_ms(v['cold_s'])} | {_ms(v['warm_s'])} "
                f"| {_ms(v['app_cached_s'])} | {slow[0].split(':', 1)[1]} {_ms(slow[1])} |"
            )
    app = r.get("app") or {}
    if app.get("pages"):
        lines += [
            "",
            f"App: healthy after {_s(app.get('healthy_s'))}, first chart after "
            f"{_s(app.get('first_chart_s'))}; peak RSS (VmHWM) "
            f"{app.get('vm_hwm_kb', 0) / 1024:,.0f} MB, RSS at the end "
            f"{app.get('vm_rss_kb', 0) / 1024:,.0f} MB. Page loads in the browser (script run "
            "until idle, first visit = the app's cache cold):",
            "",
            "| page | window | load | charts | exceptions |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, v in app["pages"].items():
            page, window = key.split()
            lines.append(
                f"| {page} | {'1 h (own)' if page == 'wall' else window} | {_s(v['seconds'])} "
                f"| {v['charts']} | {v['exceptions']} |"
            )
    if app.get("error"):
        lines.append(f"\nApp not measured: {app['error']}")
    disk = r.get("disk")
    if disk:
        lines.append(
            f"\nStore on disk: {disk['store_mb']:,.0f} MB ({disk['segments_mb']:,.0f} MB of "
            "normalized segments; the rest is the raw downloaded files and metadata)."
        )
    return lines


def table_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    got = _largest(results)
    if got:
        lines += [
            f"## Targets at {got[0]} ({got[1].get('events', 0):,} events / "
            f"{got[1].get('files', 0):,} files)",
            "",
            "| figure | target | measured | |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(results)]
        lines.append("")
    lines.append("## Figures")
    for name, r in (results.get("sizes") or {}).items():
        lines += [""] + size_lines(name, r)
    return lines


def render(results: dict[str, Any], analysis: Path) -> str:
    m = results.get("machine", {})
    head = [
        "# Benchmark results",
        "",
        "Generated by `bench/` (issue 5). Rerun with the command below; every ratio is measured "
        "side by side in one run on the same machine, against the same `moto_server`. "
        "Issue 13's targets (rollups, pages against a floor page, CLI, growth) are the last "
        "section, from `bench/speed.py`.",
        "",
        f"- command: `.venv/bin/{results.get('command', 'python -m bench')}`"
        + " (`make bench` runs `--sizes 1m,10m`)",
        f"- run: {results.get('started', '?')} → {results.get('finished', '?')}; load average "
        f"at start {_load(results.get('loadavg_start'))}, at end "
        f"{_load(results.get('loadavg_end'))} (a shared, noisy machine)",
        f"- machine: {m.get('nproc')} cores ({m.get('cpu')}), {m.get('memory_gb')} GB RAM, "
        f"Linux {m.get('kernel')}",
        f"- versions: Python {m.get('python')}, DuckDB {m.get('duckdb')}, Streamlit "
        f"{m.get('streamlit')}, boto3 {m.get('boto3')}, awscli {m.get('awscli')}, "
        f"moto {m.get('moto')}",
        "",
    ]
    body = table_lines(results)
    tail = []
    if analysis.is_file():
        tail = ["", analysis.read_text().rstrip()]
    # Issue 13's figures (bench/speed.py, hand-kept notes) stay in the file when it is rewritten.
    speed = analysis.parent / "speed.md"
    if speed.is_file():
        tail += ["", speed.read_text().rstrip()]
    team = analysis.parent / "team.md"  # bench/team.py's runs (issue 18), appended there
    if team.is_file():
        tail += ["", team.read_text().rstrip()]
    return "\n".join(head + body + tail) + "\n"


def _load(v: Any) -> str:
    return " ".join(f"{x:.1f}" for x in v) if v else "?"
