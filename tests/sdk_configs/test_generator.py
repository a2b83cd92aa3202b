"""The generator: for every SDK family and platform, only keys the SDK reads, every key it needs,
hosts and identifiers from the app and the public URL, snippets in the platform's language, and
clear refusals (missing public URL, missing platform part or identifier)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.errors import BadRequest, ClientError, Conflict
from sdk_configs.generator import AppFacts, PlatformPart, PublicUrlNotSet, PublicUrlUnusable, generate
from sdk_configs.keys import PLATFORMS, READS, REQUIRED, SDKS
from sdk_configs.snippets import kotlin_literal
from tests.values import ANDROID_KEY, BUNDLE_ID, EDGE_CONFIG, IOS_KEY, ORG, PACKAGE, PKEY

PUBLIC = "https://push.example.com"
KEYS = {"ios": IOS_KEY, "android": ANDROID_KEY}
CASES = [(sdk, platform) for sdk in SDKS for platform in PLATFORMS]


def shop(**overrides: Any) -> AppFacts:
    fields: dict[str, Any] = {
        "id": 7,
        "name": "Shop",
        "parts": {
            "ios": PlatformPart(IOS_KEY, BUNDLE_ID, "sandbox"),
            "android": PlatformPart(ANDROID_KEY, PACKAGE),
        },
        "campaign_standard_pkey": PKEY,
        "edge_config_id": EDGE_CONFIG,
        "experience_cloud_org": ORG,
    }
    fields.update(overrides)
    return AppFacts(**fields)


@pytest.mark.parametrize(("sdk", "platform"), CASES)
def test_only_keys_the_sdk_reads_and_every_key_it_needs(sdk: str, platform: str) -> None:
    config = generate(shop(), platform, sdk, PUBLIC).configuration
    keys = set(config or {})
    assert keys <= READS[sdk, platform], keys - READS[sdk, platform]
    assert REQUIRED[sdk, platform] <= keys, REQUIRED[sdk, platform] - keys
    if sdk == "native":
        assert config is None
    else:
        assert config is not None and config["global.privacy"] == "optedin"


def test_the_key_lists_name_what_the_sdk_sources_name() -> None:
    # Spelled as in CampaignClassicConstants, CampaignConstants, IdentityConstants, EdgeConstants and
    # MessagingConstants; a typo here would make the generator's output unread.
    assert READS["campaign-classic", "android"] == {
        "global.privacy",
        "campaignclassic.marketingServer",
        "campaignclassic.trackingServer",
        "campaignclassic.android.integrationKey",
        "campaignclassic.timeout",
    }
    assert "campaignclassic.ios.integrationKey" in READS["campaign-classic", "ios"]
    assert "campaignclassic.ios.integrationKey" not in READS["campaign-classic", "android"]
    for platform in PLATFORMS:
        assert {
            "campaign.server",
            "campaign.pkey",
            "campaign.mcias",
            "campaign.timeout",
            "campaign.registrationDelay",
            "campaign.registrationPaused",
            "experienceCloud.org",
            "experienceCloud.server",
        } <= READS["campaign-standard", platform]
        assert {"edge.configId", "edge.domain", "edge.environment", "messaging.eventDataset"} <= READS["edge", platform]
    assert "messaging.useSandbox" in READS["edge", "ios"]
    assert "messaging.useSandbox" not in READS["edge", "android"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_campaign_classic(platform: str) -> None:
    result = generate(shop(), platform, "campaign-classic", "https://push.example.com:8443/")
    key = KEYS[platform]
    assert result.configuration == {
        "global.privacy": "optedin",
        "campaignclassic.marketingServer": "push.example.com:8443",
        "campaignclassic.trackingServer": "push.example.com:8443",
        f"campaignclassic.{platform}.integrationKey": key,
        "campaignclassic.timeout": 30,
    }
    assert result.legacy == {
        "integration_key": key,
        "marketing_host": "https://push.example.com:8443/",
        "tracking_host": "https://push.example.com:8443/",
    }
    assert result.native is None
    assert result.warnings == []  # Classic formats "https://%s/...": a port is fine on both platforms


@pytest.mark.parametrize("platform", PLATFORMS)
def test_campaign_standard(platform: str) -> None:
    result = generate(shop(), platform, "campaign-standard", PUBLIC)
    assert result.configuration == {
        "global.privacy": "optedin",
        "campaign.server": "push.example.com",
        "campaign.pkey": PKEY,
        "campaign.timeout": 5,
        "campaign.registrationDelay": 7,
        "campaign.registrationPaused": False,
        "experienceCloud.server": "push.example.com",
        "experienceCloud.org": ORG,
    }
    assert result.legacy is None and result.native is None


@pytest.mark.parametrize(("environment", "sandbox"), [("sandbox", True), ("production", False), (None, False)])
def test_edge_follows_the_apns_environment_on_ios(environment: str | None, sandbox: bool) -> None:
    parts = {"ios": PlatformPart(IOS_KEY, BUNDLE_ID, environment)}
    config = generate(shop(parts=parts), "ios", "edge", PUBLIC).configuration
    assert config == {
        "global.privacy": "optedin",
        "edge.configId": EDGE_CONFIG,
        "edge.domain": "push.example.com",
        "edge.environment": "prod",
        "messaging.eventDataset": "pushgate-push-tracking",
        "messaging.useSandbox": sandbox,
    }
    android = generate(shop(), "android", "edge", PUBLIC).configuration
    assert android is not None and "messaging.useSandbox" not in android


@pytest.mark.parametrize("platform", PLATFORMS)
def test_native(platform: str) -> None:
    result = generate(shop(), platform, "native", "https://example.com/pushgate/")
    assert result.configuration is None and result.legacy is None
    assert result.native == {
        "base_url": "https://example.com/pushgate",
        "integration_key": KEYS[platform],
        "registration_url": "https://example.com/pushgate/api/v1/subscriptions",
        "tracking_url": "https://example.com/pushgate/r/?id=h{hex _mId},{_dId},{1 received | 2 clicked}",
    }


@pytest.mark.parametrize("sdk", SDKS)
def test_a_missing_public_url_is_a_clear_error(sdk: str) -> None:
    with pytest.raises(PublicUrlNotSet) as caught:
        generate(shop(), "ios", sdk, "")
    assert caught.value.status == 409 and caught.value.code == "public_url_not_set"
    assert "PUSHGATE_PUBLIC_URL is not set" in caught.value.message


@pytest.mark.parametrize("sdk", ["campaign-classic", "campaign-standard", "edge"])
def test_adobe_sdks_need_the_gateway_at_the_root_of_its_host(sdk: str) -> None:
    with pytest.raises(PublicUrlUnusable, match="has a path"):
        generate(shop(), "android", sdk, "https://example.com/pushgate")


@pytest.mark.parametrize("url", ["https://user@push.example.com", "https://push.example.com:99999", "ftp://x.example"])
def test_an_unusable_public_url_is_refused(url: str) -> None:
    with pytest.raises(PublicUrlUnusable, match="PUSHGATE_PUBLIC_URL"):
        generate(shop(), "android", "native", url)


def test_warnings_for_plain_http_and_for_a_port_ios_cannot_take() -> None:
    (http,) = generate(shop(), "android", "campaign-classic", "http://push.example.com").warnings
    assert "always call https://push.example.com" in http
    (native,) = generate(shop(), "ios", "native", "http://push.example.com").warnings
    assert "App Transport Security" in native
    (port,) = generate(shop(), "ios", "edge", "https://push.example.com:8443").warnings
    assert "URLComponents.host" in port and "AEPEdge" in port
    assert generate(shop(), "android", "edge", "https://push.example.com:8443").warnings == []
    assert generate(shop(), "ios", "campaign-classic", "https://push.example.com:8443").warnings == []


@pytest.mark.parametrize("sdk", SDKS)
def test_an_app_without_the_platform_is_refused(sdk: str) -> None:
    app = shop(parts={"android": PlatformPart(ANDROID_KEY, PACKAGE)})
    with pytest.raises(Conflict) as caught:
        generate(app, "ios", sdk, PUBLIC)
    assert caught.value.code == "platform_missing"
    assert caught.value.message == "app 7 (Shop) has no ios part; add it with PATCH /api/v1/apps/7"


@pytest.mark.parametrize(
    ("sdk", "missing"),
    [
        ("campaign-standard", "campaign_standard_pkey"),
        ("campaign-standard", "experience_cloud_org"),
        ("edge", "edge_config_id"),
    ],
)
def test_an_app_without_the_identifier_the_sdk_needs_is_refused(sdk: str, missing: str) -> None:
    with pytest.raises(Conflict) as caught:
        generate(shop(**{missing: None}), "android", sdk, PUBLIC)
    assert caught.value.code == "app_not_configured"
    assert f"app 7 (Shop) has no {missing}" in caught.value.message


@pytest.mark.parametrize(("platform", "sdk"), [("windows", "edge"), ("ios", "adobe"), ("", "edge"), ("ios", "")])
def test_unknown_choices_are_refused(platform: str, sdk: str) -> None:
    with pytest.raises(BadRequest, match="must be one of"):
        generate(shop(), platform, sdk, PUBLIC)


def _code_only(snippet: str) -> str:
    """The snippet without string literals and // comments."""
    without_strings = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', snippet)
    return re.sub(r"//[^\n]*", "", without_strings)


@pytest.mark.parametrize(("sdk", "platform"), CASES)
def test_snippets_are_in_the_platform_language_and_carry_the_configuration(sdk: str, platform: str) -> None:
    result = generate(shop(), platform, sdk, PUBLIC)
    language = "kotlin" if platform == "android" else "swift"
    assert list(result.snippets) == [language]
    snippet = result.snippets[language]
    for key, value in (result.configuration or {}).items():
        literal = kotlin_literal(value)  # strings, booleans and ints are written alike in both languages
        assert (f'"{key}" to {literal},' if language == "kotlin" else f'"{key}": {literal},') in snippet
    if sdk == "native":
        assert '"https://push.example.com"' in snippet and f'"{KEYS[platform]}"' in snippet
    code = _code_only(snippet)
    for opening, closing in ("()", "{}", "[]"):
        assert code.count(opening) == code.count(closing), (opening, closing)
    assert "{{" not in snippet and "{%" not in snippet


@pytest.mark.parametrize(
    ("call", "platform", "sdk"),
    [
        ("CampaignClassic.registerDevice(", "android", "campaign-classic"),
        ("CampaignClassic.trackNotificationReceive(", "android", "campaign-classic"),
        ("CampaignClassic.trackNotificationClick(", "android", "campaign-classic"),
        ("CampaignClassic.registerDevice(token: deviceToken", "ios", "campaign-classic"),
        ("CampaignClassic.trackNotificationReceive(withUserInfo:", "ios", "campaign-classic"),
        ("CampaignClassic.trackNotificationClick(withUserInfo:", "ios", "campaign-classic"),
        ("MobileCore.setPushIdentifier(token)", "android", "campaign-standard"),
        ("MobileCore.collectMessageInfo(", "ios", "campaign-standard"),
        ("Lifecycle.EXTENSION", "android", "campaign-standard"),
        ("MobileCore.setPushIdentifier(deviceToken)", "ios", "edge"),
        ("Messaging.handleNotificationResponse(response)", "ios", "edge"),
        ("MessagingService.handleRemoteMessage(this, message)", "android", "edge"),
        ("/api/v1/subscriptions", "android", "native"),
        ("/r/?id=h", "ios", "native"),
    ],
)
def test_snippets_register_and_track_with_the_sdk_api(call: str, platform: str, sdk: str) -> None:
    snippet = next(iter(generate(shop(), platform, sdk, PUBLIC).snippets.values()))
    assert call in snippet
    assert "MobileCore.updateConfiguration" in snippet or sdk == "native"


@pytest.mark.parametrize(("sdk", "platform"), CASES)
def test_an_app_that_verifies_user_keys_gets_snippets_that_send_the_hash(sdk: str, platform: str) -> None:
    plain = next(iter(generate(shop(), platform, sdk, PUBLIC).snippets.values()))
    for mode in ("optional", "required"):
        snippet = next(iter(generate(shop(user_key_verification=mode), platform, sdk, PUBLIC).snippets.values()))
        if sdk == "campaign-classic":  # as an additional parameter of registerDevice
            assert '"userKeyHash"' in snippet and "currentUserKeyHash()" in snippet
        elif sdk == "native":
            assert '"user_key_hash"' in snippet and "userKeyHash: String?" in snippet
        else:  # Campaign Standard and Edge send no user key: nothing to vouch for
            assert snippet == plain
            continue
        assert "Never ship the secret in the app" in snippet and "HMAC-SHA256" in snippet
        code = _code_only(snippet)
        for opening, closing in ("()", "{}", "[]"):
            assert code.count(opening) == code.count(closing), (opening, closing)
    assert "userKeyHash" not in plain and "user_key_hash" not in plain


@pytest.mark.parametrize(("sdk", "platform"), CASES)
def test_hostile_app_names_and_keys_stay_inside_comments_and_literals(sdk: str, platform: str) -> None:
    name = 'Evil\n*/ import x "$a" \\(b)\u2028z'
    key = 'k"$x\\(y)\n'
    parts = {platform: PlatformPart(key, "com.example.x", "production")}
    snippet = next(iter(generate(shop(name=name, parts=parts), platform, sdk, PUBLIC).snippets.values()))
    for line in snippet.splitlines():
        if "Evil" in line:
            assert line.startswith("// pushgate: Evil */ import x")
    assert "\u2028" not in snippet
    if sdk in ("campaign-classic", "native"):
        expected = r'"k\"\$x\\(y)\n"' if platform == "android" else r'"k\"$x\\(y)\n"'
        assert expected in snippet


def test_literals() -> None:
    from sdk_configs.snippets import swift_literal

    assert kotlin_literal("a$b") == r'"a\$b"' and swift_literal("a$b") == '"a$b"'
    assert kotlin_literal("é\x0c😀") == r'"\u00E9\u000C\uD83D\uDE00"'
    assert swift_literal("é\x0c😀") == r'"\u{E9}\u{C}\u{1F600}"'
    assert (kotlin_literal(True), swift_literal(False), kotlin_literal(30)) == ("true", "false", "30")
    with pytest.raises(TypeError):
        kotlin_literal(1.5)


def test_errors_are_client_errors() -> None:
    """The API turns them into 4xx JSON and the CLI into one line, never a 500."""
    for exc in (PublicUrlNotSet("x"), PublicUrlUnusable("x")):
        assert isinstance(exc, ClientError) and 400 <= exc.status < 500
