"""Where the SECAS CPL is read from: a local file, or an http(s) URL fetched conditionally.

Over HTTP the last ETag and Last-Modified are sent back (If-None-Match / If-Modified-Since), so an
unchanged CPL costs one 304 and no parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.retry_after import is_transient, retry_after_seconds
from flows.errors import BadInput, PermanentError, TransientError

if TYPE_CHECKING:
    import httpx

MAX_BYTES = 50 * 1024 * 1024

Downloading = Callable[[int, "int | None"], None]
"""Told, as a download goes, the bytes received so far and the total the server declared (or None)."""


class CplFileOrUrl:
    """The embedded ``CplSource``: paths and URLs both, with validators kept in memory."""

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        max_bytes: int = MAX_BYTES,
        on_download: Downloading | None = None,
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._on_download = on_download
        self._validators: dict[str, dict[str, str]] = {}

    def fetch(self, location: str) -> bytes | None:
        if location.startswith(("http://", "https://")):
            return self._fetch_url(location)
        path = Path(location)
        try:
            size = path.stat().st_size
            if size > self._max_bytes:
                raise BadInput(f"{path}: CPL file is {size} bytes, over the limit of {self._max_bytes}")
            return path.read_bytes()
        except OSError as error:
            raise BadInput(f"cannot read CPL file {path}: {error.strerror or error}") from error

    def _fetch_url(self, url: str) -> bytes | None:
        import httpx  # here, not at the top: a bridge that reads CPL files never needs it (~0.1 s a start)

        client = self._client or httpx.Client(timeout=30.0, follow_redirects=True)
        headers = self._validators.get(url, {})
        try:
            # Streamed: a body is refused as soon as it passes the limit (a server sending without end
            # must not fill the worker's memory), and a long download can be shown as it goes.
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return None
                _check_status(url, response)
                content = self._read(url, response)
        except httpx.TransportError as error:  # refused, cut off or timed out, also part-way through
            raise TransientError(f"CPL download from {url} failed: {error}") from error
        finally:
            if self._client is None:
                client.close()
        validators = {}
        if "ETag" in response.headers:
            validators["If-None-Match"] = response.headers["ETag"]
        if "Last-Modified" in response.headers:
            validators["If-Modified-Since"] = response.headers["Last-Modified"]
        self._validators[url] = validators
        return content

    def _read(self, url: str, response: httpx.Response) -> bytes:
        declared = _declared_length(response)
        if declared is not None and declared > self._max_bytes:
            limit = self._max_bytes
            raise BadInput(
                f"CPL download from {url} declares {declared} bytes, over the limit of {limit} bytes"
            )
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self._max_bytes:
                raise BadInput(f"CPL download from {url} is over the limit of {self._max_bytes} bytes")
            if self._on_download is not None:
                self._on_download(len(body), declared)
        return bytes(body)


def _check_status(url: str, response: httpx.Response) -> None:
    if is_transient(response.status_code):
        wait = retry_after_seconds(response.headers.get("Retry-After"), date=response.headers.get("Date"))
        raise TransientError(f"CPL download from {url}: HTTP {response.status_code}", retry_after=wait)
    if response.status_code != 200:
        raise PermanentError(f"CPL download from {url}: HTTP {response.status_code}")


def _declared_length(response: httpx.Response) -> int | None:
    """The Content-Length of an unencoded body, when the server sent a usable one: a compressed body's
    length says nothing of what it unpacks to, which the limit is about."""
    value = response.headers.get("Content-Length", "")
    if response.headers.get("Content-Encoding", "identity") != "identity" or not value.isdigit():
        return None
    return int(value)
