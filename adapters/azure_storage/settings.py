"""``StorageSettings``: where the bridge's state and work queue live in Azure Storage.

Either a connection string (a secret: kept as ``SecretStr``, so it never shows in a repr, a log line or
a validation error), or an account reached with an Azure AD credential (managed identity in Azure):
``account_name`` gives the public-cloud endpoints, and ``table_url`` / ``queue_url`` / ``blob_url``
override them (private endpoints, sovereign clouds, Azurite). It is a plain pydantic model, meant to be
nested in the bridge's ``Settings`` (``BRIDGE_STORAGE='{"account_name": ...}'``).
"""

from __future__ import annotations

import re
from typing import Literal, Self

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
