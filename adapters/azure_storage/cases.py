"""``TableCaseStore``: cases in Azure Table storage, one entity per case.

Partitioning: the response id (made a valid key by ``key_text``) is the RowKey, and the partition is
``case|<shard>`` (``shard`` of that RowKey: 16 partitions). Cases number in the hundreds a year, but a
backlog or a replay can bring thousands at once, and one partition holding them all is one server's
throughput and, on Azurite, a scan of every case for each point read. ``list`` is still one query: a
PartitionKey range over the 16 partitions (``case|`` up to ``case}``). ``state``, ``supplier``,
``cpl_entry_id`` and ``opened_at`` are properties of their own, for queries; the case itself is JSON in
the ``doc`` properties (compressed and split when long, see ``_documents``).

Concurrency: ``version`` is a counter property, bumped by every save, as in the embedded store. The
ETag never reaches the domain ``Case``: ``save`` reads the stored version and ETag (one small point
read, without the document), refuses if the version is not the one the case was read at, and writes
with ``If-Match`` on that ETag, so a writer who slipped in between is caught by the service (412).
To skip that read, the store remembers, per case, the ETag it last saw with the version stored under
it (from its own ``get``, ``add`` and ``save``). ``save`` of a case read at that version writes with
``If-Match`` on the remembered ETag at once: one round trip. The ETag is exact, so a writer who slipped
in since is still caught (412); a stale or forgotten entry only sends the save down the path above
(read, compare, write), so the outcome is the same as without the memory, across store instances,
processes and threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from adapters.azure_storage._documents import pack, unpack
from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage._keys import key_text, shard, utc_text, written_now
from adapters.recent import Recent
from flows.domain.case import Case, CaseReport, CaseState, CaseSummary, SummaryDocument
from flows.ports import ConcurrencyConflict

PARTITIONS = ("case|", "case}")  # "}" follows "|": every case's partition lies between these
_CLOCKS_MARGIN = timedelta(days=1)  # see ``TableCaseStore.entered_before``


def _partition(row: str) -> str:
    return f"case|{shard(row)}"


@dataclass(frozen=True)
class _Seen:
    """What a round trip showed of a stored case: its version under this ETag, and when it was added."""

    version: int
    etag: str
    added: str


class TableCaseStore:
    """The ``CaseStore`` on Azure Table storage (see the module's docstring for the layout)."""

    def __init__(self, table: TableClient, *, clock: Callable[[], datetime] | None = None) -> None:
        """``table``: the cases table (it must exist). ``clock`` stamps ``updated_at`` (default: UTC now)."""
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))
        self._seen: Recent[str, _Seen] = Recent()  # by row key; see the module's docstring

    def get(self, response_id: str) -> Case | None:
        row = key_text(response_id)
        with storage_errors(f"case {response_id}: read"):
            try:
                entity = self._table.get_entity(_partition(row), row)
            except ResourceNotFoundError:
                return None
        self._seen.put(row, _Seen(int(entity["version"]), str(entity.metadata["etag"]), str(entity["added"])))
        return Case.model_validate_json(unpack(entity))

    def add(self, case: Case) -> bool:
        row, added = key_text(case.response_id), written_now()
        entity = self._entity(case, case.version, added=added)
        with storage_errors(f"case {case.response_id}: add"):
            try:
                written = self._table.create_entity(entity)
            except ResourceExistsError:
                return False
        self._seen.put(row, _Seen(case.version, written["etag"], added))
        return True

    def save(self, case: Case) -> Case:
        row = key_text(case.response_id)
        saved = case.model_copy(update={"version": case.version + 1})
        with storage_errors(f"case {case.response_id}: save"):
            seen = self._seen.get(row)
            if seen is None or seen.version != case.version or not self._write(saved, seen):
                stored = self._stored_version(row)
                if stored is None:
                    raise _not_stored(case)
                if stored["version"] != case.version:
                    raise _conflict(case, stored["version"])
                seen = _Seen(int(stored["version"]), str(stored.metadata["etag"]), str(stored["added"]))
                if not self._write(saved, seen):  # 412: saved by someone else since the read above
                    now = self._stored_version(row)
                    if now is None:
                        raise _not_stored(case)
                    raise _conflict(case, now["version"])
        return Case.model_validate_json(saved.model_dump_json())

    def _write(self, saved: Case, seen: _Seen) -> bool:
        """Replace the case if it is still the entity ``seen`` (its ETag); False if it is not (412)."""
        row = key_text(saved.response_id)
        try:
            written = self._table.update_entity(
                self._entity(saved, saved.version, added=seen.added),
                mode=UpdateMode.REPLACE,
                etag=seen.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            self._seen.forget(row)
            return False
        except ResourceNotFoundError as error:  # deleted since it was seen
            self._seen.forget(row)
            raise _not_stored(saved) from error
        self._seen.put(row, _Seen(saved.version, written["etag"], seen.added))
        return True

    def list(self, states: Iterable[CaseState] | None = None) -> list[Case]:
        """Cases in the given states (all when ``None``), oldest opened first (ties: first added)."""
        return [Case.model_validate_json(unpack(entity)) for entity in self._entities(states, "list")]

    def paired_with(self, entry_id: str, states: Iterable[CaseState]) -> Sequence[Case]:
        """As ``list``, only the cases paired with CPL entry ``entry_id``: the service sends only those
        (``cpl_entry_id`` is a property of its own)."""
        entities = self._entities(
            states, "paired with an entry", ("cpl_entry_id eq @entry", {"entry": entry_id})
        )
        return [Case.model_validate_json(unpack(entity)) for entity in entities]

    def entered_before(self, states: Iterable[CaseState], moment: datetime) -> Sequence[Case]:
        """As ``list``, only the cases that entered their current state before ``moment``. The entity
        has no property for when (entities written before would lack it), but a case enters a state
        after it is opened: the service sends the cases opened before ``moment`` (and a day more, for
        the clocks of workers that disagree), and only those that entered their state before it are
        read whole."""
        bound = utc_text(moment + _CLOCKS_MARGIN)
        entities = self._entities(states, "waiting", ("opened_at lt @opened", {"opened": bound}))
        return [
            Case.model_validate_json(document)
            for document in map(unpack, entities)
            if SummaryDocument.model_validate_json(document).summary().state_since < moment
        ]

    def summaries(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseSummary]:
        """As ``list``, each read as a summary (the notification is not validated again)."""
        entities = self._entities(states, "summaries")
        return [SummaryDocument.model_validate_json(unpack(entity)).summary() for entity in entities]

    def reports(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseReport]:
        """As ``list``, each read as a report (the notification is not validated again)."""
        return [
            CaseReport.model_validate_json(unpack(entity)) for entity in self._entities(states, "reports")
        ]

    def _entities(
        self,
        states: Iterable[CaseState] | None,
        what: str,
        where: tuple[str, dict[str, Any]] | None = None,
    ) -> Sequence[TableEntity]:
        """The state filter (and ``where``: a condition and its parameters) runs in the service; the
        order is made here (the service returns the partitions in turn, each in RowKey order, which is
        the response id's)."""
        parameters: dict[str, Any] = {"low": PARTITIONS[0], "high": PARTITIONS[1]}
        query = "PartitionKey ge @low and PartitionKey lt @high"
        if where is not None:
            query += f" and {where[0]}"
            parameters |= where[1]
        if states is not None:
            wanted = sorted({CaseState(state).value for state in states})
            if not wanted:
                return []
            parameters |= {f"s{number}": state for number, state in enumerate(wanted)}
            # spaces around the parentheses: the SDK finds @names by splitting on white space
            query += " and ( " + " or ".join(f"state eq @s{n}" for n in range(len(wanted))) + " )"
        with storage_errors(f"cases: {what}"):
            entities = list(self._table.query_entities(query, parameters=parameters))
        entities.sort(key=lambda entity: (entity["opened_at"], entity["added"]))
        return entities

    def _stored_version(self, row: str) -> TableEntity | None:
        try:
            return self._table.get_entity(_partition(row), row, select=["version", "added"])
        except ResourceNotFoundError:
            return None

    def _entity(self, case: Case, version: int, *, added: str) -> dict[str, Any]:
        document = case.model_copy(update={"version": version}).model_dump_json()
        row = key_text(case.response_id)
        entity: dict[str, Any] = {
            "PartitionKey": _partition(row),
            "RowKey": row,
            "response_id": case.response_id,
            "state": case.state.value,
            "supplier": case.supplier,
            "opened_at": utc_text(case.opened_at),
            "added": added,
            "updated_at": utc_text(self._clock()),
            "version": version,
            **pack(document, what=f"case {case.response_id}"),
        }
        if case.cpl_entry_id is not None:
            entity["cpl_entry_id"] = case.cpl_entry_id
        return entity


def _not_stored(case: Case) -> ConcurrencyConflict:
    return ConcurrencyConflict(f"case {case.response_id}: not stored (add it before saving it)")


def _conflict(case: Case, stored_version: int) -> ConcurrencyConflict:
    return ConcurrencyConflict(
        f"case {case.response_id}: read at version {case.version}, but version {stored_version} is "
        "stored: someone saved it meanwhile; re-read it and decide again"
    )
