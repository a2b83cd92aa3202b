"""Turning one broadLog row into one :class:`PushMessage`: render the delivery's templates for the
row's profile and subscription, then build the platform payload. Pure apart from the compiled
templates it caches per delivery; a row that cannot be built raises :class:`domain.messages.Unsendable`."""

from __future__ import annotations

from typing import Protocol

from domain.deliveries import validity_end
from domain.messages import Message
from domain.personalisation import LookupTables
from domain.templates.compiling import compile_message
from domain.templates.rendering import ProfileLike, SubscriptionLike, make_context, render
from domain.tracking import signature
from push import payloads
from push.providers.base import PushMessage
from store.models import AppPlatform, Delivery
from store.types import utcnow


class Sendable(SubscriptionLike, Protocol):
    """A subscription as the builder reads it: what templates see, plus the token."""

    token: str


class Builder:
    """Builds the pushes of one delivery; compiles its message once."""

    def __init__(self, delivery: Delivery, tracking_key: bytes, tables: LookupTables | None = None) -> None:
        self.delivery_id = delivery.id
        #: Deliveries made before tracking was signed keep unsigned ids (see Delivery.signed_tracking).
        self.tracking_key = tracking_key if delivery.signed_tracking else None
        self.compiled = compile_message(Message.model_validate(delivery.message), delivery.platforms)
        self.not_after = validity_end(delivery).timestamp()
        self.tables = tables
        #: The tables its templates read (None when they read none): the engine defers their rows.
        self.read_tables = tables if tables is not None and self.compiled.reads("tables") else None

    def build(
        self, broadlog_id: int, subscription: Sendable, profile: ProfileLike | None, part: AppPlatform
    ) -> PushMessage:
        rendered = render(self.compiled, make_context(profile, subscription, self.tables), subscription.platform)
        mac = signature(self.tracking_key, broadlog_id, self.delivery_id) if self.tracking_key is not None else ""
        if subscription.platform == "ios":
            payload, headers = payloads.apns_request(
                rendered,
                broadlog_id=broadlog_id,
                delivery_id=self.delivery_id,
                sdk=subscription.sdk,
                topic=part.app_identifier,
                expiration_epoch=payloads.expiration(
                    rendered, now_epoch=utcnow().timestamp(), not_after_epoch=self.not_after
                ),
                signature=mac,
            )
            return PushMessage(key=broadlog_id, token=subscription.token, payload=payload, headers=headers)
        message = payloads.fcm_message(
            rendered,
            broadlog_id=broadlog_id,
            delivery_id=self.delivery_id,
            sdk=subscription.sdk,
            ttl_seconds=_remaining(rendered.ttl_seconds, self.not_after),
            signature=mac,
        )
        return PushMessage(key=broadlog_id, token=subscription.token, payload=message)


def _remaining(ttl: int | None, not_after: float) -> int:
    left = max(0, int(not_after - utcnow().timestamp()))
    return left if ttl is None else min(ttl, left)
