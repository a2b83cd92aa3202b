"""One provider per app platform, built from its encrypted credentials on the worker's loop.

The pool is the only place that decrypts credentials for sending. A provider is rebuilt when the
app part changes (``updated_at`` moves), and a part without usable credentials (none, sealed with
another key, or an FCM ``token_uri`` pushgate must not post to) gets a provider that answers every
message with an AUTH error saying so (:data:`CREDENTIAL_PROBLEMS`), so the engine records why
nothing was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from core.config import Settings
from core.errors import ConfigError
from core.secrets import SecretBox
from domain.credentials import token_uri_problem
from push.providers.apns import ApnsProvider, CertificateCredentials, TokenCredentials
from push.providers.base import ErrorKind, Provider, PushError, PushMessage, SendResult
from push.providers.fcm import FcmProvider
from store.models import AppPlatform

MISSING, UNDECRYPTABLE, TOKEN_URI_REFUSED = "MissingCredentials", "UndecryptableCredentials", "TokenUriRefused"
#: The reasons of the AUTH errors :class:`MissingCredentials` answers with: pushgate's own, whose
#: message says in words what is wrong with the app's credentials.
CREDENTIAL_PROBLEMS = frozenset({MISSING, UNDECRYPTABLE, TOKEN_URI_REFUSED})


class MissingCredentials:
    """Stands in for a provider when the app part has no (usable) credentials."""

    def __init__(self, platform: str, why: str, reason: str = MISSING) -> None:
        self.platform = platform
        self.why = why
        self.reason = reason

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        error = PushError(ErrorKind.AUTH, self.reason, message=self.why)
        return [SendResult(m.key, error=error) for m in messages]

    async def close(self) -> None:
        return None


class ProviderPool:
    def __init__(self, settings: Settings, box: SecretBox) -> None:
        self.settings = settings
        self.box = box
        self._providers: dict[int, tuple[object, Provider]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __call__(self, part: AppPlatform) -> Provider:
        version = (part.updated_at, part.credential_kind)
        cached = self._providers.get(part.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        provider = self._build(part)
        self._providers[part.id] = (version, provider)
        if cached is not None:  # credentials changed: let the old client finish and close
            task = asyncio.get_running_loop().create_task(cached[1].close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return provider

    def _build(self, part: AppPlatform) -> Provider:
        service = "APNs" if part.platform == "ios" else "FCM"
        if part.credentials is None or part.credential_kind is None:
            return MissingCredentials(part.platform, f"the app has no {service} credentials; add them to the app")
        try:
            secret = self.box.open(part.credentials)
        except ConfigError:  # the start-up check passed, so this one value was sealed with another key
            why = f"the app's {service} credentials cannot be decrypted with PUSHGATE_SECRET_KEY; give them again"
            return MissingCredentials(part.platform, why, UNDECRYPTABLE)
        timeout = self.settings.provider_timeout
        if part.platform == "android":
            account = json.loads(secret["service_account"])
            # Checked when the credentials were given; again here for rows written before the rule.
            problem = token_uri_problem(str(account.get("token_uri", "")), any_host=bool(self.settings.fcm_endpoint))
            if problem is not None:
                return MissingCredentials(part.platform, problem, TOKEN_URI_REFUSED)
            return FcmProvider(
                account,
                endpoint=self.settings.fcm_endpoint,
                ca_bundle=self.settings.ca_bundle,
                timeout=timeout,
            )
        common = {
            "topic": part.app_identifier,
            "sandbox": part.apns_environment != "production",
            "endpoint": self.settings.apns_endpoint,
            "ca_bundle": self.settings.ca_bundle,
            "timeout": timeout,
        }
        if part.credential_kind == "apns_token":
            token = TokenCredentials(key_pem=secret["key_p8"], key_id=secret["key_id"], team_id=secret["team_id"])
            return ApnsProvider(token=token, **common)  # type: ignore[arg-type]
        certificate = CertificateCredentials(cert_pem=secret["certificate_pem"], key_pem=secret.get("private_key_pem"))
        return ApnsProvider(certificate=certificate, **common)  # type: ignore[arg-type]

    async def close(self) -> None:
        providers, self._providers = self._providers, {}
        for _version, provider in providers.values():
            await provider.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
