"""``GraphSettings``: what the Microsoft Graph adapters need to know, checked before anything connects.

A plain pydantic model, built by the composition root (``flows/wiring.py``) from the bridge's
``BRIDGE_GRAPH_*`` settings. Secrets are ``SecretStr``: they print as ``**********``.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

CredentialKind = Literal["managed_identity", "client_secret", "certificate"]
GRAPH_V1 = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_LOOPBACK_NAMES = {"localhost"}


class GraphSettings(BaseModel):
    """Tenant, app identity and the Graph resources the bridge uses (list, mailbox, webhook)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = Field(
        default="", description="Entra tenant id; needed by client_secret and certificate."
    )
    client_id: str = Field(
        default="",
        description="App registration's client id; with managed_identity, a user-assigned identity's id.",
    )
    credential: CredentialKind = "managed_identity"
    client_secret: SecretStr | None = None
    certificate_path: Path | None = Field(default=None, description="PEM or PKCS12 with the private key.")
    certificate_password: SecretStr | None = None
    base_url: str = Field(default=GRAPH_V1, description="Graph root; http only on loopback (tests).")
    scopes: tuple[str, ...] = (GRAPH_SCOPE,)
    site_id: str = Field(default="", description="SharePoint site id: host,site-collection-id,web-id.")
    list_id: str = Field(default="", description="The list Power Automate writes form responses to.")
    mailbox: str = Field(default="", description="Shared mailbox that sends supplier e-mails.")
    notification_url: str = Field(default="", description="Public HTTPS URL of the Graph webhook trigger.")
    client_state: SecretStr | None = Field(
        default=None, description="Shared secret Graph echoes in every change notification."
    )
    request_timeout: float = Field(default=30.0, gt=0, description="Seconds per HTTP request.")
    call_timeout: float = Field(
        default=300.0, gt=0, description="Seconds one adapter call may take, the SDK's own retries included."
    )

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value.rstrip("/")
        if parts.scheme == "http" and _is_loopback(parts.hostname):
            return value.rstrip("/")
        raise ValueError(f"must be an https URL (http only on loopback, for tests), not {value!r}")

    @model_validator(mode="after")
    def _credential_complete(self) -> Self:
        needed: dict[str, object] = {}
        if self.credential == "client_secret":
            needed = {
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
        elif self.credential == "certificate":
            needed = {
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "certificate_path": self.certificate_path,
            }
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"credential {self.credential!r} needs {', '.join(missing)}")
        return self

    @property
    def allowed_hosts(self) -> list[str]:
        """Hosts a token may be sent to: the Graph root's only (delta links point there too)."""
        host = urlsplit(self.base_url).hostname
        return [host] if host else []

    def require(self, *names: str) -> None:
        """Fail with one message naming every setting in ``names`` that is empty."""
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            raise ValueError(f"Graph settings missing: {', '.join(missing)}")


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
