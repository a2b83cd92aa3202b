"""From an app, a platform, an SDK family and pushgate's public URL to what the app team needs.

:func:`generate` is pure: it takes :class:`AppFacts` (read from the store by :meth:`AppFacts.of`)
and returns an :class:`SdkConfig`, whose :meth:`SdkConfig.as_dict` is what the API and the CLI
print::

    {"app_id", "app_name", "platform", "sdk", "public_url",
     "configuration": {...} | null,   # Experience Platform Mobile SDK keys; null for native
     "legacy": {...} | null,          # legacy Campaign SDK settings; campaign-classic only
     "native": {...} | null,          # registration and tracking URLs; native only
     "snippets": {"kotlin": str} | {"swift": str},   # the platform's language only
     "warnings": [str, ...]}

Adobe's SDKs take a *host* (``host[:port]``, no scheme) and always call ``https://{host}/...``
at the root of that host, so for them the public URL must not carry a path. Refusals are
:class:`core.errors.ClientError` subclasses with one-line messages: a bad choice is a 400, an app
or a gateway that lacks what the configuration needs is a 409 naming what to set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import BadRequest, Conflict
from sdk_configs.keys import PLATFORMS, SDKS
from sdk_configs.snippets import render_snippet
from store.models import App

CLASSIC_TIMEOUT = 30  # seconds; the extension's default, written out so teams see it
STANDARD_TIMEOUT = 5  # seconds; likewise
STANDARD_REGISTRATION_DELAY = 7  # days between mobileAppV5 re-registrations (0: every launch)
# Any non-empty value: pushgate ignores the dataset, but the Messaging extension sends no push
# tracking at all without one.
EVENT_DATASET = "pushgate-push-tracking"
LANGUAGES = {"android": "kotlin", "ios": "swift"}
#: iOS extensions that build their URLs from a bare host (URLComponents.host), unlike Classic's format string.
IOS_HOST_ONLY = {"campaign-standard": "AEPCampaign and AEPIdentity", "edge": "AEPEdge"}


class PublicUrlNotSet(Conflict):
    code = "public_url_not_set"


class PublicUrlUnusable(Conflict):
    code = "public_url_unusable"


class AppNotConfigured(Conflict):
    code = "app_not_configured"


@dataclass(frozen=True)
class PlatformPart:
    integration_key: str
    app_identifier: str  # bundle id or package name
    apns_environment: str | None = None  # sandbox | production, iOS with credentials only


@dataclass(frozen=True)
class AppFacts:
    """What the generator needs of an app, detached from the store."""

    id: int
    name: str
    parts: Mapping[str, PlatformPart]
    campaign_standard_pkey: str | None = None
    edge_config_id: str | None = None
    experience_cloud_org: str | None = None
    user_key_verification: str = "off"  # optional | required: the snippets send the user key's hash

    @classmethod
    def of(cls, app: App) -> AppFacts:
        return cls(
            id=app.id,
            name=app.name,
            parts={
                p.platform: PlatformPart(p.integration_key, p.app_identifier, p.apns_environment) for p in app.platforms
            },
            campaign_standard_pkey=app.campaign_standard_pkey,
            edge_config_id=app.edge_config_id,
            experience_cloud_org=app.experience_cloud_org,
            user_key_verification=app.user_key_verification,
        )


@dataclass(frozen=True)
class PublicEndpoint:
    """``PUSHGATE_PUBLIC_URL`` split the way the SDKs need it."""

    base_url: str  # scheme://host[:port][/path], no trailing slash
    scheme: str
    host: str  # host[:port], what SDK server keys take
    port: int | None
    path: str  # "" or "/prefix"

    @classmethod
    def parse(cls, public_url: str) -> PublicEndpoint:
        if not public_url:
            raise PublicUrlNotSet(
                "PUSHGATE_PUBLIC_URL is not set: set it to the public base URL apps reach this gateway at "
                "(such as https://push.example.com) and restart, so SDK configurations can point at it"
            )
        try:
            parts = urlsplit(public_url)
            port = parts.port
        except ValueError as exc:
            raise PublicUrlUnusable(f"PUSHGATE_PUBLIC_URL {public_url!r} is not a usable URL: {exc}") from None
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.query:
            raise PublicUrlUnusable(
                f"PUSHGATE_PUBLIC_URL {public_url!r} must be scheme://host[:port], such as https://push.example.com"
            )
        path = parts.path.rstrip("/")
        return cls(f"{parts.scheme}://{parts.netloc}{path}", parts.scheme, parts.netloc, port, path)


@dataclass(frozen=True)
class SdkConfig:
    app_id: int
    app_name: str
    platform: str
    sdk: str
    public_url: str
    configuration: dict[str, Any] | None
    legacy: dict[str, str] | None
    native: dict[str, str] | None
    snippets: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "app_name": self.app_name,
            "platform": self.platform,
            "sdk": self.sdk,
            "public_url": self.public_url,
            "configuration": self.configuration,
            "legacy": self.legacy,
            "native": self.native,
            "snippets": self.snippets,
            "warnings": self.warnings,
        }


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        shown = repr(value[:50]) if value else "missing"
        raise BadRequest(f"{name} must be one of {', '.join(choices)} (got {shown})", code="invalid_query")
    return value


def generate(app: AppFacts, platform: str, sdk: str, public_url: str) -> SdkConfig:
    """The configuration, settings and snippets for ``app`` on ``platform`` with ``sdk``."""
    check_choice("platform", platform, PLATFORMS)
    check_choice("sdk", sdk, SDKS)
    endpoint = PublicEndpoint.parse(public_url)
    part = app.parts.get(platform)
    if part is None:
        raise AppNotConfigured(
            f"app {app.id} ({app.name}) has no {platform} part; add it with PATCH /api/v1/apps/{app.id}",
            code="platform_missing",
        )
    configuration: dict[str, Any] | None = None
    legacy: dict[str, str] | None = None
    native: dict[str, str] | None = None
    if sdk == "native":
        native = {
            "base_url": endpoint.base_url,
            "integration_key": part.integration_key,
            "registration_url": f"{endpoint.base_url}/api/v1/subscriptions",
            "tracking_url": f"{endpoint.base_url}/r/?id=h{{hex _mId}},{{_dId}},{{1 received | 2 clicked}}",
        }
    else:
        if endpoint.path:
            raise PublicUrlUnusable(
                f"PUSHGATE_PUBLIC_URL {endpoint.base_url} has a path; Adobe's SDKs take a host only and call "
                f"https://{{host}}/nms/..., /id, /ee/..., so serve pushgate at the root of its host"
            )
        configuration = _configuration(app, part, platform, sdk, endpoint.host)
        if sdk == "campaign-classic":
            # The legacy SDK (Neolane) takes full URLs ending in a slash, scheme included.
            legacy = {
                "integration_key": part.integration_key,
                "marketing_host": f"{endpoint.base_url}/",
                "tracking_host": f"{endpoint.base_url}/",
            }
    snippet = render_snippet(
        sdk,
        LANGUAGES[platform],
        app_name=app.name,
        base_url=endpoint.base_url,
        configuration=configuration,
        integration_key=part.integration_key,
        verify_user_keys=app.user_key_verification != "off",
    )
    return SdkConfig(
        app_id=app.id,
        app_name=app.name,
        platform=platform,
        sdk=sdk,
        public_url=endpoint.base_url,
        configuration=configuration,
        legacy=legacy,
        native=native,
        snippets={LANGUAGES[platform]: snippet},
        warnings=_warnings(endpoint, platform, sdk),
    )


def _require(app: AppFacts, name: str, value: str | None, why: str) -> str:
    if not value:
        raise AppNotConfigured(
            f"app {app.id} ({app.name}) has no {name}: {why}; set it with PATCH /api/v1/apps/{app.id}"
        )
    return value


def _configuration(app: AppFacts, part: PlatformPart, platform: str, sdk: str, host: str) -> dict[str, Any]:
    # Privacy opted in: the Classic and Standard extensions send no tracking otherwise.
    config: dict[str, Any] = {"global.privacy": "optedin"}
    if sdk == "campaign-classic":
        config.update(
            {
                "campaignclassic.marketingServer": host,
                "campaignclassic.trackingServer": host,
                f"campaignclassic.{platform}.integrationKey": part.integration_key,
                "campaignclassic.timeout": CLASSIC_TIMEOUT,
            }
        )
    elif sdk == "campaign-standard":
        pkey = _require(app, "campaign_standard_pkey", app.campaign_standard_pkey, "it is campaign.pkey")
        org = _require(
            app,
            "experience_cloud_org",
            app.experience_cloud_org,
            "without experienceCloud.org the Identity extension never sends the push token",
        )
        config.update(
            {
                "campaign.server": host,
                "campaign.pkey": pkey,
                "campaign.timeout": STANDARD_TIMEOUT,
                "campaign.registrationDelay": STANDARD_REGISTRATION_DELAY,
                "campaign.registrationPaused": False,
                "experienceCloud.server": host,
                "experienceCloud.org": org,
            }
        )
    else:
        config_id = _require(app, "edge_config_id", app.edge_config_id, "it is edge.configId")
        config.update(
            {
                "edge.configId": config_id,
                "edge.domain": host,
                "edge.environment": "prod",
                "messaging.eventDataset": EVENT_DATASET,
            }
        )
        if platform == "ios":
            # Sandbox tokens must be reported as apnsSandbox; follow the app's APNs credentials.
            config["messaging.useSandbox"] = part.apns_environment == "sandbox"
    return config


def _warnings(endpoint: PublicEndpoint, platform: str, sdk: str) -> list[str]:
    warnings = []
    if endpoint.scheme == "http":
        if sdk == "native":
            warnings.append(
                f"{endpoint.base_url} is plain http: Android (cleartext traffic) and iOS (App Transport Security) "
                "refuse it by default; use https"
            )
        else:
            warnings.append(
                f"{endpoint.base_url} is plain http, but Adobe's SDKs always call https://{endpoint.host}: "
                "that host must serve HTTPS"
            )
    if endpoint.port is not None and platform == "ios" and sdk in IOS_HOST_ONLY:
        # [inferred] these set the server as URLComponents.host, where a port is percent-encoded.
        warnings.append(
            f"{IOS_HOST_ONLY[sdk]} on iOS put {endpoint.host} into URLComponents.host, which takes no port: "
            "serve pushgate on port 443"
        )
    return warnings
