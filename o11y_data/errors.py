"""One domain error for everything the data layer can fail at.

Low-level exceptions (botocore, DuckDB, OS, Avro) are wrapped into :class:`O11yError` with a short
human title and a one-line detail, so the CLI and the UI can show a single clear line and never a
traceback. Messages never contain credentials: they are built from our own words plus names the
user already knows (bucket, endpoint host, object key).
"""

from __future__ import annotations


class O11yError(Exception):
    """A failure a person can act on: ``title`` says what failed, ``detail`` says why."""

    def __init__(self, title: str, detail: str = "") -> None:
        self.title = title
        self.detail = " ".join(str(detail).split())  # always one line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.title}: {self.detail}" if self.detail else self.title


class QueryTimeout(O11yError):
    """A query ran past its time limit and was interrupted."""


class QueryBug(Exception):
    """Our own SQL is wrong (a binder, parser or catalog error in a query the app wrote): a bug,
    not something a person can act on, so never dressed as an O11yError. Its DuckDB error is
    chained as the cause and logged."""


class SyncBusy(O11yError):
    """Another process holds the sync lock."""


class TransportError(O11yError):
    """The bytes did not arrive whole: a timeout, a server error, a body cut short or changed in
    transit. Never a reason to set a file aside: the sync fails and a later one fetches again."""


class ObjectMissing(O11yError):
    """An object the table's metadata names is not in the bucket. ``key`` names it; the sync
    adds whether syncing again helps (the table moved on) or what to check."""

    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        super().__init__("Object missing", detail or f"{key} is not in the bucket")


class LocalIOError(O11yError):
    """The cache's own disk failed (full, not writable, I/O error): nothing is the source's
    fault, so nothing is set aside and the next sync after the fix completes."""


# errno -> (what happened, what to do); the cases a full, read-only or failing cache disk raises.
_LOCAL_ERRNOS = {
    28: ("cache disk full", "free space there or set O11Y_CACHE_DIR to a larger disk"),
    122: ("cache disk quota exceeded", "free space there or set O11Y_CACHE_DIR elsewhere"),
    13: ("cache folder not writable", "give this user write access or set O11Y_CACHE_DIR"),
    1: ("cache folder not writable", "give this user write access or set O11Y_CACHE_DIR"),
    30: ("cache disk is read-only", "remount it read-write or set O11Y_CACHE_DIR elsewhere"),
    5: ("cache disk I/O error", "check the disk (dmesg) or set O11Y_CACHE_DIR elsewhere"),
}
_DUCKDB_STRERRORS = {
    "No space left on device": 28,
    "Disk quota exceeded": 122,
    "Permission denied": 13,
    "Operation not permitted": 1,
    "Read-only file system": 30,
    "Input/output error": 5,
}


def local_errno(exc: BaseException) -> int | None:
    """The errno of a local file-system failure (OSError, or DuckDB's IOException text), else
    None. A DuckDB error about a file's content is not one: it has no such errno."""
    if isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS:
        return exc.errno
    if type(exc).__name__ in {"IOException", "PermissionException"}:
        text = str(exc)
        for strerror, number in _DUCKDB_STRERRORS.items():
            if strerror in text:
                return number
    return None


def local_io_error(number: int, path: object, *, need_bytes: int = 0) -> LocalIOError:
    """One line naming the cause and the fix, e.g. "cache disk full: /c needs about 12 MB more"."""
    cause, fix = _LOCAL_ERRNOS[number]
    need = ""
    if number in (28, 122) and need_bytes > 0:
        need = f" needs about {max(1, -(-need_bytes // 1_000_000)):,} MB more"
    return LocalIOError(cause, f"{path}{need}; {fix}. Nothing was set aside; sync again after")


def describe_s3_error(
    exc: BaseException,
    *,
    bucket: str,
    endpoint_host: str,
    doing: str = "",
    timeout_s: float | None = None,
    key: str = "",
) -> O11yError:
    """Map a boto3/botocore exception to a human one-liner, never echoing credentials.

    ``doing`` names the request ("reading <key>", "listing <prefix>") for timeouts; ``key``
    the object read, named when it is missing."""
    from botocore import exceptions as bex

    if isinstance(exc, O11yError):
        return exc
    if isinstance(exc, bex.ReadTimeoutError):
        waited = f" in {timeout_s:g} s" if timeout_s else ""
        fix = "; sync again later, or raise O11Y_R2_TIMEOUT if R2 is just slow"
        return TransportError("Timed out", f"R2 did not answer{waited} {doing}".rstrip() + fix)
    if isinstance(exc, bex.ResponseStreamingError | bex.IncompleteReadError):
        return TransportError("Download cut short", f"{doing} from {endpoint_host}".strip())
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {}) if hasattr(exc, "response") else {}
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}:
            return O11yError("R2 rejected the credentials", f"{code} from {endpoint_host}")
        if code in {"AccessDenied", "Forbidden"} or status == 403:
            return O11yError(
                "R2 denied access", f"the key cannot read bucket '{bucket}' at {endpoint_host}"
            )
        if code in {"NoSuchBucket"} or (status == 404 and code in {"404", "NotFound"}):
            return O11yError("Bucket not found", f"'{bucket}' does not exist at {endpoint_host}")
        if code == "NoSuchKey":
            return ObjectMissing(key, f"{key} is not in bucket '{bucket}'" if key else "")
        if code in {"SlowDown", "ServiceUnavailable", "InternalError", "503", "500"}:
            return TransportError("R2 is unavailable", f"{code or status} from {endpoint_host}")
        return O11yError("R2 request failed", f"{code or status} from {endpoint_host}")
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return O11yError("R2 credentials missing", "set O11Y_R2_ACCESS_KEY_ID and the secret key")
    if isinstance(
        exc,
        bex.EndpointConnectionError
        | bex.ConnectTimeoutError
        | bex.ReadTimeoutError
        | bex.ConnectionClosedError,
    ):
        return TransportError("Cannot reach R2", f"no answer from {endpoint_host}")
    if isinstance(exc, bex.BotoCoreError):
        return O11yError("R2 client error", type(exc).__name__)
    return O11yError("Unexpected error", type(exc).__name__)
