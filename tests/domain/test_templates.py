"""Message templates: refused at creation when wrong, lenient with missing data at send time."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from domain.messages import Message
from domain.templates.compiling import CompiledMessage, TemplateProblem, compile_message
from domain.templates.rendering import (
    RenderContext,
    RenderedMessage,
    RenderProblem,
    make_context,
    preview_data,
    render,
)
from domain.templates.sandbox import DATA_DYNAMIC_ALLOWANCE, ELLIPSIS, TEXT_LIMITS

PROFILE: dict[str, Any] = {
    "external_id": "c-42",
    "email": "zoe@example.com",
    "first_name": "Zoë",
    "last_name": None,
    "locale": "fr-FR",
    "timezone": "Europe/Paris",
    "attributes": {"offer": "K123", "points": 1200, "tier": {"name": "gold"}, "items": "three", "tags": ["a", "b"]},
}
SUBSCRIPTION: dict[str, Any] = {
    "platform": "android",
    "sdk": "campaign-classic",
    "push_provider": "fcm",
    "user_key": "zoe@example.com",
    "device_model": "Pixel 8",
    "os_language": "fr-FR",
    "additional_params": {"city": "Zürich", "vip": True},
}
TABLES = {"offers": {"K123": {"title": "Summer sale", "discount": 30}}}


def context(platform: str = "android", **profile: Any) -> RenderContext:
    return RenderContext({**PROFILE, **profile}, {**SUBSCRIPTION, "platform": platform}, TABLES)


def compiled(**fields: Any) -> CompiledMessage:
    return compile_message(Message.model_validate({"body": "body", **fields}))


def title(source: str, ctx: RenderContext | None = None) -> str | None:
    return render(compiled(title=source), ctx or context()).title


def refusal(**fields: Any) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as caught:
        compiled(**fields)
    return caught.value


# -- rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello {{ profile.first_name }}", "Hello Zoë"),
        (
            "{{ profile.external_id }} {{ profile.email }} {{ profile.locale }} {{ profile.timezone }}",
            "c-42 zoe@example.com fr-FR Europe/Paris",
        ),
        ("{{ profile.attributes.points }} pts", "1200 pts"),
        ("{{ profile.attributes.tier.name | upper }}", "GOLD"),
        ("{{ profile.attributes['offer'] }}", "K123"),
        ("{{ profile.attributes.items }}", "three"),  # a key, not dict.items
        ("{{ profile.attributes.tags | join(',') }}", "a,b"),
        ("{{ tables.offers['K123'].title }}", "Summer sale"),
        ("{{ tables.offers[profile.attributes.offer].discount }}%", "30%"),
        (
            "{{ subscription.platform }}/{{ subscription.sdk }}/{{ subscription.device_model }}",
            "android/campaign-classic/Pixel 8",
        ),
        ("{{ subscription.additional_params.city }}", "Zürich"),
        ("{% if subscription.additional_params.vip %}VIP{% else %}-{% endif %}", "VIP"),
        ("{{ profile.first_name.upper() }}", "ZOË"),
        ("{% set n = profile.attributes.points // 100 %}{{ n }} vouchers", "12 vouchers"),
        ("{{ '<b>&' }}", "<b>&"),  # no HTML escaping
        ("  padded  ", "padded"),
        ("{{ profile.attributes.points * 2 }}", "2400"),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ profile.attributes.offer | replace('K', 'k-') }}", "k-123"),
    ],
)
def test_renders(source: str, expected: str) -> None:
    assert title(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{ profile.last_name }}!", "Hi !"),  # null in the store
        ("Hi {{ profile.attributes.nickname }}!", "Hi !"),
        ("Hi {{ profile.attributes.nickname | default('there') }}", "Hi there"),
        ("Hi {{ profile.last_name | default('there') }}", "Hi there"),
        ("{{ profile.attributes.a.b.c }}x", "x"),
        ("{{ tables.offers['NOPE'].title }}x", "x"),
        ("{{ tables.missing_table.K.title }}x", "x"),
        ("{{ tables.offers['K123'].nope }}x", "x"),
        ("{{ tables.offers[profile.attributes.nope].title | default('our offers') }}", "our offers"),
        ("{% if profile.attributes.nope %}yes{% else %}no{% endif %}", "no"),
        ("{% if profile.attributes.nope > 3 %}yes{% else %}no{% endif %}", "no"),
        ("{{ profile.attributes.nope + 1 }}x", "x"),
        ("{{ profile.attributes.nope | int + 1 }}", "1"),
        ("{{ profile.attributes.nope.upper() }}x", "x"),
        ("{{ profile.attributes.nope | length }}", "0"),
    ],
)
def test_missing_data_renders_empty(source: str, expected: str) -> None:
    assert title(source) == expected


def test_profile_less_subscription_renders_fallbacks() -> None:
    message = compiled(
        title="Hi {{ profile.first_name | default('friend') }}", data={"o": "{{ profile.attributes.offer }}"}
    )
    rendered = render(message, RenderContext({}, {"platform": "ios"}))
    assert rendered.title == "Hi friend" and rendered.data == (("o", ""),)


def test_context_from_rows() -> None:
    profile = SimpleNamespace(**{**PROFILE, "attributes": None})
    subscription = SimpleNamespace(
        **{
            **SUBSCRIPTION,
            "device_name": None,
            "device_brand": "google",
            "device_manufacturer": None,
            "os_name": "android",
            "os_version": "14",
            "token": "secret",
            "device_imei": "hidden",
        }
    )
    ctx = make_context(profile, subscription, TABLES)
    assert ctx.platform == "android" and ctx.profile["attributes"] == {}
    assert "token" not in ctx.subscription and "device_imei" not in ctx.subscription
    assert render(compiled(title="{{ subscription.device_brand }} {{ profile.first_name }}"), ctx).title == "google Zoë"
    assert make_context(None, subscription).profile == {}


def test_tables_can_be_any_mapping() -> None:
    class Lazy(Mapping[str, Mapping[str, Any]]):
        def __init__(self) -> None:
            self.asked: list[str] = []

        def __getitem__(self, key: str) -> Mapping[str, Any]:
            self.asked.append(key)
            if key != "K123":
                raise KeyError(key)
            return {"title": "lazy row"}

        def __iter__(self) -> Iterator[str]:
            return iter(["K123"])

        def __len__(self) -> int:
            return 1

    table = Lazy()
    ctx = RenderContext(PROFILE, SUBSCRIPTION, {"offers": table})
    assert render(compiled(title="{{ tables.offers[profile.attributes.offer].title }}"), ctx).title == "lazy row"
    assert table.asked == ["K123"]


def test_platform_comes_from_the_subscription_and_overrides_apply() -> None:
    message = compiled(title="Hi", ios={"title": "Hi {{ subscription.platform }} user"})
    assert render(message, context("ios")).title == "Hi ios user"
    assert render(message, context("android")).title == "Hi"
    assert render(message, context("android"), platform="ios").title == "Hi android user"  # the ios text


def test_only_compiled_platforms_render() -> None:
    message = compile_message(Message.model_validate({"title": "x"}), ["ios"])
    assert set(message.platforms) == {"ios"}
    with pytest.raises(RenderProblem):
        render(message, context("android"))


def test_data_values_render_and_keep_whitespace() -> None:
    message = compiled(data={"offer": " {{ profile.attributes.offer }} ", "static": "plain"})
    assert render(message, context()).data == (("offer", " K123 "), ("static", "plain"))


def test_rendered_message_keeps_the_other_fields() -> None:
    message = compiled(title="T", deeplink="myapp://x", badge=2, collapse_id="c", ttl_seconds=5, priority="normal")
    rendered = render(message, context("ios"))
    assert isinstance(rendered, RenderedMessage)
    assert (rendered.platform, rendered.deeplink, rendered.badge, rendered.collapse_id) == ("ios", "myapp://x", 2, "c")
    assert (rendered.ttl_seconds, rendered.priority, rendered.body) == (5, "normal", "body")
    assert preview_data(rendered) == {
        "platform": "ios",
        "title": "T",
        "body": "body",
        "deeplink": "myapp://x",
        "badge": 2,
        "collapse_id": "c",
        "ttl_seconds": 5,
        "priority": "normal",
        "silent": False,
    }


def test_control_characters_and_surrogates_are_removed_from_output() -> None:
    ctx = context(first_name="A\x00B\x1bC\ud800D\nE\tF")
    assert title("{{ profile.first_name }}", ctx) == "ABCD\nE\tF"


# -- bounded output -------------------------------------------------------------------------------


def test_text_is_cut_at_its_limit() -> None:
    long = "é" * 5000
    rendered = render(
        compiled(title="{{ profile.first_name }}", body="{{ profile.first_name }}"), context(first_name=long)
    )
    assert rendered.title == "é" * (TEXT_LIMITS["title"] - 1) + ELLIPSIS
    assert rendered.body is not None and len(rendered.body) == TEXT_LIMITS["body"] and rendered.body.endswith(ELLIPSIS)


def test_static_text_over_the_limit_is_refused() -> None:
    assert refusal(title="x" * 257).field == "title"
    assert refusal(body="b", android={"subtitle": "s" * 300}).field == "android.subtitle"


def test_data_value_over_its_allowance_fails_that_message() -> None:
    message = compiled(data={"code": "ID-{{ profile.first_name }}"})
    assert render(message, context(first_name="x" * DATA_DYNAMIC_ALLOWANCE)).data[0][1].startswith("ID-x")
    with pytest.raises(RenderProblem) as caught:
        render(message, context(first_name="x" * (DATA_DYNAMIC_ALLOWANCE + 4)))
    assert caught.value.field == "data.code"
    with pytest.raises(RenderProblem):  # the limit counts JSON-encoded bytes: é is 2, \" is 2
        render(message, context(first_name="é" * (DATA_DYNAMIC_ALLOWANCE // 2 + 3)))


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 100000 }}",
        "{{ profile.first_name * 100000 }}",
        "{{ 2 ** 100000 }}",
        "{{ '%099999999d' % 1 }}",
        "{{ profile.attributes.offer | replace('K', profile.attributes.offer * 2000) }}",
        "{{ 'x' * 8000 ~ 'x' * 8000 }}",
        "{{ profile.attributes.tags | join('x' * 8000) }}",
    ],
)
def test_expensive_expressions_fail_fast(source: str) -> None:
    started = time.perf_counter()
    try:
        value = title(source)
    except RenderProblem:
        pass
    else:
        assert value is not None and len(value) <= TEXT_LIMITS["title"]
    assert time.perf_counter() - started < 0.5


def test_failures_affect_one_message() -> None:
    message = compiled(title="{{ profile.attributes.points / profile.attributes.zero }}")
    with pytest.raises(RenderProblem) as caught:
        render(message, context(attributes={"points": 1, "zero": 0}))
    assert caught.value.field == "title" and "ZeroDivisionError" in str(caught.value)
    assert render(message, context(attributes={"points": 4, "zero": 2})).title == "2.0"
    with pytest.raises(RenderProblem):
        render(compiled(title="{{ profile.first_name + 1 }}"), context())


def test_rendered_empty_visible_push_is_refused() -> None:
    message = compile_message(Message.model_validate({"title": "{{ profile.first_name }}"}))
    assert render(message, context()).title == "Zoë"
    with pytest.raises(RenderProblem) as caught:
        render(message, context(first_name=None))
    assert "empty" in str(caught.value)


def test_errors_are_value_errors() -> None:
    # the engine marks a message Ignored on ValueError; the API turns TemplateProblem into a 400
    assert issubclass(TemplateProblem, ValueError) and issubclass(RenderProblem, ValueError)


# -- refused at creation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "where", "words"),
    [
        ({"title": "Hi {{ profile.first_name "}, "title", "line 1"),
        ({"title": "{% if %}x{% endif %}"}, "title", "expected an expression"),
        ({"body": "ok\n{{ profile.first_name }\nmore"}, "body", "line 2"),
        ({"subtitle": "{% endif %}"}, "subtitle", "endif"),
        ({"title": "{{ first_name }}"}, "title", "unknown name 'first_name'"),
        ({"title": "{{ range(10) }}"}, "title", "unknown name 'range'"),
        ({"title": "{{ lipsum() }}"}, "title", "unknown name 'lipsum'"),
        ({"title": "{{ namespace }}"}, "title", "unknown name"),
        ({"title": "{% for x in profile.attributes.tags %}{{ x }}{% endfor %}"}, "title", "for is not allowed"),
        ({"title": "{% macro m() %}x{% endmacro %}"}, "title", "macro is not allowed"),
        ({"title": "{% include 'x.html' %}"}, "title", "include is not allowed"),
        ({"title": "{% import 'x.html' as x %}"}, "title", "import is not allowed"),
        ({"title": "{% extends 'x.html' %}"}, "title", "extends is not allowed"),
        ({"title": "{% block b %}{% endblock %}"}, "title", "block is not allowed"),
        ({"title": "{{ profile | xmlattr }}"}, "title", "no filter named 'xmlattr'"),
        ({"title": "{{ profile.first_name | format('x') }}"}, "title", "no filter named 'format'"),
        ({"title": "{{ profile.first_name | center(99999) }}"}, "title", "no filter named 'center'"),
        ({"title": "{{ ''.__class__ }}"}, "title", "'_'"),
        ({"title": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, "title", "'_'"),
        ({"title": "{{ profile['__class__'] }}"}, "title", "'_'"),
        ({"title": "{{ profile._data }}"}, "title", "'_'"),
        ({"title": "{{ 'x'.format(1) }}"}, "title", "string methods"),
        ({"title": "{{ profile.first_name.replace('a', 'b') }}"}, "title", "string methods"),
        ({"title": "{{ (profile.first_name|string)(1) }}"}, "title", "string methods"),
        ({"title": "{{ self }}"}, "title", "unknown name 'self'"),
        ({"title": "{{ loop.index }}"}, "title", "unknown name 'loop'"),
        ({"data": {"offer": "{{ oops"}}, "data.offer", "line 1"),
        ({"data": {"a": "x"}, "ios": {"data": {"b": "{{ nope }}"}}}, "ios.data.b", "unknown name 'nope'"),
        ({"title": "fine", "android": {"title": "{{ x }}"}}, "android.title", "unknown name 'x'"),
    ],
)
def test_refused_at_creation(fields: dict[str, Any], where: str, words: str) -> None:
    problem = refusal(**fields)
    assert problem.field == where
    assert words.lower() in problem.problem.lower()
    assert str(problem).startswith(f"message.{where}: ")


def test_sandbox_still_guards_dynamic_names() -> None:
    # a computed name cannot be checked at creation; the sandbox refuses it at send time
    assert title("{{ profile[('_' ~ '_class__')] }}x") == "x"
    assert title("{{ profile.attributes.offer[('_' ~ '_class__')] }}x") == "x"


def test_compilation_is_cached() -> None:
    first = compiled(title="Hi {{ profile.first_name }}")
    second = compiled(title="Hi {{ profile.first_name }}")
    assert first.platforms["ios"].text[0][1] is second.platforms["ios"].text[0][1]


def test_static_text_skips_jinja() -> None:
    part = compiled(title="No templates here").platforms["ios"]
    assert part.text[0][1].is_static and not part.dynamic


def test_render_speed() -> None:
    message = compiled(
        title="Hi {{ profile.first_name | default('there') }}",
        body="Your {{ tables.offers[profile.attributes.offer].title }} ends Friday: "
        "{{ tables.offers[profile.attributes.offer].discount }}% off.",
        data={"offer": "{{ profile.attributes.offer }}", "screen": "offers"},
    )
    ctx = context()
    render(message, ctx)
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        render(message, ctx)
    per_render = (time.perf_counter() - started) / runs
    assert per_render < 500e-6  # measured about 20 µs; generous for slow CI machines


def test_a_compiled_message_knows_the_names_its_templates_read() -> None:
    plain = compile_message(Message.model_validate({"title": "Hi {{ profile.first_name }}", "body": "static"}))
    assert plain.reads("profile") and not plain.reads("tables") and not plain.reads("subscription")
    in_data = compile_message(Message.model_validate({"body": "b", "data": {"offer": "{{ tables.offers.K1.title }}"}}))
    assert in_data.reads("tables")
    android_only = Message.model_validate({"body": "b", "android": {"title": "{{ tables.t[subscription.os_name] }}"}})
    assert compile_message(android_only).reads("tables") and compile_message(android_only).reads("subscription")
    assert not compile_message(android_only, ["ios"]).reads("tables")
