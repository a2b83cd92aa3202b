"""Identifiers and push tokens in the forms Adobe's products and the push services really produce.

Tests and fixtures take their values from here. Made-up short values (``pkey-1``, a 40-character
FCM token, an org id of 16 hex digits) once hid a bug: a real Campaign Standard pkey was refused by
the API while every test passed. Whatever a test needs beyond these, it derives here too, with
:func:`fcm_token`, :func:`apns_token`, :func:`ecid` and :func:`crm_id` (deterministic: same seed,
same value).
"""

from __future__ import annotations

import base64
import hashlib

from push.peers.apns import injection_for
from push.peers.fcm import TOKEN_PREFIXES as FCM_PREFIXES

#: A Campaign Standard pkey as the mobile app's page shows it: ``@`` + URL-safe base64, 121 characters.
PKEY = (
    "@zkJm-iptHCFypEcQT40HL2XSUIWED61QCwsdAXp3k-379QpKt2lh4YiIVzGZmMpPpDhHqbTotpvGMgGxfaQuGmWbFFt-lJY7QveKCbarWSnHpGAPW"
    "NcQ5iP7"
)
#: Another one, with both ``-`` and ``_`` of the URL-safe alphabet.
PKEY_2 = (
    "@x9Sr8NM1MiHfwkdL84a6USvF-gdloeiz0nngGcG8K8x6bUmbqEgSuz0eCk095MChJxz5fYrYxHgIwR0d34gzP-wxaC_eVhkXlS_3inqK3v_Q_rw"
    "3LdJocZFs"
)
#: A 199-character pkey: the length of the pkeys in published app configurations.
PKEY_LONG = (
    "@AvIfmbEpuXfKv6s9NubIi7b34NYN90WQ0SJGV_s4Swi2D_vcLnKrtqU-o6H8q_eEndjWk3zZiSyuX28rwvy3NqtyWQ_FNof4rZm8JJ813t67l"
    "IkhumnMUO4N897Q0z_WTT0Tei1HOR6VxPSotSk3QHYbsg2d2URg2nKavzwzfg7lLqa4YmYgUsTq5A__B8B6AeuGBb"
)
#: An Experience Cloud (IMS) org id: 24 upper-case hex digits and ``@AdobeOrg``.
ORG = "6D9DF9D05A9F8D8A0A495FD1@AdobeOrg"
ORG_2 = "A1B2C3D4E5F60718293A4B5C@AdobeOrg"  # another company's org
#: An Edge datastream (config) id: a UUID, also used as ``{uuid}:{environment}``.
EDGE_CONFIG = "3f1e0f4c-9b9e-4d7a-8f0e-5c2d4b6a7e81"
EDGE_CONFIG_DEV = EDGE_CONFIG + ":dev"
#: Campaign Classic integration keys (``mobileAppUuid``): what an operator typed in the mobile
#: application service, most often a UUID, sometimes words.
IOS_KEY = "9c1f3e8a-4b7d-4e2a-b6c5-0d8f7a9e1b23"
ANDROID_KEY = "5e2a7c41-8d3f-4b69-a0e2-7f1c9b3d6e58"
IOS_KEY_WORDS = "Shop app iOS (prod)"
ANDROID_KEY_WORDS = "Shop app Android (prod)"
IOS_KEY_ACCENTS = "Boutique Zürich iOS"
ANDROID_KEY_ACCENTS = "Boutique Zürich Android"
#: The iOS bundle id and the Android package name: very often one string.
BUNDLE_ID = "com.example.shop"
PACKAGE = "com.example.shop"
#: An ECID (Experience Cloud ID, ``d_mid``): 38 digits, two 64-bit halves written with 19 digits each,
#: so it may begin with 0.
ECID = "34123908813423987120945530139878311234"
ECID_LEADING_ZERO = "04702312889034798711928342100981233471"


def _digest(seed: object, purpose: str, size: int = 64) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{purpose}/{counter}/{seed}".encode()).digest()
        counter += 1
    return out[:size]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def fcm_token(seed: object = "device", prefix: str = "") -> str:
    """An FCM registration token of the real form, 163 characters: a 22-character instance id,
    ``:APA91b`` and 134 characters of URL-safe base64. ``prefix`` (such as ``unregistered-``, see
    the FCM emulator's ``TOKEN_PREFIXES``) goes in front, to make the emulator answer an error."""
    instance = _b64(_digest(seed, "fcm-instance", 17))[:22]
    body = _b64(_digest(seed, "fcm-body", 101))[:134]
    token = f"{instance}:APA91b{body}"
    if not prefix:
        assert not token.startswith(tuple(FCM_PREFIXES)), "this seed makes an emulator error token; pick another"
    return prefix + token


def apns_token(seed: object = "device", prefix: str = "") -> str:
    """An APNs device token: 64 lower-case hex digits (the Classic SDK's form; ``.upper()`` gives
    what ``setPushIdentifier`` sends). ``prefix`` (such as ``e4100000``, see the APNs emulator's
    ``TOKEN_PREFIXES``) replaces its first digits, to make the emulator answer an error."""
    token = prefix + hashlib.sha256(f"apns/{seed}".encode()).hexdigest()[len(prefix) :]
    if not prefix:
        assert injection_for(token) is None, "this seed makes an emulator error token; pick another"
    return token


def ecid(seed: object) -> str:
    """Another ECID: two 63-bit numbers, each zero-padded to 19 digits."""
    raw = _digest(seed, "ecid", 16)
    return "".join(f"{int.from_bytes(half) >> 1:019d}" for half in (raw[:8], raw[8:]))


def crm_id(number: int) -> str:
    """A profile's external id as a CRM writes it: ``CRM-`` and six digits (``crm_id(4211)`` is
    ``CRM-004211``)."""
    return f"CRM-{number:06d}"


FCM_TOKEN = fcm_token("device-1")
APNS_TOKEN = apns_token("device-1")
