"""The supplier's emergency notification, in canonical form, with the rules each field obeys.

The field names are those of the form definition (``samples/forms/form-definition.json``); the intake
adapters map the Forms and SharePoint shapes onto them. Every rule raises a ``ValueError`` whose text
is the reason an operator or supplier reads, so a rejected response names each field and why.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from flows.domain.cpl import DeviceModel, DeviceModelCombination
from flows.domain.identifiers import is_hex, normalise_identifier

_PARTY_ID = re.compile(r"[0-9A-F]{2}(-[0-9A-F]{2}){7}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_YES = frozenset({"yes", "true", "y", "1", "i confirm", "confirmed"})
_NO = frozenset({"no", "false", "n", "0", ""})


class DeviceType(StrEnum):
    """SMETS1 device types that can appear on the CPL."""

    ESME = "ESME"
    GSME = "GSME"
    CHF = "CHF"
    GPF = "GPF"
    PPMID = "PPMID"


class ServiceProvider(StrEnum):
    """The SMETS1 Service Providers (the three DCC operating contracts)."""

    FOC = "FOC"
    IOC = "IOC"
    MOC = "MOC"


def _hex(value: str) -> str:
    normalised = normalise_identifier(value)
    if not normalised:
        raise ValueError("is empty")
    if not is_hex(normalised):
        raise ValueError(f"is not hexadecimal: {value!r}")
    return normalised


def _optional_hash(value: str | None) -> str | None:
    if value is None or not normalise_identifier(value):
        return None
    normalised = _hex(value)
    if len(normalised) != 64:
        raise ValueError(f"is not a SHA-256 hash (64 hex digits): {len(normalised)} digits")
    return normalised


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _required_text(value: str) -> str:
    if not value:
        raise ValueError("is empty")
    return value


def _choice(enum: type[StrEnum]) -> BeforeValidator:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        normalised = normalise_identifier(value)
        if normalised not in enum.__members__.values():
            allowed = ", ".join(enum.__members__.values())
            raise ValueError(f"unknown {enum.__name__}: {value.strip()!r} (expected one of {allowed})")
        return normalised

    return BeforeValidator(parse)


def _declaration(value: Any) -> bool:
    answer = str(value).strip().casefold()
    if answer in _YES:
        return True
    if answer in _NO:
        raise ValueError("declaration not confirmed: the supplier must confirm the emergency")
    raise ValueError(f"declaration answer not understood: {value!r}")


def _party_id(value: str) -> str:
    normalised = normalise_identifier(value)
    if not _PARTY_ID.fullmatch(normalised):
        raise ValueError(f"is not an SEC party id like 90-B3-D5-1F-30-01-00-01: {value!r}")
    return normalised


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("is not an e-mail address")
    return value


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("is a yes/no answer, not a number")
    return value


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Hex = Annotated[str, AfterValidator(_hex)]
Text = Annotated[str, BeforeValidator(_stripped), AfterValidator(_required_text)]
OptionalText = Annotated[str, BeforeValidator(_stripped)]


class EmergencyNotification(BaseModel):
    """What a supplier tells DCC about an emergency (Non-EPCL) CPL addition it has asked SECAS for."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=4000)

    response_id: Annotated[str, BeforeValidator(_as_text), AfterValidator(_required_text)]
    responder: Annotated[str, BeforeValidator(_stripped), AfterValidator(_email)]
    submitted_at: AwareDatetime  # compared with other instants: a zoneless time would be ambiguous
    supplier: Text
    supplier_party_id: Annotated[str, AfterValidator(_party_id)]
    contact_name: OptionalText = ""
    contact_phone: OptionalText = ""
    secas_reference: Annotated[str, AfterValidator(normalise_identifier), AfterValidator(_required_text)]
    device_type: Annotated[DeviceType, _choice(DeviceType)]
    manufacturer_name: OptionalText = ""
    manufacturer_id: Hex
    model_name: OptionalText = ""
    model_id: Hex
    hardware_version: Hex
    current_firmware_version: Hex
    new_firmware_version: Hex
    s1sp: Annotated[ServiceProvider, _choice(ServiceProvider)]
    vulnerability_reference: OptionalText = ""
    affected_devices: Annotated[int, BeforeValidator(_not_boolean)] = Field(ge=0)
    planned_start: date | None = None
    image_hash: Annotated[str | None, AfterValidator(_optional_hash)] = None
    declaration: Annotated[bool, BeforeValidator(_declaration)]

    @property
    def responder_domain(self) -> str:
        return self.responder.rsplit("@", 1)[1].casefold()

    @property
    def device_model(self) -> DeviceModel:
        return DeviceModel(self.device_type.value, self.manufacturer_id, self.model_id, self.hardware_version)

    @property
    def dmc(self) -> DeviceModelCombination:
        """The device model combination the supplier asks to have loaded (new firmware)."""
        return DeviceModelCombination(*self.device_model, self.new_firmware_version)
