"""``TableRunStore``: the flow engine's run history in one Azure table.

Layout (``key_text`` makes ids valid keys; ``|`` separates the parts of a key):

- ``runs|<shard>`` / ``id|<run>``: the run's header (the ``RunRecord`` without actions) with ``flow``,
  ``status`` and ``order`` as properties. ``<shard>`` is ``shard`` of the run's key: 16 partitions.
- ``runs|<shard>`` / ``at|<order>``: the newest-first index, with ``run_id``, ``flow`` and ``status``.
  ``order`` is the start time inverted (later sorts first), then the write time inverted (ties: the run
  started last first, as the embedded store does), then the run id. Header and index share a partition,
  so ``start`` creates and ``finish`` updates both in one entity group transaction: they never disagree.
- ``key|<business key>|<shard>`` / ``<order>``: one entity per business key a run carries, with
  ``run_id`` and ``flow``, in the run's shard.
- ``act|<run>`` / ``<path>``: one entity per action result, so ``record_action`` is one small write;
  ``written`` (a nanosecond clock reading taken on the first write, kept on overwrites) gives the order
  actions were first written, the order they ran.

Why shards: every run writes its header and index entry, and a supplier's key entry, so one partition
for each would take every run of the history: one server's throughput in Table storage (about 2,000
entities a second), and on Azurite a scan of the whole partition for each point read or write (the soak
slowed from 2.9 to 1.3 responses a second as it grew). Spread by the run, a run's own reads and writes
still go to one partition each.

``find`` without a key queries the index in each shard, filtered in the service by flow and status,
and merges the 16 answers by RowKey, newest first (each comes back in RowKey order, a page at a time):
it stops after ``limit`` runs, however long the history. With a key it reads that key's entities in
one query over its 16 partitions (a PartitionKey range), filtered by flow in the service, sorts them,
and checks each run's status as it reads it (key entities do not follow status changes): a response id
has a handful of runs, a supplier a few per notification.

Round trips: ``finish`` needs the run's header (what ``start`` wrote) and its ``order``. Both never
change after ``start`` except for the fields ``finish`` itself replaces (status, end, error, keys),
so the store remembers them from its own ``start`` and ``get`` and reads the header only for a run it
has not seen. It also remembers which key entities it wrote, and does not write those again: they are
never changed or deleted once written. A key this instance did not write (a ``start`` cut off before
its keys, then resumed) is still written by ``finish``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableErrorCode, TableTransactionError, UpdateMode

from adapters.azure_storage._documents import pack, unpack
from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage._keys import (
    key_text,
    newest_first,
    shard,
    shards,
    written_now,
    written_now_newest_first,
)
from adapters.recent import Recent
from flows.engine.runs import ActionRecord, RunRecord, RunStatus

RUNS = "runs"


def _runs_partition(run_id: str) -> str:
    """The partition of a run's header and index entry."""
    return f"{RUNS}|{shard(key_text(run_id))}"


def _key_partition(business_key: str, run_id: str) -> str:
    return f"key|{key_text(business_key)}|{shard(key_text(run_id))}"


_NOT_FOUND = frozenset({TableErrorCode.RESOURCE_NOT_FOUND, TableErrorCode.ENTITY_NOT_FOUND})


@dataclass(frozen=True)
class _Started:
    """A run's header as stored (without actions), its index order, and the keys indexed for it."""

    header: RunRecord
    order: str
    indexed: frozenset[str]


class TableRunStore:
    """The ``RunStore`` on Azure Table storage (see the module's docstring for the layout)."""

    def __init__(self, table: TableClient) -> None:
        """``table``: the runs table (it must exist)."""
        self._table = table
        # by run id (see the module's docstring); a run is finished within moments of its start, and a
        # header holds its trigger, so fewer are kept than of the small entries the other stores keep
        self._started: Recent[str, _Started] = Recent(1024)

    def start(self, run: RunRecord) -> bool:
        order = f"{newest_first(run.started_at)}|{written_now_newest_first()}|{key_text(run.run_id)}"
        header = run.model_copy(update={"actions": {}})
        with storage_errors(f"run {run.run_id}: start"):
            try:
                self._table.submit_transaction(
                    [
                        ("create", self._header(header, order)),
                        ("create", _index(run, order, run.status)),
                    ]
                )
            except TableTransactionError as error:
                if getattr(error, "error_code", None) == TableErrorCode.ENTITY_ALREADY_EXISTS:
                    return False
                raise
            self._index_keys(run, order, run.keys)
        self._started.put(run.run_id, _Started(header, order, frozenset(run.keys)))
        return True

    def get(self, run_id: str) -> RunRecord | None:
        row = key_text(run_id)
        with storage_errors(f"run {run_id}: read"):
            try:
                header = self._table.get_entity(_runs_partition(run_id), f"id|{row}")
            except ResourceNotFoundError:
                return None
            actions = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": f"act|{row}"}))
        actions.sort(key=lambda entity: (entity["written"], entity["RowKey"]))
        records = [ActionRecord.model_validate_json(unpack(entity)) for entity in actions]
        run = RunRecord.model_validate_json(unpack(header))
        known = self._started.get(run_id)
        indexed = known.indexed if known is not None else frozenset()  # the header says nothing of that
        self._started.put(run_id, _Started(run, str(header["order"]), indexed))
        return run.model_copy(update={"actions": {record.path: record for record in records}})

    def record_action(self, run_id: str, record: ActionRecord) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": f"act|{key_text(run_id)}",
            "RowKey": key_text(record.path),
            "path": record.path,
            "status": record.status.value,
            "written": written_now(),
            **pack(record.model_dump_json(), what=f"run {run_id}: action {record.path}"),
        }
        with storage_errors(f"run {run_id}: record action {record.path}"):
            try:
                self._table.create_entity(entity)
                return
            except ResourceExistsError:
                pass  # written before (a resumed run): overwrite it, keeping its place in the order
            try:
                first = self._table.get_entity(entity["PartitionKey"], entity["RowKey"], select=["written"])
                entity["written"] = first["written"]
            except ResourceNotFoundError:
                pass
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def finish(
        self, run_id: str, status: RunStatus, *, ended_at: datetime, error: str | None, keys: list[str]
    ) -> None:
        with storage_errors(f"run {run_id}: finish"):
            known = self._started.get(run_id)
            if known is None:
                try:
                    stored = self._table.get_entity(_runs_partition(run_id), f"id|{key_text(run_id)}")
                except ResourceNotFoundError:
                    raise KeyError(f"no run {run_id!r} to finish") from None
                header = RunRecord.model_validate_json(unpack(stored)).model_copy(update={"actions": {}})
                known = _Started(header, str(stored["order"]), frozenset())
            order = known.order
            run = known.header.model_copy(
                update={"status": status, "ended_at": ended_at, "error": error, "keys": keys}
            )
            # first: a key is findable once the run says it has it
            self._index_keys(run, order, [key for key in keys if key not in known.indexed])
            try:
                self._table.submit_transaction(
                    [
                        ("update", self._header(run, order), {"mode": UpdateMode.REPLACE}),
                        ("update", _index(run, order, status), {"mode": UpdateMode.MERGE}),
                    ]
                )
            except TableTransactionError as failed:
                if getattr(failed, "error_code", None) in _NOT_FOUND:  # remembered, but not stored
                    self._started.forget(run_id)
                    raise KeyError(f"no run {run_id!r} to finish") from None
                raise
        self._started.put(run_id, _Started(run, order, known.indexed | frozenset(keys)))

    def find(
        self,
        *,
        key: str | None = None,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest first; ``key`` matches any business key the run carries."""
        found: list[RunRecord] = []
        if limit <= 0:
            return found
        with storage_errors("runs: find"):
            for run_id in self._candidates(key, flow, status, page=min(limit, 1000)):
                run = self.get(run_id)
                if run is None or (flow is not None and run.flow != flow):
                    continue
                if status is not None and run.status is not status:
                    continue
                found.append(run)
                if len(found) == limit:
                    break
        return found

    def _candidates(
        self, key: str | None, flow: str | None, status: RunStatus | None, *, page: int
    ) -> Iterator[str]:
        """Run ids, newest first: a key's runs, or the index filtered by flow and status."""
        select = ["RowKey", "run_id"]
        if key is not None:
            # One query over the key's 16 partitions ("}" follows "|", and ``key_text`` escapes both,
            # so no other key's partition lies between), sorted here: a key's runs are read whole.
            query = "PartitionKey ge @low and PartitionKey lt @high"
            parameters = {"low": f"key|{key_text(key)}|", "high": f"key|{key_text(key)}}}"}
            if flow is not None:
                query, parameters["flow"] = query + " and flow eq @flow", flow
            with storage_errors(f"runs of {key}: find"):
                found = list(self._table.query_entities(query, parameters=parameters, select=select))
            found.sort(key=lambda entity: str(entity["RowKey"]))
            yield from (str(entity["run_id"]) for entity in found)
            return
        # The index can hold the whole history: each shard is queried lazily, a page at a time, and
        # the answers merged by RowKey, so ``find`` stops after ``limit`` runs.
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        parameters = {"low": "at|", "high": "at}"}  # "}" follows "|": the at| rows
        if flow is not None:
            query, parameters["flow"] = query + " and flow eq @flow", flow
        if status is not None:
            query, parameters["status"] = query + " and status eq @status", status.value
        answers = [
            self._table.query_entities(
                query, parameters={**parameters, "pk": f"{RUNS}|{part}"}, select=select, results_per_page=page
            )
            for part in shards()
        ]
        for entity in heapq.merge(*answers, key=lambda entity: str(entity["RowKey"])):
            yield str(entity["run_id"])

    def _index_keys(self, run: RunRecord, order: str, keys: list[str]) -> None:
        for business_key in dict.fromkeys(keys):
            self._table.upsert_entity(
                {
                    "PartitionKey": _key_partition(business_key, run.run_id),
                    "RowKey": order,
                    "run_id": run.run_id,
                    "flow": run.flow,
                },
                mode=UpdateMode.REPLACE,
            )

    @staticmethod
    def _header(run: RunRecord, order: str) -> dict[str, Any]:
        return {
            "PartitionKey": _runs_partition(run.run_id),
            "RowKey": f"id|{key_text(run.run_id)}",
            "run_id": run.run_id,
            "flow": run.flow,
            "status": run.status.value,
            "order": order,
            **pack(run.model_dump_json(), what=f"run {run.run_id}"),
        }


def _index(run: RunRecord, order: str, status: RunStatus) -> dict[str, Any]:
    return {
        "PartitionKey": _runs_partition(run.run_id),
        "RowKey": f"at|{order}",
        "run_id": run.run_id,
        "flow": run.flow,
        "status": status.value,
    }
