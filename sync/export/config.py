"""What an export needs before it starts: the ``export`` section of the sync configuration, the
``PUSHGATE_AEP_*`` settings and each stream's provisioned dataset and schema.

:func:`export_config` checks the ``export`` section of an already loaded configuration
(:func:`sync.config.sync_config`; the ``logs`` and ``provision`` jobs both read it) and names a
problem on one line, as the rest of the file's checks do; :func:`check_settings` names the first
missing setting; :func:`provisioned` reads the :class:`Target` of each stream that provisioning
(:mod:`sync.provision`) stored in ``sync_state`` (``dataset:<stream>``, ``schema:<stream>``), or
says to run it first. None of them talks to the Platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.errors import ConfigError
from store.queries import state
from sync.config import ENV_VAR, SyncConfig
from sync.runs import SyncError
from sync.xdm import tenant_key
from sync.xdm.records import DEFAULT_NAMESPACE

StreamName = Literal["broadlog", "trackinglog", "quarantine", "preferences"]
_ALL: tuple[StreamName, ...] = ("broadlog", "trackinglog", "quarantine", "preferences")


class ExportConfig(BaseModel):
    """The ``export`` section of the sync configuration file (all optional)::

    {"export": {"identityNamespace": "CRMID", "streams": ["broadlog", "trackinglog", "quarantine"]}}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    identityNamespace: str = Field(default=DEFAULT_NAMESPACE, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    streams: list[StreamName] = Field(default_factory=lambda: list(_ALL), min_length=1)


def export_config(settings: Settings, config: SyncConfig) -> ExportConfig:
    """The ``export`` section of ``config`` (loaded from ``settings.sync_config``); ConfigError names
    the problem on one line."""
    section = (config.model_extra or {}).get("export", {})
    try:
        return ExportConfig.model_validate(section)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in ("export", *error["loc"]))
        raise ConfigError(f"{ENV_VAR} {settings.sync_config}: {where}: {error['msg']}") from None


def check_settings(settings: Settings, *, streaming: bool) -> None:
    """SyncError naming the first missing ``PUSHGATE_AEP_*`` setting."""
    needed = ["aep_client_id", "aep_client_secret", "aep_org_id", "aep_tenant_id"]
    if streaming:
        needed.append("aep_inlet_id")
    for name in needed:
        if not getattr(settings, name):
            raise SyncError(f"PUSHGATE_{name.upper()} is not set")
    try:
        tenant_key(settings.aep_tenant_id)
    except ValueError as exc:
        raise SyncError(f"PUSHGATE_AEP_TENANT_ID: {exc}") from None


@dataclass(frozen=True)
class Target:
    dataset_id: str
    schema_id: str


def provisioned(sessions: sessionmaker[Session], streams: list[str]) -> dict[str, Target]:
    """Each stream's dataset and schema, as provisioning stored them."""
    found: dict[str, Target] = {}
    with sessions() as session:
        for stream in streams:
            dataset, schema = (
                state.get_value(session, f"dataset:{stream}"),
                state.get_value(session, f"schema:{stream}"),
            )
            if not dataset or not schema:
                raise SyncError(f"no dataset is provisioned for {stream}: run `flask --app wsgi sync provision` first")
            found[stream] = Target(dataset, schema)
    return found
