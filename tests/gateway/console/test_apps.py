"""The console's apps pages through Flask's test client: creating an app with uploaded credentials,
what the pages show of them (never a secret), the admin-only changes, refusals next to their
field, and the SDK configuration."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from flask import Flask
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from domain import apps
from store.models import App
from tests.conftest import runtime_of
from tests.factories import apns_key_p8, make_app, service_account
from tests.gateway.api.helpers import apns_certificate, pem_key
from tests.gateway.console.conftest import ConsoleClient
from tests.values import ANDROID_KEY, ANDROID_KEY_WORDS, FCM_TOKEN, ORG, PKEY

Console = Callable[[str], ConsoleClient]


def upload(text: str | bytes, filename: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(text.encode() if isinstance(text, str) else text), filename


def middle_line(pem: str) -> str:
    """A line from the middle of a PEM's base64: present wherever the key is, whatever framing."""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return lines[len(lines) // 2]


def creation_form(key: str, account: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Shop",
        "ios_bundle_id": "com.example.shop",
        "apns_key_p8": upload(key, "AuthKey_ABC123DEFG.p8"),
        "apns_key_id": "ABC123DEFG",
        "apns_team_id": "TEAM123456",
        "apns_environment": "sandbox",
        "android_package_name": "com.example.shop",
        "fcm_service_account": upload(json.dumps(account), "demo-project-firebase-adminsdk.json"),
        "campaign_standard_pkey": PKEY,
        "experience_cloud_org": ORG,
        "user_key_verification": "off",
    }
    form.update(overrides)
    return form


def app_count(app: Flask) -> int:
    with runtime_of(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(App)) or 0


def stored(app: Flask, app_id: int) -> dict[str, Any]:
    rt = runtime_of(app)
    with rt.sessions() as session:
        return apps.describe(apps.get_app(session, app_id), rt.box)


def test_an_admin_creates_an_app_and_its_page_shows_the_credentials_but_never_a_key(
    app: Flask, console_as: Console
) -> None:
    admin = console_as("admin")
    key, account = apns_key_p8(), service_account(project_id="shop-push-4f2a1")
    response = admin.post("/console/apps/new", creation_form(key, account))
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    app_id = int(location.rsplit("/", 1)[1])
    assert location == f"/console/apps/{app_id}"

    page = admin.get(location).get_data(as_text=True)
    assert "App Shop created." in page
    for shown in (
        "ABC123DEFG",
        "TEAM123456",
        "sandbox",
        account["client_email"],
        "shop-push-4f2a1",
        "com.example.shop",
    ):
        assert shown in page
    listing = admin.get("/console/apps/").get_data(as_text=True)
    assert account["client_email"] in listing and "ABC123DEFG" in listing
    for text in (page, listing):
        assert "PRIVATE KEY" not in text
        assert middle_line(key) not in text and middle_line(account["private_key"]) not in text
    body = stored(app, app_id)
    assert body["ios"]["apns"] == {
        "auth": "token",
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "environment": "sandbox",
    }
    assert body["android"]["fcm"] == {"project_id": "shop-push-4f2a1", "client_email": account["client_email"]}
    assert body["campaign_standard_pkey"] == PKEY and body["experience_cloud_org"] == ORG


def test_only_admins_see_new_app_and_other_roles_are_refused(app: Flask, console_as: Console) -> None:
    assert "New app" in console_as("admin").get("/console/apps/").get_data(as_text=True)
    ids = make_app(app)
    for role in ("marketer", "viewer"):
        user = console_as(role)
        listing = user.get("/console/apps/")
        assert listing.status_code == 200 and "New app" not in listing.get_data(as_text=True)
        assert user.get("/console/apps/new").status_code == 403
        form = creation_form(apns_key_p8(), service_account(), name=f"By {role}")
        assert user.post("/console/apps/new", form).status_code == 403
        assert (
            user.post(f"/console/apps/{ids['id']}", {"name": "Renamed", "user_key_verification": "off"}).status_code
            == 403
        )
        fcm = {"fcm_service_account": upload(json.dumps(service_account()), "sa.json")}
        assert user.post(f"/console/apps/{ids['id']}/fcm", fcm).status_code == 403
        assert user.post(f"/console/apps/{ids['id']}/user-key-secret").status_code == 403
        page = user.get(f"/console/apps/{ids['id']}").get_data(as_text=True)
        assert "Save APNs credentials" not in page and "Change details" not in page
    assert app_count(app) == 1 and stored(app, ids["id"])["name"] == "Shop"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"apns_key_p8": upload("not a key at all\n", "AuthKey_ABC123DEFG.p8")}, "apns_key_p8", "The .p8 file is not"),
        (
            {"apns_key_p8": upload(pem_key(rsa.generate_private_key(65537, 2048)), "AuthKey_ABC123DEFG.p8")},
            "apns_key_p8",
            "EC P-256",
        ),
        ({"apns_key_id": "ABC"}, "apns_key_id", "10 letters or digits"),
        ({"fcm_service_account": upload("this is not JSON", "sa.json")}, "fcm_service_account", "not a JSON object"),
        (
            {"fcm_service_account": upload(json.dumps({"type": "authorized_user"}), "sa.json")},
            "fcm_service_account",
            "Not a usable service account key: type",
        ),
        (
            {
                "fcm_service_account": upload(
                    json.dumps(service_account(token_uri="https://attacker.example/token")), "sa.json"
                )
            },
            "fcm_service_account",
            "token_uri must be Google&#39;s",
        ),
        ({"ios_bundle_id": "com example"}, "ios_bundle_id", "Letters, digits, dots and hyphens"),
        (
            {"ios_bundle_id": "", "android_package_name": ""},
            None,
            "An app needs an iOS bundle ID, an Android package name or both.",
        ),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_nothing_is_stored(
    app: Flask, console_as: Console, change: dict[str, Any], field: str | None, message: str
) -> None:
    admin = console_as("admin")
    key, account = apns_key_p8(), service_account()
    form = creation_form(key, account, name="Kept name", **change)
    if field is None:  # no platform at all
        form = {k: v for k, v in form.items() if not k.startswith(("apns_key_p8", "fcm_", "apns_key_id", "apns_team"))}
    response = admin.post("/console/apps/new", form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert message in page
    if field is not None:
        block = page.split(f'id="f-{field}"', 1)[1].split("</div>", 1)[0]
        assert message in block, "the message is not next to its field"
    assert 'value="Kept name"' in page
    assert (
        "PRIVATE KEY" not in page and middle_line(key) not in page and middle_line(account["private_key"]) not in page
    )
    assert app_count(app) == 0


def test_a_huge_upload_is_refused(app: Flask, console_as: Console) -> None:
    admin = console_as("admin")
    big = creation_form(apns_key_p8(), service_account(), fcm_service_account=upload(b"{" + b" " * 100_000, "sa.json"))
    response = admin.post("/console/apps/new", big)
    assert response.status_code == 400 and "larger than 64 KB" in response.get_data(as_text=True)
    # Over the request limit (1 MiB): encoded in memory, as the test client would spool it to a file.
    form = creation_form(apns_key_p8(), service_account(), apns_key_p8=upload(b"A" * 2_000_000, "AuthKey.p8"))
    fields = {k: FileStorage(v[0], filename=v[1]) if isinstance(v, tuple) else v for k, v in form.items()}
    boundary, body = encode_multipart({"csrf_token": admin.token(), **fields})
    assert len(body) > 2_000_000
    response = admin.client.post(
        "/console/apps/new", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert response.status_code == 413 and "Request Entity Too Large" in response.get_data(as_text=True)
    assert app_count(app) == 0


def test_a_duplicate_name_is_refused_next_to_the_name(app: Flask, console_as: Console) -> None:
    make_app(app)
    response = console_as("admin").post("/console/apps/new", creation_form(apns_key_p8(), service_account()))
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "already has name" in page.split('id="f-name"', 1)[1].split("</div>")[0]
    assert app_count(app) == 1


def test_an_admin_replaces_the_credentials_with_a_certificate_and_a_new_service_account(
    app: Flask, console_as: Console
) -> None:
    ids = make_app(app)
    admin = console_as("admin")
    cert, key = apns_certificate(subject="Apple Push Services: com.example.shop")
    response = admin.post(
        f"/console/apps/{ids['id']}/apns",
        {"apns_certificate": upload(cert + key, "aps.pem"), "apns_environment": "production"},
    )
    assert response.status_code == 303
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "APNs credentials saved." in page and "Apple Push Services: com.example.shop" in page
    assert stored(app, ids["id"])["ios"]["apns"]["environment"] == "production"

    account = service_account(project_id="shop-push-b71c0")
    response = admin.post(
        f"/console/apps/{ids['id']}/fcm", {"fcm_service_account": upload(json.dumps(account), "sa.json")}
    )
    assert response.status_code == 303
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "shop-push-b71c0" in page and account["client_email"] in page
    assert "PRIVATE KEY" not in page and middle_line(key) not in page


def test_a_p12_export_is_taken_and_a_wrong_password_is_shown(app: Flask, console_as: Console) -> None:
    ids = make_app(app)
    admin = console_as("admin")
    cert_pem, key_pem = apns_certificate(subject="Apple Push Services: com.example.p12")
    from cryptography import x509

    p12 = pkcs12.serialize_key_and_certificates(
        b"push",
        serialization.load_pem_private_key(key_pem.encode(), None),  # type: ignore[arg-type]
        x509.load_pem_x509_certificate(cert_pem.encode()),
        None,
        serialization.BestAvailableEncryption(b"s3cret pass"),
    )
    wrong = admin.post(
        f"/console/apps/{ids['id']}/apns",
        {"apns_certificate": upload(p12, "push.p12"), "apns_p12_password": "nope", "apns_environment": "production"},
    )
    page = wrong.get_data(as_text=True)
    assert wrong.status_code == 400 and "the password is wrong" in page and "s3cret" not in page
    assert stored(app, ids["id"])["ios"]["apns"]["auth"] == "token"
    right = admin.post(
        f"/console/apps/{ids['id']}/apns",
        {
            "apns_certificate": upload(p12, "push.p12"),
            "apns_p12_password": "s3cret pass",
            "apns_environment": "sandbox",
        },
    )
    assert right.status_code == 303
    assert stored(app, ids["id"])["ios"]["apns"]["subject"] == "CN=Apple Push Services: com.example.p12"


def test_an_admin_changes_the_details_and_the_new_integration_key_works_at_once(
    app: Flask, console_as: Console
) -> None:
    ids = make_app(app)
    admin = console_as("admin")
    sdk = app.test_client()
    old = {"integration_key": ids["android_key"], "token": FCM_TOKEN}
    assert sdk.post("/api/v1/subscriptions", json=old).status_code == 201  # the old key is now remembered
    form = {
        "name": "Shop EU",
        "ios_bundle_id": ids["bundle_id"],
        "ios_integration_key": ids["ios_key"],
        "android_package_name": ids["package"],
        "android_integration_key": ANDROID_KEY_WORDS,
        "campaign_standard_pkey": "",
        "edge_config_id": ids["edge_config"],
        "experience_cloud_org": ORG,
        "user_key_verification": "off",
    }
    response = admin.post(f"/console/apps/{ids['id']}", form)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert "Details saved." in admin.get(response.headers["Location"]).get_data(as_text=True)
    body = stored(app, ids["id"])
    assert body["name"] == "Shop EU" and body["campaign_standard_pkey"] is None
    assert body["android"]["integration_key"] == ANDROID_KEY_WORDS
    assert body["ios"]["integration_key"] == ids["ios_key"] and body["ios"]["apns"]["key_id"] == "ABC123DEFG"
    assert sdk.post("/api/v1/subscriptions", json=old).status_code == 404  # forgotten: the cache was cleared
    new = {"integration_key": ANDROID_KEY_WORDS, "token": FCM_TOKEN}
    assert sdk.post("/api/v1/subscriptions", json=new).status_code in (200, 201)


def test_turning_verification_on_without_a_secret_is_explained(app: Flask, console_as: Console) -> None:
    ids = make_app(app)
    admin = console_as("admin")
    response = admin.post(f"/console/apps/{ids['id']}", {"name": "Shop", "user_key_verification": "required"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "no user-key secret yet" in page
    assert 'value="Shop"' in page
    made = admin.post(f"/console/apps/{ids['id']}/user-key-secret")
    secret_page = made.get_data(as_text=True)
    assert made.status_code == 200 and "This is the only time it is shown" in secret_page
    assert (
        admin.post(f"/console/apps/{ids['id']}", {"name": "Shop", "user_key_verification": "required"}).status_code
        == 303
    )
    assert "(secret set)" in admin.get(f"/console/apps/{ids['id']}").get_data(as_text=True)


def test_a_creation_with_verification_on_shows_the_secret_once(app: Flask, console_as: Console) -> None:
    admin = console_as("admin")
    form = creation_form(apns_key_p8(), service_account(), user_key_verification="required")
    response = admin.post("/console/apps/new", form)
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    secret = page.split('<pre id="user-key-secret" tabindex="0">', 1)[1].split("</pre>", 1)[0]
    assert len(secret) >= 32
    with runtime_of(app).sessions() as session:
        app_id = apps.by_name(session, "Shop").id  # type: ignore[union-attr]
        assert apps.user_key_secret(apps.get_app(session, app_id), runtime_of(app).box) == secret
    assert secret not in admin.get(f"/console/apps/{app_id}").get_data(as_text=True)


def test_the_sdk_configuration_shows_the_apps_identifiers(app: Flask, console_as: Console) -> None:
    ids = make_app(app)
    marketer = console_as("marketer")
    response = marketer.get(f"/console/apps/{ids['id']}?platform=android&sdk=campaign-classic")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '"campaignclassic.android.integrationKey": "' + ANDROID_KEY + '"' in page.replace("&#34;", '"')
    assert "push.example.test" in page and "Kotlin code" in page
    copy = page.split('data-copy="sdk-configuration"', 1)[1].split("</span>", 1)[0]
    assert 'aria-labelledby="sdk-configuration-copy sdk-configuration-what">Copy</button>' in copy
    assert copy.endswith(">the Android Campaign Classic configuration")
    assert 'data-copy="sdk-configuration"' in page and '<pre id="sdk-configuration"' in page
    swift = marketer.get(f"/console/apps/{ids['id']}?platform=ios&sdk=edge").get_data(as_text=True)
    assert ids["edge_config"] in swift and "Swift code" in swift
    viewer_page = console_as("viewer").get(f"/console/apps/{ids['id']}").get_data(as_text=True)
    assert "SDK configuration" not in viewer_page  # as the API: sdk-config needs the marketer role


def test_the_sdk_configuration_explains_what_the_app_lacks(app: Flask, console_as: Console) -> None:
    ids = make_app(app)
    admin = console_as("admin")
    admin.post(
        f"/console/apps/{ids['id']}", {"name": "Shop", "campaign_standard_pkey": "", "user_key_verification": "off"}
    )
    response = admin.get(f"/console/apps/{ids['id']}?platform=ios&sdk=campaign-standard")
    assert response.status_code == 200 and "has no campaign_standard_pkey" in response.get_data(as_text=True)
    bad = admin.get(f"/console/apps/{ids['id']}?platform=windows&sdk=edge")
    assert bad.status_code == 400 and "platform must be one of ios, android" in bad.get_data(as_text=True)


def test_unknown_apps_and_bad_pages_are_clear_4xx(console_as: Console) -> None:
    viewer = console_as("viewer")
    assert viewer.get("/console/apps/999999").status_code == 404
    assert viewer.get("/console/apps/99999999999999999999").status_code == 404
    assert viewer.get("/console/apps/?after=abc").status_code == 400
    assert viewer.get("/console/apps/?after=" + "9" * 5000).status_code == 400
    admin = console_as("admin")
    assert admin.post("/console/apps/999999", {"name": "x", "user_key_verification": "off"}).status_code == 404
