"""All of pushgate's settings, read from the environment and validated in one place.

Every setting is an environment variable with the prefix ``PUSHGATE_`` (see the README's table).
:func:`load_settings` is the only function that reads them; everything else receives a
:class:`Settings` instance. A wrong value raises :class:`ConfigError` whose message is one line
naming the variable, so start-up can stop with that line and nothing else.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

ENV_PREFIX = "PUSHGATE_"


class Settings(BaseSettings):
    """Validated settings. Field ``x`` is read from ``PUSHGATE_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    instance_path: Path = Field(
        default=Path("instance"),
        description="Folder for the SQLite database and the generated secret key.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store; empty means a SQLite file in the instance folder.",
    )
    secret_key: str = Field(
        default="",
        repr=False,
        description="Fernet key that encrypts provider credentials; generated into the instance folder when empty.",
    )
    public_url: str = Field(
        default="",
        description="Public base URL of this gateway (https://push.example.com), used in SDK configs.",
    )
    reconciliation_field: Literal["external_id", "email"] = Field(
        default="external_id",
        description="Profile field that an SDK userKey is matched against.",
    )
    max_public_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Largest request body accepted on the public SDK and registration endpoints.",
    )
    max_api_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=100 * 1024 * 1024,
        description="Largest request body accepted on the authenticated API.",
    )
    metrics_token: str = Field(
        default="",
        repr=False,
        description="When set, GET /metrics needs the header Authorization: Bearer <this token> "
        "(Prometheus: authorization.credentials); empty serves the metrics to anyone who reaches them.",
    )
    rate_limit_public: str = Field(
        default="600/minute",
        description="Requests one client address may make to each family of public endpoints (registration, "
        "tracking, identity), e.g. 600/minute or 20/second;100/minute; empty: no limit. Behind a carrier NAT many "
        "phones share one address: raise it for apps with large audiences in one network.",
    )
    rate_limit_api: str = Field(
        default="6000/minute", description="Requests one API key may make to the API (empty: no limit)."
    )
    rate_limit_sign_in: str = Field(
        default="10/minute;50/hour",
        description="Console sign-in attempts one client address may make, and as many for one e-mail "
        "(empty: no limit).",
    )
    redis_url: str = Field(
        default="",
        description="Redis URL (redis://127.0.0.1:6379/0) where every process keeps the rate-limit counts (and, in "
        "Celery mode, each delivery's rate_per_second); empty: each process counts in its own memory (the embedded "
        "default, one process).",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (10.0.0.0/8, ::1) of reverse proxies whose "
        "X-Forwarded-For, -Proto and -Host are believed; empty: none, the client address is the socket's.",
    )
    page_size: int = Field(default=50, ge=1, le=1000, description="Default page size of list endpoints.")
    max_page_size: int = Field(default=500, ge=1, le=10000, description="Largest page size a client may ask.")
    worker: Literal["in-process", "off"] = Field(
        default="in-process",
        description="in-process: the serving process also sends deliveries (one worker per process); off: "
        "only flask --app wsgi worker processes send.",
    )
    worker_batch_size: int = Field(
        default=150,
        ge=1,
        le=500,
        description="Messages a worker claims at once. With the concurrency it bounds what a crash can leave "
        "in flight (sent again after a restart and counted in resent_after_crash).",
    )
    worker_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Batches a worker sends side by side (150 x 2 measured best in bench/send.py on 2 cores).",
    )
    worker_poll_seconds: float = Field(
        default=0.1,
        ge=0.02,
        le=60,
        description="How often a worker looks for deliveries that are due (a delivery created through this "
        "process's API wakes its in-process worker at once).",
    )
    worker_lease_seconds: float = Field(
        default=30,
        ge=2,
        le=3600,
        description="How long a claimed batch stays reserved; after a crash its messages are sent again once "
        "this has passed. Must exceed PUSHGATE_PROVIDER_TIMEOUT.",
    )
    broker_url: str = Field(
        default="",
        repr=False,
        description="Celery mode: URL of the broker (amqp://user:password@host:5672/vhost for RabbitMQ, "
        "redis://host:6379/1 for Redis). Web processes then only enqueue, and deliveries and sync jobs run on "
        "`celery -A pushgate_celery worker` processes on any number of hosts (needs PostgreSQL); empty: the "
        "embedded default, where the serving process sends.",
    )
    celery_batches_in_flight: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Celery mode: batch tasks of one delivery in the broker or running at once (each claims "
        "PUSHGATE_WORKER_BATCH_SIZE messages and enqueues the next while some remain); at most this many workers "
        "send one delivery side by side.",
    )
    celery_visibility_timeout: float = Field(
        default=300,
        ge=10,
        le=24 * 3600,
        description="Celery mode with Redis: seconds after which a task a worker took but never acknowledged (the "
        "worker died) is given to another. Must exceed PUSHGATE_WORKER_LEASE_SECONDS; RabbitMQ gives such a task "
        "back as soon as the worker's connection drops and ignores this.",
    )
    integration_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long a process remembers which app owns an integration key (0: no cache). A key "
        "changed or removed in another process keeps working that long there.",
    )
    fcm_endpoint: str = Field(
        default="",
        description="Base URL of the FCM HTTP v1 API (default Google's); set it to a local peer such as "
        "https://127.0.0.1:8444. The OAuth token URL is the service account's token_uri.",
    )
    apns_endpoint: str = Field(
        default="",
        description="Base URL of APNs for both environments (default Apple's sandbox and production hosts), "
        "e.g. https://127.0.0.1:8443 for the local emulator.",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of extra certificate authorities trusted for FCM, APNs and OAuth (local peers).",
    )
    provider_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds one FCM or APNs request may take before it is retried."
    )
    quarantine_soft_errors: int = Field(
        default=5, ge=1, le=100, description="Soft errors (at least a day apart) that put a token in quarantine."
    )
    quarantine_error_spacing_hours: float = Field(
        default=24, ge=0, le=24 * 30, description="Soft errors closer together than this count once."
    )
    quarantine_reset_days: float = Field(
        default=10, gt=0, le=365, description="Days without an error after which the soft-error count restarts."
    )
    # -- sync in: Platform segments from Azure Blob ------------------------------------------------
    segments_connection_string: str = Field(
        default="",
        repr=False,
        description="Azure Storage connection string of the Platform's Blob destination (or use "
        "PUSHGATE_SEGMENTS_ACCOUNT_URL with PUSHGATE_SEGMENTS_CREDENTIAL).",
    )
    segments_account_url: str = Field(
        default="", description="Blob service URL (https://ACCOUNT.blob.core.windows.net) when no connection string."
    )
    segments_credential: str = Field(
        default="",
        repr=False,
        description="Account key or SAS token for PUSHGATE_SEGMENTS_ACCOUNT_URL.",
    )
    segments_container: str = Field(default="", description="Container the Platform exports segments to.")
    segments_prefix: str = Field(default="", description="Only blobs whose names start with this are read.")
    segments_identity_column: str = Field(
        default="",
        description="Export column holding the identity matched against profiles (external_id or email, per "
        "PUSHGATE_RECONCILIATION_FIELD), e.g. personalEmail.address.",
    )
    segments_export_mode: Literal["incremental", "full"] = Field(
        default="incremental",
        description="incremental: apply each row's status; full: members absent from the latest export leave "
        "the audience.",
    )
    segments_delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="Column delimiter of CSV exports."
    )
    sync_max_unreadable_fraction: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="A file whose unreadable rows exceed this fraction of its rows fails and changes nothing.",
    )
    # -- sync in: profiles and personalisation files over sFTP -------------------------------------
    sftp_host: str = Field(default="", description="Campaign-side sFTP server.")
    sftp_port: int = Field(default=22, ge=1, le=65535, description="sFTP port.")
    sftp_user: str = Field(default="", description="sFTP user name.")
    sftp_key_file: Path | None = Field(default=None, description="Private key file for the sFTP user.")
    sftp_known_hosts: Path | None = Field(
        default=None,
        description="known_hosts file pinning the server's host key; a host key not in it is refused.",
    )
    sftp_inbox: str = Field(default="inbox", description="Folder where profile and data files arrive.")
    sftp_archive: str = Field(default="", description="Folder processed files move to (default INBOX/archive).")
    sftp_rejects: str = Field(
        default="", description="Folder rejected rows are written to as CSV (default INBOX/rejects)."
    )
    sftp_upload_dir: str = Field(default="upload", description="Folder `sync upload` puts files into.")
    sftp_profile_pattern: str = Field(default="profiles*.csv*", description="Names of profile files (glob).")
    sftp_data_pattern: str = Field(
        default="data_*.csv*",
        description="Names of personalisation files (glob); the table name is what follows data_.",
    )
    sftp_profile_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object CSV column -> profile field (external_id, email, first_name, last_name, "
        "locale, timezone, push_consent, attributes.NAME); by default headers equal to field names map to "
        "them and other columns become attributes.",
    )
    sync_config: Path | None = Field(
        default=None,
        description="JSON file with governance labels and policies (Policy Service shape) and audience names.",
    )
    sync_segments_cron: str = Field(
        default="", description="Cron expression for the segment import in the in-process scheduler (empty: off)."
    )
    sync_profiles_cron: str = Field(
        default="", description="Cron expression for the sFTP profile import in the in-process scheduler."
    )
    # -- sync out: logs and preferences to the Experience Platform ----------------------------------
    aep_ims_url: str = Field(default="https://ims-na1.adobelogin.com", description="Adobe IMS base URL (OAuth).")
    aep_platform_url: str = Field(
        default="https://platform.adobe.io",
        description="Experience Platform API base URL (Schema Registry, Catalog, batch ingestion).",
    )
    aep_streaming_url: str = Field(
        default="https://dcs.adobedc.net", description="Streaming ingestion base URL (/collection/...)."
    )
    aep_client_id: str = Field(default="", description="OAuth server-to-server client id (also the x-api-key).")
    aep_client_secret: str = Field(default="", repr=False, description="OAuth server-to-server client secret.")
    aep_org_id: str = Field(
        default="", description="IMS organization id (x-gw-ims-org-id), e.g. 6D9DF9D05A9F8D8A0A495FD1@AdobeOrg."
    )
    aep_sandbox: str = Field(default="prod", description="Platform sandbox name (x-sandbox-name).")
    aep_tenant_id: str = Field(default="", description="Tenant id: pushgate's XDM fields live under _{tenant}.")
    aep_inlet_id: str = Field(default="", description="Streaming inlet (HTTP API source connection) id.")
    aep_scopes: str = Field(
        default="openid,AdobeID,read_organizations,additional_info.projectedProductContext,session",
        description="OAuth scopes asked of IMS (comma-separated).",
    )
    aep_timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds one Platform request may take.")
    sync_export_interval_hours: float = Field(
        default=4,
        ge=4,
        le=24 * 7,
        description="Least time between two exports of a stream (the integration pattern's guardrail; at least "
        "4; `sync logs --force` overrides it once, and is logged).",
    )
    sync_export_batch_threshold: int = Field(
        default=50_000,
        ge=1,
        le=100_000_000,
        description="A stream with more new records than this goes through batch ingestion instead of streaming.",
    )
    sync_export_settle_seconds: float | None = Field(
        default=None,
        ge=0,
        le=24 * 3600,
        description="How much older than the export's horizon a row must be to be exported now. Empty: 0 on SQLite "
        "(rows are stamped under its write lock, so a run exports everything committed when it starts) and 5 on "
        "PostgreSQL, where the horizon is the start of the oldest open transaction and this margin covers clock "
        "differences between the hosts and the database server (raise it if theirs are larger).",
    )
    sync_logs_cron: str = Field(
        default="", description="Cron expression for the log export in the in-process scheduler (empty: off)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the gateway's own loggers."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines on stderr: text for people, json for collectors (one object a line: time, level, "
        "logger, message, request_id, delivery_id, sync_run_id, exception).",
    )
    emulator_apns_port: int = Field(
        default=8443,
        ge=1,
        le=65535,
        description="Port of the local APNs emulator (flask --app wsgi emulators, make run).",
    )
    emulator_fcm_port: int = Field(
        default=8444, ge=1, le=65535, description="Port of the local FCM emulator and its OAuth token endpoint."
    )
    emulator_inbox_port: int = Field(
        default=8440, ge=1, le=65535, description="Port of the emulators' inbox page (what they received)."
    )
    emulator_platform_port: int = Field(
        default=8445, ge=-1, le=65535, description="Port of the local Experience Platform peer; -1 leaves it off."
    )

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value

    @field_validator("fcm_endpoint", "apns_endpoint", "aep_ims_url", "aep_platform_url", "aep_streaming_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute URL such as https://127.0.0.1:8443")
        return value.rstrip("/")

    @field_validator("ca_bundle", "sftp_key_file", "sftp_known_hosts", "sync_config")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("sync_segments_cron", "sync_profiles_cron", "sync_logs_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if value and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. 0 */4 * * *)")
        return value

    @field_validator("rate_limit_public", "rate_limit_api", "rate_limit_sign_in")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a rate limit such as 600/minute or 10/second;300/hour") from None
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not an IP address or network such as 10.0.0.0/8") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value
        if not value.startswith(("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")):
            raise ValueError("must be an amqp:// (RabbitMQ) or redis:// URL")
        if not str(info.data.get("database_url", "")).startswith("postgresql"):
            # Workers on several hosts share the store; a SQLite file is one host's, locked as a whole.
            raise ValueError("Celery mode needs PostgreSQL: set PUSHGATE_DATABASE_URL to a postgresql+psycopg:// URL")
        return value

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted_proxies` parsed."""
        return tuple(
            ipaddress.ip_network(i.strip(), strict=False) for i in self.trusted_proxies.split(",") if i.strip()
        )

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL such as https://push.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _lease_outlives_requests(self) -> Settings:
        if self.worker_lease_seconds <= self.provider_timeout:
            raise ValueError("worker_lease_seconds must be longer than provider_timeout")
        if self.broker_url and self.celery_visibility_timeout <= self.worker_lease_seconds:
            # A task given to a second worker while the first still holds its lease claims nothing
            # (harmless), but a shorter timeout than the lease only adds such empty redeliveries.
            raise ValueError("celery_visibility_timeout must be longer than worker_lease_seconds")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<instance>/pushgate.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.instance_path / 'pushgate.db').resolve()}"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Read the environment (plus ``overrides``, used by tests) and validate it.

    Raises :class:`ConfigError` with one line such as
    ``invalid setting PUSHGATE_PAGE_SIZE: Input should be greater than or equal to 1``.
    """
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        # A check across settings has no location: it names its setting first.
        field = str(first["loc"][0]) if first["loc"] else message.split(" ", 1)[0]
        raise ConfigError(f"invalid setting {ENV_PREFIX}{field.upper()}: {message}") from None


#: ``PUSHGATE_*`` variables that are not settings of the gateway: the test suite's and the benchmarks'.
NOT_SETTINGS = frozenset(
    {"PUSHGATE_TEST_DATABASE_URL", "PUSHGATE_TEST_OUTPUT", "PUSHGATE_CHROMIUM", "PUSHGATE_BENCH_POSTGRESQL_URL"}
)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning line for each ``PUSHGATE_*`` variable that is no setting (a typo such as
    ``PUSHGATE_PAGESIZE`` would otherwise be ignored without a word), naming the closest one."""
    names = [name.upper() for name in Settings.model_fields]
    warnings = []
    for variable in sorted(os.environ if environ is None else environ):
        name = variable.removeprefix(ENV_PREFIX)
        if name == variable or name in names or variable in NOT_SETTINGS:
            continue
        # Compared without the prefix every variable shares, which would make anything look close.
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else "; see the README's settings table"
        warnings.append(f"unknown setting {variable} is ignored{hint}")
    return warnings


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's table is made from this."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default in ("", None, {}, []) else str(default)
        rows.append((f"{ENV_PREFIX}{name.upper()}", shown, field.description or ""))
    return rows


if __name__ == "__main__":  # python -m core.config prints the README's settings table
    print("| Variable | Default | Meaning |\n|---|---|---|")
    for variable, default, description in settings_table():
        print(f"| `{variable}` | {f'`{default}`' if default else ''} | {description} |")
