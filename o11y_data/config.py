"""Configuration from one place: the environment, then ``.streamlit/secrets.toml`` ([r2]).

The environment wins over the secrets file. Secret values are wrapped in :class:`Secret` so that a
``repr`` of the settings, a log line or an error can never print them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .durations import parse_duration
from .errors import O11yError

DEFAULT_BUCKET = "agent-blobs"
# O11Y_RAW_HORIZON: its default, the words that keep all history, and its most (100 years).
DEFAULT_RAW_HORIZON_S = 90 * 86400.0
RAW_HORIZON_ALL = {"all", "none", "forever"}
MAX_RAW_HORIZON_S = 100 * 365 * 86400.0
_MEMORY = re.compile(r"\d+(\.\d+)?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)

# Environment name -> short name accepted in the [r2] section of secrets.toml.
_KEYS = {
    "O11Y_R2_ENDPOINT": "endpoint",
    "O11Y_R2_ACCOUNT_ID": "account_id",
    "O11Y_R2_ACCESS_KEY_ID": "access_key_id",
    "O11Y_R2_SECRET_ACCESS_KEY": "secret_access_key",
    "O11Y_BUCKET": "bucket",
    "O11Y_TABLE_PREFIX": "table_prefix",
    "O11Y_CATALOG_URI": "catalog_uri",
    "O11Y_CATALOG_TOKEN": "catalog_token",
    "O11Y_CATALOG_WAREHOUSE": "catalog_warehouse",
    "O11Y_SOURCE_DIR": "source_dir",
    "O11Y_CACHE_DIR": "cache_dir",
    "O11Y_SYNC_INTERVAL": "sync_interval",
    "O11Y_DEMO_LIVE": "demo_live",
    "O11Y_ALERTS_FILE": "alerts_file",
    "O11Y_ALERT_WEBHOOK": "alert_webhook",
    "O11Y_HEARTBEAT_URL": "heartbeat_url",
    "O11Y_PUBLIC_URL": "public_url",
    "O11Y_R2_TIMEOUT": "timeout",
    "O11Y_SYNC_MEMORY": "sync_memory",
    "O11Y_RAW_HORIZON": "raw_horizon",
    "O11Y_QUERY_TIMEOUT": "query_timeout",
    "O11Y_AGENTS_FILE": "agents_file",
    "O11Y_BACKGROUND_SYNC": "background_sync",
    # The engine for raw questions before the store's horizon (docs/scaling.md).
    "O11Y_ENGINE": "engine",
    "O11Y_R2_SQL_TOKEN": "r2_sql_token",
    "O11Y_R2_SQL_ENDPOINT": "r2_sql_endpoint",
    "O11Y_R2_SQL_TABLE": "r2_sql_table",
    "O11Y_RAY_ADDRESS": "ray_address",
    "O11Y_HISTORY": "history",
}
ENGINES = ("r2sql", "daft")
# How a sync brings the history before the raw horizon into the rollups: "stream" downloads the
# files, rolls them up and deletes them; "engine" asks O11Y_ENGINE for their rollup instead.
HISTORY_MODES = ("stream", "engine")
R2_SQL_ENDPOINT = "https://api.sql.cloudflarestorage.com"

# The wall's defaults (config without a link): URL parameter -> environment variable. The values
# stay text here; the wall (ui/wall_logic.py) parses them and says which ones it could not use.
WALL_KEYS = {
    "agents": "O11Y_WALL_AGENTS",
    "window": "O11Y_WALL_WINDOW",
    "err": "O11Y_WALL_ERR",
    "stale": "O11Y_WALL_STALE",
    "down": "O11Y_WALL_DOWN",
    "refresh": "O11Y_WALL_REFRESH",
    "fresh": "O11Y_WALL_FRESH",
    "horizon": "O11Y_WALL_HORIZON",
    "sort": "O11Y_WALL_SORT",
    "tz": "O11Y_WALL_TZ",
}


class Secret:
    """A string that never shows itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Where the events come from and where the cache lives."""

    endpoint: str | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    bucket: str = DEFAULT_BUCKET
    table_prefix: str | None = None
    catalog_uri: str | None = None
    catalog_token: Secret | None = None
    catalog_warehouse: str | None = None
    source_dir: Path | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    sync_interval_s: float = 60.0
    demo_live: bool = True
    # Alerts (o11y_data/alerts/): the rules file, where notices go, the dashboard's address.
    alerts_file: Path = Path("alerts.toml")
    alert_webhooks: tuple[Secret, ...] = ()  # URLs may carry tokens (Slack): never shown whole
    # One line per URL of O11Y_ALERT_WEBHOOK / O11Y_HEARTBEAT_URL left out (never the URL).
    alert_problems: tuple[str, ...] = ()
    heartbeat_url: Secret | None = None  # called after every complete evaluation
    public_url: str | None = None
    r2_timeout_s: float = 20.0  # a request that sends nothing for this long is a timeout
    # The sync's DuckDB memory cap: past it, sorts and aggregations spill to <store>/tmp, so a
    # first sync of a large table fits a small machine instead of taking all of its memory.
    sync_memory: str = "2GB"
    # How far back (seconds before the sync's clock, whole UTC days) the store keeps raw rows and
    # downloaded copies; older history lives in the rollups only (None: keep all of history).
    raw_horizon_s: float | None = DEFAULT_RAW_HORIZON_S
    # Every query the app runs is interrupted past this many seconds (the SQL console has its own).
    query_timeout_s: float = 30.0
    # The app: friendly agent names, whether it syncs in the background, the wall's defaults and
    # its read-only token (O11Y_WALL_TOKEN, else ``[wall] token`` in secrets.toml).
    agents_file: Path = Path("agents.toml")
    background_sync: bool = True
    wall_defaults: tuple[tuple[str, str], ...] = ()  # (URL parameter, text) pairs
    wall_token: Secret | None = None
    # The engine raw questions before the store's horizon go to (None: they are refused in one
    # line), and R2 SQL's account, token, endpoint (tests point it at a fake) and table.
    engine: str | None = None
    account_id: str | None = None
    r2_sql_token: Secret | None = None
    r2_sql_endpoint: str = R2_SQL_ENDPOINT
    r2_sql_table: str = "agent_network.events"
    # Daft's Ray cluster (``ray://host:10001`` or ``host:6379``); None: Daft's local runner.
    ray_address: str | None = None
    # O11Y_HISTORY: how a first sync rolls up the history before the raw horizon (HISTORY_MODES).
    history: str = "stream"

    @property
    def kind(self) -> str:
        """``local`` (a folder), ``r2`` (the bucket through the S3 API) or ``demo``."""
        if self.source_dir is not None:
            return "local"
        if self.endpoint:
            return "r2"
        return "demo"

    @property
    def endpoint_host(self) -> str:
        from urllib.parse import urlparse

        return urlparse(self.endpoint or "").netloc or (self.endpoint or "")

    @property
    def source_label(self) -> str:
        """A human name for the source, safe to show anywhere (no credentials)."""
        if self.kind == "local":
            return f"local folder {self.source_dir}"
        if self.kind == "r2":
            return f"R2 bucket {self.bucket} at {self.endpoint_host}"
        return "built-in demo data"

    @property
    def source_id(self) -> str:
        """A stable name for this source's corner of the cache, so sources never mix."""
        if self.kind == "demo":
            return "demo"
        ident = (
            str(self.source_dir.resolve())
            if self.kind == "local" and self.source_dir
            else f"{self.endpoint}|{self.bucket}"
        )
        ident += f"|{self.table_prefix or ''}|{self.catalog_uri or ''}"
        return f"{self.kind}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"

    @property
    def store_dir(self) -> Path:
        return self.cache_dir / self.source_id


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "o11y-dashboard"


def _read_secrets_file(paths: list[Path], section: str = "r2") -> dict[str, object]:
    for path in paths:
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                # No cause chained, on purpose: the secrets are not loaded yet, so the log could
                # not redact them, and a parser's message may quote the file's text.
                raise O11yError(
                    "Cannot read secrets file", f"{path}: {type(exc).__name__}"
                ) from None
            table = data.get(section, {})
            return table if isinstance(table, dict) else {}
    return {}


def load_wall_token(
    env: Mapping[str, str] | None = None, *, wall_section: object = None
) -> Secret | None:
    """The wall's read-only token: ``O11Y_WALL_TOKEN``, else ``token`` of the ``[wall]`` section.

    On its own (besides :func:`load_settings`) because the access gate must refuse a wall URL
    even when the rest of the settings cannot load."""
    env = os.environ if env is None else env
    token = env.get("O11Y_WALL_TOKEN", "")
    if not token and isinstance(wall_section, Mapping):
        token = str(wall_section.get("token", "") or "")
    return Secret(token) if token else None


def load_settings(
    env: dict[str, str] | None = None,
    *,
    secrets_paths: list[Path] | None = None,
    secrets: Mapping[str, object] | None = None,
    wall_secrets: Mapping[str, object] | None = None,
) -> Settings:
    """Settings from ``env`` (default: the process environment) over the secrets.

    ``secrets`` is the ``[r2]`` section when the caller already has it (the app passes Streamlit's
    ``st.secrets``); otherwise it is read from ``secrets_paths`` (default
    ``./.streamlit/secrets.toml``); ``wall_secrets`` likewise is its ``[wall]`` section.
    """
    env = dict(os.environ if env is None else env)
    if secrets_paths is None:
        secrets_paths = [Path.cwd() / ".streamlit" / "secrets.toml"]
    if secrets is None:
        secrets = _read_secrets_file(secrets_paths)
    if wall_secrets is None:
        wall_secrets = _read_secrets_file(secrets_paths, "wall")

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or value == "":
            short = _KEYS[name]
            raw = secrets.get(short, secrets.get(name, secrets.get(name.lower())))
            value = None if raw is None else str(raw)
        return value.strip() if isinstance(value, str) and value.strip() else None

    endpoint = get("O11Y_R2_ENDPOINT")
    account = get("O11Y_R2_ACCOUNT_ID")
    if not endpoint and account:
        endpoint = f"https://{account}.r2.cloudflarestorage.com"
    key_id, secret = get("O11Y_R2_ACCESS_KEY_ID"), get("O11Y_R2_SECRET_ACCESS_KEY")
    if endpoint and not (key_id and secret):
        raise O11yError(
            "R2 credentials missing",
            "set O11Y_R2_ACCESS_KEY_ID and O11Y_R2_SECRET_ACCESS_KEY (or [r2] in secrets.toml)",
        )
    interval = get("O11Y_SYNC_INTERVAL")
    try:
        sync_interval = float(interval) if interval else 60.0
    except ValueError as exc:
        raise O11yError("Bad O11Y_SYNC_INTERVAL", "expected a number of seconds") from exc
    timeout = get("O11Y_R2_TIMEOUT")
    try:
        r2_timeout = float(timeout) if timeout else 20.0
    except ValueError as exc:
        raise O11yError("Bad O11Y_R2_TIMEOUT", "expected a number of seconds") from exc
    query_timeout = get("O11Y_QUERY_TIMEOUT")
    try:
        query_timeout_s = float(query_timeout) if query_timeout else 30.0
    except ValueError as exc:
        raise O11yError("Bad O11Y_QUERY_TIMEOUT", "expected a number of seconds") from exc
    if not math.isfinite(query_timeout_s) or query_timeout_s <= 0:
        raise O11yError("Bad O11Y_QUERY_TIMEOUT", "expected a positive number of seconds")
    sync_memory = (get("O11Y_SYNC_MEMORY") or "2GB").replace(" ", "")
    if not _MEMORY.fullmatch(sync_memory):
        raise O11yError("Bad O11Y_SYNC_MEMORY", "expected a size such as 2GB or 512MB")
    raw_horizon_s = parse_raw_horizon(get("O11Y_RAW_HORIZON"))
    prefix = get("O11Y_TABLE_PREFIX")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    source_dir = get("O11Y_SOURCE_DIR")
    cache_dir = get("O11Y_CACHE_DIR")
    token = get("O11Y_CATALOG_TOKEN")
    alerts_file = get("O11Y_ALERTS_FILE")
    raw_hooks = [u.strip() for u in (get("O11Y_ALERT_WEBHOOK") or "").split(",") if u.strip()]
    hooks, alert_problems = [], []
    for i, url in enumerate(raw_hooks, 1):
        why = url_problem(url)
        if why:  # this URL is left out; the others keep delivering
            alert_problems.append(f"O11Y_ALERT_WEBHOOK URL {i}: {why}; left out")
        else:
            hooks.append(url)
    engine = (get("O11Y_ENGINE") or "").lower() or None
    if engine is not None and engine not in ENGINES:
        raise O11yError("Bad O11Y_ENGINE", f"expected one of {', '.join(ENGINES)} or nothing")
    sql_token = get("O11Y_R2_SQL_TOKEN")
    if engine == "r2sql" and not (account and sql_token):
        raise O11yError(
            "R2 SQL not configured",
            "O11Y_ENGINE=r2sql needs O11Y_R2_ACCOUNT_ID and O11Y_R2_SQL_TOKEN (docs/scaling.md)",
        )
    if engine == "daft" and not get("O11Y_CATALOG_URI"):
        raise O11yError(
            "Daft not configured",
            "O11Y_ENGINE=daft reads the table O11Y_CATALOG_URI names (docs/scaling.md)",
        )
    history = (get("O11Y_HISTORY") or "stream").strip().lower()
    if history not in HISTORY_MODES:
        raise O11yError("Bad O11Y_HISTORY", f"expected one of {', '.join(HISTORY_MODES)}")
    if history == "engine" and engine != "daft":
        raise O11yError(
            "O11Y_HISTORY=engine needs O11Y_ENGINE",
            "set O11Y_ENGINE=daft (R2 SQL does not roll up the history yet; docs/scaling.md)",
        )
    sql_endpoint = (get("O11Y_R2_SQL_ENDPOINT") or R2_SQL_ENDPOINT).rstrip("/")
    if url_problem(sql_endpoint):
        raise O11yError("Bad O11Y_R2_SQL_ENDPOINT", url_problem(sql_endpoint) or "")
    heartbeat = get("O11Y_HEARTBEAT_URL")
    if heartbeat and url_problem(heartbeat):
        alert_problems.append(f"O11Y_HEARTBEAT_URL: {url_problem(heartbeat)}; not called")
        heartbeat = None
    return Settings(
        endpoint=endpoint,
        access_key_id=Secret(key_id) if key_id else None,
        secret_access_key=Secret(secret) if secret else None,
        bucket=get("O11Y_BUCKET") or DEFAULT_BUCKET,
        table_prefix=prefix,
        catalog_uri=get("O11Y_CATALOG_URI"),
        catalog_token=Secret(token) if token else None,
        catalog_warehouse=get("O11Y_CATALOG_WAREHOUSE"),
        source_dir=Path(source_dir).expanduser() if source_dir else None,
        cache_dir=Path(cache_dir).expanduser() if cache_dir else default_cache_dir(),
        sync_interval_s=max(5.0, sync_interval),
        demo_live=(get("O11Y_DEMO_LIVE") or "1") not in {"0", "false", "no"},
        alerts_file=Path(alerts_file).expanduser() if alerts_file else Path("alerts.toml"),
        alert_webhooks=tuple(Secret(u) for u in hooks),
        alert_problems=tuple(alert_problems),
        heartbeat_url=Secret(heartbeat) if heartbeat else None,
        public_url=(get("O11Y_PUBLIC_URL") or "").rstrip("/") or None,
        r2_timeout_s=min(600.0, max(0.5, r2_timeout)),
        sync_memory=sync_memory,
        raw_horizon_s=raw_horizon_s,
        query_timeout_s=min(3600.0, query_timeout_s),
        agents_file=Path(get("O11Y_AGENTS_FILE") or "agents.toml").expanduser(),
        background_sync=(get("O11Y_BACKGROUND_SYNC") or "1") not in {"0", "false", "no"},
        wall_defaults=tuple((k, env[v]) for k, v in WALL_KEYS.items() if env.get(v, "").strip()),
        wall_token=load_wall_token(env, wall_section=wall_secrets),
        engine=engine,
        account_id=account,
        r2_sql_token=Secret(sql_token) if sql_token else None,
        r2_sql_endpoint=sql_endpoint,
        r2_sql_table=get("O11Y_R2_SQL_TABLE") or "agent_network.events",
        ray_address=get("O11Y_RAY_ADDRESS"),
        history=history,
    )


def parse_raw_horizon(text: str | None) -> float | None:
    """O11Y_RAW_HORIZON: a duration of at least a day (``90d``, ``26w``; default 90 days), or
    ``all`` to keep every raw row; anything else fails in one line naming the variable."""
    if text is None:
        return DEFAULT_RAW_HORIZON_S
    if text.lower() in RAW_HORIZON_ALL:
        return None
    try:
        seconds = parse_duration(text, most_s=MAX_RAW_HORIZON_S)
    except ValueError as exc:
        raise O11yError(
            "Bad O11Y_RAW_HORIZON", f"{exc}; expected e.g. 90d, 26w, or all (keep all history)"
        ) from exc
    if seconds < 86400:
        raise O11yError(
            "Bad O11Y_RAW_HORIZON", "at least 1d (raw rows are kept by whole days), or all"
        )
    return seconds


def secret_values(settings: Settings) -> list[str]:
    """Every secret in the settings, for scanners that prove none leaks."""
    return [
        s.get()
        for s in (
            settings.access_key_id,
            settings.secret_access_key,
            settings.catalog_token,
            *settings.alert_webhooks,
            settings.heartbeat_url,
            settings.wall_token,
            settings.r2_sql_token,
        )
        if s
    ]


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook (one line that never repeats it), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return "not a valid URL (bad port or brackets)"
    if parts.scheme.lower() not in {"http", "https"}:
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


def webhook_label(url: Secret) -> str:
    """A webhook shown safely: scheme and host only (the path of a Slack URL is its secret)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.get())
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{port}' if port else ''}/…"


def webhook_id(url: Secret) -> str:
    """A stable name for a webhook URL that can be stored (a hash: the URL may hold a token)."""
    return hashlib.sha256(url.get().encode()).hexdigest()[:16]
