"""The supplier's emergency notification, in canonical form, with the rules each field obeys.

The field names are those of the form definition (``samples/forms/form-definition.json``); the intake
adapters map the Forms and SharePoint shapes onto them. Every rule raises a ``ValueError`` whose text
is the reason an operator or supplier reads, so a rejected response names each field and why.

Hostile or broken text is handled by kind of field:

- every text answer has a maximum length, checked first, on the answer as given (trimmed); the error
  names the limit and the length, never the value. ``MAX_LENGTH`` holds the ceilings; a caller may set
  tighter limits through the validation context (``{"max_length": {field: limit}}``), as the intake
  does from the form definition. Ceilings, not defaults, so a stored case always reloads.
- identifiers (ids, references, hex, choices, the responder's address) refuse control and invisible
  characters: they are compared and keyed, and a silently changed identifier could pair the wrong CPL
  entry; the error names the character (code point and name) and its position.
- free text (``Text`` and ``OptionalText``: names, the vulnerability reference) drops them instead:
  it is only shown to people, and refusing an emergency notification over a character nobody can
  see would leave a known vulnerability open for hours more. Joiners (U+200C, U+200D) and marks
  (U+200E, U+200F) stay: Persian and Indic names, and emoji, need them. HTML in free text is kept
  as data: the message templates escape it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from flows.domain.addresses import addr_spec
from flows.domain.cpl import DeviceModel, DeviceModelCombination
from flows.domain.identifiers import (
    ORDINARY_WHITE_SPACE,
    character_name,
    hidden_character_at,
    is_hex,
    non_ascii_character_at,
    normalise_identifier,
)

_PARTY_ID = re.compile(r"[0-9A-F]{2}(-[0-9A-F]{2}){7}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NOT_IN_AN_ADDRESS = frozenset(',;<>"')
_YES = frozenset({"yes", "true", "y", "1", "i confirm", "confirmed"})
_NO = frozenset({"no", "false", "n", "0", ""})

NAME_LIMIT: Final = 200  # names and identifiers
FREE_TEXT_LIMIT: Final = 2000
MAX_LENGTH: Final[Mapping[str, int]] = {  # the most characters a text answer may have, per field
    "responder": 254,  # the longest e-mail address SMTP carries (RFC 5321)
    "vulnerability_reference": FREE_TEXT_LIMIT,  # a reference, or a sentence about the vulnerability
}
_CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in ORDINARY_WHITE_SPACE]
_BIDI_CONTROLS = [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
_INVISIBLE = ["\u200b", "\u2060", "\ufeff", *_BIDI_CONTROLS]  # zero-width space, word joiner, BOM
# Free text: white-space controls (U+000B, U+001C.., U+0085) become a space, the others go, and so do
# bidi embeddings, overrides and isolates, zero-width spaces, the word joiner, BOMs and lone surrogates.
_DROP_FROM_TEXT = str.maketrans(
    {c: " " if c.isspace() else None for c in _CONTROLS}
    | dict.fromkeys(_INVISIBLE)
    | dict.fromkeys(map(chr, range(0xD800, 0xE000)))
)


def max_length(field: str, context: object = None) -> int:
    """The most characters ``field`` may hold: its ceiling, or a tighter limit from the context."""
    ceiling = MAX_LENGTH.get(field, NAME_LIMIT)
    limits = context.get("max_length") if isinstance(context, Mapping) else None
    tighter = limits.get(field) if isinstance(limits, Mapping) else None
    return min(ceiling, tighter) if isinstance(tighter, int) and tighter > 0 else ceiling


def hidden_character(value: str) -> str | None:
    """Why ``value`` cannot be an identifier: its first control, format or invisible character."""
    found = hidden_character_at(value)
    if found is None:
        return None
    position, character = found
    return (
        f"contains an invisible or control character, {character_name(character)}, "
        f"at character {position}: type the value again without it"
    )


def visible_text(value: str) -> str:
    """Free text without control and invisible characters (see the module's docstring), trimmed."""
    return value.translate(_DROP_FROM_TEXT).strip()


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


def _identifier(value: Any) -> Any:
    if isinstance(value, str) and (problem := hidden_character(value)):
        raise ValueError(problem)
    return value


def _hex_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("should be text, not true/false")
    if isinstance(value, int | float):  # 0102 would arrive as 102: the leading zero is gone for good
        raise ValueError(f"should be text, not a number ({value!r}): numbers lose leading zeros")
    return _identifier(value)


def _ascii(value: str) -> str:
    """``value`` unless it holds a character other than ASCII and white space. Checked before
    upper-casing, which makes ASCII of some: the ligature "ﬀ" becomes "FF", the long "ſ" an "S"."""
    found = non_ascii_character_at(value)
    if found is not None:
        position, character = found
        raise ValueError(
            f"contains {character_name(character)} at character {position}, which only looks like "
            "a letter or digit an identifier can hold: type the value again"
        )
    return value


def _hex(value: str) -> str:
    normalised = normalise_identifier(_ascii(value))
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
    return visible_text(value) if isinstance(value, str) else value


def _trimmed(value: str) -> str:
    return value.strip()


def _required_text(value: str) -> str:
    if not value:
        raise ValueError("is empty")
    return value


def _choice(enum: type[StrEnum]) -> BeforeValidator:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        _identifier(value)
        normalised = normalise_identifier(value)
        if normalised not in enum.__members__.values():
            allowed = ", ".join(enum.__members__.values())
            raise ValueError(f"unknown {enum.__name__}: {value.strip()!r} (expected one of {allowed})")
        return normalised

    return BeforeValidator(parse)


def _declaration(value: Any) -> bool:
    if isinstance(value, list | tuple | dict):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise ValueError(f"should be a yes/no answer, not {kind}")
    answer = str(value).strip().casefold()
    if answer in _YES:
        return True
    if answer in _NO:
        raise ValueError("declaration not confirmed: the supplier must confirm the emergency")
    raise ValueError(f"declaration answer not understood: {value!r}")


def _party_id(value: str) -> str:
    normalised = normalise_identifier(_ascii(value))
    if not _PARTY_ID.fullmatch(normalised):
        raise ValueError(f"is not an SEC party id like 90-B3-D5-1F-30-01-00-01: {value!r}")
    return normalised


def _email(value: str) -> str:
    """One plain address (``name@example.com``). White space and ``,;<>"`` are refused by position: in a
    To header they make a display name, a second recipient or a quoted local part."""
    for position, character in enumerate(value, start=1):
        if character.isspace() or character in _NOT_IN_AN_ADDRESS:
            what = "white space" if character.isspace() else repr(character)
            raise ValueError(
                f"is not one e-mail address: {what} at character {position}; give one address,"
                " like name@example.com"
            )
    if not _EMAIL.fullmatch(value):
        raise ValueError("is not an e-mail address")
    # The outbox's own parse: an address it cannot write (``name.@x``, ``name@x.example.``) would open
    # a case whose supplier can never be told anything.
    addr_spec(value)
    return value


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("is a yes/no answer, not a number")
    return value


def _date_text(example: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, bool | int | float):  # pydantic would read a number as Unix time
            kind = "true/false" if isinstance(value, bool) else "a number"
            raise ValueError(f"should be text like {example}, not {kind}")
        return value

    return BeforeValidator(check)


UK = ZoneInfo("Europe/London")
"""Where the form's site keeps its dates: a SharePoint date column is midnight of this zone."""


def _calendar_date(value: Any) -> Any:
    """A date also as a SharePoint date column gives one through Graph: the UTC instant of midnight in
    the site's zone, so 30 June (British Summer Time) arrives as ``2026-06-29T23:00:00Z``, which the
    date parser refused (it takes a zero time only). Any other instant is left to the parser, which
    refuses it: it is not a day."""
    if not isinstance(value, str) or "T" not in value:
        return value
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    local = moment.astimezone(UK)
    return local.date() if local.time() == time(0) else value


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Hex = Annotated[str, BeforeValidator(_hex_text), AfterValidator(_hex)]
Identifier = BeforeValidator(_identifier)
Text = Annotated[str, BeforeValidator(_stripped), AfterValidator(_required_text)]
OptionalText = Annotated[str, BeforeValidator(_stripped)]


MAX_AFFECTED_DEVICES = 50_000_000
"""More devices than Great Britain has smart meters: a typing slip (a 4,000-digit count was accepted)."""


class EmergencyNotification(BaseModel):
    """What a supplier tells DCC about an emergency (Non-EPCL) CPL addition it has asked SECAS for."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=4000)

    response_id: Annotated[str, BeforeValidator(_as_text), Identifier, AfterValidator(_required_text)]
    responder: Annotated[str, Identifier, AfterValidator(_trimmed), AfterValidator(_email)]
    # compared with other instants: a zoneless time would be ambiguous
    submitted_at: Annotated[AwareDatetime, _date_text("2026-11-19T10:02:11Z")]
    supplier: Text
    supplier_party_id: Annotated[str, Identifier, AfterValidator(_party_id)]
    contact_name: OptionalText = ""
    contact_phone: OptionalText = ""
    secas_reference: Annotated[
        str,
        Identifier,
        AfterValidator(_ascii),
        AfterValidator(normalise_identifier),
        AfterValidator(_required_text),
    ]
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
    affected_devices: Annotated[int, BeforeValidator(_not_boolean)] = Field(ge=0, le=MAX_AFFECTED_DEVICES)
    planned_start: Annotated[date | None, BeforeValidator(_calendar_date), _date_text("2026-11-30")] = None
    image_hash: Annotated[str | None, BeforeValidator(_hex_text), AfterValidator(_optional_hash)] = None
    declaration: Annotated[bool, BeforeValidator(_declaration)]

    @field_validator("*", mode="before")
    @classmethod
    def _within_limit(cls, value: Any, info: ValidationInfo) -> Any:
        """Runs before every other rule, so that nothing long is normalised, parsed or echoed."""
        if isinstance(value, str) and info.field_name is not None:
            limit = max_length(info.field_name, info.context)
            length = len(value.strip())
            if length > limit:
                raise ValueError(f"is too long: {length} characters, the limit is {limit}")
        return value

    @property
    def responder_domain(self) -> str:
        """The domain of the responder's address as typed: compare it by ``addresses.comparable_domain``."""
        return self.responder.rsplit("@", 1)[1]

    @property
    def device_model(self) -> DeviceModel:
        return DeviceModel(self.device_type.value, self.manufacturer_id, self.model_id, self.hardware_version)

    @property
    def dmc(self) -> DeviceModelCombination:
        """The device model combination the supplier asks to have loaded (new firmware)."""
        return DeviceModelCombination(*self.device_model, self.new_firmware_version)
