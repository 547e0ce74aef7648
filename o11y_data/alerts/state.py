"""The alerts' shared state: one JSON file in the store, the outbox of notices inside it.

``alerts/state.json`` holds every series' state, the last transitions, rule faults, delivery
outcomes, silences and the **outbox**: a notice is written there (atomically, together with the
state that decided it) before anyone tries to send it, and leaves it only once each webhook URL
has answered 2xx or its attempts are used up. Every change holds an ``flock`` on
``alerts/alerts.lock``, briefly: measuring runs outside it and sending never holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import O11yError
from ..locks import file_lock
from .notice import Notice

log = logging.getLogger(__name__)

HISTORY = 200  # transitions kept (the page shows the last 100)
DELIVERIES = 100  # delivery records kept
LOCK_TIMEOUT_S = 30.0
HOST = socket.gethostname()


_NAMES: dict[type, frozenset[str]] = {}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` in ``data`` (a file written by another version may hold others)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = frozenset(f.name for f in fields(cls))
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Series:
    """The state of one (rule, key)."""

    rule: str
    key: str | None
    state: str = "ok"  # ok | pending | firing | nodata | error
    since: float | None = None  # when the condition began (epoch seconds)
    value: float | None = None
    threshold: float | None = None
    notified: bool = False  # a firing notice went out for this episode
    last_notified: float = 0.0
    evaluated_at: float = 0.0
    clear_since: float | None = None  # firing, and the condition clear since then
    reason: str | None = None  # state "error": why

    def to_json(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults (flat values: no deep copy)."""
        return {
            k: v for k, v in self.__dict__.items() if v != _SERIES_DEFAULTS.get(k, v) or k in _ID
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        return cls(**_known(cls, data))


_SERIES_DEFAULTS = {
    "state": "ok",
    "since": None,
    "value": None,
    "threshold": None,
    "notified": False,
    "last_notified": 0.0,
    "evaluated_at": 0.0,
    "clear_since": None,
    "reason": None,
}
_ID = {"rule", "key", "state"}


@dataclass
class OkKeys:
    """A rule's keys that are ok, kept as a summary (an ok series carries no memory: the state
    file holds only the series that need one, so its size grows with what is wrong)."""

    count: int = 0
    nearest: float | None = None  # the value nearest to breaching (max for >, min for <)
    keys: list[str] = field(default_factory=list)  # keyed rules: the ok keys

    def add(self, key: str | None, value: float | None, *, high: bool) -> None:
        self.count += 1
        if key is not None:
            self.keys = [*self.keys, key]  # the list may be shared with other rules
        if value is None or value != value:  # NaN never is the nearest
            return
        if self.nearest is None or (value > self.nearest if high else value < self.nearest):
            self.nearest = value


@dataclass(frozen=True)
class Transition:
    at: float
    rule: str
    key: str | None
    from_state: str
    to_state: str  # pending | firing | resolved | ok | nodata | error
    value: float | None
    threshold: float | None
    silenced: bool = False


@dataclass
class Fault:
    """A rule that could not be evaluated: why, since when, how many evaluations in a row."""

    reason: str
    since: float
    failures: int = 1
    notified: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Delivery:
    """One notice to one URL, finally: delivered or not, after how many attempts, why not."""

    at: float
    target: str  # webhook_label(url): scheme and host only
    rule: str
    key: str | None
    status: str  # the notice's status: firing | resolved
    ok: bool
    attempts: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OutboxItem:
    """A notice waiting for one webhook URL (named by a hash: the URL itself is a secret)."""

    notice: Notice
    target_id: str
    target: str
    created: float
    attempts: int = 0
    next_at: float = 0.0
    claimed_by: str = ""  # "host pid nonce" of the sender trying it now
    claimed_until: float = 0.0
    last_error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.notice.id}:{self.target_id}"

    def claimed(self, now: float) -> bool:
        """Someone alive is sending it: a claim of a dead process on this host does not count
        (``kill -9`` mid-delivery), nor one past its lease."""
        if not self.claimed_by or self.claimed_until <= now:
            return False
        host, pid, _ = (self.claimed_by.split(" ") + ["", "", ""])[:3]
        if host != HOST or not pid.isdigit():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["notice"] = self.notice.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxItem:
        values = _known(cls, data)
        values["notice"] = Notice.from_json(values["notice"])
        return cls(**values)


@dataclass
class Heartbeat:
    """The last call of O11Y_HEARTBEAT_URL."""

    at: float
    target: str
    ok: bool
    error: str | None = None


@dataclass
class AlertState:
    """Everything the alert evaluators share, as stored in ``alerts/state.json``."""

    series: dict[str, Series] = field(default_factory=dict)  # "<rule>\x1f<key>" -> not ok
    ok: dict[str, OkKeys] = field(default_factory=dict)  # rule -> its ok keys
    history: list[dict[str, Any]] = field(default_factory=list)  # transitions, newest last
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # newest last
    silences: list[dict[str, Any]] = field(default_factory=list)  # rule, key, until
    rules: list[dict[str, Any]] = field(default_factory=list)  # the rules last evaluated
    # The rules live in alerts/rules.json, rewritten only when they change (500 rules are most
    # of the state's bytes); their digest is in state.json.
    rules_digest: str = ""
    rules_changed: bool = False
    problems: list[str] = field(default_factory=list)  # the rules file's, last evaluation
    faults: dict[str, Fault] = field(default_factory=dict)  # rule -> why it was not evaluated
    outbox: list[OutboxItem] = field(default_factory=list)
    heartbeat: Heartbeat | None = None
    evaluated_at: float = 0.0
    evaluated_by: str = ""
    interval_s: float = 0.0  # how often the last evaluator evaluates

    def to_json(self) -> dict[str, Any]:
        return {
            "series": {k: s.to_json() for k, s in self.series.items()},
            **_ok_json(self.ok),
            "history": self.history,
            "deliveries": self.deliveries,
            "silences": self.silences,
            "rules_digest": self.rules_digest,
            "problems": self.problems,
            "faults": {k: asdict(f) for k, f in self.faults.items()},
            "outbox": [o.to_json() for o in self.outbox],
            "heartbeat": asdict(self.heartbeat) if self.heartbeat else None,
            "evaluated_at": self.evaluated_at,
            "evaluated_by": self.evaluated_by,
            "interval_s": self.interval_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertState:
        st = cls()
        for k, v in (data.get("series") or {}).items():
            if isinstance(v, dict):
                st.series[str(k)] = Series.from_json(v)
        lists = data.get("key_lists") or {}
        try:  # columns: one list per field (500 rules are 500 entries)
            ok = data.get("ok") or {}
            for name, count, near, ref in zip(
                ok.get("rules", []), ok["count"], ok["nearest"], ok["keys_ref"], strict=True
            ):
                # Rules of one group share one list (read only: OkKeys.add copies first).
                st.ok[str(name)] = OkKeys(int(count), near, lists.get(ref) or [])
        except (TypeError, ValueError, AttributeError, KeyError):
            st.ok = {}  # a hand-damaged summary: shown again after the next evaluation
        for name in ("history", "deliveries", "silences", "problems"):
            value = data.get(name)
            if isinstance(value, list):
                setattr(st, name, list(value))  # the parse is shared: never change it
        for k, v in (data.get("faults") or {}).items():
            with contextlib.suppress(TypeError, ValueError):
                st.faults[str(k)] = Fault.from_json(v)
        for item in data.get("outbox") or []:
            try:
                st.outbox.append(OutboxItem.from_json(item))
            except (TypeError, ValueError, KeyError, AttributeError):
                log.warning("alert outbox: an unreadable entry was dropped")
        beat = data.get("heartbeat")
        if isinstance(beat, dict):
            with contextlib.suppress(TypeError):
                st.heartbeat = Heartbeat(**_known(Heartbeat, beat))
        st.rules_digest = str(data.get("rules_digest") or "")
        st.evaluated_at = float(data.get("evaluated_at") or 0.0)
        st.evaluated_by = str(data.get("evaluated_by") or "")
        st.interval_s = float(data.get("interval_s") or 0.0)
        return st

    def silenced(self, rule: str, key: str | None, now: float) -> bool:
        return any(
            s.get("rule") == rule
            and (s.get("key") is None or s.get("key") == key)
            and float(s.get("until") or 0) > now
            for s in self.silences
        )

    def keys_of(self, rule: str) -> list[str]:
        """Every key the rule watched at its last evaluation (ok or not)."""
        keys = {s.key for s in self.series.values() if s.rule == rule and s.key is not None}
        keys.update(self.ok.get(rule, OkKeys()).keys)
        return sorted(keys)

    def firing(self) -> list[Series]:
        return [s for s in self.series.values() if s.state == "firing"]

    def failed_deliveries(self) -> list[Delivery]:
        return [Delivery(**_known(Delivery, d)) for d in self.deliveries if not d.get("ok")]


def _ok_json(ok: dict[str, OkKeys]) -> dict[str, Any]:
    """The ok summaries, each list of keys stored once however many rules share it (every
    per-agent rule of one metric watches the same agents)."""
    lists: dict[str, list[str]] = {}
    refs: dict[int, str] = {}  # rules of one group share the list object itself
    refs_out: list[str] = []
    for o in ok.values():
        ref = ""
        if o.keys:
            ref = refs.get(id(o.keys), "")
            if not ref:
                text = "\x1f".join(o.keys).encode()
                ref = refs[id(o.keys)] = hashlib.sha1(text, usedforsecurity=False).hexdigest()
            lists.setdefault(ref, o.keys)
        refs_out.append(ref)
    out = {
        "rules": list(ok),
        "count": [o.count for o in ok.values()],
        "nearest": [o.nearest for o in ok.values()],
        "keys_ref": refs_out,
    }
    return {"ok": out, "key_lists": lists}


def series_id(rule: str, key: str | None) -> str:
    return f"{rule}\x1f{'' if key is None else key}"


def alerts_dir(store_dir: Path) -> Path:
    return Path(store_dir) / "alerts"


_LAST_READ: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _parsed(path: Path) -> Any:
    """The file's JSON; the last parse again when the file was not replaced since (an
    evaluation reads it before measuring and again under the lock: one parse of a big file)."""
    st = path.stat()
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _LAST_READ.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    data = json.loads(path.read_text())
    if len(_LAST_READ) > 16:  # one pair of files per store in use
        _LAST_READ.clear()
    _LAST_READ[path] = (stamp, data)
    return data


def tracked_keys(store_dir: Path) -> dict[str, set[str | None]]:
    """rule -> the keys pending or firing in the last written state (read without building it:
    an evaluation asks this before measuring, outside the lock)."""
    try:
        data = _parsed(alerts_dir(store_dir) / "state.json")
    except (OSError, ValueError):
        return {}
    out: dict[str, set[str | None]] = {}
    series = data.get("series") if isinstance(data, dict) else None
    for s in (series or {}).values():
        if isinstance(s, dict) and s.get("state") in {"pending", "firing"}:
            out.setdefault(str(s.get("rule")), set()).add(s.get("key"))
    return out


def _remember(path: Path, data: dict[str, Any]) -> None:
    """What was just written, as the next read's parse (the writer's state object is done with:
    readers copy its lists)."""
    with contextlib.suppress(OSError):
        st = path.stat()
        _LAST_READ[path] = ((st.st_ino, st.st_size, st.st_mtime_ns), data)


def read_state(store_dir: Path) -> AlertState:
    """The last written state (no lock needed: the file is replaced atomically)."""
    path = alerts_dir(store_dir) / "state.json"
    try:
        data = _parsed(path)
    except FileNotFoundError:
        return AlertState()
    except (OSError, ValueError) as exc:
        log.warning("alert state unreadable, starting afresh: %s", type(exc).__name__)
        return AlertState()
    if not isinstance(data, dict):
        return AlertState()
    state = AlertState.from_json(data)
    if state.rules_digest:
        try:
            saved = _parsed(alerts_dir(store_dir) / "rules.json")
        except (OSError, ValueError):
            saved = {}
        if isinstance(saved, dict) and saved.get("digest") == state.rules_digest:
            state.rules = list(saved.get("rules") or [])
        else:  # a torn pair (cannot happen: rules.json is written first): evaluate afresh
            state.rules_digest = ""
    return state


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked_state(store_dir: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[AlertState]:
    """Hold the alerts lock across processes, yield the state, write it back on success.

    A store that cannot be written (a read-only cache) is one line naming the folder."""
    folder = alerts_dir(store_dir)
    busy = O11yError("Alerts are busy", "another process held the alerts lock too long")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / "alerts.lock", timeout_s=timeout_s, busy=busy, poll_s=0.05):
            state = read_state(store_dir)
            yield state
            state.history = state.history[-HISTORY:]
            state.deliveries = state.deliveries[-DELIVERIES:]
            if state.rules_changed:  # first, so state.json never names rules not yet written
                rules = {"digest": state.rules_digest, "rules": state.rules}
                _write_atomic(folder / "rules.json", json.dumps(rules, separators=(",", ":")))
            data = state.to_json()
            _write_atomic(folder / "state.json", json.dumps(data, separators=(",", ":")))
            _remember(folder / "state.json", data)
    except OSError as exc:
        raise O11yError(
            "Cannot write the alert state",
            f"{folder}: {exc.strerror or type(exc).__name__}",
        ) from exc


def add_silence(store_dir: Path, rule: str, key: str | None, until: float) -> None:
    """Silence ``rule`` (one key, or all with ``key=None``) until ``until``: no notices."""
    with locked_state(store_dir) as state:
        state.silences.append({"rule": rule, "key": key, "until": until, "created": time.time()})


def remove_silence(store_dir: Path, rule: str, key: str | None) -> None:
    with locked_state(store_dir) as state:
        state.silences = [
            s for s in state.silences if not (s.get("rule") == rule and s.get("key") == key)
        ]
