"""Payload builders: exact keys per SDK family and platform, APNs headers, the 4096-byte limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.messages import Message
from domain.templates.compiling import compile_message
from domain.templates.rendering import RenderContext, RenderedMessage, RenderProblem, render
from domain.templates.sandbox import DATA_DYNAMIC_ALLOWANCE, ELLIPSIS
from domain.tracking import parse_delivery_id, parse_message_id
from push.payloads import (
    MAX_PAYLOAD_BYTES,
    SDKS,
    PayloadTooLarge,
    apns_request,
    check_size,
    encode,
    expiration,
    fcm_message,
    payload_size,
    xdm,
)

BROADLOG_ID = 3_000_000_123  # above 2^31: _mId must still be plain decimal
DELIVERY_ID = 0xBEEF
TOPIC = "com.example.shop"

FULL: dict[str, Any] = {
    "title": "Hi {{ profile.first_name }}",
    "subtitle": "Weekend only",
    "body": "{{ tables.offers[profile.attributes.offer].title }} is on",
    "image_url": "https://cdn.example.com/sale.jpg",
    "deeplink": "myapp://offers/K123",
    "sound": "chime.caf",
    "badge": 3,
    "category": "OFFER",
    "actions": [
        {"id": "buy", "title": "Buy now", "deeplink": "https://shop.example.com/buy"},
        {"id": "open", "title": "See it", "deeplink": "myapp://offers/K123"},
        {"id": "later", "title": "Later"},
    ],
    "data": {"offer": "{{ profile.attributes.offer }}", "screen": "offers"},
    "collapse_id": "sale-k123",
    "ttl_seconds": 3600,
    "thread_id": "offers",
    "android_channel_id": "promotions",
}


def ctx(platform: str, **profile: Any) -> RenderContext:
    person = {"first_name": "Zoë", "attributes": {"offer": "K123"}, **profile}
    return RenderContext(person, {"platform": platform}, {"offers": {"K123": {"title": "Summer sale"}}})


def rendered(platform: str, message: dict[str, Any] | None = None, **profile: Any) -> RenderedMessage:
    return render(compile_message(Message.model_validate(message or FULL)), ctx(platform, **profile))


def ios(sdk: str, message: dict[str, Any] | None = None, **kw: Any) -> tuple[dict[str, Any], dict[str, str]]:
    options = {"broadlog_id": BROADLOG_ID, "delivery_id": DELIVERY_ID, "topic": TOPIC, **kw}
    return apns_request(rendered("ios", message), sdk=sdk, **options)


def android(sdk: str, message: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    options = {"broadlog_id": BROADLOG_ID, "delivery_id": DELIVERY_ID, **kw}
    return fcm_message(rendered("android", message), sdk=sdk, **options)


EXPECTED_XDM = {
    "cjm": {
        "_experience": {
            "customerJourneyManagement": {
                "messageExecution": {
                    "messageExecutionID": "3000000123",
                    "messageID": "beef",
                    "messagePublicationID": "beef",
                }
            }
        }
    }
}


# -- ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sdk", SDKS)
def test_ids_are_strings_in_every_push(sdk: str) -> None:
    payload, _ = ios(sdk)
    data = android(sdk)["data"]
    for where in (payload, data):
        assert where["_mId"] == "3000000123"
        assert where["_dId"] == "beef"
    # what comes back parses to the same rows (Standard passes _mId as is, Classic as h+hex)
    assert parse_message_id(payload["_mId"]) == (BROADLOG_ID, None)
    assert parse_message_id("h" + format(int(payload["_mId"]), "x")) == (BROADLOG_ID, None)
    assert parse_delivery_id(data["_dId"]) == (DELIVERY_ID, None)


MAC = "Zm9vYmFyYmF"  # a signature's length and alphabet (base64url, 11 characters)


@pytest.mark.parametrize(
    ("sdk", "mid", "did"),
    [
        ("campaign-classic", "3000000123", "beef." + MAC),  # its SDKs parse _mId as a number
        ("native", "3000000123", "beef." + MAC),  # the snippets build /r/ as Classic does
        ("campaign-standard", "3000000123." + MAC, "beef"),  # Android parses _dId as a hex int
        ("edge", "3000000123." + MAC, "beef"),  # messageExecutionID, copied with _xdm
    ],
)
def test_the_tracking_signature_rides_on_the_id_each_family_passes_through(sdk: str, mid: str, did: str) -> None:
    payload, _ = apns_request(
        rendered("ios"), broadlog_id=BROADLOG_ID, delivery_id=DELIVERY_ID, sdk=sdk, topic=TOPIC, signature=MAC
    )
    data = fcm_message(rendered("android"), broadlog_id=BROADLOG_ID, delivery_id=DELIVERY_ID, sdk=sdk, signature=MAC)[
        "data"
    ]
    for where in (payload, data):
        assert (where["_mId"], where["_dId"]) == (mid, did)
    signed_part = mid if sdk in ("campaign-standard", "edge") else did
    parsed = parse_message_id(signed_part) if signed_part == mid else parse_delivery_id(signed_part)
    assert parsed is not None and parsed[1] == MAC
    if sdk == "edge":
        execution = json.loads(data["_xdm"])["cjm"]["_experience"]["customerJourneyManagement"]["messageExecution"]
        assert (execution["messageExecutionID"], execution["messageID"]) == (mid, did)


@pytest.mark.parametrize("broadlog_id", [0, -1, 2**32, True])
def test_unsendable_broadlog_ids(broadlog_id: int) -> None:
    with pytest.raises(ValueError, match="_mId"):
        apns_request(rendered("ios"), broadlog_id=broadlog_id, delivery_id=1, sdk="native", topic=TOPIC)


def test_largest_broadlog_id_and_hex_delivery_ids() -> None:
    payload, _ = apns_request(rendered("ios"), broadlog_id=2**32 - 1, delivery_id=10, sdk="native", topic=TOPIC)
    assert (payload["_mId"], payload["_dId"]) == ("4294967295", "a")
    with pytest.raises(ValueError, match="_dId"):
        fcm_message(rendered("android"), broadlog_id=1, delivery_id=0, sdk="native")


def test_xdm_matches_what_tracking_reads() -> None:
    assert xdm(BROADLOG_ID, DELIVERY_ID) == EXPECTED_XDM
    execution = EXPECTED_XDM["cjm"]["_experience"]["customerJourneyManagement"]["messageExecution"]
    assert int(execution["messageExecutionID"]) == BROADLOG_ID
    assert parse_delivery_id(execution["messageID"]) == (DELIVERY_ID, None)


# -- iOS ------------------------------------------------------------------------------------------

IOS_COMMON = {
    "aps": {
        "alert": {"title": "Hi Zoë", "subtitle": "Weekend only", "body": "Summer sale is on"},
        "badge": 3,
        "sound": "chime.caf",
        "category": "OFFER",
        "thread-id": "offers",
        "mutable-content": 1,
    },
    "_mId": "3000000123",
    "_dId": "beef",
    "adb_media": "https://cdn.example.com/sale.jpg",
    "mediaUrl": "https://cdn.example.com/sale.jpg",
    "adb_uri": "myapp://offers/K123",
    "adb_act": [
        {"label": "Buy now", "type": "WEBURL", "uri": "https://shop.example.com/buy", "id": "buy"},
        {"label": "See it", "type": "DEEPLINK", "uri": "myapp://offers/K123", "id": "open"},
        {"label": "Later", "type": "OPENAPP", "id": "later"},
    ],
    "offer": "K123",
    "screen": "offers",
}
IOS_EXTRA: dict[str, dict[str, Any]] = {
    "campaign-classic": {},
    "native": {},
    "edge": {"_xdm": EXPECTED_XDM},
    "campaign-standard": {
        "_acsDeliveryTracking": "on",
        "uri": "myapp://offers/K123",
        "media-attachment-url": "https://cdn.example.com/sale.jpg",
    },
}


@pytest.mark.parametrize("sdk", SDKS)
def test_ios_payload_per_sdk(sdk: str) -> None:
    payload, headers = ios(sdk, expiration_epoch=1_800_000_000)
    assert payload == {**IOS_COMMON, **IOS_EXTRA[sdk]}
    assert headers == {
        "apns-topic": TOPIC,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": "1800000000",
        "apns-collapse-id": "sale-k123",
    }


def test_ios_edge_xdm_is_an_object() -> None:
    payload, _ = ios("edge")
    assert isinstance(payload["_xdm"], dict)


def test_ios_minimal_alert() -> None:
    payload, headers = ios("campaign-classic", {"body": "Hello"})
    assert payload == {"aps": {"alert": {"body": "Hello"}}, "_mId": "3000000123", "_dId": "beef"}
    assert headers == {"apns-topic": TOPIC, "apns-push-type": "alert", "apns-priority": "10"}


@pytest.mark.parametrize("sdk", SDKS)
def test_ios_silent_is_a_background_push(sdk: str) -> None:
    message = {"silent": True, "data": {"sync": "inbox"}, "collapse_id": "sync", "priority": "high"}
    payload, headers = ios(sdk, message, expiration_epoch=1_800_000_000)
    assert payload["aps"] == {"content-available": 1}
    expected_keys = {"aps", "_mId", "_dId", "sync"} | {
        "edge": {"_xdm"},
        "campaign-standard": {"_acsDeliveryTracking"},
    }.get(sdk, set())
    assert set(payload) == expected_keys
    assert headers == {
        "apns-topic": TOPIC,
        "apns-push-type": "background",
        "apns-priority": "5",  # even when the message asks for high
        "apns-expiration": "1800000000",
        "apns-collapse-id": "sync",
    }


def test_ios_priority_and_expiration() -> None:
    _, headers = ios("native", {"title": "x", "priority": "normal", "ttl_seconds": 0}, expiration_epoch=123)
    assert headers["apns-priority"] == "5" and headers["apns-expiration"] == "0"
    _, headers = ios("native", {"title": "x"})
    assert "apns-expiration" not in headers and "apns-collapse-id" not in headers
    with pytest.raises(ValueError, match="topic"):
        ios("native", {"title": "x"}, topic="")


def test_expiration_helper() -> None:
    message = rendered("ios", {"title": "x", "ttl_seconds": 60})
    assert expiration(message, now_epoch=1000.5) == 1060
    assert expiration(message, now_epoch=1000, not_after_epoch=1030) == 1030
    assert expiration(rendered("ios", {"title": "x"}), now_epoch=1000) is None
    assert expiration(rendered("ios", {"title": "x"}), now_epoch=1000, not_after_epoch=5000) == 5000


def test_ios_override() -> None:
    payload, _ = ios("native", {"title": "Base", "ios": {"title": "Apple", "badge": 0, "data": {"k": "v"}}})
    assert payload["aps"] == {"alert": {"title": "Apple"}, "badge": 0}
    assert payload["k"] == "v"


# -- Android --------------------------------------------------------------------------------------

ADOBE_KEYS = {
    "_mId": "3000000123",
    "_dId": "beef",
    "adb_version": "1",
    "adb_title": "Hi Zoë",
    "adb_body": "Summer sale is on",
    "adb_a_type": "DEEPLINK",
    "adb_n_priority": "PRIORITY_HIGH",
    "adb_uri": "myapp://offers/K123",
    "adb_image": "https://cdn.example.com/sale.jpg",
    "adb_channel_id": "promotions",
    "adb_sound": "chime.caf",
    "adb_n_count": "3",
    "adb_tag": "sale-k123",
    "offer": "K123",
    "screen": "offers",
}
ANDROID_EXTRA: dict[str, dict[str, str]] = {
    "campaign-classic": {},
    "native": {},
    "edge": {"_xdm": json.dumps(EXPECTED_XDM, separators=(",", ":"))},
    "campaign-standard": {
        "_acsDeliveryTracking": "on",
        "uri": "myapp://offers/K123",
        "media-attachment-url": "https://cdn.example.com/sale.jpg",
    },
}
NOTIFICATION = {
    "title": "Hi Zoë",
    "body": "Summer sale is on",
    "image": "https://cdn.example.com/sale.jpg",
    "channel_id": "promotions",
    "sound": "chime.caf",
    "tag": "sale-k123",
    "notification_priority": "PRIORITY_HIGH",
    "notification_count": 3,
}


@pytest.mark.parametrize("sdk", SDKS)
def test_android_message_per_sdk(sdk: str) -> None:
    message = android(sdk)
    data = message["data"]
    actions = json.loads(data.pop("adb_act"))
    assert data == {**ADOBE_KEYS, **ANDROID_EXTRA[sdk]}
    assert all(isinstance(value, str) for value in message["data"].values())
    assert actions == IOS_COMMON["adb_act"]
    android_config = {"priority": "HIGH", "ttl": "3600s", "collapse_key": "sale-k123"}
    if sdk in ("campaign-standard", "native"):  # no SDK displays their pushes: the OS shows this block
        android_config["notification"] = NOTIFICATION  # type: ignore[assignment]
    assert message == {"data": message["data"], "android": android_config}
    assert "token" not in message and "notification" not in message and "apns" not in message


def test_android_edge_xdm_is_a_json_string() -> None:
    value = android("edge")["data"]["_xdm"]
    assert isinstance(value, str) and json.loads(value) == EXPECTED_XDM


def test_android_minimal_push_keeps_the_keys_adobe_requires() -> None:
    assert android("campaign-classic", {"title": "Hello"}) == {
        "data": {
            "_mId": "3000000123",
            "_dId": "beef",
            "adb_version": "1",
            "adb_title": "Hello",
            "adb_body": "",
            "adb_a_type": "OPENAPP",
            "adb_n_priority": "PRIORITY_HIGH",
        },
        "android": {"priority": "HIGH"},
    }


def test_android_web_deeplink() -> None:
    data = android("edge", {"title": "x", "deeplink": "HTTPS://example.com/a"})["data"]
    assert (data["adb_a_type"], data["adb_uri"]) == ("WEBURL", "HTTPS://example.com/a")


@pytest.mark.parametrize("sdk", SDKS)
def test_android_silent_is_data_only(sdk: str) -> None:
    message = android(sdk, {"silent": True, "data": {"sync": "inbox"}, "ttl_seconds": 0})
    assert message["android"] == {"priority": "NORMAL", "ttl": "0s"}
    expected = {"_mId", "_dId", "sync"} | {"edge": {"_xdm"}, "campaign-standard": {"_acsDeliveryTracking"}}.get(
        sdk, set()
    )
    assert set(message["data"]) == expected


def test_android_priority_and_ttl_override() -> None:
    message = android("native", {"title": "x", "priority": "normal", "ttl_seconds": 600}, ttl_seconds=30)
    assert message["android"]["priority"] == "NORMAL" and message["android"]["ttl"] == "30s"
    assert message["android"]["notification"]["notification_priority"] == "PRIORITY_DEFAULT"
    assert message["data"]["adb_n_priority"] == "PRIORITY_DEFAULT"
    with pytest.raises(ValueError, match="ttl"):
        android("native", {"title": "x"}, ttl_seconds=-1)


def test_android_override() -> None:
    message = android("native", {"title": "Base", "android": {"title": "Droid", "android_channel_id": "c"}})
    assert message["data"]["adb_title"] == "Droid" and message["data"]["adb_channel_id"] == "c"
    assert message["android"]["notification"]["title"] == "Droid"


def test_builders_check_platform_and_sdk() -> None:
    with pytest.raises(ValueError, match="rendered for android"):
        apns_request(rendered("android"), broadlog_id=1, delivery_id=1, sdk="native", topic=TOPIC)
    with pytest.raises(ValueError, match="rendered for ios"):
        fcm_message(rendered("ios"), broadlog_id=1, delivery_id=1, sdk="native")
    with pytest.raises(ValueError, match="unknown SDK"):
        fcm_message(rendered("android"), broadlog_id=1, delivery_id=1, sdk="campaign")


# -- size -----------------------------------------------------------------------------------------


def test_encoding_is_compact_utf8() -> None:
    assert encode({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
    assert payload_size({"a": "é"}) == 10  # é is two bytes, not a six-byte \u escape


def test_ascii_text_at_its_render_limit_fits_unshortened() -> None:
    item = rendered(
        "ios",
        {"title": "{{ profile.attributes.text }}", "body": "{{ profile.attributes.text }}"},
        attributes={"text": "a" * 5000},
    )
    payload, _ = apns_request(item, broadlog_id=1, delivery_id=1, sdk="edge", topic=TOPIC)
    assert payload["aps"]["alert"] == {"title": item.title, "body": item.body}


@pytest.mark.parametrize("char", ["é", "€", "😀", '"'])
@pytest.mark.parametrize("sdk", SDKS)
def test_long_multibyte_text_is_shortened_to_fit(char: str, sdk: str) -> None:
    message = {"title": "{{ profile.attributes.text }}", "body": "{{ profile.attributes.text }}", "data": {"k": "v"}}
    text = char * 3000
    for platform in ("ios", "android"):
        item = render(compile_message(Message.model_validate(message)), ctx(platform, attributes={"text": text}))
        if platform == "ios":
            payload, _ = apns_request(item, broadlog_id=BROADLOG_ID, delivery_id=DELIVERY_ID, sdk=sdk, topic=TOPIC)
            body, title = payload["aps"]["alert"].get("body", ""), payload["aps"]["alert"]["title"]
        else:
            payload = fcm_message(item, broadlog_id=BROADLOG_ID, delivery_id=DELIVERY_ID, sdk=sdk)
            body, title = payload["data"]["adb_body"], payload["data"]["adb_title"]
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        assert size <= MAX_PAYLOAD_BYTES
        assert size > MAX_PAYLOAD_BYTES - 40  # shortened just enough, not emptied
        assert body.endswith(ELLIPSIS) and set(body[:-1]) <= {char}
        assert title == item.title  # the body gave way first


def test_title_gives_way_after_body_and_subtitle() -> None:
    item = RenderedMessage(platform="ios", title="t" * 4090, subtitle="s" * 10, body="b" * 10)
    payload, _ = apns_request(item, broadlog_id=1, delivery_id=1, sdk="native", topic=TOPIC)
    alert = payload["aps"]["alert"]
    assert "body" not in alert and "subtitle" not in alert and alert["title"].endswith(ELLIPSIS)
    assert payload_size(payload) <= MAX_PAYLOAD_BYTES


def test_notification_block_counts_text_twice() -> None:
    item = RenderedMessage(platform="android", title="T", body="é" * 2040)
    message = fcm_message(item, broadlog_id=1, delivery_id=1, sdk="native")
    assert payload_size(message) <= MAX_PAYLOAD_BYTES
    assert message["data"]["adb_body"] == message["android"]["notification"]["body"]
    assert len(message["data"]["adb_body"]) > 800


def test_data_that_cannot_fit_is_refused() -> None:
    item = RenderedMessage(platform="ios", title="Hi", data=(("blob", "x" * 4100),))
    with pytest.raises(PayloadTooLarge) as caught:
        apns_request(item, broadlog_id=1, delivery_id=1, sdk="native", topic=TOPIC)
    assert caught.value.size > MAX_PAYLOAD_BYTES and caught.value.platform == "ios"
    assert isinstance(caught.value, ValueError)  # the engine marks such a message Ignored
    item = RenderedMessage(platform="android", title="Hi", data=(("blob", "€" * 1400),))
    with pytest.raises(PayloadTooLarge):
        fcm_message(item, broadlog_id=1, delivery_id=1, sdk="edge")


# -- check_size -----------------------------------------------------------------------------------


def test_check_size_reports_every_platform_and_sdk() -> None:
    reports = check_size(compile_message(Message.model_validate(FULL)), ctx("ios"))
    assert {(r.platform, r.sdk) for r in reports} == {(p, s) for p in ("ios", "android") for s in SDKS}
    assert all(r.sample_bytes <= MAX_PAYLOAD_BYTES and r.floor_bytes <= MAX_PAYLOAD_BYTES for r in reports)
    only = check_size(compile_message(Message.model_validate(FULL), ["android"]), sdks=["edge"])
    assert [(r.platform, r.sdk) for r in only] == [("android", "edge")]


def test_check_size_refuses_static_text_that_cannot_fit() -> None:
    message = {"title": "T", "body": "€" * 1500, "data": {"k": "v"}}  # 4500 bytes of body
    with pytest.raises(PayloadTooLarge) as caught:
        check_size(compile_message(Message.model_validate(message)))
    assert "shorten" in str(caught.value) and caught.value.size > MAX_PAYLOAD_BYTES


def test_check_size_refuses_a_sample_profile_that_does_not_fit() -> None:
    message = compile_message(Message.model_validate({"title": "T", "body": "{{ profile.attributes.text }}"}))
    check_size(message)  # empty profile: fits
    with pytest.raises(PayloadTooLarge):
        check_size(message, ctx("ios", attributes={"text": "😀" * 2000}))


def test_check_size_refuses_data_that_could_grow_too_large() -> None:
    data = {f"k{i}": "{{ profile.attributes.v }}" for i in range(16)}  # 16 x 256 bytes at worst
    message = compile_message(Message.model_validate({"title": "T", "data": data}))
    with pytest.raises(PayloadTooLarge) as caught:
        check_size(message)
    assert f"{DATA_DYNAMIC_ALLOWANCE} bytes" in str(caught.value)
    static = {f"k{i}": "v" * 200 for i in range(16)}  # 3200 bytes, but exactly known
    check_size(compile_message(Message.model_validate({"title": "T", "data": static})), sdks=["native"])


WORST_VALUES = ["", "é" * 10_000, '"\\' * 5_000, "😀" * 5_000, "\n" * 3000, "x" * 300]


@pytest.mark.parametrize("sdk", SDKS)
def test_check_size_guarantee_holds_for_any_profile(sdk: str) -> None:
    source = {
        **FULL,
        "title": "Hi {{ profile.first_name }} {{ profile.attributes.v }}",
        "body": "{{ profile.attributes.v }} {{ tables.offers[profile.attributes.offer].title }}",
        "data": {
            "a": "{{ profile.attributes.v[:60] }}",
            "b": "code-{{ profile.attributes.code }}",
            "c": "static value",
        },
    }
    compiled = compile_message(Message.model_validate(source))
    check_size(compiled, sdks=[sdk])
    for value in WORST_VALUES:
        for code in ("", "Z" * DATA_DYNAMIC_ALLOWANCE, "é" * (DATA_DYNAMIC_ALLOWANCE // 2)):
            profile = {"first_name": value, "attributes": {"v": value, "code": code, "offer": "K123"}}
            for platform in ("ios", "android"):
                context = RenderContext(profile, {"platform": platform}, {"offers": {"K123": {"title": value}}})
                item = render(compiled, context)
                if platform == "ios":
                    payload, _ = apns_request(item, broadlog_id=2**32 - 1, delivery_id=2**31 - 1, sdk=sdk, topic=TOPIC)
                else:
                    payload = fcm_message(item, broadlog_id=2**32 - 1, delivery_id=2**31 - 1, sdk=sdk)
                assert payload_size(payload) <= MAX_PAYLOAD_BYTES


def test_check_size_without_a_sample_accepts_fully_personalised_text() -> None:
    # an empty profile renders no title or body here: that is not a size problem
    message = compile_message(Message.model_validate({"title": "{{ profile.first_name }}"}))
    reports = check_size(message, sdks=["native"])
    assert [r.sdk for r in reports] == ["native", "native"]
    message = compile_message(Message.model_validate({"title": "{{ 1 / profile.attributes.n | int }}"}))
    check_size(message)  # fails without data, so only the floor is checked
    with pytest.raises(RenderProblem):
        check_size(message, ctx("ios", attributes={"n": 0}))
