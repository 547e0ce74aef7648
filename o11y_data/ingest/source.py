"""Read-only access to where the table lives: an R2 bucket (S3 API) or a local folder.

Both expose the same four calls (list, list_prefixes, head, get/download), so the Iceberg reader
and the sync never know which one they talk to. The S3 client is injected; ``make_s3_client``
builds one configured for R2 with a guard that refuses any operation that could write.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..errors import O11yError, ObjectMissing, TransportError, describe_s3_error, local_errno

T = TypeVar("T")

# The only S3 operations the dashboard may issue: it reads the bucket and never changes it.
READ_ONLY_OPERATIONS = frozenset({"ListObjectsV2", "GetObject", "HeadObject", "HeadBucket"})


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""
    mtime: float = 0.0


class Source(Protocol):
    bucket: str
    label: str

    def list(
        self, prefix: str, *, start_after: str | None = None, max_keys: int | None = None
    ) -> Iterator[ObjectInfo]: ...

    def list_prefixes(self, prefix: str) -> list[str]: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def get(self, key: str) -> bytes: ...

    def download(self, key: str, dest: Path, *, size: int = -1) -> int: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How a request that failed in transit is retried: bounded in tries AND in time.

    Waits grow exponentially with full jitter; a throttling answer (503 SlowDown, 429) also
    pauses every other request of the source for that wait, so concurrent downloads slow down
    together instead of each hammering R2 (the idea of botocore's ``adaptive`` mode, with bounds
    we choose)."""

    tries: int = 8
    budget_s: float = 60.0
    base_s: float = 0.2
    cap_s: float = 4.0

    def wait(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests"}
_RETRY_CODES = {"InternalError", "ServiceUnavailable", "RequestTimeout", "BadGateway"}
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


def _retry_kind(exc: BaseException) -> str | None:
    """``throttle``, ``retry`` (worth another try) or None (final: denied, missing, timed out)."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _THROTTLE_CODES or status in (429, 503):
            return "throttle"
        if code in _RETRY_CODES or status >= 500:
            return "retry"
        return None
    if isinstance(exc, bex.ReadTimeoutError):
        return None  # a stalled request is reported at once, naming what timed out
    if isinstance(
        exc,
        bex.EndpointConnectionError
        | bex.ConnectTimeoutError
        | bex.ConnectionClosedError
        | bex.ResponseStreamingError
        | bex.IncompleteReadError,
    ):
        return "retry"
    if isinstance(exc, TransportError):
        return "retry"
    return None


def _refuse_writes(model: Any, **_: Any) -> None:
    if model.name not in READ_ONLY_OPERATIONS:
        raise O11yError("Refused", f"the dashboard only reads the bucket, not {model.name}")


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def make_s3_client(settings: Settings, *, max_pool: int = 32) -> Any:
    """A boto3 S3 client for R2: region ``auto``, checksums when required, retries with backoff.

    Building a client costs ~0.25 s of CPU (botocore loads its service models), more than a whole
    sync with nothing new, so one client per endpoint and credentials is kept for the process
    (boto3 clients are thread-safe) and reused by every sync, e.g. the app's background syncer.
    """
    key = (
        settings.endpoint,
        settings.access_key_id.get() if settings.access_key_id else None,
        settings.secret_access_key.get() if settings.secret_access_key else None,
        max_pool,
        settings.r2_timeout_s,
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _new_s3_client(settings, max_pool=max_pool)
        return client


def _new_s3_client(settings: Settings, *, max_pool: int) -> Any:
    import boto3
    from botocore.config import Config

    if not settings.endpoint:
        raise O11yError("No R2 endpoint", "set O11Y_R2_ENDPOINT or O11Y_R2_ACCOUNT_ID")
    config = Config(
        region_name="auto",
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # One try per call: S3Source retries, bounded in count and time (RetryPolicy).
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=min(5.0, settings.r2_timeout_s),
        read_timeout=settings.r2_timeout_s,
        max_pool_connections=max_pool,
        s3={"addressing_style": "path"},
    )
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint,
        aws_access_key_id=settings.access_key_id.get() if settings.access_key_id else None,
        aws_secret_access_key=(
            settings.secret_access_key.get() if settings.secret_access_key else None
        ),
        config=config,
    )
    client.meta.events.register("before-call.s3", _refuse_writes)
    return client


def atomic_write_stream(
    dest: Path,
    chunks: Iterator[bytes],
    *,
    durable: bool = True,
    check: Callable[[int], None] | None = None,
) -> int:
    """Write to a temporary file beside ``dest`` and rename: no partial file is ever visible.

    ``durable`` fsyncs the file before the rename. Downloads skip it (one fsync per small file
    was a quarter of a full sync's time): the sync makes them durable in one go before it
    publishes (``sync.flush_to_disk``), and a file lost to a power cut is simply fetched again.
    ``check(size)`` runs before the rename; if it raises, nothing lands.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-", suffix=".tmp")
    except FileNotFoundError:  # the folder is new: create it (only then, it is one syscall less)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-", suffix=".tmp")
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if check is not None:
            check(size)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


class S3Source:
    """The bucket, through an injected boto3 client. Every call is a read."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        endpoint_host: str = "R2",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint_host = endpoint_host
        self.label = f"R2 bucket {bucket} at {endpoint_host}"
        self.retry = retry or RetryPolicy()
        self._pause_lock = threading.Lock()
        self._paused_until = 0.0

    def _wrap(self, exc: BaseException, doing: str = "", key: str = "") -> O11yError:
        timeout = getattr(getattr(self.client, "meta", None), "config", None)
        return describe_s3_error(
            exc,
            bucket=self.bucket,
            endpoint_host=self.endpoint_host,
            doing=doing,
            timeout_s=getattr(timeout, "read_timeout", None),
            key=key,
        )

    def _call(self, doing: str, fn: Callable[[], T], *, key: str = "") -> T:
        """``fn()``, retried on throttling and transient faults within the policy's bounds;
        any other failure, or the last one, as one O11yError (the cause chained)."""
        policy = self.retry
        deadline = time.monotonic() + policy.budget_s
        for attempt in range(policy.tries):
            self._wait_out_pause()
            try:
                return fn()
            except Exception as exc:
                if local_errno(exc) is not None:
                    raise  # the cache's disk, not R2: the sync names it
                kind = _retry_kind(exc)
                wait = policy.wait(attempt)
                last = attempt + 1 >= policy.tries or time.monotonic() + wait > deadline
                if kind is None or last:
                    err = self._wrap(exc, doing, key)
                    if kind is not None and attempt:  # say the retries were spent, and on what
                        took = policy.budget_s - (deadline - time.monotonic())
                        what = "" if doing.split(" ", 1)[-1] in err.detail else f" {doing}"
                        spent = f"{what} ({attempt + 1} tries, {took:.0f} s)"
                        err = type(err)(err.title, f"{err.detail}{spent}")
                    raise err from exc
                if kind == "throttle":
                    self._pause(wait)
                time.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _pause(self, seconds: float) -> None:
        with self._pause_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait_out_pause(self) -> None:
        with self._pause_lock:
            left = self._paused_until - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages (at most 1,000 keys each), following continuation tokens."""
        kwargs["Bucket"] = self.bucket
        doing = f"listing {kwargs.get('Prefix') or '/'}"
        while True:
            page = self._call(doing, lambda kw=dict(kwargs): self.client.list_objects_v2(**kw))
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
            kwargs.pop("StartAfter", None)

    def list(
        self, prefix: str, *, start_after: str | None = None, max_keys: int | None = None
    ) -> Iterator[ObjectInfo]:
        kwargs: dict[str, Any] = {"Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        if max_keys:
            kwargs["MaxKeys"] = max_keys
        seen = 0
        for page in self._pages(**kwargs):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"],
                    size=int(item.get("Size", 0)),
                    etag=str(item.get("ETag", "")).strip('"'),
                    mtime=item["LastModified"].timestamp() if "LastModified" in item else 0.0,
                )
                seen += 1
                if max_keys and seen >= max_keys:
                    return

    def list_prefixes(self, prefix: str) -> list[str]:
        return [
            p["Prefix"]
            for page in self._pages(Prefix=prefix, Delimiter="/")
            for p in page.get("CommonPrefixes", [])
        ]

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        def call() -> dict[str, Any] | None:
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return None
                raise

        r = self._call(f"reading {key}", call)
        if r is None:
            return None
        return ObjectInfo(
            key=key,
            size=int(r.get("ContentLength", 0)),
            etag=str(r.get("ETag", "")).strip('"'),
            mtime=r["LastModified"].timestamp() if "LastModified" in r else 0.0,
        )

    def get(self, key: str) -> bytes:
        def call() -> bytes:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
            data = r["Body"].read()
            _verify(key, len(data), hashlib.md5(data).hexdigest(), r)
            return data

        return self._call(f"reading {key}", call, key=key)

    def download(self, key: str, dest: Path, *, size: int = -1) -> int:
        """Fetch ``key`` to ``dest`` (atomic rename), verified against ``size`` (the manifest's or
        the listing's) and the object's MD5 ETag: bytes cut short or changed in transit are a
        TransportError (retried here, then the sync fails), never a file landed on disk."""

        def call() -> int:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
            md5 = hashlib.md5()

            def chunks() -> Iterator[bytes]:
                for chunk in r["Body"].iter_chunks(chunk_size=1 << 20):
                    md5.update(chunk)
                    yield chunk

            def check(got: int) -> None:
                _verify(key, got, md5.hexdigest(), r, expected=size)

            return atomic_write_stream(dest, chunks(), durable=False, check=check)

        return self._call(f"reading {key}", call, key=key)


def _verify(key: str, got: int, md5: str, response: dict[str, Any], *, expected: int = -1) -> None:
    """Raise TransportError when the body is not the object: shorter or longer than the size the
    table (or the response) names, or not matching a single-part upload's MD5 ETag."""
    header = int(response.get("ContentLength", -1))
    for want, what in ((expected, "the table says"), (header, "R2 announced")):
        if want >= 0 and got != want:
            raise TransportError(
                "Download cut short",
                f"{key}: {got:,} of {want:,} bytes {what}; nothing was set aside, sync again",
            )
    etag = str(response.get("ETag", "")).strip('"')
    if _MD5_ETAG.match(etag) and etag != md5:
        raise TransportError(
            "Download corrupted",
            f"{key}: its bytes do not match its ETag; nothing was set aside, sync again",
        )


class LocalSource:
    """A folder: the bucket's layout (``__r2_data_catalog/…``) or a flat folder of Parquet."""

    def __init__(self, root: Path, *, bucket: str = "local") -> None:
        self.root = Path(root)
        self.bucket = bucket
        self.label = f"local folder {self.root}"
        if not self.root.is_dir():
            raise O11yError("Source folder not found", str(self.root))

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise O11yError("Refused", f"{key} is outside the source folder")
        return path

    def list(
        self, prefix: str, *, start_after: str | None = None, max_keys: int | None = None
    ) -> Iterator[ObjectInfo]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        for key in sorted(keys)[:max_keys] if max_keys else sorted(keys):
            st = (self.root / key).stat()
            yield ObjectInfo(
                key=key, size=st.st_size, etag=f"{st.st_size}-{st.st_mtime_ns}", mtime=st.st_mtime
            )

    def list_prefixes(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(f"{prefix}{p.name}/" for p in base.iterdir() if p.is_dir())

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        st = path.stat()
        return ObjectInfo(
            key=key, size=st.st_size, etag=f"{st.st_size}-{st.st_mtime_ns}", mtime=st.st_mtime
        )

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key, f"{key} is not in {self.root}") from exc
        except OSError as exc:
            raise O11yError("Cannot read source file", f"{key}: {exc.strerror}") from exc

    def download(self, key: str, dest: Path, *, size: int = -1) -> int:
        path = self._path(key)
        try:
            src = open(path, "rb")  # noqa: SIM115 - closed by chunks(); opened here to tell
            # a missing source file from a failing cache disk
        except FileNotFoundError as exc:
            raise ObjectMissing(key, f"{key} is not in {self.root}") from exc
        except OSError as exc:
            raise O11yError("Cannot read source file", f"{key}: {exc.strerror}") from exc

        def chunks() -> Iterator[bytes]:
            with src:
                while chunk := src.read(1 << 20):
                    yield chunk

        # Errors writing ``dest`` (a full or read-only cache) propagate as OSError: the sync
        # reports them as the cache's fault, never the source file's.
        def check(got: int) -> None:
            if size >= 0 and got != size:
                raise TransportError("Copy cut short", f"{key}: {got:,} of {size:,} bytes")

        return atomic_write_stream(dest, chunks(), durable=False, check=check)


def open_source(settings: Settings, *, client: Any = None) -> Source:
    """The source the settings name. ``client`` injects an S3 client (tests, benchmarks)."""
    if settings.kind == "local":
        assert settings.source_dir is not None
        return LocalSource(settings.source_dir, bucket=settings.bucket)
    if settings.kind == "r2":
        return S3Source(
            client or make_s3_client(settings),
            settings.bucket,
            endpoint_host=settings.endpoint_host,
        )
    raise O11yError("No source", "the demo source is built locally; call demo.ensure_demo first")
