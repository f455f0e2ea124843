"""``HttpInventory``: the Azure ``Inventory``, DCC's SMI adaptor over HTTP, as ``openapi.yaml`` says."""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapters.http_retry import HttpRetry, attempt, call_with_retry, retry_after
from adapters.smi.tokens import RenewableToken
from adapters.smi.wire import (
    COLLECTION,
    SmiContractError,
    device_model_of,
    fields_body,
    from_wire,
    json_body,
    key_header,
    problem_type,
    refusal,
    resource_path,
)
from flows.domain.cpl import DeviceModelCombination
from flows.errors import BadInput, TransientError
from flows.ports import InventoryRecord, UpsertOutcome

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
NOT_FOUND = "urn:smi:problem:device-model-not-found"
MAX_PAGES = 10_000
MAX_PAGE_SIZE = 500  # the contract's limit on ``limit``
SUCCESS = frozenset({200, 201})
"""The statuses whose JSON body the client reads; any other answer's body is read only in part."""
CLAIMS = re.compile(r'claims="([^"]*)"')


class HttpInventory:
    """The SMI's device model register over HTTP: the same semantics as the embedded ``SqliteInventory``.

    Every write carries ``Idempotency-Key`` (``key_header``: a key that is not visible ASCII or is over
    255 characters goes as a readable prefix and its SHA-256); the SMI answers a repeated key with its
    kept response, marked ``Idempotent-Replayed: true``, and changes nothing. So writes are retried
    safely (on 409, 429, 5xx and transport failures, honouring Retry-After, within ``retry``), and a
    replay is read like this:

    - replayed on the effect's first attempt: the key was used by an earlier effect, so this one changed
      nothing (``UNCHANGED``, ``False``), as with the embedded inventory;
    - replayed after an earlier attempt failed, this call's own or the engine's (``attempt`` 2 or later:
      the wiring gives this adapter ``NO_RETRY`` and the engine retries): that attempt reached the SMI
      and only its answer was lost, so the kept answer is this effect's own (``CREATED``, ``True``...).

    The same key with a different record is refused by the SMI (422) and raised as ``BadInput``: the
    embedded inventory would instead answer ``UNCHANGED``; either way a changed record needs a new key.
    An answer off the contract (a page without ``nextCursor``, a write's answer without the
    ``deviceModel`` it was about) is a ``SmiContractError``, permanent: never read as a last page or a load.
    ``token`` gives a bearer token for each attempt (``CredentialToken`` caches one from azure-identity).
    A 401 to a token that can be renewed (``RenewableToken``) is answered by renewing it and sending the
    request once more, within the same call; a second 401 is final (``PermanentError``).
    Only a success's body is read whole: an error's is read to ``http_retry.BODY_LIMIT`` bytes, and one
    cut there is quoted in part, never parsed as a problem.
    """

    def __init__(
        self,
        base_url: str,
        client: httpx.Client,
        token: Callable[[], str],
        *,
        retry: HttpRetry | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        page_size: int = 100,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise BadInput(f"SMI base URL {base_url!r} must be an absolute http(s) URL")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise BadInput(f"SMI page size {page_size} is not 1 to {MAX_PAGE_SIZE}")
        self._base = str(url).rstrip("/")
        self._client = client
        self._token = token
        self._retry = retry or HttpRetry()
        self._sleep = sleep
        self._page_size = page_size

    def upsert(self, record: InventoryRecord, *, idempotency_key: str, attempt: int = 1) -> UpsertOutcome:
        path = resource_path(record.dmc)
        response, first_try_replayed = self._send(
            "PUT", path, key=idempotency_key, body=fields_body(record), engine_attempt=attempt
        )
        if response.status_code not in (200, 201):
            raise refusal(response, f"SMI PUT {path}")
        data = json_body(response, f"SMI PUT {path}")
        try:
            outcome = UpsertOutcome(str(data.get("outcome")))
        except ValueError as error:
            raise SmiContractError(f"SMI PUT {path}: unknown outcome {data.get('outcome')!r}") from error
        if (response.status_code == 201) != (outcome is UpsertOutcome.CREATED):
            raise SmiContractError(f"SMI PUT {path}: HTTP {response.status_code} with outcome {outcome}")
        device_model_of(data, record.dmc, f"SMI PUT {path}")
        return UpsertOutcome.UNCHANGED if first_try_replayed else outcome

    def withdraw(self, dmc: DeviceModelCombination, *, idempotency_key: str, attempt: int = 1) -> bool:
        path = resource_path(dmc) + "/withdrawal"
        response, first_try_replayed = self._send("POST", path, key=idempotency_key, engine_attempt=attempt)
        if response.status_code == 404 and problem_type(response) == NOT_FOUND:
            return False
        if response.status_code != 200:
            raise refusal(response, f"SMI POST {path}")
        data = json_body(response, f"SMI POST {path}")
        outcome = data.get("outcome")
        if outcome not in ("withdrawn", "already-withdrawn"):
            raise SmiContractError(f"SMI POST {path}: unknown outcome {outcome!r}")
        device_model_of(data, dmc, f"SMI POST {path}")
        return outcome == "withdrawn" and not first_try_replayed

    def get(self, dmc: DeviceModelCombination) -> InventoryRecord | None:
        path = resource_path(dmc)
        response, _ = self._send("GET", path)
        if response.status_code == 404 and problem_type(response) == NOT_FOUND:
            return None
        if response.status_code != 200:
            raise refusal(response, f"SMI GET {path}")
        record = from_wire(json_body(response, f"SMI GET {path}"), f"SMI GET {path}")
        if record.dmc != dmc:
            raise SmiContractError(f"SMI GET {path}: answered with {record.dmc.key}")
        return record

    def all(self) -> list[InventoryRecord]:
        """Every record, whatever its status, in the SMI's order (by device model combination)."""
        records: list[InventoryRecord] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"limit": str(self._page_size)} | ({"cursor": cursor} if cursor else {})
            response, _ = self._send("GET", COLLECTION, params=params)
            if response.status_code != 200:
                raise refusal(response, f"SMI GET {COLLECTION}")
            page = json_body(response, f"SMI GET {COLLECTION}")
            if "items" not in page or "nextCursor" not in page:  # a page without it is not the last one
                missing = ", ".join(key for key in ("items", "nextCursor") if key not in page)
                raise SmiContractError(f"SMI GET {COLLECTION}: a page without {missing}")
            items, following = page["items"], page["nextCursor"]
            if not isinstance(items, list) or not (following is None or isinstance(following, str)):
                raise SmiContractError(
                    f"SMI GET {COLLECTION}: not a page of device models (items, nextCursor)"
                )
            records.extend(from_wire(item, f"SMI GET {COLLECTION}") for item in items)
            if following is None:
                return records
            if not following or following == cursor:
                raise SmiContractError(f"SMI GET {COLLECTION}: nextCursor {following!r} leads nowhere")
            cursor = following
        raise SmiContractError(f"SMI GET {COLLECTION}: more than {MAX_PAGES} pages")

    def _send(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        engine_attempt: int = 1,
    ) -> tuple[httpx.Response, bool]:
        """The final response, retried while transient, and whether it was replayed on the effect's first
        attempt: ``engine_attempt`` is the engine's (1 first); this adapter's own retries count on from it."""
        what = f"SMI {method} {path}"
        attempts = engine_attempt - 1
        renewed = False

        def send(bearer: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
            if key is not None:
                headers[IDEMPOTENCY_HEADER] = key_header(key)
            request = self._client.build_request(
                method, self._base + path, headers=headers, json=body, params=params
            )
            # Only a success's JSON is read whole; an error's body is read to http_retry's limit.
            return attempt(lambda: self._client.send(request, stream=True), what, read_whole=SUCCESS)

        def once() -> httpx.Response:
            nonlocal attempts, renewed
            attempts += 1
            bearer = self._token()
            response = send(bearer)
            if response.status_code == 401 and not renewed and isinstance(self._token, RenewableToken):
                renewed = True  # once per call: a fresh token refused too is a real refusal
                fresh = self._token.renew(bearer, claims=claims_challenge(response))
                if fresh != bearer:
                    response = send(fresh)
            if response.status_code == 409:  # the same key still being processed
                raise TransientError(f"{what}: HTTP 409, key in progress", retry_after=retry_after(response))
            return response

        response = call_with_retry(once, self._retry, sleep=self._sleep)
        replayed = response.headers.get(REPLAYED_HEADER, "").lower() == "true"
        return response, replayed and attempts == 1


def claims_challenge(response: httpx.Response) -> str | None:
    """The claims a 401's ``WWW-Authenticate`` asks for (base64 in a CAE challenge), if it names any."""
    found = CLAIMS.search(response.headers.get("WWW-Authenticate", ""))
    if not found:
        return None
    try:
        return base64.b64decode(found.group(1) + "==", validate=False).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None
