"""The standard XDM pieces the local Platform peer holds, after Adobe's public XDM definitions
(github.com/adobe/xdm) in the "compatibility mode" field names the Platform APIs use:

- the XDM ExperienceEvent class: ``_id`` and ``timestamp`` (ISO 8601 date-time) required,
  ``eventType``, ``eventMergeId``, ``producedBy`` and ``identityMap`` (the class extends the
  identity map);
- the XDM Individual Profile class: ``_id``, ``personID`` and the auditable fields;
- the IdentityMap field group: ``identityMap`` = ``{namespace: [{id, authenticatedState, primary}]}``.

Any other standard reference is recognised by :func:`is_standard` and left to
:mod:`sync.peers.platform_xdm.schemas` as an open field group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
TIME_SERIES = "https://ns.adobe.com/xdm/data/time-series"
RECORD = "https://ns.adobe.com/xdm/data/record"
AUDITABLE = "https://ns.adobe.com/xdm/common/auditable"

IDENTITY_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "authenticatedState": {"type": "string", "enum": ["ambiguous", "authenticated", "loggedOut"]},
        "primary": {"type": "boolean"},
    },
    "required": ["id"],
    "additionalProperties": False,
}
IDENTITY_MAP_FIELD: dict[str, Any] = {
    "type": "object",
    "meta:xdmType": "map",
    "additionalProperties": {"type": "array", "items": IDENTITY_ITEM},
}


@dataclass(frozen=True)
class StandardClass:
    id: str
    title: str
    behavior: str  # "time-series" or "record"
    extends: tuple[str, ...]
    properties: Mapping[str, Any]
    required: tuple[str, ...]

    def resource(self) -> dict[str, Any]:
        """The class as the global container lists it."""
        return {
            "$id": self.id,
            "meta:altId": alt_id(self.id),
            "meta:resourceType": "classes",
            "version": "1.0",
            "title": self.title,
            "type": "object",
            "meta:extends": list(self.extends),
            "meta:containerId": "global",
            "properties": json.loads(json.dumps(self.properties)),
            "required": list(self.required),
        }


CLASSES: dict[str, StandardClass] = {
    EXPERIENCE_EVENT: StandardClass(
        id=EXPERIENCE_EVENT,
        title="XDM ExperienceEvent",
        behavior="time-series",
        extends=(TIME_SERIES, IDENTITY_MAP),
        properties={
            "_id": {"type": "string", "minLength": 1},
            "timestamp": {"type": "string", "format": "date-time"},
            "eventType": {"type": "string"},
            "eventMergeId": {"type": "string"},
            "producedBy": {"type": "string"},
            "identityMap": IDENTITY_MAP_FIELD,
        },
        required=("_id", "timestamp"),
    ),
    PROFILE: StandardClass(
        id=PROFILE,
        title="XDM Individual Profile",
        behavior="record",
        extends=(RECORD, AUDITABLE),
        properties={
            "_id": {"type": "string", "minLength": 1},
            "personID": {"type": "string"},
            "_repo": {"type": "object"},
            "repositoryCreatedBy": {"type": "string"},
            "repositoryLastModifiedBy": {"type": "string"},
            "createdByBatchID": {"type": "string"},
            "modifiedByBatchID": {"type": "string"},
        },
        required=(),
    ),
}

#: Standard field groups whose fields the peer knows (others are open).
STANDARD_FIELD_GROUPS: dict[str, dict[str, Any]] = {
    IDENTITY_MAP: {
        "$id": IDENTITY_MAP,
        "meta:altId": "_xdm.context.identitymap",
        "meta:resourceType": "mixins",
        "version": "1.0",
        "title": "IdentityMap",
        "type": "object",
        "meta:intendedToExtend": [],
        "meta:containerId": "global",
        "definitions": {"identitymap": {"properties": {"identityMap": IDENTITY_MAP_FIELD}}},
        "allOf": [{"$ref": "#/definitions/identitymap"}],
    }
}


def alt_id(resource_id: str) -> str:
    """``https://ns.adobe.com/xdm/context/profile`` -> ``_xdm.context.profile`` (the registry's dot form)."""
    path = resource_id.split("://", 1)[-1].split("/", 1)[-1]
    return "_" + path.replace("/", ".")


def is_standard(ref: str) -> bool:
    return ref.startswith(("https://ns.adobe.com/xdm/", "https://ns.adobe.com/experience/"))
