"""What the console shows of profiles: a search, and one profile's page (its fields, consent,
subscriptions with their quarantine state, audiences and recent messages).

Reads only. Every lookup uses an index: external id and e-mail (profile), ECID (subscription),
push token (the subscription's unique (app, token) index, probed once per app), broadLog by
profile and trackingLog by message. A page of search results costs three queries, a profile's
page six, whatever the number of rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from domain import audiences, profiles
from domain.fields import SINGLE_LINE
from domain.paging import keyset, split_page
from domain.quarantine import QUARANTINE
from domain.tracking import CLICKED, OPENED, RECEIVED
from store.codes import BroadLogStatus, Channel, FailureReason, FailureType
from store.models import TOKEN_MAX, Address, App, BroadLog, Delivery, Profile, Subscription, TrackingLog

#: How many of a profile's newest messages its page shows.
RECENT_MESSAGES = 20
#: How many subscriptions a profile's page lists (a person has a handful of devices).
SUBSCRIPTIONS_SHOWN = 200
_HEX_TOKEN = re.compile(r"^[0-9a-fA-F <>]+$")


class ProfileSearch(BaseModel):
    """What the profile search looks for; empty fields are ignored, given ones must all match.
    Every match is exact, as the API's ``GET /profiles?email=`` is."""

    model_config = ConfigDict(extra="ignore")
    external_id: Annotated[str, Field(max_length=profiles.EXTERNAL_ID_MAX), SINGLE_LINE] | None = None
    email: Annotated[str, Field(max_length=320), SINGLE_LINE] | None = None
    ecid: Annotated[str, Field(max_length=64), SINGLE_LINE] | None = None
    token: Annotated[str, Field(max_length=TOKEN_MAX), SINGLE_LINE] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def empty(self) -> bool:
        return not any((self.external_id, self.email, self.ecid, self.token))


@dataclass(frozen=True)
class ProfileRow:
    """A search result: the profile and how many subscriptions are linked to it."""

    profile: Profile
    subscriptions: int


@dataclass(frozen=True)
class SubscriptionRow:
    """A subscription of the profile, its app's name and its token's quarantine entry (if any)."""

    subscription: Subscription
    app_name: str
    address: Address | None

    @property
    def quarantined(self) -> bool:
        return self.address is not None and self.address.status == QUARANTINE


@dataclass(frozen=True)
class RecentMessage:
    """A broadLog row of the profile with its delivery's name and what tracking recorded of it."""

    id: int
    delivery_id: int
    delivery_name: str
    proof: bool
    channel: str
    status: str
    failure_type: str | None
    failure_reason: str | None
    failure_code: int | None
    error_message: str | None
    event_date: datetime
    received: bool
    opened: bool
    clicked: bool


@dataclass(frozen=True)
class ProfilePage:
    profile: Profile
    subscriptions: list[SubscriptionRow]
    audiences: list[audiences.Membership]
    messages: list[RecentMessage]


def label(codes: type[IntEnum], value: int) -> str:
    """Campaign's name of a code as a person reads it (``FailureReason`` 9 -> ``In quarantine``);
    a number no version of pushgate wrote shows as itself rather than failing the page."""
    try:
        return codes(value).name.replace("_", " ").capitalize()
    except ValueError:
        return str(value)


def channel_label(channel: int) -> str:
    if channel == Channel.IOS:
        return "iOS"
    return "Android" if channel == Channel.ANDROID else str(channel)


def _token_forms(token: str) -> list[str]:
    """The token as typed and, for an APNs token typed upper-case or as ``<abcd ef01>``, the
    lower-case hex the store keeps (domain.subscriptions.normalise_token)."""
    forms = [token]
    if _HEX_TOKEN.match(token):
        forms.append(token.strip("<> ").replace(" ", "").lower())
    return sorted(set(forms))


def search_query(session: Session, criteria: ProfileSearch) -> Select[Profile]:
    """Profiles matching every given criterion (see :class:`ProfileSearch`), from
    :func:`domain.profiles.list_query`."""
    stmt = profiles.list_query(criteria.email)
    if criteria.external_id is not None:
        stmt = stmt.where(Profile.external_id == criteria.external_id)
    if criteria.ecid is not None:
        stmt = stmt.where(Profile.id.in_(select(Subscription.profile_id).where(Subscription.ecid == criteria.ecid)))
    if criteria.token is not None:
        # The token is unique per app ((app_id, token) index): naming every app turns the lookup
        # into one index probe per app rather than a scan of the subscriptions.
        app_ids = list(session.scalars(select(App.id)))
        owners = select(Subscription.profile_id).where(
            Subscription.app_id.in_(app_ids), Subscription.token.in_(_token_forms(criteria.token))
        )
        stmt = stmt.where(Profile.id.in_(owners))
    return stmt


def search(
    session: Session, criteria: ProfileSearch, *, after: int | None, limit: int
) -> tuple[list[ProfileRow], int | None]:
    """One page of the profiles matching ``criteria`` in id order after the id ``after``, each
    with its count of subscriptions. Returns the page and the id the next page starts after."""
    found = session.scalars(keyset(search_query(session, criteria), Profile.id, after=after, limit=limit)).all()
    rows, next_after = split_page(found, limit, lambda p: p.id)
    linked = profiles.subscription_ids(session, [p.id for p in rows])
    return [ProfileRow(p, len(linked.get(p.id, []))) for p in rows], next_after


def subscriptions(session: Session, profile_id: int) -> list[SubscriptionRow]:
    """The profile's subscriptions, newest registration first, with their app's name and their
    token's quarantine entry (two queries)."""
    rows = list(
        session.execute(
            select(Subscription, App.name)
            .join(App, App.id == Subscription.app_id)
            .where(Subscription.profile_id == profile_id)
            .order_by(Subscription.last_registered_at.desc(), Subscription.id.desc())
            .limit(SUBSCRIPTIONS_SHOWN)
        )
    )
    entries: dict[tuple[int, str], Address] = {}
    if rows:
        found = session.scalars(
            select(Address).where(
                Address.app_id.in_(sorted({s.app_id for s, _ in rows})),
                Address.address.in_(sorted({s.token for s, _ in rows})),
            )
        )
        entries = {(a.app_id, a.address): a for a in found}
    return [SubscriptionRow(s, name, entries.get((s.app_id, s.token))) for s, name in rows]


def recent_messages(session: Session, profile_id: int, limit: int = RECENT_MESSAGES) -> list[RecentMessage]:
    """The profile's newest broadLog rows with their deliveries' names, and whether each was
    received, opened or clicked (two queries)."""
    rows = list(
        session.execute(
            select(BroadLog, Delivery.name, Delivery.proof)
            .join(Delivery, Delivery.id == BroadLog.delivery_id)
            .where(BroadLog.profile_id == profile_id)
            .order_by(BroadLog.id.desc())
            .limit(limit)
        )
    )
    seen: set[tuple[int, str]] = set()
    if rows:
        tracked = session.execute(
            select(TrackingLog.broadlog_id, TrackingLog.interaction)
            .where(
                TrackingLog.broadlog_id.in_([b.id for b, _, _ in rows]),
                TrackingLog.interaction.in_((RECEIVED, OPENED, CLICKED)),
            )
            .distinct()
        )
        seen = {(broadlog_id, interaction) for broadlog_id, interaction in tracked}
    return [_message(b, name, proof, seen) for b, name, proof in rows]


def _message(row: BroadLog, name: str, proof: bool, seen: set[tuple[int, str]]) -> RecentMessage:
    return RecentMessage(
        id=row.id,
        delivery_id=row.delivery_id,
        delivery_name=name,
        proof=proof,
        channel=channel_label(row.channel),
        status=label(BroadLogStatus, row.status),
        failure_type=label(FailureType, row.failure_type) if row.failure_type is not None else None,
        failure_reason=label(FailureReason, row.failure_reason) if row.failure_reason is not None else None,
        failure_code=row.failure_reason,
        error_message=row.error_message,
        event_date=row.event_date,
        received=(row.id, RECEIVED) in seen,
        opened=(row.id, OPENED) in seen,
        clicked=(row.id, CLICKED) in seen,
    )


def profile_page(session: Session, external_id: str) -> ProfilePage:
    """Everything a profile's page shows; NotFound (404) for an unknown external id, BadRequest
    (400) for one the store cannot hold (:func:`domain.profiles.get_profile`)."""
    profile = profiles.get_profile(session, external_id)
    return ProfilePage(
        profile=profile,
        subscriptions=subscriptions(session, profile.id),
        audiences=audiences.of_profile(session, profile.id),
        messages=recent_messages(session, profile.id),
    )
