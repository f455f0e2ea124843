"""The SECAS sync as an operation: fetch the CPL, keep a new publication, say what changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from flows.domain.cpl import CplPublication
from flows.domain.diff import diff_publications
from flows.engine.registry import ActionContext
from flows.errors import BadInput
from flows.ports import IdempotencyStore, PublicationStore


class CplSource(Protocol):
    """Where the CPL comes from: a file or an http(s) URL; conditional where the far side allows."""

    def fetch(self, location: str) -> bytes | None:
        """The file's bytes, or None when it has not changed since the last fetch (a 304)."""
        ...


class SecasOperations:
    def __init__(
        self,
        source: CplSource,
        publications: PublicationStore,
        read: Callable[[bytes, str], CplPublication],
        markers: IdempotencyStore,
    ) -> None:
        self._source = source
        self._publications = publications
        self._read = read
        self._markers = markers

    def sync(self, context: ActionContext, location: str) -> dict[str, Any]:
        """Fetch and parse the CPL; if it is new, keep it and report the differences from the last.

        Each kept publication is marked with the action that kept it and the one before it. If the
        worker died after keeping it but before its result was recorded, the redelivered action
        finds its own mark and reports the same changes again, so no entry event is ever lost.
        """
        if not location.strip():  # read as a path, "" was the current folder: "Is a directory"
            raise BadInput(
                "no CPL location to sync from: set BRIDGE_CPL_LOCATION (the CPL's path or http(s) URL), "
                "which the scheduled sync reads, or give one (sync --cpl)"
            )
        redelivered = self._redelivered(context)
        if redelivered is not None:
            return redelivered
        data = self._source.fetch(location)
        if data is None:
            return {"changed": False, "reason": "not modified"}
        previous = self._publications.latest()
        publication = self._read(data, location)
        if (
            previous is not None
            and publication.published_at is not None
            and previous.publication.published_at is not None
            and _utc(publication.published_at) < _utc(previous.publication.published_at)
        ):
            # An old file served again (a stale mirror, a cache): kept, it would undo what SECAS has
            # published since, bringing a withdrawn entry back to be loaded.
            raise BadInput(
                f"the CPL at {location} was published {publication.published_at:%Y-%m-%d %H:%M}, before "
                f"the one kept last ({previous.publication.published_at:%Y-%m-%d %H:%M}): not kept"
            )
        if not publication.entries:
            # A CPL always lists the products in use: kept, an empty one would read as every entry
            # withdrawn, and the next real one as every entry added (promotions would go unseen).
            raise BadInput(f"the CPL at {location} lists no SMETS1 entries: not kept")
        if previous is not None and previous.publication.source_sha256 == publication.source_sha256:
            return {"changed": False, "reason": "same file as the last publication"}
        # The raw file first: the evidence behind every load made from this publication.
        self._publications.add_raw(publication.source_sha256, data)
        previous_sha = previous.publication.source_sha256 if previous else None
        # The cells the reader left out (a Date Added that is not a date) are kept with the mark: the
        # stored publication does not hold them, and a redelivery must tell operators the same.
        unread = list(publication.unread)
        self._markers.put(
            _mark(publication.source_sha256),
            {"by": context.idempotency_key, "previous": previous_sha, "unread": unread},
        )
        self._publications.add(publication, fetched_at=context.now, source=location)
        return _changes(previous.publication if previous else None, publication, unread)

    def _redelivered(self, context: ActionContext) -> dict[str, Any] | None:
        latest = self._publications.latest()
        if latest is None:
            return None
        mark = self._markers.get(_mark(latest.publication.source_sha256))
        if mark is None or mark.get("by") != context.idempotency_key:
            return None
        before = self._publications.get(mark["previous"]) if mark.get("previous") else None
        return _changes(before.publication if before else None, latest.publication, mark.get("unread", []))


def _utc(moment: datetime) -> datetime:
    """A publication's time, naive ones (a title with no zone) taken as UTC, so any two compare."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _mark(sha256: str) -> str:
    return f"publication-kept/{sha256}"


def _changes(
    previous: CplPublication | None, publication: CplPublication, unread: list[str]
) -> dict[str, Any]:
    """What a kept publication changed, for the flow's announcements; ``unread``: the cells the reader
    left out (``CplPublication.unread``), which operators are told of."""
    diff = diff_publications(previous, publication)
    emergency_changed = [c.entry_id for c in diff.changed if c.after.is_emergency or c.before.is_emergency]
    return {
        "changed": True,
        "publication": publication.source_sha256,
        "unread_cells": unread,
        "published_at": publication.published_at.isoformat() if publication.published_at else None,
        "entries": len(publication.entries),
        "summary": {kind: len(ids) for kind, ids in diff.summary().items()},
        "added_emergency": [entry.entry_id for entry in diff.added if entry.is_emergency],
        "changed_emergency": emergency_changed,
        "withdrawn": [change.entry_id for change in diff.withdrawn],
        # Gone from the CPL altogether: told to operators, not acted on (a file cut short looks the same)
        "removed_emergency": [entry.entry_id for entry in diff.removed if entry.is_emergency],
        "promoted": [change.entry_id for change in diff.promoted],
        # What identifies an emergency entry changed (firmware, image hash...): told, not acted on.
        "reidentified": [
            {
                "entry_id": change.entry_id,
                "changes": [field.model_dump(mode="json") for field in diff.identity_changes(change)],
            }
            for change in diff.reidentified
        ],
        # Counted, not listed: a first publication adds every EPCL entry. Cases waiting for an emergency
        # entry are checked once per publication that adds any (their model may be on the EPCL now).
        "epcl_added": sum(1 for entry in diff.added if not entry.is_emergency and entry.is_loadable),
    }
