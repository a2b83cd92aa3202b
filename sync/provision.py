"""The ``provision`` sync job: pushgate's XDM design created in the Platform, safe to run again.

For each stream (:data:`sync.xdm.STREAMS`), in order:

1. the tenant field group (``registry/fieldgroup-<stream>.json``), found by title or created;
2. the schema (``registry/schema-<stream>.json``: the standard class and field groups plus that
   field group), found by title or created; a found schema missing one of those field groups gets
   it added (an additive change);
3. an identity descriptor on ``_{tenant}.pushgate.externalId`` in the external id namespace
   (``export.identityNamespace`` of the sync configuration, ``CRMID`` by default; the namespace
   must exist in the Platform), not primary: the primary identity of each record is set in its
   ``identityMap`` (see :mod:`sync.xdm.records`);
4. the schema enabled for Profile (``union`` immutable tag);
5. the dataset (``pushgate broadLog``, ...), found by name or created, enabled for Profile and
   Identity Service (``unifiedProfile`` / ``unifiedIdentity`` tags);
6. the dataset's labels from the sync configuration (``governance.labels.datasets`` by dataset
   name), added to those it has (none is ever removed).

The dataset id and schema ``$id`` are stored in ``sync_state`` (``dataset:<stream>``,
``schema:<stream>``) for the ``logs`` job. The summary has one entry per stream, listing every
object with what was done to it (``created``, ``found``, ``updated``); a stream whose calls fail
is reported failed with Adobe's reason, and the others still go ahead.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from core.config import Settings
from core.errors import ConfigError, ExternalError
from store.queries import state
from sync import xdm
from sync.config import sync_config
from sync.export.config import ExportConfig, check_settings, export_config
from sync.platform.client import Platform
from sync.platform.registry import Outcome, Registry
from sync.runs import FileOutcome, RunContext, SyncError

JOB = "provision"

#: The Platform the job talks to; tests replace it.
make_platform: Any = Platform


def run(context: RunContext) -> None:
    settings = context.settings
    check_settings(settings, streaming=False)
    try:
        loaded = sync_config(settings)
        config = export_config(settings, loaded)
        labels = loaded.governance.labels.datasets
    except ConfigError as exc:
        raise SyncError(str(exc)) from None
    requested = context.options.get("streams") or xdm.STREAMS
    unknown = [name for name in requested if name not in xdm.STREAMS]
    if unknown:
        raise SyncError(f"unknown stream {unknown[0]!r}; streams: {', '.join(xdm.STREAMS)}")
    with make_platform(settings) as platform:
        try:
            platform.tokens.token()
        except ExternalError as exc:
            raise SyncError(f"cannot authenticate with Adobe IMS: {exc}") from None
        registry = Registry(platform)
        for stream in (name for name in xdm.STREAMS if name in requested):
            context.file(
                provision_stream(context, registry, settings, config, stream, labels.get(xdm.SPECS[stream].dataset, []))
            )


def provision_stream(
    context: RunContext, registry: Registry, settings: Settings, config: ExportConfig, stream: str, labels: list[str]
) -> FileOutcome:
    """Provision one stream's field group, schema, descriptor, dataset and labels."""
    spec = xdm.SPECS[stream]
    tenant = settings.aep_tenant_id
    done: list[Outcome] = []
    try:
        group, outcome = registry.ensure("fieldgroups", xdm.field_group(stream, tenant))
        done.append(outcome)
        body = xdm.schema(stream, tenant, str(group["$id"]))
        found, outcome = registry.ensure("schemas", body)
        done.append(outcome)
        schema_id = str(found["$id"])
        if outcome.action == "found":
            done.extend(o for o in [registry.ensure_field_groups(schema_id, outcome.name, xdm.schema_refs(body))] if o)
        done.append(registry.ensure_identity(schema_id, xdm.identity_path(tenant), config.identityNamespace))
        done.extend(o for o in [registry.ensure_union(schema_id, outcome.name)] if o)
        datasets = registry.ensure_dataset(spec.dataset, schema_id, spec.description)
        done.extend(datasets)
        dataset_id = datasets[0].id
        done.extend(o for o in [registry.ensure_labels(dataset_id, spec.dataset, labels)] if o)
    except ExternalError as exc:
        return _outcome(stream, done, status="failed", reason=str(exc))
    with context.sessions.begin() as session:
        state.set_value(session, f"dataset:{stream}", dataset_id)
        state.set_value(session, f"schema:{stream}", schema_id)
    return _outcome(stream, done, details={"dataset": dataset_id, "schema": schema_id})


def _outcome(
    stream: str,
    done: list[Outcome],
    *,
    status: str = "applied",
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> FileOutcome:
    changed = sum(1 for o in done if o.action != "found")
    return FileOutcome(
        name=stream,
        status=status,
        rows=len(done),
        applied=changed,
        reason=reason,
        details={**(details or {}), "objects": [asdict(o) for o in done]},
    )
