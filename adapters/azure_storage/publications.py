"""``BlobPublicationStore``: every distinct CPL publication, as blobs named by the raw file's SHA-256.

One container, three kinds of blob:

- ``publications/<sha256>.json.gz``: the ``StoredPublication`` (parsed entries, fetch time, source) as
  gzip-compressed JSON. Created with ``If-None-Match: *``, so of two writers of the same publication
  exactly one adds it. (Plain gzip bytes with ``Content-Type: application/gzip``: a ``Content-Encoding``
  header would let HTTP layers decompress on the way and break the SDK's length checks.)
- ``raw/<sha256>``: the raw CPL file, if the caller gives it (``add_raw``), for audit and re-parsing.
- ``latest/<fetched newest-first>-<written newest-first>-<sha256>``: an empty marker per publication.
  Blob listings come in name order, so the first marker is the latest publication (the one fetched
  last; on a tie, the one added last), found with a one-item listing: no table needed.

The marker is written after the publication, and the publication's metadata names its marker, so an
``add`` repeated after a crash between the two writes puts the missing marker back.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from datetime import datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage._keys import newest_first, written_now_newest_first
from flows.domain.cpl import CplPublication
from flows.errors import BadInput
from flows.ports import StoredPublication

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GZIP = ContentSettings(content_type="application/gzip")


class BlobPublicationStore:
    """The ``PublicationStore`` on Blob storage (see the module's docstring), plus the raw files."""

    def __init__(self, container: ContainerClient) -> None:
        """``container``: the publications container (it must exist)."""
        self._container = container
        self._parsed: dict[str, StoredPublication] = {}

    def add(self, publication: CplPublication, *, fetched_at: datetime, source: str) -> bool:
        sha256 = _checked(publication.source_sha256)
        stored = StoredPublication(publication=publication, fetched_at=fetched_at, source=source)
        marker = f"latest/{newest_first(fetched_at)}-{written_now_newest_first()}-{sha256}"
        data = gzip.compress(stored.model_dump_json().encode(), compresslevel=6, mtime=0)
        with storage_errors(f"publication {sha256}: add"):
            try:
                self._container.upload_blob(
                    _document(sha256),
                    data,
                    overwrite=False,
                    metadata={"marker": marker},
                    content_settings=_GZIP,
                )
            except ResourceExistsError:
                self._restore_marker(sha256)
                return False
            self._container.upload_blob(marker, b"", overwrite=True, metadata={"sha256": sha256})
        return True

    def add_raw(self, sha256: str, data: bytes) -> bool:
        """Keep a raw CPL file by its SHA-256 (checked against ``data``); False if it is kept already."""
        if hashlib.sha256(data).hexdigest() != _checked(sha256):
            raise BadInput(f"the raw file's SHA-256 is not {sha256}")
        with storage_errors(f"raw publication {sha256}: add"):
            try:
                self._container.upload_blob(f"raw/{sha256}", data, overwrite=False)
            except ResourceExistsError:
                return False
        return True

    def get_raw(self, sha256: str) -> bytes | None:
        """A raw CPL file kept by ``add_raw``, or None."""
        if not _SHA256.fullmatch(sha256):
            return None
        with storage_errors(f"raw publication {sha256}: read"):
            try:
                return self._container.download_blob(f"raw/{sha256}").readall()
            except ResourceNotFoundError:
                return None

    def latest(self) -> StoredPublication | None:
        # One-item listing for the hash (cheap), then the parsed publication from the cache when it
        # is the same as last time: publications never change once kept.
        with storage_errors("publications: find the latest"):
            markers = self._container.list_blobs(name_starts_with="latest/", results_per_page=1)
            first = next(iter(markers), None)
        return None if first is None else self.get(str(first.name)[-64:])

    def get(self, source_sha256: str) -> StoredPublication | None:
        cached = self._parsed.get(source_sha256)
        if cached is None and _SHA256.fullmatch(source_sha256):
            with storage_errors(f"publication {source_sha256}: read"):
                try:
                    data = self._container.download_blob(_document(source_sha256)).readall()
                except ResourceNotFoundError:
                    return None
            cached = StoredPublication.model_validate_json(gzip.decompress(data))
            self._parsed = {source_sha256: cached}  # keep one: the latest is what is asked for
        return cached

    def _restore_marker(self, sha256: str) -> None:
        properties = self._container.get_blob_client(_document(sha256)).get_blob_properties()
        marker = properties.metadata.get("marker")
        if marker and not self._container.get_blob_client(marker).exists():
            self._container.upload_blob(marker, b"", overwrite=True, metadata={"sha256": sha256})


def _document(sha256: str) -> str:
    return f"publications/{sha256}.json.gz"


def _checked(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise BadInput(f"not a SHA-256 in lower-case hex: {sha256!r}")
    return sha256
