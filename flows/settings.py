"""The bridge's settings, from the environment (``BRIDGE_*``) or Azure app settings.

Every default runs the samples on one machine, so a newcomer needs to set nothing. A ``BRIDGE_*``
variable that is no setting stops the bridge: a misspelt one (``BRIDGE_SMI_URI``) was ignored, and the
system it meant silently stayed on its stand-in.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from flows.errors import BadInput

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = PROJECT_ROOT / "samples"


ENV_PREFIX = "BRIDGE_"

# ``BRIDGE_*`` names that are read, but not by ``Settings``: the Functions host reads the timers'
# schedules (binding expressions in adapters/functions/schedules.py), and ``cases decide`` its default
# operator (flows/cli.py). Anything else with the prefix is a mistake.
NOT_SETTINGS = frozenset(
    {"BRIDGE_SYNC_SCHEDULE", "BRIDGE_LIFECYCLE_SCHEDULE", "BRIDGE_GRAPH_RENEW_SCHEDULE", "BRIDGE_OPERATOR"}
)


class Settings(BaseSettings):
    """One typed place for configuration; nested values (aliases) are JSON in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # pydantic-settings reports unknown names only from a .env file, never from the environment.
        return init_settings, Environment(settings_cls), dotenv_settings, file_secret_settings

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
    allow_stand_ins: bool = Field(
        default=False,
        description="On the azure backend, let a system left unconfigured run on its local stand-in "
        "(a trial): refused otherwise, since the stand-ins only pretend (an SMI in a SQLite file).",
    )

    def flow_settings(self) -> dict[str, object]:
        """What flows may read as ``settings.*``: no secrets, nothing personal."""
        return {
            "cpl_location": self.cpl_location,
            "waiting_limit_hours": self.waiting_limit_hours,
            "sync_alert_minutes": self.sync_alert_minutes,
        }

    def stand_ins(self) -> list[tuple[str, str]]:
        """The outside systems left on their local stand-ins: (the setting that replaces it, what it is).

        The supplier register and form definition count while they are the sample files shipped with
        the code: made-up suppliers and questions.
        """
        # The shipped files themselves, not the folder: a deployment may keep its own files there.
        sample_register = (SAMPLES / "suppliers.json").resolve()
        sample_form = (SAMPLES / "forms" / "form-definition.json").resolve()
        left = [
            ("BRIDGE_SMI_URL", "the SMI") if not self.smi_url else None,
            ("BRIDGE_GRAPH_MAILBOX", "supplier mail") if not self.graph_mailbox else None,
            ("BRIDGE_TEAMS_WEBHOOK_URL", "Teams") if self.teams_webhook_url is None else None,
            ("BRIDGE_SUPPLIERS", "the supplier register")
            if self.suppliers.resolve() == sample_register
            else None,
            ("BRIDGE_FORM_DEFINITION", "the form definition")
            if self.form_definition.resolve() == sample_form
            else None,
        ]
        return [stand_in for stand_in in left if stand_in is not None]


class Environment(EnvSettingsSource):  # its name shows in pydantic-settings' errors: "from source ..."
    """The environment, refusing a ``BRIDGE_*`` name that is no setting, with the closest one."""

    def __call__(self) -> dict[str, Any]:
        refuse_unknown_names(self.env_vars)
        return super().__call__()


def refuse_unknown_names(environment: Mapping[str, object]) -> None:
    """Raise ``BadInput`` naming each ``BRIDGE_*`` variable that is no setting (names are compared
    without case, as pydantic-settings reads them)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | NOT_SETTINGS
    unknown = sorted(
        name.upper()
        for name in environment
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )
    if not unknown:
        return
    # compared without the prefix, which every name shares and which would make any two look alike
    suffixes = sorted(name.removeprefix(ENV_PREFIX) for name in known)
    named = []
    for name in unknown:
        closest = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1)
        named.append(f"{name} (did you mean {ENV_PREFIX}{closest[0]}?)" if closest else name)
    raise BadInput(f"not a setting: {', '.join(named)}; the settings are listed in the README")


def read_settings(**given: Any) -> Settings:
    """The settings from the environment (and ``given``), or ``BadInput`` in one line naming each
    ``BRIDGE_*`` variable that is wrong, never a field's internal name or its value."""
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(
            f"{ENV_PREFIX}{str(problem['loc'][0]).upper() if problem['loc'] else ''}: {problem['msg']}"
            for problem in error.errors()
        )
        raise BadInput(f"setting {problems}") from error
    except SettingsError as error:  # a nested setting (BRIDGE_CPL_ALIASES) that is not JSON
        raise BadInput(f"{error}: nested settings are JSON") from error
