"""The bridge's settings, from the environment (``BRIDGE_*``) or Azure app settings.

Every default runs the samples on one machine, so a newcomer needs to set nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = PROJECT_ROOT / "samples"


ENV_PREFIX = "BRIDGE_"


class Settings(BaseSettings):
    """One typed place for configuration; nested values (aliases) are JSON in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Field(default=Path(".bridge"), description="Where the embedded state and outboxes live.")
    flows_dir: Path = PROJECT_ROOT / "flows" / "definitions"
    form_definition: Path = SAMPLES / "forms" / "form-definition.json"
    suppliers: Path = SAMPLES / "suppliers.json"
    cpl_location: str = Field(default="", description="Default CPL path or URL for a scheduled sync.")
    cpl_aliases: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra CPL header spellings per canonical field."
    )
    cpl_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    # Finite and at most a year: a limit of 1e308 hours passed validation, then overflowed every check.
    waiting_limit_hours: float = Field(
        default=72.0,
        gt=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="How long a case may wait for SECAS before operators hear.",
    )
    sync_alert_minutes: float = Field(
        default=30.0,
        gt=0,
        le=60 * 24 * 366,
        allow_inf_nan=False,
        description="How long without a successful SECAS download before operators hear.",
    )
    mail_sender: str = "emergency-cpl@dcc.example"
    templates_dir: Path | None = Field(default=None, description="Templates that override the built-in ones.")
    console_url: str = Field(default="", description="Base URL of the operator console, for links in cards.")
    console_auth: Literal["key", "app_service"] = Field(
        default="key",
        description="key: a console key (BRIDGE_CONSOLE_KEY) opens a session; app_service: App Service "
        "authentication (Entra ID) signs operators in and names them.",
    )
    console_key: SecretStr | None = None  # opens the console in key mode; `serve` makes one if unset

    # --- Azure (backend = azure); each is described in the README's table -------------------------
    backend: Literal["embedded", "azure"] = "embedded"
    storage_connection: SecretStr | None = None  # a connection string: Azurite, or no identity
    storage_account_url: str = ""  # with the managed identity
    work_queue: str = "bridge-work"
    poison_alert_retry_seconds: int = Field(
        default=600,
        ge=1,
        le=7 * 24 * 3600,
        description="How long a poisoned message whose alert could not be posted waits in the poison "
        "queue before the alert is tried again.",
    )
    graph_tenant_id: str = ""
    graph_client_id: str = ""
    graph_credential: Literal["managed_identity", "client_secret", "certificate"] = "managed_identity"
    graph_client_secret: SecretStr | None = None
    graph_certificate_path: Path | None = None
    graph_site_id: str = ""
    graph_list_id: str = ""
    graph_mailbox: str = ""  # the shared mailbox supplier e-mails are sent from
    graph_client_state: SecretStr | None = None  # echoed by Graph in every notification
    graph_notification_url: str = ""  # public URL of graph/notifications, with its function key
    teams_webhook_url: SecretStr | None = None
    smi_url: str = ""
    smi_scope: str = ""  # e.g. api://<smi-app-id>/.default

    def flow_settings(self) -> dict[str, object]:
        """What flows may read as ``settings.*``: no secrets, nothing personal."""
        return {
            "cpl_location": self.cpl_location,
            "waiting_limit_hours": self.waiting_limit_hours,
            "sync_alert_minutes": self.sync_alert_minutes,
        }
