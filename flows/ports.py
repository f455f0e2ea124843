"""The small interfaces (ports) the flows need from the outside world.

Each port has an embedded implementation in ``adapters/`` (SQLite, outbox folders) and, later, an
Azure one. Only the composition root chooses which; flows and the domain see these protocols alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from flows.domain.case import Case, CaseReport, CaseState, CaseSummary
from flows.domain.cpl import CplPublication, DeviceModelCombination


class ConcurrencyConflict(RuntimeError):
    """Someone else saved the record since it was read: re-read, re-decide, retry."""


# --- state -------------------------------------------------------------------------------------


class CaseStore(Protocol):
    """Cases and their timelines, keyed by response id."""

    def get(self, response_id: str) -> Case | None: ...

    def add(self, case: Case) -> bool:
        """Store a new case; False (and nothing written) when one with that id exists."""
        ...

    def save(self, case: Case) -> Case:
        """Store a changed case if nobody saved it since it was read (``case.version``).

        Returns the case with its new version; raises ``ConcurrencyConflict`` otherwise.
        """
        ...

    def list(self, states: Iterable[CaseState] | None = None) -> list[Case]: ...

    def paired_with(self, entry_id: str, states: Iterable[CaseState]) -> Sequence[Case]:
        """As ``list``, only the cases paired with CPL entry ``entry_id`` (``Case.cpl_entry_id``): an
        event about one entry must not read every case the bridge ever had."""
        ...

    def entered_before(self, states: Iterable[CaseState], moment: datetime) -> Sequence[Case]:
        """As ``list``, only the cases that entered their current state (``Case.waited_since``)
        before ``moment``: what may have waited too long."""
        ...

    def summaries(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseSummary]:
        """As ``list``, summarised: for lists of thousands of cases (the console)."""
        ...

    def reports(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseReport]:
        """As ``list``, without validating the notifications again: for reports on thousands of cases
        (the console's export)."""
        ...


class StoredPublication(BaseModel):
    """A CPL publication as kept: the parsed entries and where and when they came from."""

    model_config = ConfigDict(frozen=True)

    publication: CplPublication
    fetched_at: datetime
    source: str


class PublicationStore(Protocol):
    """Every distinct CPL publication seen, keyed by the SHA-256 of the raw file."""

    def add(self, publication: CplPublication, *, fetched_at: datetime, source: str) -> bool:
        """Keep a publication; False when one with the same raw hash is already kept."""
        ...

    def add_raw(self, sha256: str, data: bytes) -> bool:
        """Keep the raw file as SECAS published it (the evidence behind a load); False if kept."""
        ...

    def get_raw(self, sha256: str) -> bytes | None: ...

    def latest(self) -> StoredPublication | None: ...

    def get(self, source_sha256: str) -> StoredPublication | None: ...


class IdempotencyStore(Protocol):
    """Results of side effects already made, by idempotency key: the first writer wins."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, result: dict[str, Any]) -> bool:
        """Remember a result; False (and the earlier result kept) if the key is known."""
        ...


# --- the Smart Metering Inventory ---------------------------------------------------------------


class InventoryStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class InventoryRecord(BaseModel):
    """A device model combination as loaded into the SMI."""

    model_config = ConfigDict(frozen=True)

    device_type: str
    manufacturer_id: str
    model_id: str
    hardware_version: str
    firmware_version: str
    cpl_entry_id: str
    s1sp: str
    response_id: str
    status: InventoryStatus = InventoryStatus.ACTIVE

    @property
    def dmc(self) -> DeviceModelCombination:
        return DeviceModelCombination(
            self.device_type,
            self.manufacturer_id,
            self.model_id,
            self.hardware_version,
            self.firmware_version,
        )


class UpsertOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class Inventory(Protocol):
    """The SMI's device model register, keyed by the device model combination.

    ``attempt`` is the engine's attempt number for the effect (``ActionContext.attempt``, 1 first). A
    key already used is a repeat: on attempt 1 it was an earlier effect's, so nothing changed now; on a
    later attempt it was this effect's own, whose answer was lost, and its outcome is reported.
    """

    def upsert(self, record: InventoryRecord, *, idempotency_key: str, attempt: int = 1) -> UpsertOutcome:
        """Create or update the record for ``record.dmc``; repeating it changes nothing."""
        ...

    def withdraw(self, dmc: DeviceModelCombination, *, idempotency_key: str, attempt: int = 1) -> bool:
        """Mark a loaded combination withdrawn; False when it was not loaded (or already withdrawn)."""
        ...

    def get(self, dmc: DeviceModelCombination) -> InventoryRecord | None: ...

    def all(self) -> list[InventoryRecord]: ...


@runtime_checkable
class FindsByEntry(Protocol):
    """An ``Inventory`` that finds the records loaded from some CPL entries by itself (the embedded
    one, by an index). The SMI's contract has no such query: its records are read page by page
    (``all``) and sorted out by the caller."""

    def active_from(self, entry_ids: Iterable[str]) -> list[InventoryRecord]:
        """The active records loaded from any of ``entry_ids``, sorted by combination (as ``all``)."""
        ...


# --- messages out -------------------------------------------------------------------------------


class OutgoingEmail(BaseModel):
    """An e-mail to a supplier, already rendered; the idempotency key makes a resend a no-op."""

    model_config = ConfigDict(frozen=True)

    to: tuple[str, ...] = Field(min_length=1)
    subject: str
    text_body: str
    html_body: str
    idempotency_key: str


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Send once per idempotency key; returns the message id (the same one on a repeat)."""
        ...


class OperatorCard(BaseModel):
    """An Adaptive Card for the operators' Teams channel."""

    model_config = ConfigDict(frozen=True)

    card: dict[str, Any]
    idempotency_key: str


class OperatorChannel(Protocol):
    def post(self, card: OperatorCard) -> str:
        """Post once per idempotency key; returns an id for the post."""
        ...
