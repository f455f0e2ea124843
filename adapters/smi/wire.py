"""The SMI contract's JSON and paths (see ``openapi.yaml``), and reading its problem+json errors."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from adapters.http_retry import body_cut, excerpt
from flows.domain.cpl import DeviceModelCombination
from flows.errors import BadInput, PermanentError
from flows.ports import InventoryRecord

COLLECTION = "/device-models"
_NAMES = {
    "device_type": "deviceType",
    "manufacturer_id": "manufacturerId",
    "model_id": "modelId",
    "hardware_version": "hardwareVersion",
    "firmware_version": "firmwareVersion",
    "cpl_entry_id": "cplEntryId",
    "s1sp": "s1sp",
    "response_id": "responseId",
    "status": "status",
}
_KEY_FIELDS = DeviceModelCombination._fields


class SmiContractError(PermanentError):
    """The SMI answered off its contract (``openapi.yaml``): a key missing, another device model.

    Permanent: the SMI would answer the same way again (a replayed key gets the very same answer), so
    retrying only hides it; the run fails at once and shows what was wrong, for an operator to take up
    with DCC. Never read as something else (a short page, a load that happened).
    """


IDENTIFIER = re.compile(r"(?!\.{1,2}$)[^/\s]{1,64}")
"""What the contract takes as one part of a combination: no slash or white space, not "." or ".."."""


MAX_KEY_CHARS = 255  # the contract's limit on Idempotency-Key
_KEY_CHAR = re.compile(r"[\x21-\x7e]")  # visible ASCII: what any HTTP stack sends as it is
_DIGEST_CHARS = len("~sha256:") + 64


def key_header(key: str) -> str:
    """The ``Idempotency-Key`` header for the bridge's key: the key itself when it is visible ASCII and
    at most 255 characters; else its visible ASCII characters, cut to fit, then ``~sha256:`` and the
    SHA-256 of the whole key (UTF-8). Deterministic, so a retry sends the same header; distinct keys
    get distinct headers.
    """
    if len(key) <= MAX_KEY_CHARS and all(_KEY_CHAR.fullmatch(char) for char in key):
        return key
    readable = "".join(char if _KEY_CHAR.fullmatch(char) else "_" for char in key)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{readable[: MAX_KEY_CHARS - _DIGEST_CHARS]}~sha256:{digest}"


def resource_path(dmc: DeviceModelCombination) -> str:
    """``/device-models/{type}/{manufacturer}/{model}/{hardware}/{firmware}``, each part percent-encoded."""
    for name, value in zip(_KEY_FIELDS, dmc, strict=True):
        if not IDENTIFIER.fullmatch(value):
            raise BadInput(f"device model {dmc.key!r}: {name} {value!r} cannot be sent to the SMI")
    return COLLECTION + "".join("/" + quote(value, safe="") for value in dmc)


def fields_body(record: InventoryRecord) -> dict[str, str]:
    """The PUT body: every field but the combination itself, which the path carries."""
    return {_NAMES[name]: str(getattr(record, name)) for name in _NAMES if name not in _KEY_FIELDS}


def to_wire(record: InventoryRecord) -> dict[str, str]:
    """A ``DeviceModel`` as the SMI shows it (the test server uses this too)."""
    return {wire: str(getattr(record, name)) for name, wire in _NAMES.items()}


def from_wire(data: Any, what: str) -> InventoryRecord:
    """A ``DeviceModel`` the SMI sent; anything else is a ``SmiContractError`` (the two sides disagree)."""
    if not isinstance(data, dict):
        raise SmiContractError(f"{what}: expected a device model, got {type(data).__name__}")
    try:
        return InventoryRecord.model_validate({name: data.get(wire) for name, wire in _NAMES.items()})
    except ValidationError as error:
        raise SmiContractError(
            f"{what}: the SMI sent a device model the bridge cannot read: {error}"
        ) from error


def device_model_of(data: dict[str, Any], dmc: DeviceModelCombination, what: str) -> InventoryRecord:
    """The ``deviceModel`` a write's answer must carry, for the very combination written."""
    if "deviceModel" not in data:
        raise SmiContractError(f"{what}: the answer has no deviceModel, which the contract requires")
    record = from_wire(data["deviceModel"], what)
    if record.dmc != dmc:
        raise SmiContractError(f"{what}: answered with {record.dmc.key}, not {dmc.key}")
    return record


def json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response's JSON object; a body that is not one is a ``PermanentError``."""
    try:
        data = response.json()
    except ValueError as error:
        raise PermanentError(
            f"{what}: HTTP {response.status_code} without JSON{excerpt(response)}"
        ) from error
    if not isinstance(data, dict):
        raise PermanentError(f"{what}: HTTP {response.status_code}: expected a JSON object")
    return data


def problem_type(response: httpx.Response) -> str:
    """The problem+json ``type`` of an error response, or "" when it has none."""
    data = _problem(response)
    kind = data.get("type") if data is not None else None
    return kind if isinstance(kind, str) else ""


def _problem(response: httpx.Response) -> dict[str, Any] | None:
    """An error response's JSON object; None for anything else, and for a body read only in part
    (``http_retry.read_bounded``), whose start might parse (a problem padded with white space) but is
    not what the SMI said."""
    if body_cut(response):
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def refusal(response: httpx.Response, what: str) -> Exception:
    """The bridge's error for a final answer that is not a success (transient ones never get here).

    400 and 422 say the request itself is wrong (``BadInput``: a reused idempotency key is one); any
    other status, 401 and 403 included, is a ``PermanentError``. Both name the status and the problem.
    """
    data = _problem(response)
    if data is not None and "title" in data:
        said = f": {data.get('title')}" + (f" ({data['detail']})" if data.get("detail") else "")
    else:
        said = excerpt(response)
    message = f"{what}: HTTP {response.status_code}{said}"
    return BadInput(message) if response.status_code in (400, 422) else PermanentError(message)
