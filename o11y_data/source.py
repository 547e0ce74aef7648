"""Read-only access to where the table lives: an R2 bucket (S3 API) or a local folder.

Both expose the same four calls (list, list_prefixes, head, get/download), so the Iceberg reader
and the sync never know which one they talk to. The S3 client is injected; ``make_s3_client``
builds one configured for R2 with a guard that refuses any operation that could write.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .config import Settings
from .errors import O11yError, describe_s3_error

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

    def download(self, key: str, dest: Path) -> int: ...


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
        retries={"total_max_attempts": 6, "mode": "standard"},  # 1 try + 5 retries
        connect_timeout=5,
        read_timeout=30,
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


def _atomic_write_stream(dest: Path, chunks: Iterator[bytes], *, durable: bool = True) -> int:
    """Write to a temporary file beside ``dest`` and rename: no partial file is ever visible.

    ``durable`` fsyncs the file before the rename. Downloads skip it (one fsync per small file
    was a quarter of a full sync's time): the sync makes them durable in one go before it
    publishes (``sync.flush_to_disk``), and a file lost to a power cut is simply fetched again.
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
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


class S3Source:
    """The bucket, through an injected boto3 client. Every call is a read."""

    def __init__(self, client: Any, bucket: str, *, endpoint_host: str = "R2") -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint_host = endpoint_host
        self.label = f"R2 bucket {bucket} at {endpoint_host}"

    def _wrap(self, exc: BaseException) -> O11yError:
        return describe_s3_error(exc, bucket=self.bucket, endpoint_host=self.endpoint_host)

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages (at most 1,000 keys each), following continuation tokens."""
        kwargs["Bucket"] = self.bucket
        while True:
            try:
                page = self.client.list_objects_v2(**kwargs)
            except Exception as exc:
                raise self._wrap(exc) from None
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

        try:
            r = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._wrap(exc) from None
        except Exception as exc:
            raise self._wrap(exc) from None
        return ObjectInfo(
            key=key,
            size=int(r.get("ContentLength", 0)),
            etag=str(r.get("ETag", "")).strip('"'),
            mtime=r["LastModified"].timestamp() if "LastModified" in r else 0.0,
        )

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise self._wrap(exc) from None

    def download(self, key: str, dest: Path) -> int:
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
            expected = int(r.get("ContentLength", -1))
            size = _atomic_write_stream(
                dest, r["Body"].iter_chunks(chunk_size=1 << 20), durable=False
            )
        except O11yError:
            raise
        except Exception as exc:
            raise self._wrap(exc) from None
        if expected >= 0 and size != expected:
            dest.unlink(missing_ok=True)
            raise O11yError("Truncated download", f"{key}: {size} of {expected} bytes")
        return size


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
        except FileNotFoundError:
            raise O11yError("Object missing", f"{key} is not in {self.root}") from None
        except OSError as exc:
            raise O11yError("Cannot read source file", f"{key}: {exc.strerror}") from None

    def download(self, key: str, dest: Path) -> int:
        path = self._path(key)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk

        try:
            return _atomic_write_stream(dest, chunks(), durable=False)
        except FileNotFoundError:
            raise O11yError("Object missing", f"{key} is not in {self.root}") from None
        except OSError as exc:
            raise O11yError("Cannot read source file", f"{key}: {exc.strerror}") from None


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
