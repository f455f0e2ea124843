"""Azure SDK errors translated into the bridge's error tree at the storage boundary.

The SDKs already retry a few times (their default retry policies) before an error gets here; what is
still transient then (no answer, 408, 429, 5xx) becomes ``TransientError`` so the flow engine may
retry the whole action later, and anything else ``PermanentError``. Messages name the operation and
the service's status and error code only: never a URL, a header or the connection string.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from adapters.identity import TokenServiceBusy, token_failure
from adapters.retry_after import is_transient, retry_after_seconds
from flows.errors import PermanentError, TransientError


class DocumentTooLarge(PermanentError):
    """A record too big to keep in one table entity, even compressed."""


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Run a storage call; an ``AzureError`` escaping it is raised again as a ``BridgeError``.

    Callers handle the outcomes they expect (``ResourceExistsError`` on insert-or-nothing, ...) inside
    the block; only what they let escape is translated.
    """
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientError(f"{what}: no answer from Azure Storage ({type(error).__name__})") from error
    except TokenServiceBusy as error:  # raised through the SDK by the credential's hook, as it is
        raise TransientError(
            f"{what}: no token for Azure Storage: {error}", retry_after=error.retry_after
        ) from error
    except ClientAuthenticationError as error:  # before HttpResponseError, which it is: no token, or refused
        raise token_failure(error).error(f"{what}: no token for Azure Storage") from error
    except HttpResponseError as error:
        status = error.status_code
        code = getattr(error, "error_code", None)
        answer = f"{what}: Azure Storage answered {status}" + (f" ({code})" if code else "")
        if status is not None and is_transient(status):
            raise TransientError(answer, retry_after=_retry_after(error)) from error
        raise PermanentError(answer) from error
    except AzureError as error:
        raise PermanentError(f"{what}: {type(error).__name__}") from error


def _retry_after(error: HttpResponseError) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    return retry_after_seconds(headers.get("Retry-After"), date=headers.get("Date"))
