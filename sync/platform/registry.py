"""Schema Registry, Catalog and Dataset Service calls of provisioning: find by title, else create.

Adobe's contract (experienceleague.adobe.com/docs/experience-platform/...):

- Schema Registry (``xdm/api/field-groups.html``, ``schemas.html``, ``descriptors.html``,
  ``appendix.html``): list ``GET /data/foundation/schemaregistry/tenant/{fieldgroups|schemas}
  ?property=title==...`` with ``Accept: application/vnd.adobe.xed-id+json`` -> ``{"results":
  [{"$id", "meta:altId", "version", "title"}], "_page": {"next"}}``; create ``POST`` the same
  path -> 201 with the resource and its ``$id``; look one up ``GET .../schemas/{url-encoded $id}``
  with ``Accept: application/vnd.adobe.xed+json; version=1``; change one with JSON Patch
  (``PATCH``, ``[{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]`` enables a
  schema for Profile). Descriptors: ``GET /tenant/descriptors`` with ``Accept:
  application/vnd.adobe.xdm+json`` -> ``{"xdm:descriptorIdentity": [...], ...}``; ``POST`` one
  ``{"@type": "xdm:descriptorIdentity", "xdm:sourceSchema", "xdm:sourceVersion": 1,
  "xdm:sourceProperty": "/_{tenant}/...", "xdm:namespace", "xdm:property": "xdm:code",
  "xdm:isPrimary"}``.
- Catalog (``catalog/api/create-dataset.html``, ``profile/tutorials/dataset-configuration.html``):
  ``GET /data/foundation/catalog/dataSets?name=...&properties=...`` -> ``{"{id}": {...}}``;
  ``POST /dataSets`` with ``tags: {"unifiedProfile": ["enabled:true"], "unifiedIdentity":
  ["enabled:true"]}`` -> 201 ``["@/dataSets/{id}"]``; ``PATCH /dataSets/{id}`` with those tags
  enables an existing dataset.
- Dataset Service (``data-governance/labels/dataset-api.html``): ``GET
  /data/foundation/dataset/datasets/{id}/labels`` -> ``{"AEP:dataset:{id}": {"labels": [...],
  "optionalLabels": [...]}}`` with an ``etag`` header (404 when none); ``POST`` creates them,
  ``PUT`` with ``If-Match: {etag}`` replaces them.

Every method is idempotent: it looks first and creates or changes only what is missing, and
returns what it did (``created``, ``found`` or ``updated``) for the run's summary. Resources are
matched by exact title (field groups, schemas) or name (datasets), so provisioning twice creates
each once. A resource pushgate finds is not rewritten, except for what Profile needs (the
``union`` tag, the dataset tags) and labels, which are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from core.errors import PermanentError
from sync.platform.client import Platform

REGISTRY = "/data/foundation/schemaregistry"
CATALOG = "/data/foundation/catalog"
DATASET_SERVICE = "/data/foundation/dataset"
XED_ID = "application/vnd.adobe.xed-id+json"
XED = "application/vnd.adobe.xed+json; version=1"
XDM_DESCRIPTORS = "application/vnd.adobe.xdm+json"
PROFILE_TAGS = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}


@dataclass(frozen=True)
class Outcome:
    """One provisioned object: what it is, its id, and what provisioning did to it."""

    kind: str  # fieldgroup | schema | descriptor | dataset | labels
    name: str
    id: str
    action: str  # created | found | updated


class Registry:
    """Provisioning calls, each retried on 429/5xx."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.platform.api(path)
        response = self.platform.retrying(lambda: self.platform.request(method, url, **kwargs))
        return response

    # -- field groups and schemas ------------------------------------------------------------------

    def find(self, kind: str, title: str) -> dict[str, Any] | None:
        """The tenant ``fieldgroups`` or ``schemas`` resource titled ``title`` (summary form), or None."""
        for item in self._list(f"{REGISTRY}/tenant/{kind}", {"property": f"title=={title}"}):
            if item.get("title") == title:
                return item
        return None

    def _list(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        while True:
            body = self._call("GET", path, params=params, headers={"Accept": XED_ID}, ok=(200,)).json()
            results = body.get("results", []) if isinstance(body, dict) else []
            yield from (item for item in results if isinstance(item, dict))
            page = body.get("_page") if isinstance(body, dict) else None
            start = page.get("next") if isinstance(page, dict) else None
            if not start or start in seen:
                return
            seen.add(str(start))
            params = {**params, "orderby": "title", "start": str(start)}

    def ensure(self, kind: str, body: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
        """Find the ``fieldgroups``/``schemas`` resource titled like ``body``, else create it."""
        title = str(body["title"])
        label = "fieldgroup" if kind == "fieldgroups" else "schema"
        found = self.find(kind, title)
        if found is not None:
            return found, Outcome(label, title, str(found["$id"]), "found")
        created = self._call("POST", f"{REGISTRY}/tenant/{kind}", json=body, ok=(200, 201)).json()
        if not isinstance(created, dict) or "$id" not in created:
            raise PermanentError(f"POST {REGISTRY}/tenant/{kind}: the answer has no $id")
        return created, Outcome(label, title, str(created["$id"]), "created")

    def schema(self, schema_id: str) -> dict[str, Any]:
        body = self._call(
            "GET", f"{REGISTRY}/tenant/schemas/{quote(schema_id, safe='')}", headers={"Accept": XED}, ok=(200,)
        )
        result: dict[str, Any] = body.json()
        return result

    def ensure_field_groups(self, schema_id: str, title: str, refs: Sequence[str]) -> Outcome | None:
        """Add to a found schema the field groups of ``refs`` it lacks (an additive change)."""
        current = self.schema(schema_id)
        have = {part.get("$ref") for part in current.get("allOf", []) if isinstance(part, dict)}
        have |= set(current.get("meta:extends", []))
        missing = [ref for ref in refs if ref not in have]
        if not missing:
            return None
        patch: list[dict[str, Any]] = []
        for ref in missing:
            patch.append({"op": "add", "path": "/meta:extends/-", "value": ref})
            patch.append({"op": "add", "path": "/allOf/-", "value": {"$ref": ref}})
        self._call("PATCH", f"{REGISTRY}/tenant/schemas/{quote(schema_id, safe='')}", json=patch, ok=(200,))
        return Outcome("schema", title, schema_id, "updated")

    def ensure_union(self, schema_id: str, title: str) -> Outcome | None:
        """Enable the schema for Profile (``union`` in ``meta:immutableTags``); None when it was."""
        current = self.schema(schema_id)
        if "union" in current.get("meta:immutableTags", []):
            return None
        patch = [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]
        self._call("PATCH", f"{REGISTRY}/tenant/schemas/{quote(schema_id, safe='')}", json=patch, ok=(200,))
        return Outcome("profile", title, schema_id, "updated")

    def ensure_identity(self, schema_id: str, path: str, namespace: str, *, primary: bool = False) -> Outcome:
        """An identity descriptor on ``path`` (``/_{tenant}/...``) of the schema."""
        found = self._call("GET", f"{REGISTRY}/tenant/descriptors", headers={"Accept": XDM_DESCRIPTORS}, ok=(200,))
        body: Any = found.json()
        existing = body.get("xdm:descriptorIdentity", []) if isinstance(body, dict) else []
        for descriptor in existing:
            if (
                isinstance(descriptor, dict)
                and descriptor.get("xdm:sourceSchema") == schema_id
                and descriptor.get("xdm:sourceProperty") == path
            ):
                return Outcome("descriptor", f"identity {path}", str(descriptor.get("@id", "")), "found")
        created = self._call(
            "POST",
            f"{REGISTRY}/tenant/descriptors",
            json={
                "@type": "xdm:descriptorIdentity",
                "xdm:sourceSchema": schema_id,
                "xdm:sourceVersion": 1,
                "xdm:sourceProperty": path,
                "xdm:namespace": namespace,
                "xdm:property": "xdm:code",
                "xdm:isPrimary": primary,
            },
            ok=(200, 201),
        ).json()
        return Outcome("descriptor", f"identity {path}", str(created.get("@id", "")), "created")

    # -- datasets and labels ---------------------------------------------------------------------

    def ensure_dataset(self, name: str, schema_id: str, description: str) -> list[Outcome]:
        """The dataset named ``name`` on ``schema_id``, enabled for Profile and Identity."""
        params = {"name": name, "properties": "name,schemaRef,tags"}
        body: Any = self._call("GET", f"{CATALOG}/dataSets", params=params, ok=(200,)).json()
        for dataset_id, dataset in body.items() if isinstance(body, dict) else []:
            if not isinstance(dataset, dict) or dataset.get("name") != name:
                continue
            ref = (dataset.get("schemaRef") or {}).get("id")
            if ref != schema_id:
                raise PermanentError(f"dataset {name!r} ({dataset_id}) exists on another schema ({ref}); rename it")
            outcomes = [Outcome("dataset", name, dataset_id, "found")]
            tags = dataset.get("tags") or {}
            if any("enabled:true" not in (tags.get(tag) or []) for tag in PROFILE_TAGS):
                self._call("PATCH", f"{CATALOG}/dataSets/{dataset_id}", json={"tags": PROFILE_TAGS}, ok=(200,))
                outcomes.append(Outcome("profile", name, dataset_id, "updated"))
            return outcomes
        created = self._call(
            "POST",
            f"{CATALOG}/dataSets",
            json={
                "name": name,
                "description": description,
                "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
                "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"},
                "tags": PROFILE_TAGS,
            },
            ok=(200, 201),
        ).json()
        return [Outcome("dataset", name, _dataset_id(created), "created")]

    def ensure_labels(self, dataset_id: str, name: str, labels: Sequence[str]) -> Outcome | None:
        """Add ``labels`` to the dataset's labels (never removes one); None when nothing changed."""
        if not labels:
            return None
        path = f"{DATASET_SERVICE}/datasets/{dataset_id}/labels"
        response = self._call("GET", path, ok=(200, 404))
        if response.status_code == 404:
            self._call("POST", path, json={"labels": sorted(set(labels))}, ok=(200, 201))
            return Outcome("labels", name, dataset_id, "created")
        body: Any = response.json()
        current = body.get(f"AEP:dataset:{dataset_id}") if isinstance(body, dict) else None
        if not isinstance(current, dict) and isinstance(body, dict) and len(body) == 1:
            current = next(iter(body.values()))
        current = current if isinstance(current, dict) else {}
        have = [str(label) for label in current.get("labels", [])]
        wanted = sorted(set(have) | set(labels))
        if set(wanted) == set(have):
            return None
        payload = {"labels": wanted, "optionalLabels": current.get("optionalLabels", [])}
        etag = response.headers.get("etag", "")
        self._call("PUT", path, json=payload, headers={"If-Match": etag}, ok=(200, 201))
        return Outcome("labels", name, dataset_id, "updated")


def _dataset_id(created: Any) -> str:
    """``["@/dataSets/{id}"]`` -> id."""
    if isinstance(created, list) and created and isinstance(created[0], str):
        return created[0].rsplit("/", 1)[-1]
    raise PermanentError(f"POST {CATALOG}/dataSets: unexpected answer {json.dumps(created)[:200]}")
