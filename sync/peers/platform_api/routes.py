"""The peer's URL map and, per endpoint, its fault category and handler."""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from sync.peers.platform_api.batch import batch_action, batch_create, batch_file
from sync.peers.platform_api.catalog import (
    batches_list,
    batches_one,
    datasets_create,
    datasets_list,
    datasets_one,
    labels,
)
from sync.peers.platform_api.ims import ims_token
from sync.peers.platform_api.privacy import privacy_create, privacy_list, privacy_one
from sync.peers.platform_api.registry import (
    registry_get,
    registry_global_get,
    registry_global_list,
    registry_list,
    registry_stats,
)
from sync.peers.platform_api.registry_changes import registry_change, registry_create
from sync.peers.platform_api.registry_descriptors import descriptors_create, descriptors_list, descriptors_one
from sync.peers.platform_api.streaming import stream_batch, stream_one

Handler = Callable[..., Response]
_SR = "/data/foundation/schemaregistry"
_KINDS = "<any(fieldgroups, mixins, schemas):kind>"

#: endpoint -> (fault category, handler)
ENDPOINTS: dict[str, tuple[str, Handler]] = {
    "ims_token": ("ims", ims_token),
    "registry_stats": ("registry", registry_stats),
    "registry_global_list": ("registry", registry_global_list),
    "registry_global_get": ("registry", registry_global_get),
    "registry_list": ("registry", registry_list),
    "registry_create": ("registry", registry_create),
    "registry_get": ("registry", registry_get),
    "registry_change": ("registry", registry_change),
    "descriptors_list": ("registry", descriptors_list),
    "descriptors_create": ("registry", descriptors_create),
    "descriptors_one": ("registry", descriptors_one),
    "datasets_list": ("catalog", datasets_list),
    "datasets_create": ("catalog", datasets_create),
    "datasets_one": ("catalog", datasets_one),
    "batches_list": ("catalog", batches_list),
    "batches_one": ("catalog", batches_one),
    "labels": ("labels", labels),
    "batch_create": ("batch", batch_create),
    "batch_file": ("batch", batch_file),
    "batch_action": ("batch", batch_action),
    "stream_one": ("streaming", stream_one),
    "stream_batch": ("streaming-batch", stream_batch),
    "privacy_create": ("privacy", privacy_create),
    "privacy_list": ("privacy", privacy_list),
    "privacy_one": ("privacy", privacy_one),
}

ROUTES = Map(
    [
        Rule("/ims/token/v3", methods=["POST"], endpoint="ims_token"),
        Rule(f"{_SR}/stats", methods=["GET"], endpoint="registry_stats"),
        Rule(
            f"{_SR}/global/<any(classes, fieldgroups, mixins):kind>", methods=["GET"], endpoint="registry_global_list"
        ),
        Rule(
            f"{_SR}/global/<any(classes, fieldgroups, mixins):kind>/<path:ref>",
            methods=["GET"],
            endpoint="registry_global_get",
        ),
        Rule(f"{_SR}/tenant/descriptors", methods=["GET"], endpoint="descriptors_list"),
        Rule(f"{_SR}/tenant/descriptors", methods=["POST"], endpoint="descriptors_create"),
        Rule(f"{_SR}/tenant/descriptors/<ref>", methods=["GET", "PUT", "DELETE"], endpoint="descriptors_one"),
        Rule(f"{_SR}/tenant/{_KINDS}", methods=["GET"], endpoint="registry_list"),
        Rule(f"{_SR}/tenant/{_KINDS}", methods=["POST"], endpoint="registry_create"),
        Rule(f"{_SR}/tenant/{_KINDS}/<path:ref>", methods=["GET"], endpoint="registry_get"),
        Rule(f"{_SR}/tenant/{_KINDS}/<path:ref>", methods=["PUT", "PATCH", "DELETE"], endpoint="registry_change"),
        Rule("/data/foundation/catalog/<any(dataSets, datasets):_c>", methods=["GET"], endpoint="datasets_list"),
        Rule("/data/foundation/catalog/<any(dataSets, datasets):_c>", methods=["POST"], endpoint="datasets_create"),
        Rule(
            "/data/foundation/catalog/<any(dataSets, datasets):_c>/<dataset_id>",
            methods=["GET", "PATCH", "DELETE"],
            endpoint="datasets_one",
        ),
        Rule("/data/foundation/catalog/batches", methods=["GET"], endpoint="batches_list"),
        Rule("/data/foundation/catalog/batches/<batch_id>", methods=["GET"], endpoint="batches_one"),
        Rule(
            "/data/foundation/dataset/datasets/<dataset_id>/labels",
            methods=["GET", "POST", "PUT", "DELETE"],
            endpoint="labels",
        ),
        Rule("/data/foundation/import/batches", methods=["POST"], endpoint="batch_create"),
        Rule("/data/foundation/import/batches/<batch_id>", methods=["POST"], endpoint="batch_action"),
        Rule(
            "/data/foundation/import/batches/<batch_id>/<any(datasets, dataSets):_d>/<dataset_id>/files/<path:name>",
            methods=["PUT"],
            endpoint="batch_file",
        ),
        Rule("/collection/batch/<inlet>", methods=["POST"], endpoint="stream_batch"),
        Rule("/collection/<inlet>", methods=["POST"], endpoint="stream_one"),
        Rule("/data/core/privacy/jobs", methods=["POST"], endpoint="privacy_create"),
        Rule("/data/core/privacy/jobs", methods=["GET"], endpoint="privacy_list"),
        Rule("/data/core/privacy/jobs/<job_id>", methods=["GET"], endpoint="privacy_one"),
    ],
    merge_slashes=False,
    strict_slashes=False,
)
