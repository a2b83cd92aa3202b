"""XDM for the local Platform peer: the standard pieces it knows, how a schema composed in its
Schema Registry becomes one JSON Schema, and how a record is checked against it.

One module per step: :mod:`.standard` (the standard classes and field groups, after Adobe's public
XDM definitions), :mod:`.schemas` (a registry schema compiled to one validator, tenant field
groups checked), :mod:`.records` (a record's violations in Platform's words, and what Profile would
drop). The peer's API handlers use the names below, as ``xdm.<name>``.
"""

from sync.peers.platform_xdm.records import profile_problem, violations
from sync.peers.platform_xdm.schemas import (
    CompiledSchema,
    CompileError,
    compile_schema,
    namespace_problems,
    tenant_properties,
)
from sync.peers.platform_xdm.standard import CLASSES, STANDARD_FIELD_GROUPS, alt_id

__all__ = [
    "CLASSES",
    "STANDARD_FIELD_GROUPS",
    "CompileError",
    "CompiledSchema",
    "alt_id",
    "compile_schema",
    "namespace_problems",
    "profile_problem",
    "tenant_properties",
    "violations",
]
