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


class SyncBusy(O11yError):
    """Another process holds the sync lock."""


def describe_s3_error(exc: BaseException, *, bucket: str, endpoint_host: str) -> O11yError:
    """Map a boto3/botocore exception to a human one-liner, never echoing credentials."""
    from botocore import exceptions as bex

    if isinstance(exc, O11yError):
        return exc
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
            return O11yError("Object missing", "an object named by the table metadata is gone")
        if code in {"SlowDown", "ServiceUnavailable", "InternalError", "503", "500"}:
            return O11yError("R2 is unavailable", f"{code or status} from {endpoint_host}")
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
        return O11yError("Cannot reach R2", f"no answer from {endpoint_host}")
    if isinstance(exc, bex.BotoCoreError):
        return O11yError("R2 client error", type(exc).__name__)
    return O11yError("Unexpected error", type(exc).__name__)
