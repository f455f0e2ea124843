"""Microsoft Graph SDK errors translated into the bridge's error tree, at the Graph boundary.

What the SDK raises: ``APIError`` (kiota; ``ODataError`` when Graph sent its error body) with the status
and headers, httpx's transport errors when there was no answer, and azure-identity's errors when no
token could be had (transient when the token service was busy or not reached, ``adapters.identity``;
a refusal is permanent). What still is transient when it gets here (408, 429, 5xx, no answer: the SDK may
already have retried 429/503/504 itself) becomes ``TransientError`` with Graph's Retry-After; a 400 is
``BadInput``; any other answer ``PermanentError``. Messages name the operation, the status and Graph's
error code only: never a URL, a header, a token or Graph's message (which may quote an address).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from datetime import datetime

from adapters.retry_after import is_transient, retry_after_seconds
from flows.errors import BadInput, BridgeError, PermanentError, TransientError


def status_of(error: BaseException) -> int | None:
    """The HTTP status of an SDK ``APIError`` (``None`` for anything else)."""
    from kiota_abstractions.api_error import APIError

    return error.response_status_code if isinstance(error, APIError) else None


def graph_error_code(error: BaseException) -> str | None:
    """Graph's own error code (``resyncRequired``, ``ErrorInvalidRecipients``...) if it sent one."""
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    if isinstance(error, ODataError) and error.error is not None:
        code: str | None = error.error.code
        return code
    return None


def translate(error: BaseException, what: str) -> BaseException:
    """The bridge error to raise (``from error``) for what escaped a Graph call; others unchanged.

    ``what`` names the operation (``"sendMail from ops@dcc.example"``) and leads the message.
    """
    from azure.core.exceptions import AzureError
    from httpx import TransportError
    from kiota_abstractions.api_error import APIError

    from adapters.identity import TokenServiceBusy, token_failure

    if isinstance(error, TokenServiceBusy):
        return token_failure(error).error(f"{what}: no Graph token")
    if isinstance(error, BridgeError):
        return error
    if isinstance(error, APIError):
        return _from_answer(error, what)
    if isinstance(error, TransportError | concurrent.futures.TimeoutError):
        return TransientError(f"{what}: no answer from Microsoft Graph ({type(error).__name__})")
    if isinstance(error, AzureError):  # only azure-identity speaks azure-core here: Graph goes by httpx
        return token_failure(error).error(f"{what}: no Graph token")
    return error


def _from_answer(error: BaseException, what: str) -> BridgeError:
    status = status_of(error)
    code = graph_error_code(error)
    answer = f"{what}: Microsoft Graph answered {status}" + (f" ({code})" if code else "")
    if status is not None and is_transient(status):
        headers = getattr(error, "response_headers", None)
        return TransientError(
            answer, retry_after=retry_after(headers if isinstance(headers, Mapping) else {})
        )
    if status == 400:
        return BadInput(answer)
    return PermanentError(answer)


def retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (see ``adapters.retry_after``), if there is one; a date is
    measured from Graph's Date header when it sent one, else from ``now`` (the clock).

    ``headers`` may be httpx's (case-insensitive) or a plain dict with any spelling of the names.
    """
    named = {name.lower(): value for name, value in headers.items()}
    return retry_after_seconds(named.get("retry-after"), date=named.get("date"), now=now)
