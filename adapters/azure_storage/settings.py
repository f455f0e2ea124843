"""``StorageSettings``: where the bridge's state and work queue live in Azure Storage.

Either a connection string (a secret: kept as ``SecretStr``, so it never shows in a repr, a log line or
a validation error), or an account reached with an Azure AD credential (managed identity in Azure):
``account_name`` gives the public-cloud endpoints, and ``table_url`` / ``queue_url`` / ``blob_url``
override them (private endpoints, sovereign clouds, Azurite; ``service_urls`` works the three out from
one of them). It is a plain pydantic model that the bridge's wiring fills from its ``BRIDGE_STORAGE_*``
settings.
"""

from __future__ import annotations

import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

Service = Literal["table", "queue", "blob"]
POISON_SUFFIX = "-poison"  # what the Functions host appends to a queue's name for its poison queue

_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_QUEUE_OR_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


class StorageSettings(BaseModel):
    """Azure Storage for the bridge: credentials, resource names, and the work queue's behaviour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connection_string: SecretStr | None = Field(
        default=None, description="A storage connection string (a secret); or give account_name."
    )
    account_name: str | None = Field(default=None, description="Used with an Azure AD credential.")
    endpoint_suffix: str = "core.windows.net"
    table_url: str | None = None
    queue_url: str | None = None
    blob_url: str | None = None
    managed_identity_client_id: str | None = Field(
        default=None, description="A user-assigned managed identity (else the system-assigned one)."
    )

    cases_table: str = "bridgecases"
    runs_table: str = "bridgeruns"
    idempotency_table: str = "bridgeidempotency"
    delta_links_table: str = Field(default="bridgedeltalinks", description="Graph delta links, per list.")
    poisoned_table: str = Field(
        default="bridgepoisoned", description="Poisoned work messages kept until an operator puts them back."
    )
    publications_container: str = "bridge-publications"
    work_queue: str = Field(default="bridge-work", description="The poison queue is '<work_queue>-poison'.")

    message_encoding: Literal["base64", "text"] = Field(
        default="base64",
        description="As host.json's extensions.queues.messageEncoding (the host's default: base64).",
    )
    max_dequeue_count: int = Field(default=5, ge=1, description="As host.json's maxDequeueCount.")
    visibility_timeout: int = Field(
        default=300, ge=1, le=7 * 24 * 3600, description="Seconds a taken message stays hidden."
    )
    create_missing: bool = Field(default=True, description="Create tables, container and queues if absent.")

    @field_validator("cases_table", "runs_table", "idempotency_table", "delta_links_table", "poisoned_table")
    @classmethod
    def _table_name(cls, name: str) -> str:
        if not _TABLE_NAME.fullmatch(name):
            raise ValueError("a table name is 3-63 letters and digits, starting with a letter")
        return name

    @field_validator("publications_container", "work_queue")
    @classmethod
    def _queue_or_container_name(cls, name: str, info: ValidationInfo) -> str:
        if not _QUEUE_OR_CONTAINER_NAME.fullmatch(name):
            raise ValueError(
                "3-63 lower-case letters, digits and single dashes, starting and ending in no dash"
            )
        if info.field_name == "work_queue" and len(name + POISON_SUFFIX) > 63:
            raise ValueError(f"at most {63 - len(POISON_SUFFIX)} characters, so its poison queue's name fits")
        return name

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        urls = (self.table_url, self.queue_url, self.blob_url)
        if self.connection_string is not None:
            if self.account_name is not None or any(urls):
                raise ValueError("give a connection string, or an account name / service URLs: not both")
        elif self.account_name is None and not all(urls):
            raise ValueError(
                "Azure Storage needs a connection_string, or an account_name (with a credential), "
                "or all three of table_url, queue_url and blob_url"
            )
        return self

    @property
    def poison_queue(self) -> str:
        return self.work_queue + POISON_SUFFIX

    def service_url(self, service: Service) -> str:
        """The endpoint of one service when connecting with a credential."""
        given = {"table": self.table_url, "queue": self.queue_url, "blob": self.blob_url}[service]
        if given:
            return given
        if self.account_name is None:
            raise ValueError(f"no {service} endpoint: set account_name or {service}_url")
        return f"https://{self.account_name}.{service}.{self.endpoint_suffix}"


# The labels Azure Storage endpoints name their service with: <account>.<service>.<cloud's suffix>.
_SERVICE_LABELS = ("blob", "queue", "table", "dfs", "file")


def service_urls(account_url: str) -> dict[str, str]:
    """``table_url``, ``queue_url`` and ``blob_url`` from one service endpoint of an account, as given
    (``https://acct.blob.core.usgovcloudapi.net`` gives ``https://acct.queue.core.usgovcloudapi.net``
    ...): the one label naming the service is swapped, the rest (cloud, port, path) kept.

    Raises ``ValueError`` for a URL that names no service in its host (a path-style URL such as
    Azurite's, whose services differ by port) or that carries a query (a SAS: a secret, not an account).
    """
    parts = urlsplit(account_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    if parts.query or parts.username or parts.password:
        raise ValueError("a query string or user name (a SAS or key) does not belong in it")
    labels = parts.netloc.split(".")
    found = [index for index, label in enumerate(labels) if index > 0 and label.lower() in _SERVICE_LABELS]
    if not found:
        raise ValueError(
            "names no service: give one of the account's service endpoints, "
            "e.g. https://<account>.blob.core.windows.net (or its sovereign cloud's)"
        )
    index = found[0]
    path = parts.path.rstrip("/")

    def url(service: str) -> str:
        netloc = ".".join([*labels[:index], service, *labels[index + 1 :]])
        return f"{parts.scheme}://{netloc}{path}"

    return {"table_url": url("table"), "queue_url": url("queue"), "blob_url": url("blob")}


def queue_endpoint(connection_string: str) -> str:
    """The queue service endpoint a connection string names, worked out without a request (the SDKs
    parse it: ``UseDevelopmentStorage=true``, ``AccountName=`` with ``EndpointSuffix=``, or
    ``QueueEndpoint=``); without its query, where a SAS would be. ``ValueError`` if the table, queue or
    blob SDK cannot read it (they differ: the tables SDK refuses an empty key the others take)."""
    # only where they are used: slow to import
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    TableServiceClient.from_connection_string(connection_string).close()
    BlobServiceClient.from_connection_string(connection_string).close()
    client = QueueServiceClient.from_connection_string(connection_string)
    try:
        return comparable_endpoint(client.url)
    finally:
        client.close()


def same_endpoint(one: str, other: str) -> bool:
    """Whether two endpoints (``comparable_endpoint``s) reach the same account's service: the scheme
    left out (the host's identity-based settings say https, a connection string may say http) and
    ``localhost`` / ``::1`` taken for 127.0.0.1 (Azurite, as ``UseDevelopmentStorage`` names it)."""

    def key(url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = "127.0.0.1" if host in {"localhost", "::1"} else host
        port = f":{parts.port}" if parts.port is not None else ""
        return f"{host}{port}{parts.path}"

    return key(one) == key(other)


def comparable_endpoint(url: str) -> str:
    """A service endpoint as two spellings of it compare equal: scheme and host in lower case, the
    default port dropped, no query, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"
