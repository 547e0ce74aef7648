"""Top-N agents plus "others" plus "unknown", computed in SQL, against plain pandas/numpy."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from o11y_data import load_settings, open_db, sync
from o11y_data.query import queries as q
from tests.support.tables import event, plain_parquet

T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
# odd agent strings on purpose: spaces, emoji, quotes, a name that is literally "others"
AGENTS = [f"did:cf:agent{i:02d}" for i in range(14)] + [
    "did:cf:with space",
    "did:cf:🦊fox",
    "did:cf:quo'te\"s",
    "others",
]


def _cycles() -> pd.DataFrame:
    rng = random.Random(7)
    out = []
    for i in range(900):
        agent = rng.choice(AGENTS[: 1 + i % len(AGENTS)])
        out.append(
            {
                "ts": T + timedelta(seconds=7 * i),
                "agent": agent,
                "mode": rng.choice(["think", "reflection", "housekeeping"]),
                "ms": rng.randint(10, 100_000),
                "errors": rng.choice([0, 0, 0, 1, 3]),
            }
        )
    for i in range(40):  # events without an agent: "unknown"
        out.append(
            {
                "ts": T + timedelta(seconds=13 * i + 3),
                "agent": None,
                "mode": "think",
                "ms": rng.randint(10, 100_000),
                "errors": rng.choice([0, 5]),
            }
        )
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    src = root / "src"
    src.mkdir()
    df = _cycles()
    rows = []
    for r in df.itertuples():
        missing = pd.isna(r.agent)
        kw = {} if missing else {"agent": r.agent}
        body = event(mode=r.mode, ms=r.ms, errors=r.errors, ts=r.ts.to_pydatetime(), **kw)
        if missing:
            body = body.replace('"agent": "did:cf:alpha", ', "")
            assert '"agent"' not in body
        rows.append((r.ts.to_pydatetime() + timedelta(seconds=2), body))
    (src / "a.parquet").write_bytes(plain_parquet(rows))
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(root / "c")}, secrets_paths=[]
    )
    sync(s)
    df["agent"] = df["agent"].fillna("unknown")
    return open_db(s), df


def _expected_top(df: pd.DataFrame, n: int, by: str) -> list[str]:
    known = df[df["agent"] != "unknown"]
    g = known.groupby("agent").agg(
        cycles=("agent", "size"),
        errors=("errors", "sum"),
        error_cycles=("errors", lambda s: int((s > 0).sum())),
    )
    g = g.reset_index()
    if by == "cycles":
        g = g.sort_values(["cycles", "agent"], ascending=[False, True])
    else:
        g = g.sort_values(
            ["errors", "error_cycles", "cycles", "agent"], ascending=[False, False, False, True]
        )
    return list(g["agent"][:n])


@pytest.mark.parametrize("rank_by", ["cycles", "errors"])
def test_top_agents_plus_others_plus_unknown_add_up_to_every_cycle(data, rank_by):
    db, df = data
    out = q.cycles_over_time(db, q.Filters(), by="agent", bucket_s=3600, top=5, rank_by=rank_by)
    top = _expected_top(df, 5, rank_by)
    per = out.groupby(["kind", "key"])["cycles"].sum()
    assert sorted(per.loc["agent"].index) == sorted(top)
    for a in top:
        assert per.loc[("agent", a)] == (df["agent"] == a).sum()
    rest = df[~df["agent"].isin(top) & (df["agent"] != "unknown")]
    assert per.loc[("others", "others")] == len(rest)
    assert per.loc[("unknown", "unknown")] == (df["agent"] == "unknown").sum()
    assert out["cycles"].sum() == len(df)
    sizes = out.groupby("kind")["group_agents"].first()
    assert sizes["others"] == rest["agent"].nunique()
    assert sizes["agent"] == 5 and sizes["unknown"] == 1


def test_an_agent_named_others_is_not_merged_into_the_others_row(data):
    db, df = data
    out = q.cycles_over_time(db, q.Filters(), by="agent", bucket_s=86400, top=50)
    per = out.groupby(["kind", "key"])["cycles"].sum()
    assert per.loc[("agent", "others")] == (df["agent"] == "others").sum()
    assert ("others", "others") not in per.index  # no agent left over with top=50


def test_mode_breakdown_by_agent_uses_the_same_groups(data):
    db, df = data
    out = q.mode_breakdown(db, q.Filters(), by_agent=True, top=3)
    top = _expected_top(df, 3, "cycles")
    assert set(out.loc[out["kind"] == "agent", "agent"]) == set(top)
    assert out["cycles"].sum() == len(df)
    shares = out.groupby(["kind", "agent"])["share"].sum()
    assert np.allclose(shares.to_numpy(), 1.0)


def test_totals_count_agents_without_unknown_and_give_p50_p95_p99(data):
    db, df = data
    t = q.totals(db, q.Filters())
    assert t.agents == df.loc[df["agent"] != "unknown", "agent"].nunique()
    assert t.unknown_cycles == (df["agent"] == "unknown").sum()
    assert t.unknown_errors == df.loc[df["agent"] == "unknown", "errors"].sum()
    for p, got in zip((50, 95, 99), (t.p50_ms, t.p95_ms, t.p99_ms), strict=True):
        assert got == pytest.approx(np.percentile(df["ms"], p, method="linear"))


def test_unknown_is_not_ranked_nor_listed_as_gone_quiet(data):
    db, _ = data
    assert "unknown" not in set(q.agent_last_seen(db, q.Filters())["agent"])
    assert "unknown" not in set(q.top_error_agents(db, q.Filters(), limit=100)["agent"])
    ov = q.agent_overview(db, q.Filters())
    assert ov["agent"].iloc[-1] == "unknown"  # shown apart: last, after the agents


def test_agent_strings_with_spaces_emoji_and_quotes_filter_exactly(data):
    db, df = data
    for a in ("did:cf:with space", "did:cf:🦊fox", "did:cf:quo'te\"s"):
        t = q.totals(db, q.Filters(agents=(a,)))
        assert t.cycles == (df["agent"] == a).sum() > 0
