"""The one clip and the one text table (o11y_data/text.py), and the one merge of the syncer's
state with the recorded freshness (ui/data.py), checked against values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from o11y_data.background import SyncState
from o11y_data.text import aligned_table, clip
from ui.data import with_sync_state


def test_clip_folds_whitespace_and_cuts_the_end_at_exactly_n():
    assert clip("a\n\tb   c") == "a b c"
    assert clip("x" * 40) == "x" * 40
    assert clip("x" * 41) == "x" * 39 + "…" and len(clip("x" * 41)) == 40
    assert clip(12345, 3) == "12…"


def test_clip_keeping_the_end_cuts_the_middle_and_may_keep_whitespace():
    text = "did:cf:" + "a" * 30 + "ZZZ"
    out = clip(text, 12, keep_end=True, one_line=False)
    assert out == "did:cf:" + "…" + "aZZZ" and len(out) == 12
    assert clip("a  b", None, one_line=False) == "a  b"
    assert clip("a  b", 3, one_line=False) == "a …"


def test_aligned_table_pads_left_or_right_and_leaves_no_trailing_spaces():
    out = aligned_table(["name", "n"], [["alpha", "1"], ["b", "100"]], align_right={1})
    assert out.splitlines() == ["name     n", "-----  ---", "alpha    1", "b      100"]
    left = aligned_table(["a", "bb"], [["xyz", ""]])
    assert left.splitlines() == ["a    bb", "---  --", "xyz"]


def test_the_syncer_adds_its_error_only_when_newer_than_the_last_recorded_success():
    ok = datetime(2026, 1, 1, 12, tzinfo=UTC)
    recorded = {"last_sync_at": ok, "last_error": None}
    failed_later = SyncState(last_error="Sync failed: OSError", last_attempt=ok.timestamp() + 1)
    assert with_sync_state(recorded, failed_later)["last_error"] == "Sync failed: OSError"
    failed_before = SyncState(last_error="old", last_attempt=ok.timestamp() - 1)
    assert with_sync_state(recorded, failed_before)["last_error"] is None
    own = {"last_sync_at": ok, "last_error": "recorded"}
    assert with_sync_state(own, failed_later)["last_error"] == "recorded"
    assert recorded["last_error"] is None  # the recorded dict is not changed
    assert with_sync_state(None, failed_later) is None


def test_a_success_of_the_syncer_counts_before_its_status_is_read_back():
    state = SyncState(last_success=1_700_000_000.0)
    merged = with_sync_state({"last_sync_at": None}, state)
    assert merged["last_sync_at"] == datetime.fromtimestamp(1_700_000_000.0, UTC)
    never = with_sync_state({"last_sync_at": None}, SyncState())
    assert never["last_sync_at"] is None
