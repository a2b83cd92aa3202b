"""Profile files: rows mapped to profile fields, validated through the API's model, upserted.

Columns map to profile fields through ``PUSHGATE_SFTP_PROFILE_MAPPING``
(``{"CUSTOMER_ID": "external_id", "mail": "email", "tier": "attributes.loyalty_tier"}``, a column
mapped to ``""`` is ignored; :class:`~sync.profiles.settings.ProfileMapping`). A column the mapping
does not name follows the default: a header equal to a field name (``external_id``, ``email``,
``first_name``, ``last_name``, ``locale``, ``timezone``, ``push_consent``) maps to that field,
unless the mapping sends another column there (then it is ignored); any other column becomes an
attribute of that name. Profiles are upserted by external id: fields given replace the stored ones;
**attributes are merged key by key** (a column replaces that one attribute, the profile's other
attributes stay); ``push_consent`` is ``y``, ``n`` or ``u`` (any case), and a new profile without
one gets ``u``. A row naming an external id twice in a file: the later row wins, field by field.
After each chunk, subscriptions that registered earlier with a user key naming one of these
profiles (by ``PUSHGATE_RECONCILIATION_FIELD``) are linked to them, in one UPDATE.

:class:`ProfileFile` is the :class:`~sync.profiles.reader.Kind` of these files: it checks rows
for :func:`~sync.profiles.reader.stage` and writes them in the file's transaction
(:func:`domain.profiles.import_profiles`); it commits nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from core.errors import BadRequest
from domain.profiles import ImportedProfile, ProfileIn, check_external_id, import_profiles
from sync.profiles.reader import Applied
from sync.profiles.settings import ProfileMapping

CONSENTS = ("y", "n", "u")


class ProfileFile:
    """Profile rows: mapped, validated through the API's own model, upserted in chunks."""

    job = "profiles"

    def __init__(self, mapping: ProfileMapping, reconciliation_field: str) -> None:
        self.mapping = mapping
        self.reconciliation_field = reconciliation_field
        self.targets: list[tuple[str, str] | None] = []
        self.key = 0
        self.columns: dict[str, str] = {}  # field -> column, for reasons

    def read_header(self, header: list[str]) -> None:
        self.targets = self.mapping.resolve(header)
        self.key = self.targets.index(("field", "external_id"))
        self.columns = {t[1]: header[i] for i, t in enumerate(self.targets) if t is not None and t[0] == "field"}

    def check(self, cells: list[str]) -> tuple[Any, str | None, str | None, bool]:
        external_id = cells[self.key].strip()
        if not external_id:
            return None, None, f"no external_id ({self.columns['external_id']} is empty)", True
        try:
            check_external_id(external_id)
        except BadRequest as exc:
            return None, external_id[:255], exc.message, False
        fields: dict[str, Any] = {}
        attributes: dict[str, Any] = {}
        for target, cell in zip(self.targets, cells, strict=True):
            if target is None or cell == "":
                continue
            kind, name = target
            if kind == "attribute":
                attributes[name] = cell
            elif name != "external_id" and cell.strip():
                fields[name] = cell.strip()
        consent = fields.get("push_consent")
        if consent is not None:
            fields["push_consent"] = consent.lower()
            if fields["push_consent"] not in CONSENTS:
                return None, external_id, f"{self.columns['push_consent']}: push_consent must be y, n or u", False
        try:
            profile = ProfileIn.model_validate({**fields, "attributes": attributes})
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            name = str(error["loc"][0]) if error["loc"] else "row"
            return None, external_id, f"{self.columns.get(name, name)}: {error['msg']}", False
        given = {name: getattr(profile, name) for name in fields}
        return [given, profile.attributes], external_id, None, False

    def apply(self, session: Session, chunks: Iterator[list[tuple[int, list[str], Any]]]) -> Applied:
        result = Applied(details={"created": 0, "updated": 0, "linked": 0})
        for chunk in chunks:
            batch = [ImportedProfile(cells[self.key].strip(), value[0], value[1]) for _line, cells, value in chunk]
            done = import_profiles(session, batch, reconciliation_field=self.reconciliation_field)
            for key in ("created", "updated", "linked"):
                result.details[key] += getattr(done, key)
            for line, cells, _value in chunk:
                external_id = cells[self.key].strip()
                if external_id in done.refused:
                    result.refused.append((line, cells, external_id, f"attributes: {done.refused[external_id]}"))
                else:
                    result.applied += 1
        return result
