"""Azure Storage signed in with the bridge's default credential: a busy token service is transient, a
refusal permanent, as for the SMI and Graph (found by the diff review: the storage credential had no
hook, so a token service's 503 failed every store call for good). azure-identity's real
``ManagedIdentityCredential``, as ``connect`` builds it, asks a loopback endpoint (tests/token_server.py)."""

from __future__ import annotations

import pytest

from adapters.azure_storage.connect import connect
from adapters.azure_storage.settings import StorageSettings
from flows.errors import PermanentError, TransientError
from tests.test_smi_http import app_service_identity  # noqa: F401 - the fixture, as the SMI tests use it
from tests.token_server import AADSTS_INVALID_SECRET, BUSY, Answer, TokenServer

# HTTPS, or the SDK refuses to send a bearer token; nothing listens on the discard port, and the token
# is asked for before anything is sent there.
UNREACHED = "https://127.0.0.1:9/devstoreaccount1"


def storage() -> StorageSettings:
    return StorageSettings(table_url=UNREACHED, queue_url=UNREACHED, blob_url=UNREACHED)


def test_a_busy_token_service_makes_a_storage_call_transient(app_service_identity: TokenServer) -> None:  # noqa: F811
    app_service_identity.answers.append(Answer(BUSY.status, BUSY.body, retry_after=7))
    with pytest.raises(TransientError, match=r"no token for Azure Storage: .*HTTP 503") as raised:
        connect(storage())  # creating the tables is the first call
    assert raised.value.retry_after == 7
    assert len(app_service_identity.hits) == 1


def test_a_refused_token_makes_a_storage_call_permanent(app_service_identity: TokenServer) -> None:  # noqa: F811
    app_service_identity.answers.append(AADSTS_INVALID_SECRET)
    with pytest.raises(PermanentError, match="no token for Azure Storage: refused"):
        connect(storage())
