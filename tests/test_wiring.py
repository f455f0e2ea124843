"""Which adapters the composition root builds from settings, and what it leaves alone.

On Azure with every outside system configured the bridge keeps nothing on the worker's disk (a
Functions worker run from a package cannot write its folder): no SQLite file, no outbox, and the Graph
delta link in a table every worker shares. Building opens no connection to the SMI, Teams or Graph:
those are only named here (loopback addresses that nothing answers; nothing is called).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient
from pydantic import SecretStr

from adapters.azure_storage import TableDeltaLinkStore
from adapters.embedded.inventory import SqliteInventory
from adapters.graph import GraphMailer, ListDeltaReader, SqliteDeltaLinkStore
from adapters.smi import HttpInventory
from adapters.teams_webhook import WorkflowsWebhookChannel
from flows.bootstrap import bootstrap
from flows.messages.rendering import TemplateProblem
from flows.settings import Settings
from flows.wiring import Parts
from tests.support.deployment import own_register_and_form
from tests.test_graph_adapters import pytestmark as sdk_warnings

pytest_plugins = ["tests.azurite"]
pytestmark = sdk_warnings  # the SDK's own import-time deprecation warnings (see test_graph_adapters)

SYSTEMS: dict[str, Any] = {
    "smi_url": "http://127.0.0.1:9/smi",
    "smi_scope": "api://smi/.default",
    "teams_webhook_url": SecretStr("http://127.0.0.1:9/teams"),
    "graph_tenant_id": "00000000-0000-0000-0000-000000000001",
    "graph_client_id": "00000000-0000-0000-0000-000000000002",
    "graph_site_id": "contoso.sharepoint.com,site,web",
    "graph_list_id": "list-1",
    "graph_mailbox": "emergency-cpl@dcc.example",
}
LINK = "https://graph.microsoft.com/v1.0/sites/s/lists/list-1/items/delta?token=1"


def on_azure(azurite: str, home: Path, **systems: Any) -> Settings:
    return Settings(
        home=home,
        backend="azure",
        storage_connection=SecretStr(azurite),
        work_queue=f"work-{uuid.uuid4().hex[:12]}",
        **own_register_and_form(home.parent / f"{home.name}-deployment"),
        **systems,
    )


def delta_reader(parts: Parts) -> ListDeltaReader:
    assert parts.list_changes is not None
    reader = getattr(parts.list_changes, "__self__", None)
    assert isinstance(reader, ListDeltaReader)
    return reader


def test_azure_with_every_system_configured_keeps_nothing_on_the_workers_disk(
    azurite: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with bootstrap(on_azure(azurite, home, **SYSTEMS)) as app:
        parts = app.parts
        assert isinstance(parts.inventory, HttpInventory)
        assert isinstance(parts.mailer, GraphMailer)
        assert isinstance(parts.channel, WorkflowsWebhookChannel)
        links = delta_reader(parts).store
        assert isinstance(links, TableDeltaLinkStore)
        links.set("list-1", LINK)
    assert not home.exists()  # not the SQLite file, not an outbox, not the folder itself

    # another worker, later: the link the first one kept is there
    with bootstrap(on_azure(azurite, tmp_path / "another-home", **SYSTEMS)) as app:
        assert delta_reader(app.parts).store.get("list-1") == LINK
    assert not (tmp_path / "another-home").exists()


def test_azure_keeps_a_stand_in_only_for_a_system_not_configured(azurite: str, tmp_path: Path) -> None:
    without_smi = {name: value for name, value in SYSTEMS.items() if name != "smi_url"}
    without_smi["allow_stand_ins"] = True
    with bootstrap(on_azure(azurite, tmp_path / "home", **without_smi)) as app:
        assert isinstance(app.parts.inventory, SqliteInventory)  # the SMI's stand-in, in the home
        assert isinstance(app.parts.channel, WorkflowsWebhookChannel)
        assert isinstance(delta_reader(app.parts).store, TableDeltaLinkStore)
    assert (tmp_path / "home" / "bridge.sqlite3").is_file()
    assert not (tmp_path / "home" / "outbox").exists()


def test_the_embedded_bridge_keeps_the_delta_link_in_its_own_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, graph_site_id="site", graph_list_id="list-1")
    with bootstrap(settings) as app:
        store = delta_reader(app.parts).store
        assert isinstance(store, SqliteDeltaLinkStore)
        assert store.database is app.parts.cases.database  # type: ignore[attr-defined]  # one connection


# --- the Table store of delta links --------------------------------------------------------------


@pytest.fixture
def table(azurite: str) -> TableClient:
    name = f"links{uuid.uuid4().hex[:12]}"
    client = TableClient.from_connection_string(azurite, name)
    client.create_table()
    return client


def test_delta_links_are_kept_per_list_and_shared_by_workers(azurite: str, table: TableClient) -> None:
    one = TableDeltaLinkStore(table)
    other = TableDeltaLinkStore(TableClient.from_connection_string(azurite, table.table_name))
    odd = "list/with?odd#characters"
    assert one.get("list-1") is None
    one.set("list-1", "https://graph.example/delta?token=1")
    one.set(odd, "https://graph.example/delta?token=odd")
    assert other.get("list-1") == "https://graph.example/delta?token=1"
    other.set("list-1", "https://graph.example/delta?token=2")  # the last writer wins
    assert one.get("list-1") == "https://graph.example/delta?token=2"
    one.forget("list-1")
    one.forget("list-1")  # forgetting what is not there is no error
    assert other.get("list-1") is None
    assert other.get(odd) == "https://graph.example/delta?token=odd"


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def open_files_under(folder: Path) -> list[str]:
    """This process's open files inside ``folder`` (Linux: /proc/self/fd)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:  # closed meanwhile (the iteration's own descriptor)
            continue
        if str(target).startswith(str(folder)):
            found.append(str(target))
    return found


@needs_proc
def test_a_part_that_cannot_be_built_closes_what_was_built_before_it(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        smi_url="http://127.0.0.1:9/smi",
        smi_scope="api://smi/.default",
        graph_credential="client_secret",
    )
    with pytest.raises(
        ValueError, match=r"BRIDGE_GRAPH_CREDENTIAL=client_secret needs .*BRIDGE_GRAPH_CLIENT_SECRET"
    ):
        bootstrap(settings)  # the SQLite file was opened for the state before the SMI's credential failed
    assert (tmp_path / "bridge.sqlite3").is_file()
    assert open_files_under(tmp_path) == []


@needs_proc
def test_a_bridge_that_fails_after_its_parts_were_built_closes_them(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", templates_dir=tmp_path / "no-such-templates")
    with pytest.raises(TemplateProblem, match="no-such-templates does not exist"):
        bootstrap(settings)  # the parts (the SQLite file) were built before the templates were read
    assert (tmp_path / "home" / "bridge.sqlite3").is_file()
    assert open_files_under(tmp_path) == []
