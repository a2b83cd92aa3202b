"""The delivery message model: every validation rule, per-platform overrides and resolution."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from domain.messages import MAX_TTL_SECONDS, Message, ResolvedMessage, resolve


def problems(data: dict[str, Any]) -> dict[str, str]:
    """Field -> message, as the API's 400 lists them."""
    with pytest.raises(ValidationError) as caught:
        Message.model_validate(data)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


def ok(**data: Any) -> Message:
    return Message.model_validate({"title": "Hello", **data})


# -- single fields --------------------------------------------------------------------------------


def test_minimal_messages() -> None:
    assert Message.model_validate({"title": "Hi"}).title == "Hi"
    assert Message.model_validate({"body": "Hi"}).body == "Hi"
    assert Message.model_validate({"silent": True}).silent is True


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": "x" * 1025}, "title"),
        ({"subtitle": "x" * 1025}, "subtitle"),
        ({"body": "x" * 4097}, "body"),
        ({"title": "nul\x00byte"}, "title"),
        ({"body": "lone \ud800 surrogate"}, "body"),
        ({"image_url": "http://cdn.example.com/a.png"}, "image_url"),
        ({"image_url": "https://cdn.example.com/a b.png"}, "image_url"),
        ({"image_url": "https://"}, "image_url"),
        ({"image_url": "https://x/" + "a" * 1024}, "image_url"),
        ({"deeplink": "no-scheme"}, "deeplink"),
        ({"deeplink": "myapp://has space"}, "deeplink"),
        ({"deeplink": "javascript:alert(1)"}, "deeplink"),
        ({"deeplink": "DATA:text/html,x"}, "deeplink"),
        ({"sound": "chime sound.caf"}, "sound"),
        ({"sound": ""}, "sound"),
        ({"badge": -1}, "badge"),
        ({"badge": 1_000_000}, "badge"),
        ({"badge": "three"}, "badge"),
        ({"category": ""}, "category"),
        ({"category": "x" * 65}, "category"),
        ({"category": "two\nlines"}, "category"),
        ({"collapse_id": ""}, "collapse_id"),
        ({"collapse_id": "é" * 33}, "collapse_id"),  # 66 bytes in UTF-8, 33 characters
        ({"ttl_seconds": -1}, "ttl_seconds"),
        ({"ttl_seconds": MAX_TTL_SECONDS + 1}, "ttl_seconds"),
        ({"priority": "urgent"}, "priority"),
        ({"thread_id": " "}, "thread_id"),
        ({"android_channel_id": ""}, "android_channel_id"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_field_rules(data: dict[str, Any], field: str) -> None:
    assert field in problems({"title": "Hello", **data})


def test_limits_are_inclusive() -> None:
    message = ok(
        title="t" * 1024,
        body="b" * 4096,
        collapse_id="é" * 32,
        ttl_seconds=MAX_TTL_SECONDS,
        badge=0,
        deeplink="myapp://offers/42?x=1",
        image_url="https://cdn.example.com/a.png",
        sound="default",
        category="OFFER_CATEGORY",
    )
    assert message.ttl_seconds == MAX_TTL_SECONDS
    assert ok(ttl_seconds=0).ttl_seconds == 0


def test_text_fields_are_multiline_templates() -> None:
    message = ok(body="Line one\n\tLine two {{ profile.first_name }}")
    assert "\n" in (message.body or "")


# -- actions --------------------------------------------------------------------------------------


def test_actions() -> None:
    message = ok(actions=[{"id": "buy", "title": "Buy", "deeplink": "myapp://buy"}, {"id": "later", "title": "Later"}])
    assert message.actions is not None
    assert [a.id for a in message.actions] == ["buy", "later"]
    assert message.actions[1].deeplink is None


@pytest.mark.parametrize(
    ("actions", "field"),
    [
        ([{"id": str(i), "title": "x"} for i in range(4)], "actions"),
        ([{"id": "", "title": "x"}], "actions.0.id"),
        ([{"id": "has space", "title": "x"}], "actions.0.id"),
        ([{"id": "a", "title": ""}], "actions.0.title"),
        ([{"id": "a", "title": "   "}], "actions.0.title"),
        ([{"id": "a", "title": "x" * 65}], "actions.0.title"),
        ([{"id": "a", "title": "x", "deeplink": "nope"}], "actions.0.deeplink"),
        ([{"id": "a", "title": "x", "extra": 1}], "actions.0.extra"),
        ([{"id": "a", "title": "x"}, {"id": "a", "title": "y"}], "actions"),
    ],
)
def test_action_rules(actions: list[dict[str, Any]], field: str) -> None:
    assert field in problems({"title": "Hello", "actions": actions})


def test_duplicate_action_ids_are_named() -> None:
    found = problems({"title": "Hello", "actions": [{"id": "a", "title": "x"}, {"id": "a", "title": "y"}]})
    assert "unique" in found["actions"]


# -- data -----------------------------------------------------------------------------------------


def test_data_values_are_strings() -> None:
    assert ok(data={"screen": "offers", "n": "3"}).data == {"screen": "offers", "n": "3"}
    assert "data.n" in problems({"title": "x", "data": {"n": 3}})
    assert "data.n" in problems({"title": "x", "data": {"n": None}})
    assert "data.n" in problems({"title": "x", "data": {"n": "x" * 2049}})


@pytest.mark.parametrize(
    "key",
    [
        "_mId",
        "_dId",
        "_xdm",
        "aps",
        "adb_title",
        "adb_anything",
        "ADB_TITLE",
        "uri",
        "mediaUrl",
        "media-attachment-url",
        "from",
        "message_type",
        "notification",
        "google.c.a.e",
        "gcm.n.e",
    ],
)
def test_reserved_data_keys(key: str) -> None:
    found = problems({"title": "x", "data": {key: "v"}})
    assert "reserved" in found["data"]


@pytest.mark.parametrize("key", ["", "has space", "-dash", ".dot", "x" * 65, "é"])
def test_malformed_data_keys(key: str) -> None:
    assert "data" in problems({"title": "x", "data": {key: "v"}})


def test_too_many_data_keys() -> None:
    found = problems({"title": "x", "data": {f"k{i}": "v" for i in range(51)}})
    assert "50" in found["data"]


# -- cross-field rules ----------------------------------------------------------------------------


def test_visible_push_needs_title_or_body() -> None:
    assert "title or a body" in problems({})["title"]
    assert "title or a body" in problems({"subtitle": "only a subtitle"})["title"]
    assert "title or a body" in problems({"title": "   ", "body": ""})["title"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("title", "x"),
        ("subtitle", "x"),
        ("body", "x"),
        ("image_url", "https://cdn.example.com/a.png"),
        ("deeplink", "myapp://x"),
        ("sound", "default"),
        ("badge", 1),
        ("category", "C"),
        ("actions", [{"id": "a", "title": "A"}]),
        ("thread_id", "t"),
        ("android_channel_id", "c"),
    ],
)
def test_silent_push_takes_no_display_fields(name: str, value: Any) -> None:
    found = problems({"silent": True, name: value})
    assert "silent" in found[name]


def test_silent_push_keeps_data_and_delivery_options() -> None:
    message = Message.model_validate(
        {"silent": True, "data": {"sync": "1"}, "collapse_id": "c", "ttl_seconds": 60, "priority": "high"}
    )
    resolved = resolve(message, "ios")
    assert resolved.silent and resolved.data == (("sync", "1"),) and resolved.priority == "high"


def test_errors_list_every_problem_once() -> None:
    found = problems({"silent": True, "title": "x", "badge": 2})
    assert set(found) == {"title", "badge"}  # wrong on both platforms, reported once each


# -- overrides ------------------------------------------------------------------------------------


def test_override_replaces_fields_per_platform() -> None:
    message = Message.model_validate(
        {
            "title": "Base",
            "body": "Body",
            "data": {"a": "1"},
            "actions": [{"id": "x", "title": "X"}],
            "ios": {"title": "iOS title", "data": {"b": "2"}, "badge": 4},
            "android": {"actions": [], "android_channel_id": "promo", "priority": "normal"},
        }
    )
    ios, android = resolve(message, "ios"), resolve(message, "android")
    assert (ios.title, ios.body, ios.badge, ios.data) == ("iOS title", "Body", 4, (("b", "2"),))
    assert len(ios.actions) == 1 and ios.android_channel_id is None
    assert (android.title, android.data, android.actions) == ("Base", (("a", "1"),), ())
    assert android.android_channel_id == "promo" and android.priority == "normal" and android.badge is None


def test_empty_string_clears_text_on_one_platform() -> None:
    message = Message.model_validate({"title": "T", "subtitle": "S", "body": "B", "android": {"subtitle": ""}})
    assert resolve(message, "ios").subtitle == "S"
    assert resolve(message, "android").subtitle is None


def test_null_in_override_inherits() -> None:
    message = Message.model_validate({"title": "T", "ios": {"title": None, "body": "B"}})
    assert resolve(message, "ios").title == "T"


def test_override_round_trips_through_storage() -> None:
    message = Message.model_validate({"title": "T", "android": {"subtitle": "", "silent": None}})
    stored = message.model_dump(mode="json", exclude_none=True)
    again = Message.model_validate(stored)
    for platform in ("ios", "android"):
        assert resolve(again, platform) == resolve(message, platform)


def test_overrides_do_not_nest() -> None:
    assert "ios.ios" in problems({"title": "x", "ios": {"ios": {"title": "y"}}})
    assert "android.unknown" in problems({"title": "x", "android": {"unknown": 1}})


def test_override_fields_are_validated() -> None:
    found = problems({"title": "x", "ios": {"badge": -2, "image_url": "ftp://x"}, "android": {"data": {"aps": "x"}}})
    assert {"ios.badge", "ios.image_url", "android.data"} <= set(found)


def test_cross_field_errors_name_the_override() -> None:
    found = problems({"title": "x", "ios": {"silent": True}})
    assert "silent" in found["title"]  # the base title is what a silent iOS push cannot take
    found = problems({"silent": True, "android": {"silent": False, "title": ""}})
    assert "title or a body" in found["android.title"]
    found = problems({"silent": True, "ios": {"sound": "default"}})
    assert set(found) == {"ios.sound"}


def test_a_platform_can_be_silent_alone() -> None:
    message = Message.model_validate({"data": {"k": "v"}, "silent": True, "android": {"silent": False, "body": "Hi"}})
    assert resolve(message, "ios").silent
    assert not resolve(message, "android").silent and resolve(message, "android").body == "Hi"


# -- resolution defaults --------------------------------------------------------------------------


def test_defaults() -> None:
    resolved = resolve(Message.model_validate({"title": "T"}), "ios")
    assert resolved == ResolvedMessage(platform="ios", title="T")
    assert resolved.priority == "high" and resolved.silent is False and resolved.actions == ()


def test_silent_defaults_to_normal_priority() -> None:
    assert resolve(Message.model_validate({"silent": True}), "android").priority == "normal"
    assert resolve(Message.model_validate({"silent": True, "priority": "high"}), "android").priority == "high"


def test_errors_nest_under_the_request_model() -> None:
    class Create(BaseModel):
        message: Message

    with pytest.raises(ValidationError) as caught:
        Create.model_validate({"message": {"ios": {"silent": True}, "title": "x"}})
    assert [e["loc"] for e in caught.value.errors()] == [("message", "title")]
