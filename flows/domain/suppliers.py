"""The supplier register: which SEC party a supplier is and which e-mail domains speak for it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.domain.addresses import comparable_domain
from flows.domain.identifiers import names_agree, normalise_identifier
from flows.domain.notification import EmergencyNotification


class Supplier(BaseModel):
    """One registered supplier; its ``email_domains`` are kept as they compare (``comparable_domain``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    party_id: str
    email_domains: tuple[str, ...] = Field(min_length=1)

    @field_validator("party_id")
    @classmethod
    def _normalise_party_id(cls, value: str) -> str:
        return normalise_identifier(value)

    @field_validator("email_domains")
    @classmethod
    def _comparable_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        comparable = []
        for domain in value:
            try:
                comparable.append(comparable_domain(domain))
            except ValueError as error:
                raise ValueError(f"{domain!r} is not a valid international domain name: {error}") from error
        return tuple(comparable)


class SupplierRegister(BaseModel):
    """Suppliers DCC accepts notifications from."""

    suppliers: tuple[Supplier, ...]

    def find(self, name: str) -> Supplier | None:
        return next((s for s in self.suppliers if names_agree(s.name, name)), None)

    def registered_name(self, name: str) -> str:
        """The register's spelling of a supplier named loosely (``bramble  power``), else ``name``:
        what a case keeps, so that lists, filters and run keys find one supplier under one name."""
        found = self.find(name) if name else None
        return found.name if found is not None else name

    def authorisation_problems(self, notification: EmergencyNotification) -> list[str]:
        """Why this responder may not notify for this supplier; empty when it may.

        Domains compare whole, as ``comparable_domain`` writes them: ``bramblepower.example.evil.example``
        is not ``bramblepower.example``, neither is a subdomain unless it is registered itself, and
        ``straße-power.example`` is not ``strasse-power.example``.
        """
        supplier = self.find(notification.supplier)
        if supplier is None:
            return [f"supplier: {notification.supplier!r} is not a registered supplier"]
        problems = []
        if notification.supplier_party_id != supplier.party_id:
            problems.append(
                f"supplier_party_id: {notification.supplier_party_id} is not the SEC party id "
                f"registered for {supplier.name}"
            )
        domain = notification.responder_domain.rstrip(".")
        if not _registered(domain, supplier):
            problems.append(f"responder: e-mail domain {domain!r} is not registered for {supplier.name}")
        return problems

    def answers_to(self, domain: str, supplier: str, party_id: str = "") -> bool:
        """Whether DCC may tell a responder of this e-mail ``domain`` why its notification was refused:
        the domain is registered for the supplier named, or for the one whose SEC party id was given.

        Wider than ``authorisation_problems``: a registered supplier's typo (a date, a party id) is
        answered, so that it can correct and submit again; a stranger learns nothing from DCC.
        """
        named = self.find(supplier) if supplier else None
        party = normalise_identifier(party_id) if party_id else ""
        by_party = next((s for s in self.suppliers if party and s.party_id == party), None)
        return any(found is not None and _registered(domain, found) for found in (named, by_party))


def _registered(domain: str, supplier: Supplier) -> bool:
    """Whether ``domain`` is one of the supplier's, compared as the outbox would write it; a domain
    IDNA refuses is none (the outbox could not write to it either)."""
    try:
        return comparable_domain(domain) in supplier.email_domains
    except ValueError:
        return False
