"""The console's app forms read into :class:`domain.apps.AppCreate` / :class:`domain.apps.AppPatch`,
and what refuses them put back next to the form's fields.

Uploaded files (the APNs .p8 key, the APNs certificate as PEM or .p12, the FCM service-account
JSON) are read here, at most :data:`FILE_MAX` bytes each, and go into the models as text; the
models then load every key for real (:mod:`domain.credentials`). Nothing read from a file, and no
password, is ever put back into a page: an error names the field and the problem, never the input.

Form field names: ``name``, ``campaign_standard_pkey``, ``edge_config_id``,
``experience_cloud_org``, ``user_key_verification``; ``ios_bundle_id``, ``ios_integration_key``,
``apns_key_p8`` (file), ``apns_key_id``, ``apns_team_id``, ``apns_certificate`` (file),
``apns_private_key`` (file), ``apns_p12_password``, ``apns_environment``;
``android_package_name``, ``android_integration_key``, ``fcm_service_account`` (file). Errors that
belong to no single field are under :data:`FORM`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from werkzeug.datastructures import FileStorage

from core.errors import ClientError
from domain.apps import AppCreate, AppPatch
from domain.credentials import certificate_pem_from_p12

FILE_MAX = 64 * 1024  # a key, a certificate or a service account is a few KB
FORM = "_form"
IDENTIFIERS = ("campaign_standard_pkey", "edge_config_id", "experience_cloud_org")
#: The text fields a re-rendered form shows again (never a file, never the .p12 password).
KEPT = (
    "name",
    *IDENTIFIERS,
    "user_key_verification",
    "ios_bundle_id",
    "ios_integration_key",
    "apns_key_id",
    "apns_team_id",
    "apns_environment",
    "android_package_name",
    "android_integration_key",
)
_APNS_FIELDS = {
    "key_p8": "apns_key_p8",
    "key_id": "apns_key_id",
    "team_id": "apns_team_id",
    "environment": "apns_environment",
    "certificate_pem": "apns_certificate",
    "private_key_pem": "apns_private_key",
}
#: The API's names in the credentials' own messages, as the form labels the same things.
_WORDS = {
    "key_p8": "the .p8 file",
    "certificate_pem": "the certificate file",
    "private_key_pem": "the private key file",
}
_PATTERNS = {
    "apns_key_id": "Must be 10 letters or digits, as Apple shows it.",
    "apns_team_id": "Must be 10 letters or digits, as Apple shows it.",
    "ios_bundle_id": "Letters, digits, dots and hyphens only, such as com.example.shop.",
    "android_package_name": "Dot-separated names of letters, digits and underscores, such as com.example.shop.",
}
#: Domain refusals (ClientError codes) and the field they are about.
_CODE_FIELDS = {
    "duplicate_name": "name",
    "duplicate_campaign_standard_pkey": "campaign_standard_pkey",
    "duplicate_edge_config_id": "edge_config_id",
    "invalid_token_uri": "fcm_service_account",
    "user_key_secret_missing": "user_key_verification",
}


class FormInvalid(Exception):
    """The form cannot be taken: ``errors`` maps field names (or :data:`FORM`) to messages."""

    def __init__(self, errors: dict[str, str], status: int = 400) -> None:
        super().__init__(next(iter(errors.values()), "invalid form"))
        self.errors, self.status = errors, status


def kept(form: Mapping[str, str]) -> dict[str, str]:
    """The values a re-rendered form fills in again."""
    return {name: form.get(name, "") for name in KEPT}


class _Reader:
    """Reads one submitted form, collecting the problems of its files."""

    def __init__(self, form: Mapping[str, str], files: Mapping[str, FileStorage]) -> None:
        self.form, self.files = form, files
        self.errors: dict[str, str] = {}

    def text(self, name: str) -> str:
        return self.form.get(name, "").strip()

    def file(self, name: str) -> bytes | None:
        upload = self.files.get(name)
        if upload is None or not upload.filename:
            return None
        data = upload.stream.read(FILE_MAX + 1)
        if len(data) > FILE_MAX:
            self.errors[name] = f"The file is larger than {FILE_MAX // 1024} KB: it is not a key file."
        elif not data.strip():
            self.errors[name] = "The file is empty."
        else:
            return data
        return None

    def text_file(self, name: str) -> str | None:
        data = self.file(name)
        return None if data is None else self._decode(name, data)

    def _decode(self, name: str, data: bytes) -> str | None:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.errors[name] = "The file is not text (UTF-8): choose the file as it was downloaded."
            return None

    def certificate(self) -> str | None:
        """The certificate file as PEM (a .p12 is opened with the password given); None when absent."""
        data = self.file("apns_certificate")
        if data is None:
            return None
        if b"-----BEGIN" in data:
            return self._decode("apns_certificate", data)
        try:
            return certificate_pem_from_p12(data, self.form.get("apns_p12_password", ""))
        except ClientError as exc:
            self.errors["apns_certificate"] = _sentence(exc.message)
            return None

    def apns(self) -> dict[str, Any] | None:
        """The ``apns`` object the form describes; None when it has no key or certificate file."""
        key = self.text_file("apns_key_p8")
        certificate = self.certificate()
        environment = self.text("apns_environment")
        if key is not None and certificate is not None:
            self.errors["apns_key_p8"] = "Give either a .p8 key or a certificate, not both."
            return None
        if key is not None:
            return {
                "key_p8": key,
                "key_id": self.text("apns_key_id"),
                "team_id": self.text("apns_team_id"),
                "environment": environment,
            }
        if certificate is not None:
            creds: dict[str, Any] = {"certificate_pem": certificate, "environment": environment}
            private = self.text_file("apns_private_key")
            if private is not None:
                creds["private_key_pem"] = private
            return creds
        if (self.text("apns_key_id") or self.text("apns_team_id")) and "apns_key_p8" not in self.errors:
            self.errors["apns_key_p8"] = "Choose the .p8 file that goes with this key ID."
        return None

    def fcm(self) -> dict[str, Any] | None:
        """The ``fcm`` object the form describes; None when no service-account file was chosen."""
        text = self.text_file("fcm_service_account")
        if text is None:
            return None
        try:
            account = json.loads(text)
        except (ValueError, RecursionError):
            account = None
        if not isinstance(account, dict):
            self.errors["fcm_service_account"] = (
                "The file is not a JSON object: choose the service account's key file (JSON) "
                "downloaded from the Firebase console."
            )
            return None
        return {"service_account": account}

    def validate(self, model: type[AppCreate] | type[AppPatch], body: dict[str, Any]) -> AppPatch:
        errors: dict[str, str] = {}
        data: AppPatch | None = None
        try:
            data = model.model_validate(body)
        except ValidationError as exc:
            errors = field_errors(exc)
        errors.update(self.errors)  # a file that could not be read explains more than what followed
        if errors or data is None:
            raise FormInvalid(errors)
        return data


def creation(form: Mapping[str, str], files: Mapping[str, FileStorage]) -> AppCreate:
    """The app the new-app form describes; :class:`FormInvalid` otherwise. A platform is included
    when any of its fields is filled in."""
    reader = _Reader(form, files)
    body: dict[str, Any] = {
        "name": reader.text("name"),
        "user_key_verification": reader.text("user_key_verification") or "off",
    }
    body.update({name: value for name in IDENTIFIERS if (value := reader.text(name))})
    ios: dict[str, Any] = _part(reader, "ios", "bundle_id")
    apns = reader.apns()
    if apns is not None:
        ios["apns"] = apns
    if ios:
        body["ios"] = ios
    android: dict[str, Any] = _part(reader, "android", "package_name")
    fcm = reader.fcm()
    if fcm is not None:
        android["fcm"] = fcm
    if android:
        body["android"] = android
    data = reader.validate(AppCreate, body)
    assert isinstance(data, AppCreate)
    return data


def details_patch(form: Mapping[str, str], current: Mapping[str, Any]) -> AppPatch:
    """The change the details form describes over ``current`` (:func:`domain.apps.describe`): the
    identifiers are replaced (empty clears them); a store id or an integration key left empty is
    kept; a platform the app lacks is added when its store id is filled in."""
    reader = _Reader(form, {})
    body: dict[str, Any] = {
        "name": reader.text("name"),
        "user_key_verification": reader.text("user_key_verification"),
    }
    body.update({name: reader.text(name) or None for name in IDENTIFIERS})
    for platform, identifier in (("ios", "bundle_id"), ("android", "package_name")):
        part = _part(reader, platform, identifier)
        present = current.get(platform)
        if present is not None and part.get("integration_key") == present["integration_key"]:
            del part["integration_key"]
        if present is not None and part.get(identifier) == present[identifier]:
            del part[identifier]
        if part:
            body[platform] = part
    return reader.validate(AppPatch, body)


def apns_patch(form: Mapping[str, str], files: Mapping[str, FileStorage]) -> AppPatch:
    """New APNs credentials for the app's iOS part."""
    reader = _Reader(form, files)
    apns = reader.apns()
    if apns is None and not reader.errors:
        reader.errors["apns_key_p8"] = "Choose a .p8 key file, or a certificate file below."
    return reader.validate(AppPatch, {"ios": {"apns": apns}} if apns is not None else {})


def fcm_patch(form: Mapping[str, str], files: Mapping[str, FileStorage]) -> AppPatch:
    """A new FCM service account for the app's Android part."""
    reader = _Reader(form, files)
    fcm = reader.fcm()
    if fcm is None and not reader.errors:
        reader.errors["fcm_service_account"] = "Choose the service account's JSON file."
    return reader.validate(AppPatch, {"android": {"fcm": fcm}} if fcm is not None else {})


def _part(reader: _Reader, platform: str, identifier: str) -> dict[str, Any]:
    part: dict[str, Any] = {}
    if value := reader.text(f"{platform}_{identifier}"):
        part[identifier] = value
    if key := reader.text(f"{platform}_integration_key"):
        part["integration_key"] = key
    return part


def field_errors(exc: ValidationError) -> dict[str, str]:
    """The first message for each form field a validation error is about."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = tuple(str(part) for part in error["loc"])
        field = _field(loc)
        if error["type"] == "missing":
            message = "Required."
        elif error["type"] == "platform_required":
            message = "An app needs an iOS bundle ID, an Android package name or both."
        elif error["type"] == "string_pattern_mismatch" and field in _PATTERNS:
            message = _PATTERNS[field]
        else:
            message = _sentence(error["msg"])
        if field == "fcm_service_account":
            inside = ".".join(loc[3:])  # after android.fcm.service_account
            message = f"Not a usable service account key: {inside + ': ' if inside else ''}{message}"
        errors.setdefault(field, message)
    return errors


def _field(loc: tuple[str, ...]) -> str:
    if not loc:
        return FORM
    head = loc[0]
    if head == "ios" and loc[1:2] == ("apns",):
        named = next((_APNS_FIELDS[part] for part in reversed(loc) if part in _APNS_FIELDS), None)
        return named or ("apns_certificate" if "certificate" in loc else "apns_key_p8")
    if head == "android" and loc[1:2] == ("fcm",):
        return "fcm_service_account"
    if head in ("ios", "android"):
        return f"{head}_{loc[1]}" if len(loc) > 1 else FORM
    return head


def refusal(exc: ClientError) -> FormInvalid:
    """A domain function's refusal of the form's data, next to the field it is about."""
    message = exc.message
    field = _CODE_FIELDS.get(exc.code, FORM)
    if exc.code == "invalid_token_uri":
        message = message.removeprefix("android.fcm.service_account.")
    elif exc.code == "user_key_secret_missing":
        message = (
            "This app has no user-key secret yet: make one with Make a new user-key secret, give it to "
            "your backend, then turn verification on."
        )
    elif exc.code == "duplicate_integration_key":
        field = next((f"{p}_integration_key" for p in ("ios", "android") if message.startswith(f"the {p} ")), FORM)
    elif "ios.bundle_id" in message:
        field = "ios_bundle_id"
    elif "android.package_name" in message:
        field = "android_package_name"
    return FormInvalid({field: _sentence(message)}, exc.status)


def _sentence(text: str) -> str:
    for name, words in _WORDS.items():
        text = text.replace(name, words)
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
