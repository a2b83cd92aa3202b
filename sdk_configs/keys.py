"""The SDK configuration keys Adobe's extensions read, and the ones pushgate must set.

``READS[(sdk, platform)]`` is every key that the extensions an app registers for that SDK family
read from the Experience Platform Mobile SDK configuration; the generator may only emit keys from
it. ``REQUIRED[(sdk, platform)]`` are the keys without which the SDK sends nothing to pushgate
(or sends it elsewhere); the generator must always emit them. Both are checked by the tests.

Read in the SDK sources (docs/protocols.md §1-3), file by file:

- Mobile Core: ``global.privacy`` (``AEPCore/Sources/configuration/ConfigurationConstants.swift``).
- Campaign Classic: ``CampaignClassicConstants.java`` (Android) and ``CampaignClassicConstants.swift``
  (iOS); each platform reads only its own ``campaignclassic.<platform>.integrationKey``. iOS reads
  the timeout ``as? Int``.
- Campaign Standard: ``CampaignConstants.swift`` / ``CampaignState.swift`` (iOS), the same keys in
  the Android ``CampaignConstants``. ``campaign.mcias`` and ``property.id`` only serve the in-app
  rules download from Adobe's MCIAS, which pushgate does not serve, so they are left unset.
- Identity (carries the Standard push token on ``/id``): ``IdentityConstants.swift`` and the Android
  ``IdentityConstants.java``; it sends nothing without ``experienceCloud.org``.
- Edge Network: ``EdgeConstants.swift`` (``edge.environment`` must stay ``prod``: ``pre-prod``
  changes the path to ``/ee-pre-prd``, ``int`` ignores ``edge.domain``).
- Messaging: ``MessagingConstants.swift`` (``messaging.useSandbox`` is read on iOS only) and
  ``MessagingConstants.java``; without ``messaging.eventDataset`` no push tracking is sent.
"""

from __future__ import annotations

SDKS = ("campaign-classic", "campaign-standard", "edge", "native")
PLATFORMS = ("ios", "android")

CORE = frozenset({"global.privacy"})
CAMPAIGN_CLASSIC = {
    platform: frozenset(
        {
            "campaignclassic.marketingServer",
            "campaignclassic.trackingServer",
            f"campaignclassic.{platform}.integrationKey",
            "campaignclassic.timeout",
        }
    )
    for platform in PLATFORMS
}
CAMPAIGN_STANDARD = frozenset(
    {
        "campaign.server",
        "campaign.pkey",
        "campaign.mcias",
        "campaign.timeout",
        "campaign.registrationDelay",
        "campaign.registrationPaused",
        "property.id",
    }
)
IDENTITY = frozenset({"experienceCloud.org", "experienceCloud.server"})
EDGE = frozenset({"edge.configId", "edge.domain", "edge.environment"})
MESSAGING = {
    "android": frozenset({"messaging.eventDataset", "messaging.optimizePushSync"}),
    "ios": frozenset({"messaging.eventDataset", "messaging.useSandbox", "messaging.optimizePushSync"}),
}

READS: dict[tuple[str, str], frozenset[str]] = {}
REQUIRED: dict[tuple[str, str], frozenset[str]] = {}
for _platform in PLATFORMS:
    READS["campaign-classic", _platform] = CORE | CAMPAIGN_CLASSIC[_platform]
    READS["campaign-standard", _platform] = CORE | CAMPAIGN_STANDARD | IDENTITY
    READS["edge", _platform] = CORE | EDGE | MESSAGING[_platform]
    READS["native", _platform] = frozenset()
    REQUIRED["campaign-classic", _platform] = frozenset(
        {
            "global.privacy",
            "campaignclassic.marketingServer",
            "campaignclassic.trackingServer",
            f"campaignclassic.{_platform}.integrationKey",
        }
    )
    REQUIRED["campaign-standard", _platform] = frozenset(
        {"global.privacy", "campaign.server", "campaign.pkey", "experienceCloud.server", "experienceCloud.org"}
    )
    REQUIRED["edge", _platform] = frozenset({"edge.configId", "edge.domain", "messaging.eventDataset"})
    REQUIRED["native", _platform] = frozenset()
