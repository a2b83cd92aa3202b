"""Lookups that every public registration makes, remembered briefly (``PUSHGATE_INTEGRATION_KEY_CACHE_SECONDS``)."""

from __future__ import annotations

from domain.subscriptions import KeyOwner, platform_by_integration_key
from gateway.runtime import db, runtime


def integration_key_owner(integration_key: str) -> KeyOwner | None:
    """The app part owning ``integration_key``; unknown keys are not remembered, so a new app's key
    works at once."""
    cache = runtime().integration_keys
    owner: KeyOwner | None = cache.get(integration_key)
    if owner is None:
        owner = platform_by_integration_key(db(), integration_key)
        if owner is not None:
            cache.put(integration_key, owner)
    return owner
