"""Provider credentials: validated for real on input, sealed at rest, shown only by public parts.

Input models load every key and certificate with ``cryptography`` while validating, so a request
with a key that would fail at send time is refused with a 400 naming the field. The secret fields
are :class:`pydantic.SecretStr` (hidden from ``repr``, writeOnly in the schema), and no error
message quotes an input value.

Sealed forms (Fernet via :class:`core.secrets.SecretBox`, stored in ``AppPlatform.credentials``):

========================  ===========================================================
credential_kind           sealed object
========================  ===========================================================
``apns_token``            ``{"key_p8", "key_id", "team_id"}``
``apns_certificate``      ``{"certificate_pem", "private_key_pem"}`` (PEMs normalised, split)
``fcm_service_account``   ``{"service_account": "<the service-account JSON as a string>"}``
========================  ===========================================================

:func:`public_view` opens a sealed object and returns only what may be shown;
:func:`certificate_pem_from_p12` turns a .p12 export into the PEM ``certificate_pem`` takes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import BadRequest
from core.secrets import SecretBox
from domain.fields import SINGLE_LINE, Email, secret_check
from store.models import AppPlatform

PEM_MAX = 20_000
Environment = Literal["sandbox", "production"]
AppleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{10}$", description="10 letters or digits, as shown by Apple")]


def _private_key(pem: str, field: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:  # raised for a password-protected key
        raise PydanticCustomError(
            "encrypted_key", "{field} is password-protected; export it without a password", {"field": field}
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise PydanticCustomError(
            "invalid_key", "{field} is not a PEM private key that can be loaded", {"field": field}
        ) from None


def _certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise PydanticCustomError("invalid_certificate", "certificate_pem is not a PEM X.509 certificate") from None


def _pkcs8(key: PrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


class ApnsToken(BaseModel):
    """APNs token authentication: the .p8 key Apple hands out, its key id and the team id."""

    model_config = ConfigDict(extra="forbid")
    key_p8: Annotated[SecretStr, secret_check(PEM_MAX)] = Field(
        description="contents of the AuthKey_XXXXXXXXXX.p8 file (an EC P-256 key in PEM)"
    )
    key_id: AppleId
    team_id: AppleId
    environment: Environment

    @field_validator("key_p8")
    @classmethod
    def _loads(cls, value: SecretStr) -> SecretStr:
        key = _private_key(value.get_secret_value(), "key_p8")
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise PydanticCustomError("invalid_key", "key_p8 must be an EC P-256 private key (ES256)")
        return value

    def sealed(self) -> dict[str, Any]:
        return {"key_p8": self.key_p8.get_secret_value(), "key_id": self.key_id, "team_id": self.team_id}


class ApnsCertificate(BaseModel):
    """APNs certificate authentication: a PEM certificate and its private key (separately, or both
    in ``certificate_pem`` as exported from a .p12)."""

    model_config = ConfigDict(extra="forbid")
    certificate_pem: Annotated[SecretStr, secret_check(PEM_MAX)] = Field(
        description="the push certificate in PEM; may also hold the private key"
    )
    private_key_pem: Annotated[SecretStr, secret_check(PEM_MAX)] | None = Field(
        default=None, description="the certificate's private key in PEM, unless certificate_pem holds it"
    )
    environment: Environment
    _cert_pem: str = PrivateAttr("")
    _key_pem: str = PrivateAttr("")

    @field_validator("certificate_pem")
    @classmethod
    def _certificate_loads(cls, value: SecretStr) -> SecretStr:
        _certificate(value.get_secret_value())
        return value

    @field_validator("private_key_pem")
    @classmethod
    def _key_loads(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _private_key(value.get_secret_value(), "private_key_pem")
        return value

    @model_validator(mode="after")
    def _key_matches(self) -> ApnsCertificate:
        bundle = self.certificate_pem.get_secret_value()
        cert = _certificate(bundle)
        if self.private_key_pem is not None:
            key = _private_key(self.private_key_pem.get_secret_value(), "private_key_pem")
        elif "PRIVATE KEY-----" in bundle:
            key = _private_key(bundle, "certificate_pem")
        else:
            raise PydanticCustomError(
                "missing_key", "give the certificate's private key in private_key_pem or inside certificate_pem"
            )
        if _spki(key.public_key()) != _spki(cert.public_key()):
            raise PydanticCustomError("key_mismatch", "the private key does not belong to the certificate")
        if cert.not_valid_after_utc <= datetime.now(UTC):
            raise PydanticCustomError(
                "expired_certificate",
                "the certificate expired on {date}",
                {"date": cert.not_valid_after_utc.date().isoformat()},
            )
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self._key_pem = _pkcs8(key)
        return self

    def sealed(self) -> dict[str, Any]:
        return {"certificate_pem": self._cert_pem, "private_key_pem": self._key_pem}


def _apns_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "key_p8" in value:
            return "token"
        return "certificate" if "certificate_pem" in value else None
    if isinstance(value, ApnsToken | ApnsCertificate):
        return "token" if isinstance(value, ApnsToken) else "certificate"
    return None


def _apns_credentials(value: Any, _handler: ValidatorFunctionWrapHandler) -> ApnsToken | ApnsCertificate:
    """Validate ``apns`` as the kind its fields name. Chosen here rather than by a tagged union,
    whose errors carry the tag in their path (``ios.apns.token.key_p8``): a client must read the
    path it sent (``ios.apns.key_p8``)."""
    kind = _apns_kind(value)
    if kind is None:
        raise PydanticCustomError(
            "invalid_apns",
            "apns needs either key_p8, key_id, team_id and environment (token authentication) or "
            "certificate_pem and environment (certificate authentication)",
        )
    if isinstance(value, ApnsToken | ApnsCertificate):
        return value
    return (ApnsToken if kind == "token" else ApnsCertificate).model_validate(value)


ApnsCredentials = Annotated[ApnsToken | ApnsCertificate, WrapValidator(_apns_credentials)]


class ServiceAccount(BaseModel):
    """A Firebase service-account JSON object, as downloaded from the Firebase console."""

    model_config = ConfigDict(extra="allow")  # keep client_id, auth_uri, ... as Google wrote them
    type: Literal["service_account"]
    project_id: Annotated[str, Field(min_length=1, max_length=200), SINGLE_LINE]
    client_email: Email
    token_uri: Annotated[str, Field(max_length=2000, pattern=r"^https?://\S+$"), SINGLE_LINE]
    private_key: Annotated[SecretStr, secret_check(PEM_MAX)]

    @field_validator("private_key")
    @classmethod
    def _loads(cls, value: SecretStr) -> SecretStr:
        _private_key(value.get_secret_value(), "private_key")
        return value


class FcmCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_account: ServiceAccount

    def sealed(self) -> dict[str, Any]:
        account = self.service_account.model_dump()
        account["private_key"] = self.service_account.private_key.get_secret_value()
        return {"service_account": json.dumps(account)}


#: The hosts Google's service-account keys get OAuth tokens from (their ``token_uri``).
GOOGLE_TOKEN_HOSTS = frozenset({"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"})


def token_uri_problem(token_uri: str, *, any_host: bool) -> str | None:
    """Why pushgate must not post this account's signed assertion to ``token_uri``, or None.

    Sending to Google's FCM, the token comes from Google: any other URL would make the server
    post a signed JWT where an admin chose, and the answer would land in broadLog, where viewers
    read it. ``any_host`` is for a gateway pointed at another FCM (``PUSHGATE_FCM_ENDPOINT``, such
    as the local peer), whose tokens come from elsewhere."""
    if any_host:
        return None
    parts = urlsplit(token_uri)
    if parts.scheme == "https" and parts.hostname in GOOGLE_TOKEN_HOSTS and parts.port is None:
        return None
    return (
        "the service account's token_uri must be Google's (https://oauth2.googleapis.com/token) "
        "unless PUSHGATE_FCM_ENDPOINT points the gateway at another FCM"
    )


def certificate_pem_from_p12(data: bytes, password: str = "") -> str:
    """The certificate and private key of a PKCS#12 file (the .p12 Keychain Access exports) as one
    PEM text, which :class:`ApnsCertificate` takes as ``certificate_pem``. 400 when the file cannot
    be opened (not PKCS#12, wrong password) or lacks the certificate or its key; the message never
    quotes the file."""
    if len(data) > PEM_MAX:
        raise BadRequest(f"the .p12 file is larger than {PEM_MAX} bytes; it is not a push certificate")
    try:
        key, cert, _chain = pkcs12.load_key_and_certificates(data, password.encode() or None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BadRequest("the .p12 file cannot be opened: it is not PKCS#12, or the password is wrong") from None
    if cert is None or key is None:
        raise BadRequest("the .p12 file must hold the push certificate and its private key; export both")
    return cert.public_bytes(serialization.Encoding.PEM).decode() + _pkcs8(key)


def apply_apns(row: AppPlatform, box: SecretBox, creds: ApnsToken | ApnsCertificate | None) -> None:
    """Seal ``creds`` into ``row`` (None removes them)."""
    if creds is None:
        row.credential_kind, row.credentials, row.apns_environment = None, None, None
        return
    row.credential_kind = "apns_token" if isinstance(creds, ApnsToken) else "apns_certificate"
    row.credentials = box.seal(creds.sealed())
    row.apns_environment = creds.environment


def apply_fcm(row: AppPlatform, box: SecretBox, creds: FcmCredentials | None) -> None:
    """Seal ``creds`` into ``row`` (None removes them)."""
    row.apns_environment = None
    if creds is None:
        row.credential_kind, row.credentials = None, None
        return
    row.credential_kind = "fcm_service_account"
    row.credentials = box.seal(creds.sealed())


def public_view(row: AppPlatform, box: SecretBox) -> dict[str, Any] | None:
    """What may be shown of ``row``'s credentials; None when it has none. Never key material."""
    if row.credentials is None or row.credential_kind is None:
        return None
    sealed = box.open(row.credentials)
    if row.credential_kind == "apns_token":
        return {
            "auth": "token",
            "key_id": sealed.get("key_id"),
            "team_id": sealed.get("team_id"),
            "environment": row.apns_environment,
        }
    if row.credential_kind == "apns_certificate":
        cert = x509.load_pem_x509_certificate(str(sealed["certificate_pem"]).encode())
        return {
            "auth": "certificate",
            "subject": cert.subject.rfc4514_string(),
            "expires_at": cert.not_valid_after_utc.isoformat(),
            "environment": row.apns_environment,
        }
    account = json.loads(sealed["service_account"])
    return {"project_id": account.get("project_id"), "client_email": account.get("client_email")}


def opened_of_kind(session: Session, box: SecretBox, kind: str) -> list[dict[str, Any]]:
    """Every app's credentials of ``kind`` (``credential_kind``), opened. For the local peers only,
    which accept exactly what the apps hold; never returned by an API."""
    rows = session.scalars(select(AppPlatform).where(AppPlatform.credential_kind == kind))
    return [box.open(row.credentials) for row in rows if row.credentials is not None]
