"""Requests built from an SDK configuration the way Adobe's SDKs build them, and a transport that
plays the DNS entry of pushgate's public host.

Each builder reads only the configuration keys its extension reads (docs/protocols.md §1-3), applies the
extension's own defaults (``dpm.demdex.net``, ``edge.adobedc.net``) and its own conditions for
sending anything at all (privacy opted in, an org, a dataset): a configuration that would leave
the SDK silent or point it elsewhere fails here, not in production. The bodies are the bytes
``test_sdk_replay`` replays.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from tests.functional.test_sdk_replay import ANDROID, APNS, FCM, FORM, IOS
from tests.values import ECID

TOKENS = {"android": FCM, "ios": APNS}
PUSH_DPIDS = {"android": "20919", "ios": "20920"}  # AEPIdentity iOS: MCPNS_DPID = "20920"


class SdkWouldNotSend(AssertionError):
    """The configuration leaves the SDK silent: it would send nothing."""


class PublicHost(httpx.BaseTransport):
    """Delivers ``https://{public host}`` requests to the live server, as the public host's DNS entry
    and TLS terminator would (the Host header stays the public host); any other host is refused."""

    def __init__(self, public_host: str, live_url: str) -> None:
        self.public_host = public_host
        self.live = httpx.URL(live_url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https" or request.url.netloc.decode() != self.public_host:
            raise AssertionError(f"the SDK would call {request.url}, not pushgate at https://{self.public_host}")
        target = request.url.copy_with(scheme="http", host=self.live.host, port=self.live.port)
        forwarded = httpx.Request(request.method, target, headers=request.headers, content=request.content)
        return self.inner.handle_request(forwarded)

    def close(self) -> None:
        self.inner.close()


def _opted_in(config: dict[str, Any]) -> None:
    if config.get("global.privacy") != "optedin":
        raise SdkWouldNotSend(f"global.privacy is {config.get('global.privacy')!r}: no tracking is sent")


def _required(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise SdkWouldNotSend(f"{key} is missing or empty: the extension sends nothing")
    return value


# Campaign Classic (CampaignClassicConstants: REGISTER_API_URL_BASE, TRACKING_API_URL_BASE).


def classic_registration(config: dict[str, Any], platform: str) -> httpx.Request:
    server = _required(config, "campaignclassic.marketingServer")
    key = quote(_required(config, f"campaignclassic.{platform}.integrationKey"), safe="")
    endpoint, body = ("registerAndroid.jssp", ANDROID) if platform == "android" else ("registerIOS.jssp", IOS)
    return httpx.Request(
        "POST",
        f"https://{server}/nms/mobile/1/{endpoint}",
        content=body.format(key=key).encode(),
        headers={"Content-Type": FORM},
    )


def classic_tracking(
    config: dict[str, Any], platform: str, message_id: str, delivery_id: str, tag: str
) -> httpx.Request:
    """``message_id`` and ``delivery_id`` as the push carried them (``_mId``, ``_dId``): the SDK
    parses ``_mId`` as a number and copies ``_dId`` unchanged."""
    _opted_in(config)
    server = _required(config, "campaignclassic.trackingServer")
    hex_id = format(int(message_id), "02x" if platform == "ios" else "x")
    return httpx.Request("GET", f"https://{server}/r/?id=h{hex_id},{delivery_id},{tag}")


# Campaign Standard (CampaignConstants: PROFILE_URL, TRACKING_URL) and Identity (URL+Identity).


def standard_registration(config: dict[str, Any], platform: str, ecid: str = ECID) -> httpx.Request:
    if config.get("global.privacy") == "optedout":
        raise SdkWouldNotSend("global.privacy is optedout")
    server = _required(config, "campaign.server")
    pkey = _required(config, "campaign.pkey")
    body = {"pushPlatform": "gcm" if platform == "android" else "apns", "marketingCloudId": ecid}
    return httpx.Request(
        "POST",
        f"https://{server}/rest/head/mobileAppV5/{pkey}/subscriptions/{ecid}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "Accept": "*/*"},
    )


def identity_push_token(
    config: dict[str, Any], platform: str, ecid: str = ECID, token: str | None = None
) -> httpx.Request:
    """``token`` defaults to :data:`TOKENS`."""
    if config.get("global.privacy") == "optedout":
        raise SdkWouldNotSend("global.privacy is optedout")
    org = _required(config, "experienceCloud.org")
    server = config.get("experienceCloud.server") or "dpm.demdex.net"
    token = token or TOKENS[platform]
    if platform == "ios":
        token = token.upper()  # setPushIdentifier: upper hex
    query = (
        f"d_rtbd=json&d_ver=2&d_orgid={quote(org, safe='')}&d_mid={ecid}"
        f"&d_cid={PUSH_DPIDS[platform]}%01{quote(token, safe='')}"
    )
    return httpx.Request("GET", f"https://{server}/id?{query}")


def standard_tracking(
    config: dict[str, Any], message_id: str, delivery_id: str, action: str, ecid: str = ECID
) -> httpx.Request:
    """The ids as the push carried them: the SDK copies both unchanged (Android also parses
    ``_dId`` as a hex int to dispatch its own event, and sends nothing when that fails)."""
    _opted_in(config)
    int(delivery_id, 16)
    server = _required(config, "campaign.server")
    return httpx.Request("GET", f"https://{server}/r/?id={message_id},{delivery_id},{action}&mcId={ecid}")


# Edge Network with Messaging (EdgeEndpoint: https://{edge.domain}/ee/v1/interact).


def _interact(config: dict[str, Any], events: list[dict[str, Any]]) -> httpx.Request:
    config_id = _required(config, "edge.configId")
    environment = config.get("edge.environment") or "prod"
    if environment != "prod":
        raise SdkWouldNotSend(f"edge.environment {environment!r} changes the path or the domain")
    domain = config.get("edge.domain") or "edge.adobedc.net"
    body = {
        "xdm": {"identityMap": {"ECID": [{"id": ECID, "authenticatedState": "ambiguous", "primary": False}]}},
        "events": events,
        "meta": {"konductorConfig": {"streaming": {"enabled": True, "recordSeparator": "\u0000", "lineFeed": "\n"}}},
    }
    return httpx.Request(
        "POST",
        f"https://{domain}/ee/v1/interact?configId={quote(config_id, safe='')}&requestId=A1B2C3",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "accept": "application/json"},
    )


def push_provider(config: dict[str, Any], platform: str) -> str:
    if platform == "android":
        return "fcm"
    return "apnsSandbox" if config.get("messaging.useSandbox") is True else "apns"


def edge_token_sync(config: dict[str, Any], platform: str, app_identifier: str) -> httpx.Request:
    token = TOKENS[platform].upper() if platform == "ios" else TOKENS[platform]  # setPushIdentifier: upper hex
    details = {
        "appID": app_identifier,
        "token": token,
        "platform": push_provider(config, platform),
        "denylisted": False,
        "identity": {"namespace": {"code": "ECID"}, "id": ECID},
    }
    event = {
        "data": {"pushNotificationDetails": [details]},
        "xdm": {"_id": "A1B2C3D4-0000-1111-2222-333344445555", "timestamp": "2024-05-01T10:15:30.123Z"},
    }
    return _interact(config, [event])


def edge_tracking(config: dict[str, Any], platform: str, message_id: str, delivery_id: str) -> httpx.Request:
    """The ids as the push's ``_xdm`` carried them (Messaging copies ``_xdm`` unchanged)."""
    dataset = config.get("messaging.eventDataset")
    if not dataset:
        raise SdkWouldNotSend("messaging.eventDataset is not set: Messaging sends no push tracking")
    event = {
        "xdm": {
            "_id": "B1B2C3D4-0000-1111-2222-333344445555",
            "timestamp": "2024-05-01T10:16:00.000Z",
            "eventType": "pushTracking.applicationOpened",
            "pushNotificationTracking": {
                "pushProviderMessageID": "0:1714558560%abc",
                "pushProvider": push_provider(config, platform),
            },
            "application": {"launches": {"value": 1}},
            "_experience": {
                "customerJourneyManagement": {
                    "messageExecution": {"messageExecutionID": message_id, "messageID": delivery_id}
                }
            },
        },
        "meta": {"collect": {"datasetId": dataset}},
    }
    return _interact(config, [event])


# pushgate's native API, as the generated snippets call it.


def native_registration(native: dict[str, Any], platform: str) -> httpx.Request:
    body = {"integration_key": native["integration_key"], "token": TOKENS[platform]}
    return httpx.Request("POST", native["registration_url"], json=body)


def native_tracking(native: dict[str, Any], message_id: str, delivery_id: str, tag: str) -> httpx.Request:
    return httpx.Request("GET", f"{native['base_url']}/r/?id=h{int(message_id):x},{delivery_id},{tag}")
