"""A wrong or missing setting stops the bridge in one line naming it, rather than changing silently what
the bridge does (found by review on the Azure backend: a misspelt ``BRIDGE_SMI_URI`` left the SMI on
its stand-in, and a supplier was told by e-mail that a model was loaded when it was only in a SQLite
file; the bridge's work queue on another account than the queue triggers' was never read).

Storage is Azurite; the SMI, Teams and Graph are only named (loopback addresses nothing answers) or a
loopback token server, as in tests/test_wiring.py.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from adapters.azure_storage.settings import service_urls
from adapters.functions import runtime
from flows.bootstrap import bootstrap
from flows.errors import BadInput, PermanentError
from flows.settings import NOT_SETTINGS, PROJECT_ROOT, Settings
from tests.support.deployment import own_register_and_form
from tests.test_cli_contract import one_error_line
from tests.test_graph_adapters import pytestmark as sdk_warnings
from tests.test_scenario import RESPONSES, cli
from tests.test_smi_http import app_service_identity  # noqa: F401 - the fixture, as the SMI tests use it
from tests.test_wiring import SYSTEMS
from tests.token_server import AADSTS_INVALID_SECRET, TokenServer

if TYPE_CHECKING:
    from tests.azurite import AzuriteServer

pytest_plugins = ["tests.azurite"]
pytestmark = sdk_warnings

HOST_VARIABLES = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__queueServiceUri",
)
SECRET_PATH = "/workflows/abc/triggers/manual/paths/invoke?sig=teams-s3cret"


@pytest.fixture
def functions_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Functions worker's environment: no host storage unless the test gives one; a fresh bridge."""
    for name in HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    runtime.reset()
    yield
    runtime.reset()


def on_azure(azurite: str, tmp_path: Path, **more: Any) -> Settings:
    return Settings(
        home=tmp_path / "home",
        backend="azure",
        storage_connection=SecretStr(azurite),
        work_queue=f"work-{uuid.uuid4().hex[:12]}",
        **more,
    )


def azure_environment(monkeypatch: pytest.MonkeyPatch, connection: str, **more: str) -> None:
    monkeypatch.setenv("BRIDGE_BACKEND", "azure")
    monkeypatch.setenv("BRIDGE_STORAGE_CONNECTION", connection)
    monkeypatch.setenv("BRIDGE_WORK_QUEUE", f"work-{uuid.uuid4().hex[:12]}")
    for name, value in more.items():
        monkeypatch.setenv(name, value)


# --- 1. a BRIDGE_* variable that is no setting ---------------------------------------------------


def test_a_misspelt_setting_stops_a_command_naming_it_and_the_setting_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SMI_URI", "http://127.0.0.1:9/smi")
    monkeypatch.setenv("bridge_graph_mailboxx", "emergency-cpl@dcc.example")  # read without case
    monkeypatch.setenv("BRIDGE_NOTHING_LIKE_IT", "1")
    assert cli(tmp_path / "home", "intake", RESPONSES) == 2
    line = one_error_line(capsys)
    assert "BRIDGE_SMI_URI (did you mean BRIDGE_SMI_URL?)" in line
    assert "BRIDGE_GRAPH_MAILBOXX (did you mean BRIDGE_GRAPH_MAILBOX?)" in line
    assert re.search(r"BRIDGE_NOTHING_LIKE_IT(,|;)", line)  # named, with nothing it could have meant
    assert not (tmp_path / "home").exists()  # refused before anything was opened or queued


def test_a_misspelt_setting_stops_the_functions_app(
    functions_app: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRIDGE_TEAMS_WEBHOOK", "http://127.0.0.1:9/teams")
    with pytest.raises(BadInput, match=r"BRIDGE_TEAMS_WEBHOOK \(did you mean BRIDGE_TEAMS_WEBHOOK_URL\?\)"):
        runtime.current_app()


def test_an_smi_url_without_its_scope_stops_a_command_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SMI_URL", "http://127.0.0.1:9/smi")
    assert cli(tmp_path / "home", "intake", RESPONSES) == 2
    assert "BRIDGE_SMI_URL is set without BRIDGE_SMI_SCOPE" in one_error_line(capsys)
    assert not list((tmp_path / "home").glob("**/*.eml"))  # refused at the start: nothing was handled


def test_the_names_read_by_others_than_the_settings_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in NOT_SETTINGS:
        monkeypatch.setenv(name, "0 */5 * * * *")
    assert cli(tmp_path / "home", "intake", RESPONSES) == 0


def test_every_setting_the_readme_tables_document_is_known() -> None:
    known = {f"BRIDGE_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    rows = [
        line
        for line in (PROJECT_ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `BRIDGE_")
    ]
    documented = {
        name for row in rows for name in re.findall(r"BRIDGE_[A-Z0-9_]*[A-Z0-9]", row.split(" | ")[0])
    }
    assert len(documented) > 30 and documented <= known, documented - known


def test_the_example_app_settings_are_read_without_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    values = json.loads((PROJECT_ROOT / "local.settings.example.json").read_text())["Values"]
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # no name refused
    assert settings.backend == "azure" and settings.stand_ins() == [] and not settings.allow_stand_ins


# --- 2. on Azure, no system left on its stand-in unless the deployment says so ---------------------


def test_on_azure_a_system_left_on_its_stand_in_is_refused_naming_the_settings_to_set(
    azurite: str, tmp_path: Path
) -> None:
    with pytest.raises(BadInput) as refused:
        bootstrap(on_azure(azurite, tmp_path))
    line = str(refused.value)
    assert "\n" not in line
    for setting in (
        "BRIDGE_SMI_URL",
        "BRIDGE_GRAPH_MAILBOX",
        "BRIDGE_TEAMS_WEBHOOK_URL",
        "BRIDGE_SUPPLIERS",
        "BRIDGE_FORM_DEFINITION",
        "BRIDGE_ALLOW_STAND_INS=true",
    ):
        assert setting in line
    assert not (tmp_path / "home").exists()  # no SMI in a SQLite file, no outbox

    # one system configured: the others are still named, it is not
    with pytest.raises(BadInput) as refused:
        bootstrap(on_azure(azurite, tmp_path, smi_url="http://127.0.0.1:9/smi"))
    assert "BRIDGE_SMI_URL" not in str(refused.value) and "BRIDGE_GRAPH_MAILBOX" in str(refused.value)


def test_a_register_of_the_deployments_own_kept_beside_the_samples_is_no_stand_in(tmp_path: Path) -> None:
    """Only the shipped sample files are stand-ins, not whatever a deployment keeps in that folder."""
    own = PROJECT_ROOT / "samples" / f"own-register-{uuid.uuid4().hex[:8]}.json"
    settings = Settings(home=tmp_path, backend="azure", suppliers=own)
    assert ("BRIDGE_SUPPLIERS", "the supplier register") not in settings.stand_ins()
    assert ("BRIDGE_FORM_DEFINITION", "the form definition") in settings.stand_ins()  # still the sample


def test_the_misspelt_smi_setting_of_the_review_stops_the_command_on_azure(
    azurite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's run (/tmp/s11/azure/r3_misspelt_smi.sh) without the misspelling: still refused."""
    azure_environment(monkeypatch, azurite)
    assert cli(tmp_path / "home", "intake", RESPONSES) == 2
    assert "systems left on their local stand-ins: set BRIDGE_SMI_URL (the SMI)" in one_error_line(capsys)
    assert not (tmp_path / "home").exists()


def test_a_trial_on_azure_may_say_it_keeps_the_stand_ins(
    azurite: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="flows.wiring"),
        bootstrap(on_azure(azurite, tmp_path, allow_stand_ins=True)) as app,
    ):
        assert type(app.parts.inventory).__name__ == "SqliteInventory"
    assert "BRIDGE_ALLOW_STAND_INS: systems left on their local stand-ins: BRIDGE_SMI_URL" in caplog.text


def test_the_embedded_bridge_keeps_its_stand_ins_with_nothing_set(tmp_path: Path) -> None:
    with bootstrap(Settings(home=tmp_path / "home")) as app:
        assert type(app.parts.inventory).__name__ == "SqliteInventory"


# --- 3. one line per outside system at start, no secret --------------------------------------------


def test_the_start_names_each_systems_adapter_without_secrets(
    azurite: str, azurite_server: AzuriteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    systems = {
        **SYSTEMS,
        "smi_url": "http://127.0.0.1:9/smi/v1?code=smi-s3cret",
        "teams_webhook_url": SecretStr(f"http://127.0.0.1:9{SECRET_PATH}"),
    }
    settings = on_azure(azurite, tmp_path, **own_register_and_form(tmp_path / "deployment"), **systems)
    with caplog.at_level(logging.INFO, logger="flows.wiring"), bootstrap(settings):
        pass
    lines = [record.getMessage() for record in caplog.records if record.name == "flows.wiring"]
    assert lines == [
        f"storage: Azure Storage, work queue {settings.work_queue} at {azurite_server.url('queue')}",
        "SMI: over HTTP at 127.0.0.1:9",
        "Teams: the Workflows webhook of BRIDGE_TEAMS_WEBHOOK_URL (a secret: not shown)",
        "supplier mail: Graph, from the mailbox emergency-cpl@dcc.example",
    ]
    for secret in ("smi-s3cret", "/smi/v1", "teams-s3cret", "/workflows", azurite_server.account_key):
        assert secret not in caplog.text


def test_the_embedded_start_names_each_stand_in(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "home"
    with caplog.at_level(logging.INFO, logger="flows.wiring"), bootstrap(Settings(home=home)):
        pass
    lines = [record.getMessage() for record in caplog.records if record.name == "flows.wiring"]
    assert lines == [
        f"storage: embedded, the SQLite file in {home}",
        f"SMI: the stand-in, a table in {home}'s SQLite file (BRIDGE_SMI_URL unset)",
        f"Teams: the stand-in, files in {home / 'outbox' / 'teams'} (BRIDGE_TEAMS_WEBHOOK_URL unset)",
        f"supplier mail: the stand-in, files in {home / 'outbox' / 'mail'} (BRIDGE_GRAPH_MAILBOX unset)",
    ]


# --- 4. the Functions app's work queue is the one its triggers read --------------------------------


def other_account(server: AzuriteServer, name: str = "acctb") -> str:
    """A connection string to another account on the same Azurite (never used to connect here)."""
    key = "b3RoZXItYWNjb3VudC1rZXk="
    return "".join(
        [f"DefaultEndpointsProtocol=http;AccountName={name};AccountKey={key};"]
        + [
            f"{service.capitalize()}Endpoint=http://127.0.0.1:{port}/{name};"
            for service, port in server.ports.items()
        ]
    )


def test_the_functions_app_refuses_a_work_queue_on_another_account_than_its_triggers(
    functions_app: None, azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The review's run (/tmp/s11/azure/r1_two_accounts.py): events went to a queue nobody read."""
    azure_environment(
        monkeypatch,
        other_account(azurite_server),
        AzureWebJobsStorage=azurite_server.connection_string,
        BRIDGE_HOME=str(tmp_path / "home"),
        BRIDGE_ALLOW_STAND_INS="true",
    )
    queues = azurite_server.url("queue")
    with pytest.raises(BadInput) as refused:
        runtime.current_app()
    line = str(refused.value)
    assert "\n" not in line and "AccountKey" not in line and azurite_server.account_key not in line
    assert f"{queues.rsplit('/', 1)[0]}/acctb (BRIDGE_STORAGE_CONNECTION)" in line
    assert f"{queues} (AzureWebJobsStorage)" in line


def test_azurite_named_localhost_is_the_development_storage(
    functions_app: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``UseDevelopmentStorage=true`` names 127.0.0.1; a bridge given Azurite as localhost is on it too."""
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    explicit = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        "QueueEndpoint=http://localhost:10001/devstoreaccount1;"
    )
    settings = Settings(home=tmp_path, backend="azure", storage_connection=SecretStr(explicit))
    runtime.check_work_queue_account(settings, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    other = explicit.replace("localhost:10001", "localhost:10011")
    with pytest.raises(BadInput, match="BRIDGE_STORAGE_CONNECTION"):
        runtime.check_work_queue_account(
            Settings(home=tmp_path, backend="azure", storage_connection=SecretStr(other)),
            {"AzureWebJobsStorage": "UseDevelopmentStorage=true"},
        )


@pytest.mark.parametrize(
    ("host", "bridge_url", "refused"),
    [
        ({"AzureWebJobsStorage__accountName": "dccbridge"}, "https://dccbridge.blob.core.windows.net", False),
        ({"AzureWebJobsStorage__accountName": "dcchost"}, "https://dccbridge.blob.core.windows.net", True),
        (
            {"AzureWebJobsStorage__queueServiceUri": "https://DCCBRIDGE.queue.core.usgovcloudapi.net/"},
            "https://dccbridge.table.core.usgovcloudapi.net",
            False,
        ),
        (
            {"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=dcchost;AccountKey=a2V5"},
            "https://dccbridge.blob.core.windows.net",
            True,
        ),
        ({"azurewebjobsstorage__accountname": "dcchost"}, "https://dccbridge.blob.core.windows.net", True),
        (  # the scheme is no part of the account: the host's identity settings say https
            {
                "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=dccbridge;AccountKey=a2V5;"
                "EndpointSuffix=core.windows.net"
            },
            "https://dccbridge.blob.core.windows.net",
            False,
        ),
    ],
    ids=["identity-same", "identity-other", "queue-uri-same", "connection-other", "any-case", "http"],
)
def test_the_host_account_is_worked_out_from_identity_based_settings_too(
    functions_app: None,
    monkeypatch: pytest.MonkeyPatch,
    host: dict[str, str],
    bridge_url: str,
    refused: bool,
    tmp_path: Path,
) -> None:
    for name, value in host.items():
        monkeypatch.setenv(name, value)
    settings = Settings(home=tmp_path, backend="azure", storage_account_url=bridge_url)
    if refused:
        with pytest.raises(BadInput, match=r"BRIDGE_STORAGE_ACCOUNT_URL.*AzureWebJobsStorage"):
            runtime.check_work_queue_account(settings, dict(host))
    else:
        runtime.check_work_queue_account(settings, dict(host))  # no request made: nothing listens


def test_the_functions_app_on_one_account_starts_and_one_it_cannot_tell_is_logged(
    functions_app: None,
    azurite_server: AzuriteServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    azure_environment(
        monkeypatch,
        azurite_server.connection_string,
        BRIDGE_HOME=str(tmp_path / "home"),
        BRIDGE_ALLOW_STAND_INS="true",
    )
    # the same account, its queue endpoint spelled otherwise
    monkeypatch.setenv(
        "AzureWebJobsStorage", f"QueueEndpoint={azurite_server.url('queue')}/;SharedAccessSignature=sv=x"
    )
    assert runtime.current_app().parts.queue is not None
    runtime.reset()
    monkeypatch.delenv("AzureWebJobsStorage")
    with caplog.at_level(logging.WARNING, logger="adapters.functions.runtime"):
        assert runtime.current_app().parts.queue is not None
    assert "cannot tell which storage account the queue triggers read (AzureWebJobsStorage)" in caplog.text


# --- 5. BRIDGE_STORAGE_ACCOUNT_URL as given ------------------------------------------------------


def test_an_account_url_gives_its_clouds_endpoints_not_the_public_ones() -> None:
    assert service_urls("https://dccbridge.blob.core.usgovcloudapi.net/") == {
        "table_url": "https://dccbridge.table.core.usgovcloudapi.net",
        "queue_url": "https://dccbridge.queue.core.usgovcloudapi.net",
        "blob_url": "https://dccbridge.blob.core.usgovcloudapi.net",
    }
    assert service_urls("https://dccbridge.z12.queue.storage.azure.net")["table_url"] == (
        "https://dccbridge.z12.table.storage.azure.net"  # an Azure DNS zone endpoint
    )


def test_the_bridge_signs_in_to_the_account_url_as_given(
    app_service_identity: TokenServer,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The managed identity's path: the endpoint chosen is named before connecting; the token service
    refuses, so nothing leaves the machine."""
    app_service_identity.answers.append(AADSTS_INVALID_SECRET)
    settings = Settings(
        home=tmp_path,
        backend="azure",
        storage_account_url="https://dccbridge.blob.core.chinacloudapi.cn",
        allow_stand_ins=True,
    )
    with caplog.at_level(logging.INFO, logger="flows.wiring"), pytest.raises(PermanentError):
        bootstrap(settings)
    assert "work queue bridge-work at https://dccbridge.queue.core.chinacloudapi.cn" in caplog.text
    assert len(app_service_identity.hits) == 1


def test_a_user_assigned_identity_signs_in_to_storage_as_to_graph_and_the_smi(
    app_service_identity: TokenServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``BRIDGE_GRAPH_CLIENT_ID`` names the managed identity the bridge signs in with; Storage asked
    for the system-assigned one instead, which an app with a user-assigned identity alone has not."""
    app_service_identity.answers.append(AADSTS_INVALID_SECRET)
    settings = Settings(
        home=tmp_path,
        backend="azure",
        storage_account_url="https://dccbridge.blob.core.windows.net",
        graph_client_id="11111111-2222-3333-4444-555555555555",
        allow_stand_ins=True,
    )
    with pytest.raises(PermanentError):
        bootstrap(settings)
    [asked] = app_service_identity.queries
    assert asked.get("client_id") == ["11111111-2222-3333-4444-555555555555"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:10000/devstoreaccount1", "names no service"),
        ("https://dccbridge.blob.core.windows.net/?sv=2024&sig=s3cret", "a query string"),
        ("dccbridge", "not an http(s) URL"),
    ],
)
def test_an_account_url_that_names_no_account_endpoint_is_refused_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("BRIDGE_BACKEND", "azure")
    monkeypatch.setenv("BRIDGE_ALLOW_STAND_INS", "true")
    monkeypatch.setenv("BRIDGE_STORAGE_ACCOUNT_URL", url)
    assert cli(tmp_path / "home", "intake", RESPONSES) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: BRIDGE_STORAGE_ACCOUNT_URL: ") and says in line and "s3cret" not in line


# --- 6. missing storage and Graph settings are named as an operator sets them ----------------------


def intake_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
) -> str:
    """The one error line of an intake with these variables set, which must stop it (status 2)."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert cli(tmp_path / "home", "intake", RESPONSES) == 2
    return one_error_line(capsys)


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({}, "BRIDGE_BACKEND=azure needs BRIDGE_STORAGE_ACCOUNT_URL (with the managed identity) or "),
        (
            {
                "BRIDGE_STORAGE_CONNECTION": "UseDevelopmentStorage=true",
                "BRIDGE_STORAGE_ACCOUNT_URL": "https://a.blob.x",
            },
            "give BRIDGE_STORAGE_CONNECTION or BRIDGE_STORAGE_ACCOUNT_URL, not both",
        ),
        (
            {"BRIDGE_STORAGE_CONNECTION": "UseDevelopmentStorage=true", "BRIDGE_WORK_QUEUE": "Work_Queue"},
            "Azure Storage: BRIDGE_WORK_QUEUE: 3-63 lower-case letters",
        ),
        (
            {"BRIDGE_STORAGE_CONNECTION": "AccountName=x;AccountKey="},
            "BRIDGE_STORAGE_CONNECTION: not a storage",
        ),
    ],
    ids=["no-storage", "both", "bad-queue-name", "bad-connection"],
)
def test_missing_or_wrong_storage_settings_are_one_line_naming_the_bridge_settings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    says: str,
) -> None:
    variables = {"BRIDGE_BACKEND": "azure", "BRIDGE_ALLOW_STAND_INS": "true", **variables}
    line = intake_refused(tmp_path, capsys, monkeypatch, variables)
    assert says in line
    assert not re.search(r"\b(connection_string|account_name|table_url|work_queue)\b", line)


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        (
            {"BRIDGE_GRAPH_CREDENTIAL": "client_secret"},
            "BRIDGE_GRAPH_CREDENTIAL=client_secret needs BRIDGE_GRAPH_TENANT_ID, BRIDGE_GRAPH_CLIENT_ID, "
            "BRIDGE_GRAPH_CLIENT_SECRET, not set",
        ),
        (
            {
                "BRIDGE_GRAPH_CREDENTIAL": "certificate",
                "BRIDGE_GRAPH_TENANT_ID": "t",
                "BRIDGE_GRAPH_CLIENT_ID": "c",
            },
            "BRIDGE_GRAPH_CREDENTIAL=certificate needs BRIDGE_GRAPH_CERTIFICATE_PATH, not set",
        ),
    ],
)
def test_missing_graph_settings_are_one_line_naming_the_bridge_settings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    says: str,
) -> None:
    variables = {"BRIDGE_GRAPH_MAILBOX": "emergency-cpl@dcc.example", **variables}
    line = intake_refused(tmp_path, capsys, monkeypatch, variables)
    assert says in line
    # (client_secret after "=" is the credential's value, as set)
    assert not re.search(r"(?<!=)\b(tenant_id|client_id|client_secret|certificate_path)\b", line)
