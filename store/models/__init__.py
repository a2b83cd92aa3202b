"""The tables, named after Adobe Campaign's data model (docs/protocols.md §4).

This package is the only place that knows tables (one module per area; every name is
imported from here). Status and reason columns hold Campaign's
numbers (see :mod:`store.codes`); readable names are derived where they are shown.
Provider credentials are stored only as Fernet ciphertext (``credentials``).
"""

from store.models.apps import ApiKey, ApiKeyApp, App, AppPlatform
from store.models.base import NAMING, PUBLIC_ID_MAX, TOKEN_MAX, Base, ExportedTimestamps, Timestamps
from store.models.console import ConsoleUser, TestDevice
from store.models.deliveries import Address, BroadLog, Delivery, DeliveryStall, TrackingLog
from store.models.people import Audience, AudienceMember, Profile, PushIdentity, StandardRegistration, Subscription
from store.models.secrets import SecretCheck
from store.models.sync import (
    AudienceImport,
    LookupRow,
    LookupTable,
    PrivacyRequest,
    SyncFile,
    SyncReject,
    SyncRun,
    SyncState,
)

__all__ = [
    "NAMING",
    "PUBLIC_ID_MAX",
    "TOKEN_MAX",
    "Address",
    "ApiKey",
    "ApiKeyApp",
    "App",
    "AppPlatform",
    "Audience",
    "AudienceImport",
    "AudienceMember",
    "Base",
    "BroadLog",
    "ConsoleUser",
    "Delivery",
    "DeliveryStall",
    "ExportedTimestamps",
    "LookupRow",
    "LookupTable",
    "PrivacyRequest",
    "Profile",
    "PushIdentity",
    "SecretCheck",
    "StandardRegistration",
    "Subscription",
    "SyncFile",
    "SyncReject",
    "SyncRun",
    "SyncState",
    "TestDevice",
    "Timestamps",
    "TrackingLog",
]
