"""Where the SECAS CPL is read from: a local file, or an http(s) URL fetched conditionally.

Over HTTP the last ETag and Last-Modified are sent back (If-None-Match / If-Modified-Since), so an
unchanged CPL costs one 304 and no parsing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flows.errors import BadInput, PermanentError, TransientError

if TYPE_CHECKING:
    import httpx

MAX_BYTES = 50 * 1024 * 1024


class CplFileOrUrl:
    """The embedded ``CplSource``: paths and URLs both, with validators kept in memory."""

    def __init__(self, client: httpx.Client | None = None, *, max_bytes: int = MAX_BYTES) -> None:
        self._client = client
        self._max_bytes = max_bytes
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
            response = client.get(url, headers=headers)
        except httpx.TransportError as error:
            raise TransientError(f"CPL download from {url} failed: {error}") from error
        finally:
            if self._client is None:
                client.close()
        if response.status_code == 304:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After")
            raise TransientError(
                f"CPL download from {url}: HTTP {response.status_code}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.status_code != 200:
            raise PermanentError(f"CPL download from {url}: HTTP {response.status_code}")
        if len(response.content) > self._max_bytes:
            raise BadInput(f"CPL download from {url} is over the limit of {self._max_bytes} bytes")
        validators = {}
        if "ETag" in response.headers:
            validators["If-None-Match"] = response.headers["ETag"]
        if "Last-Modified" in response.headers:
            validators["If-Modified-Since"] = response.headers["Last-Modified"]
        self._validators[url] = validators
        return response.content
