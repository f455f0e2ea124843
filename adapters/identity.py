"""Tokens from azure-identity: a token service's brief outage told apart from a refusal.

azure-identity reports both alike: a managed-identity endpoint or Entra ID answering 503 or 429, or not
reached at all, comes out as ``ClientAuthenticationError`` or ``CredentialUnavailableError``, like an
invalid client secret does, and its MSAL-based credentials (the synchronous managed identity, client
secret and certificate ones) do not even keep the status. So the bridge builds every credential with
``credential_options()``: a response hook that raises ``TokenServiceBusy`` (a ``TransientError`` with
the service's Retry-After) for a 408, 429 or 5xx answer, before azure-identity reads it. It then
surfaces as it is or as the cause of azure-identity's own error, and ``token_failure`` finds it there.
Raising also ends azure-identity's own retries of such an answer: the engine retries, once, by the
action's policy (ARCHITECTURE.md, "one layer retries").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.retry_after import is_transient, retry_after_seconds
from flows.errors import BridgeError, PermanentError, TransientError

if TYPE_CHECKING:
    from azure.core.pipeline import PipelineResponse

MAX_CHAIN = 10


class TokenServiceBusy(TransientError):
    """The token service (managed-identity endpoint, Entra ID) answered 408, 429 or 5xx."""

    def __init__(self, status: int, *, retry_after: float | None = None) -> None:
        super().__init__(f"the token service answered HTTP {status}", retry_after=retry_after)
        self.status = status


def raise_when_busy(response: PipelineResponse[Any, Any]) -> None:
    """azure-core ``raw_response_hook``: a 408, 429 or 5xx from the token service is ``TokenServiceBusy``."""
    answer = response.http_response
    status = answer.status_code
    if is_transient(status):
        raise TokenServiceBusy(status, retry_after=_retry_after(answer.headers))


def credential_options() -> dict[str, Any]:
    """Keyword arguments for every azure-identity credential the bridge builds (sync or async)."""
    return {"raw_response_hook": raise_when_busy}


@dataclass(frozen=True)
class TokenFailure:
    """What a failed ``get_token`` means for the engine; ``reason`` names a status or a type only."""

    transient: bool
    reason: str
    retry_after: float | None = None

    def error(self, message: str) -> BridgeError:
        text = f"{message}: {self.reason}"
        if self.transient:
            return TransientError(text, retry_after=self.retry_after)
        return PermanentError(text)


def token_failure(error: BaseException) -> TokenFailure:
    """Transient when the token service was busy (408, 429, 5xx) or not reached, else permanent.

    Looks along ``error``'s causes: ``TokenServiceBusy`` from the hook; an azure-core error with the
    service's response (azure-identity's async credentials keep it); a transport failure. Anything
    else (an invalid client, AADSTS 4xx, no managed identity here) is a refusal that will recur.
    """
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    for link in _causes(error):
        if isinstance(link, TransientError):
            return TokenFailure(True, str(link), link.retry_after)
        if isinstance(link, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
            return TokenFailure(True, f"the token service was not reached ({type(link).__name__})")
        answer: Any = getattr(link, "response", None)  # azure-core's HttpResponse, when the error kept it
        status = getattr(answer, "status_code", None)
        if isinstance(status, int) and is_transient(status):
            headers = getattr(answer, "headers", None)
            wait = _retry_after(headers) if isinstance(headers, Mapping) else None
            return TokenFailure(True, f"the token service answered HTTP {status}", wait)
    return TokenFailure(False, f"refused ({type(error).__name__})")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    return retry_after_seconds(headers.get("Retry-After"), date=headers.get("Date"))


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or while handling, nearest first (cycles cut)."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and len(chain) < MAX_CHAIN and all(link is not seen for seen in chain):
        chain.append(link)
        link = link.__cause__ or link.__context__
    return chain
