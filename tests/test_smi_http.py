"""``HttpInventory`` against a real loopback SMI (``tests/smi_server.py``), and the OpenAPI contract both
keep to: outcomes, idempotency keys, bearer tokens, retries on 429/503/dropped connections, paging."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openapi_spec_validator
import pytest
import yaml
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential

from adapters.http_retry import NO_RETRY, HttpRetry
from adapters.identity import credential_options
from adapters.smi import OPENAPI, CredentialToken, HttpInventory, SmiContractError
from flows.domain.cpl import DeviceModelCombination
from flows.errors import BadInput, PermanentError, TransientError
from flows.ports import InventoryRecord, InventoryStatus, UpsertOutcome
from flows.settings import Settings
from flows.wiring import _credential as bridge_credential  # the credential exactly as the bridge builds it
from tests.smi_server import BASE_PATH, SmiServer
from tests.token_server import AADSTS_INVALID_SECRET, BUSY, TENANT, Answer, TokenServer

SCOPE = "api://smi-adaptor/.default"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCredential:
    """Stands in for azure-identity's ``DefaultAzureCredential``: there is no Entra ID here to issue real
    tokens, and the bridge needs only ``get_token(scope)``. Each call issues ``token-<n>``, valid an hour."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.asked: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, claims: str | None = None) -> AccessToken:
        self.asked.append(scopes)
        return AccessToken(f"token-{len(self.asked)}", int(self.clock()) + 3600)


@pytest.fixture
def smi() -> Iterator[SmiServer]:
    with SmiServer() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def inventory(smi: SmiServer, http: httpx.Client, sleeps: list[float]) -> HttpInventory:
    return HttpInventory(smi.url, http, lambda: "token-1", sleep=sleeps.append)


def a_record(firmware: str = "0203", **changes: str) -> InventoryRecord:
    fields = {
        "device_type": "ESME",
        "manufacturer_id": "1A2B",
        "model_id": "0102",
        "hardware_version": "0001",
        "firmware_version": firmware,
        "cpl_entry_id": "S1-000123",
        "s1sp": "S1SP-NORTH",
        "response_id": "R-0001",
    }
    return InventoryRecord.model_validate(fields | changes)


def writes(smi: SmiServer) -> list[tuple[str, str, int, str | None]]:
    return [(seen.method, seen.path, seen.status, seen.headers.get("idempotency-key")) for seen in smi.seen]


def test_upsert_answers_created_then_unchanged_then_updated(inventory: HttpInventory, smi: SmiServer) -> None:
    record = a_record()

    assert inventory.upsert(record, idempotency_key="load-1") is UpsertOutcome.CREATED
    assert inventory.upsert(record, idempotency_key="load-2") is UpsertOutcome.UNCHANGED
    changed = a_record(s1sp="S1SP-SOUTH")
    assert inventory.upsert(changed, idempotency_key="load-3") is UpsertOutcome.UPDATED

    assert inventory.get(record.dmc) == changed
    path = f"{BASE_PATH}/device-models/ESME/1A2B/0102/0001/0203"
    assert writes(smi) == [
        ("PUT", path, 201, "load-1"),
        ("PUT", path, 200, "load-2"),
        ("PUT", path, 200, "load-3"),
        ("GET", path, 200, None),
    ]
    assert (
        smi.seen[0].body
        == b'{"cplEntryId":"S1-000123","s1sp":"S1SP-NORTH","responseId":"R-0001","status":"active"}'
    )


def test_the_same_key_twice_changes_nothing_and_is_sent_each_time(
    inventory: HttpInventory, smi: SmiServer
) -> None:
    record = a_record()

    assert inventory.upsert(record, idempotency_key="smi/load/R-0001") is UpsertOutcome.CREATED
    assert inventory.upsert(record, idempotency_key="smi/load/R-0001") is UpsertOutcome.UNCHANGED

    assert [seen.headers["idempotency-key"] for seen in smi.seen] == ["smi/load/R-0001"] * 2
    assert [seen.status for seen in smi.seen] == [201, 201]  # the kept answer, replayed
    assert len(smi.records) == 1


@pytest.mark.parametrize(
    "key",
    ["smi/load/Réponse-0001", "smi/load/" + "R" * 300, "smi/load/R 0001\n"],
    ids=["non-ascii", "over-255", "space-and-newline"],
)
def test_a_key_http_cannot_carry_as_it_is_goes_as_a_prefix_and_its_sha256(
    inventory: HttpInventory, smi: SmiServer, key: str
) -> None:
    record = a_record()

    assert inventory.upsert(record, idempotency_key=key) is UpsertOutcome.CREATED
    assert inventory.upsert(record, idempotency_key=key) is UpsertOutcome.UNCHANGED  # the same header again

    sent = {seen.headers["idempotency-key"] for seen in smi.seen}
    assert len(sent) == 1
    [header] = sent
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert header.startswith("smi/load/R") and header.endswith(f"~sha256:{digest}")
    assert len(header) <= 255 and header.isascii() and header.isprintable() and " " not in header


def test_long_keys_that_differ_only_at_the_end_stay_apart(inventory: HttpInventory, smi: SmiServer) -> None:
    inventory.upsert(a_record(), idempotency_key="smi/load/" + "R" * 300 + "/1")
    inventory.upsert(a_record(firmware="0204"), idempotency_key="smi/load/" + "R" * 300 + "/2")

    assert [seen.status for seen in smi.seen] == [201, 201]  # two keys: no 422 for a reused one
    assert len({seen.headers["idempotency-key"] for seen in smi.seen}) == 2


def test_the_same_key_with_another_record_is_refused(inventory: HttpInventory, smi: SmiServer) -> None:
    inventory.upsert(a_record(), idempotency_key="smi/load/R-0001")

    with pytest.raises(BadInput, match=r"HTTP 422: Idempotency-Key used for another request"):
        inventory.upsert(a_record(s1sp="S1SP-SOUTH"), idempotency_key="smi/load/R-0001")

    assert inventory.get(a_record().dmc) == a_record()


def test_withdraw_says_whether_this_call_withdrew_it(inventory: HttpInventory, smi: SmiServer) -> None:
    record = a_record()
    assert inventory.withdraw(record.dmc, idempotency_key="withdraw-0") is False  # never loaded
    inventory.upsert(record, idempotency_key="load-1")

    assert inventory.withdraw(record.dmc, idempotency_key="withdraw-1") is True
    assert inventory.withdraw(record.dmc, idempotency_key="withdraw-1") is False  # a repeat
    assert inventory.withdraw(record.dmc, idempotency_key="withdraw-2") is False  # already withdrawn

    stored = inventory.get(record.dmc)
    assert stored is not None and stored.status is InventoryStatus.WITHDRAWN
    assert [(seen.method, seen.path.rsplit("/", 1)[-1], seen.status) for seen in smi.seen[:2]] == [
        ("POST", "withdrawal", 404),
        ("PUT", "0203", 201),
    ]


def test_get_answers_none_for_a_combination_never_loaded(inventory: HttpInventory) -> None:
    assert inventory.get(DeviceModelCombination("ESME", "1A2B", "0102", "0001", "9999")) is None


def test_identifiers_are_sent_exactly_and_percent_encoded(inventory: HttpInventory, smi: SmiServer) -> None:
    record = a_record(firmware="102", model_id="A+B%")  # not hex on purpose: the path must cope

    inventory.upsert(record, idempotency_key="odd")

    assert smi.seen[0].path == f"{BASE_PATH}/device-models/ESME/1A2B/A%2BB%25/0001/102"
    assert inventory.get(record.dmc) == record
    assert inventory.get(a_record(firmware="0102", model_id="A+B%").dmc) is None  # 0102 is not 102


@pytest.mark.parametrize("firmware", ["..", ".", "", "02 03", "02/03", "0" * 65])
def test_an_identifier_the_contract_does_not_take_is_refused_unsent(
    inventory: HttpInventory, smi: SmiServer, firmware: str
) -> None:
    with pytest.raises(BadInput, match=f"firmware_version {re.escape(repr(firmware))} cannot be sent"):
        inventory.upsert(a_record(firmware=firmware), idempotency_key="bad")
    with pytest.raises(BadInput):
        inventory.withdraw(a_record(firmware=firmware).dmc, idempotency_key="bad")
    assert smi.seen == []


def test_all_follows_the_pages_in_order(smi: SmiServer, http: httpx.Client) -> None:
    inventory = HttpInventory(smi.url, http, lambda: "token-1", page_size=2)
    records = [a_record(firmware=f"02{n:02}") for n in (4, 1, 5, 3, 2)]
    for number, record in enumerate(records):
        inventory.upsert(record, idempotency_key=f"load-{number}")

    assert inventory.all() == sorted(records, key=lambda record: record.dmc)

    pages = [seen for seen in smi.seen if seen.path == f"{BASE_PATH}/device-models"]
    assert [seen.query.get("limit") for seen in pages] == [["2"]] * 3
    assert ["cursor" in seen.query for seen in pages] == [False, True, True]


# --- answers off the contract: refused, never read as something else -------------------------------


def without(key: str) -> Any:
    return lambda answer: {name: value for name, value in answer.items() if name != key}


def test_a_page_without_next_cursor_is_refused_not_read_as_the_last(
    smi: SmiServer, http: httpx.Client
) -> None:
    inventory = HttpInventory(smi.url, http, lambda: "token-1", page_size=2)
    for number in range(5):
        inventory.upsert(a_record(firmware=f"02{number:02}"), idempotency_key=f"load-{number}")
    smi.misanswer_next(without("nextCursor"))  # the contract requires it on every page, null on the last

    with pytest.raises(SmiContractError, match=r"GET /device-models: .*nextCursor"):
        inventory.all()
    smi.misanswer_next(lambda page: page | {"nextCursor": 2})
    with pytest.raises(SmiContractError, match="nextCursor"):
        inventory.all()
    assert len(inventory.all()) == 5


def test_an_upsert_answer_without_the_device_model_is_refused(
    inventory: HttpInventory, smi: SmiServer
) -> None:
    smi.misanswer_next(without("deviceModel"))  # 201 {"outcome": "created"} only

    with pytest.raises(SmiContractError, match=r"PUT .*: .*deviceModel"):
        inventory.upsert(a_record(), idempotency_key="load-1")


def test_an_upsert_answered_with_another_combination_is_refused(
    inventory: HttpInventory, smi: SmiServer
) -> None:
    smi.misanswer_next(
        lambda answer: answer | {"deviceModel": answer["deviceModel"] | {"firmwareVersion": "0999"}}
    )

    with pytest.raises(SmiContractError, match=r"answered with ESME/1A2B/0102/0001/0999"):
        inventory.upsert(a_record(), idempotency_key="load-1")


def test_a_withdrawal_answer_without_the_device_model_is_refused(
    inventory: HttpInventory, smi: SmiServer
) -> None:
    inventory.upsert(a_record(), idempotency_key="load-1")
    smi.misanswer_next(without("deviceModel"))

    with pytest.raises(SmiContractError, match=r"POST .*/withdrawal: .*deviceModel"):
        inventory.withdraw(a_record().dmc, idempotency_key="withdraw-1")


def test_a_contract_breach_is_permanent_not_retried(smi: SmiServer, http: httpx.Client) -> None:
    sleeps: list[float] = []
    inventory = HttpInventory(
        smi.url, http, lambda: "token-1", retry=HttpRetry(attempts=3), sleep=sleeps.append
    )
    smi.misanswer_next(without("deviceModel"))

    with pytest.raises(PermanentError):  # the SMI answers the same way again: an operator must see it
        inventory.upsert(a_record(), idempotency_key="load-1")
    assert sleeps == [] and len(smi.seen) == 1


def test_the_bearer_token_is_sent_and_fetched_again_near_its_expiry(
    smi: SmiServer, http: httpx.Client
) -> None:
    clock = Clock()
    credential = FakeCredential(clock)
    smi.tokens = {"token-1", "token-2"}
    inventory = HttpInventory(smi.url, http, CredentialToken(credential, SCOPE, clock=clock))
    dmc = a_record().dmc

    inventory.get(dmc)
    clock.now += 3600 - 301  # still over five minutes left: the cached token
    inventory.get(dmc)
    clock.now += 2  # under five minutes left: a new one
    inventory.get(dmc)

    assert credential.asked == [(SCOPE,), (SCOPE,)]
    assert [seen.headers["authorization"] for seen in smi.seen] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_a_refused_token_is_permanent_and_not_retried(smi: SmiServer, http: httpx.Client) -> None:
    sleeps: list[float] = []
    inventory = HttpInventory(smi.url, http, lambda: "expired", sleep=sleeps.append)

    with pytest.raises(PermanentError, match="HTTP 401: A valid bearer token is required"):
        inventory.get(a_record().dmc)
    assert len(smi.seen) == 1 and sleeps == []


def test_a_refused_token_is_renewed_once_within_the_call(
    smi: SmiServer, http: httpx.Client, app_service_identity: TokenServer
) -> None:
    """azure-identity's real managed identity credential: it keeps tokens itself, so a renewal must ask it
    afresh (a claims challenge), or it would hand back the token the SMI refused."""
    token = CredentialToken(ManagedIdentityCredential(**credential_options()), SCOPE)
    inventory = HttpInventory(smi.url, http, token, retry=NO_RETRY)
    dmc = a_record().dmc
    assert inventory.get(dmc) is None

    smi.tokens = {"token-2"}  # the SMI stops taking token-1 before its expiry (a key rollover, say)
    app_service_identity.token = "token-2"
    assert inventory.get(dmc) is None  # 401, a new token, the same request again
    assert inventory.get(dmc) is None  # the new token is kept

    smi.tokens = set()  # a refusal a new token does not cure: one renewal only, then final
    app_service_identity.token = "token-3"
    with pytest.raises(PermanentError, match="HTTP 401"):
        inventory.get(dmc)

    assert [(seen.headers["authorization"], seen.status) for seen in smi.seen] == [
        ("Bearer token-1", 404),
        ("Bearer token-1", 401),
        ("Bearer token-2", 404),
        ("Bearer token-2", 404),
        ("Bearer token-2", 401),
        ("Bearer token-3", 401),
    ]
    assert len(app_service_identity.hits) == 3


def test_a_401_to_a_plain_token_is_final(smi: SmiServer, http: httpx.Client) -> None:
    inventory = HttpInventory(smi.url, http, lambda: "expired", retry=NO_RETRY)

    with pytest.raises(PermanentError, match="HTTP 401"):
        inventory.get(a_record().dmc)
    assert len(smi.seen) == 1  # nothing to renew: no second request


def test_a_credential_that_cannot_authenticate_is_permanent() -> None:
    class Refusing:
        def get_token(self, *scopes: str, claims: str | None = None) -> AccessToken:
            raise ClientAuthenticationError("AADSTS7000215: Invalid client secret provided.")

    with pytest.raises(PermanentError, match="AADSTS7000215"):
        CredentialToken(Refusing(), SCOPE)()


# --- the token service: azure-identity's real credentials against a loopback one (tests/token_server.py)

IDENTITY_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "MSI_ENDPOINT",
)


@pytest.fixture
def app_service_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenServer]:
    """A managed-identity endpoint as App Service and Functions give one (what the bridge uses in Azure)."""
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with TokenServer() as tokens:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{tokens.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "identity-header")
        yield tokens


def bridge_token(tmp_path: Path) -> CredentialToken:
    return CredentialToken(bridge_credential(Settings(home=tmp_path, smi_scope=SCOPE)), SCOPE)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(BUSY.status, BUSY.body, retry_after=7),
        Answer(429, {"error": "throttled", "error_description": "Too many requests"}),
        Answer(500, "<html><body>Internal Server Error</body></html>"),
    ],
    ids=["503", "429", "500-html"],
)
def test_a_busy_token_service_is_transient_and_over_once_it_answers(
    app_service_identity: TokenServer, tmp_path: Path, answer: Answer
) -> None:
    token = bridge_token(tmp_path)
    app_service_identity.answers.append(answer)

    with pytest.raises(
        TransientError, match=f"no token for {re.escape(SCOPE)}: .*HTTP {answer.status}"
    ) as raised:
        token()
    assert raised.value.retry_after == answer.retry_after
    assert len(app_service_identity.hits) == 1  # the engine retries it, not azure-identity as well

    assert token() == "token-1"  # the engine's next attempt: the outage is over


def test_an_unreachable_token_service_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{port}")  # IMDS, nobody there
    # retry_total=0: azure-core would otherwise retry the connection for a minute before failing.
    credential = ManagedIdentityCredential(retry_total=0)

    with pytest.raises(TransientError, match="token service was not reached"):
        CredentialToken(credential, SCOPE)()


def test_a_refusal_by_the_managed_identity_endpoint_stays_permanent(
    app_service_identity: TokenServer, tmp_path: Path
) -> None:
    app_service_identity.answers.append(
        Answer(400, {"statusCode": 400, "message": "Unable to load the proper Managed Identity."})
    )

    with pytest.raises(PermanentError, match="Unable to load the proper Managed Identity"):
        bridge_token(tmp_path)()


def test_entra_id_busy_is_transient_and_an_invalid_secret_permanent(tmp_path: Path) -> None:
    with TokenServer(tls_dir=tmp_path) as entra:
        credential = ClientSecretCredential(
            TENANT,
            "client-1",
            "not-the-secret",
            authority=entra.url,
            disable_instance_discovery=True,
            connection_verify=entra.ca_file,
            **credential_options(),  # as flows.wiring builds it; there the authority is Entra ID's own
        )
        token = CredentialToken(credential, SCOPE)
        entra.answers.extend(
            [Answer(503, "<html>Service Unavailable</html>", retry_after=3), AADSTS_INVALID_SECRET]
        )

        with pytest.raises(TransientError, match="HTTP 503") as raised:
            token()
        assert raised.value.retry_after == 3.0
        with pytest.raises(PermanentError, match="AADSTS7000215") as refused:
            token()
        assert "not-the-secret" not in str(refused.value)
        assert token() == "token-1"
    assert len(entra.hits) == 3


def test_a_503_with_retry_after_is_waited_out(
    inventory: HttpInventory, smi: SmiServer, sleeps: list[float]
) -> None:
    smi.fail_next(503, retry_after=7)

    assert inventory.upsert(a_record(), idempotency_key="load-1") is UpsertOutcome.CREATED

    assert sleeps == [7.0]
    assert [(seen.status, seen.headers["idempotency-key"]) for seen in smi.seen] == [
        (503, "load-1"),
        (201, "load-1"),
    ]


def test_a_retry_after_date_counts_from_the_servers_date(
    inventory: HttpInventory, smi: SmiServer, sleeps: list[float]
) -> None:
    smi.fail_next(429, retry_after=3, as_date=True)

    inventory.get(a_record().dmc)

    assert sleeps == [3.0]
    assert [seen.status for seen in smi.seen] == [429, 404]


def test_a_dropped_connection_is_retried(
    inventory: HttpInventory, smi: SmiServer, sleeps: list[float]
) -> None:
    smi.drop_next()

    assert inventory.upsert(a_record(), idempotency_key="load-1") is UpsertOutcome.CREATED

    assert sleeps == [0.5]  # the policy's first delay: nothing said how long
    assert [seen.status for seen in smi.seen] == [0, 201]


def test_an_answer_lost_after_the_work_was_done_is_still_this_calls(
    inventory: HttpInventory, smi: SmiServer
) -> None:
    smi.drop_next(after_processing=True)

    assert inventory.upsert(a_record(), idempotency_key="load-1") is UpsertOutcome.CREATED

    assert [seen.status for seen in smi.seen] == [0, 201]  # the second is the kept answer, replayed
    assert len(smi.records) == 1


def test_an_answer_lost_before_the_engines_retry_is_still_this_effects(
    smi: SmiServer, http: httpx.Client
) -> None:
    """As wired: the adapter does not retry (NO_RETRY), the engine does, and says which attempt it makes."""
    inventory = HttpInventory(smi.url, http, lambda: "token-1", retry=NO_RETRY)
    record = a_record()
    smi.drop_next(after_processing=True)
    with pytest.raises(TransientError):
        inventory.upsert(record, idempotency_key="smi/load/R-0001", attempt=1)

    assert inventory.upsert(record, idempotency_key="smi/load/R-0001", attempt=2) is UpsertOutcome.CREATED

    smi.drop_next(after_processing=True)
    with pytest.raises(TransientError):
        inventory.withdraw(record.dmc, idempotency_key="smi/withdraw/R-0001", attempt=1)
    assert inventory.withdraw(record.dmc, idempotency_key="smi/withdraw/R-0001", attempt=2) is True

    # the same keys on another effect's first attempt: nothing changed now
    assert inventory.upsert(record, idempotency_key="smi/load/R-0001") is UpsertOutcome.UNCHANGED
    assert inventory.withdraw(record.dmc, idempotency_key="smi/withdraw/R-0001") is False
    assert [seen.status for seen in smi.seen] == [0, 201, 0, 200, 201, 200]


def test_a_key_still_in_progress_is_retried(
    inventory: HttpInventory, smi: SmiServer, sleeps: list[float]
) -> None:
    smi.fail_next(409, retry_after=1)

    assert inventory.withdraw(a_record().dmc, idempotency_key="withdraw-1") is False

    assert sleeps == [1.0]


def test_retries_stop_at_the_attempt_limit(smi: SmiServer, http: httpx.Client, sleeps: list[float]) -> None:
    inventory = HttpInventory(
        smi.url, http, lambda: "token-1", retry=HttpRetry(attempts=3), sleep=sleeps.append
    )
    for _ in range(3):
        smi.fail_next(503)

    with pytest.raises(TransientError, match="HTTP 503"):
        inventory.get(a_record().dmc)
    assert sleeps == [0.5, 1.0]
    assert len(smi.seen) == 3


def test_a_wait_past_the_time_limit_is_left_to_the_engine(
    inventory: HttpInventory, smi: SmiServer, sleeps: list[float]
) -> None:
    smi.fail_next(503, retry_after=120)

    with pytest.raises(TransientError) as raised:
        inventory.upsert(a_record(), idempotency_key="load-1")

    assert raised.value.retry_after == 120.0
    assert sleeps == []
    assert len(smi.seen) == 1


# --- the contract -----------------------------------------------------------------------------------


def contract() -> dict[str, Any]:
    with OPENAPI.open(encoding="utf-8") as stream:
        document: dict[str, Any] = yaml.safe_load(stream)
    return document


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    document = contract()
    openapi_spec_validator.validate(document)
    assert document["openapi"].startswith("3.1")


def every_operation(inventory: HttpInventory, smi: SmiServer) -> None:
    """Make the client send every kind of request it has, and meet every kind of answer it reads."""
    record = a_record()
    inventory.get(record.dmc)
    inventory.withdraw(record.dmc, idempotency_key="withdraw-0")
    inventory.upsert(a_record(firmware="0999", status="withdrawn"), idempotency_key="load-0")
    inventory.upsert(record, idempotency_key="load-1")
    inventory.upsert(record, idempotency_key="load-1")
    inventory.upsert(a_record(s1sp="S1SP-SOUTH"), idempotency_key="load-2")
    inventory.get(record.dmc)
    inventory.all()
    inventory.withdraw(record.dmc, idempotency_key="withdraw-1")
    smi.fail_next(503, retry_after=1)
    inventory.withdraw(record.dmc, idempotency_key="withdraw-2")
    with pytest.raises(BadInput):
        inventory.upsert(record, idempotency_key="withdraw-2")


def operation_for(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    for template, item in document["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            return {"parameters": item.get("parameters", []), **item[method.lower()]}
    raise AssertionError(f"{method} {path} is not in {OPENAPI.name}")


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (a local JSON pointer) followed."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_request_the_client_makes_is_in_the_contract(inventory: HttpInventory, smi: SmiServer) -> None:
    document = contract()
    every_operation(inventory, smi)

    operations = set()
    for seen in smi.seen:
        assert seen.path.startswith(BASE_PATH)
        operation = operation_for(document, seen.method, seen.path.removeprefix(BASE_PATH))
        assert str(seen.status) in operation["responses"], (seen.method, seen.path, seen.status)
        parameters = [resolve(document, each) for each in operation["parameters"]]
        for parameter in parameters:
            if parameter["in"] == "header" and parameter.get("required"):
                assert parameter["name"].lower() in seen.headers, (
                    operation["operationId"],
                    parameter["name"],
                )
        assert set(seen.query) <= {
            parameter["name"] for parameter in parameters if parameter["in"] == "query"
        }
        assert seen.headers["authorization"].startswith("Bearer ")  # the document's one security scheme
        operations.add(operation["operationId"])
    assert operations == {"getDeviceModel", "listDeviceModels", "upsertDeviceModel", "withdrawDeviceModel"}


def test_every_answer_the_client_reads_is_as_the_contract_says(
    inventory: HttpInventory, smi: SmiServer
) -> None:
    document = contract()
    every_operation(inventory, smi)

    for seen in smi.seen:
        operation = operation_for(document, seen.method, seen.path.removeprefix(BASE_PATH))
        response = resolve(document, operation["responses"][str(seen.status)])
        [(media_type, content)] = response["content"].items()
        assert seen.answer_type == media_type
        validate(jsonschema, document, content["schema"], seen.answer)
        if seen.body:
            [request_content] = operation["requestBody"]["content"].values()
            validate(jsonschema, document, request_content["schema"], json.loads(seen.body))


def validate(jsonschema: Any, document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Check ``instance`` against a schema of the document, its ``#/components/...`` references included."""
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(instance)
