"""Campaign Classic ``additionalParams``: the XML the SDKs send, parsed without entities or DTDs.

Android writes ``<additionalParameters><param name=".." value=".."/></additionalParameters>``,
iOS ``<additionalParams>...</additionalParams>``. The document is attacker-controlled, so
defusedxml refuses DTDs, entity declarations and external references outright. Values are kept
as the strings the device printed (``true``, ``1.0E7``): Campaign stores them as text too, and a
guess at their type would change ``"007"`` into ``7``.
"""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from core.errors import BadRequest

ROOTS = ("additionalParameters", "additionalParams")
MAX_PARAMS = 100


def parse_additional_params(text: str) -> dict[str, str]:
    """Parse the XML into ``{name: value}``. Empty text gives ``{}``; anything else bad is a 400."""
    if not text.strip():
        return {}
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadRequest(f"additionalParams refused: {type(exc).__name__}", code="invalid_params") from None
    except ParseError as exc:
        raise BadRequest(f"additionalParams is not well-formed XML: {exc}", code="invalid_params") from None
    if root.tag not in ROOTS:
        raise BadRequest(
            f"additionalParams root must be <{ROOTS[0]}> or <{ROOTS[1]}>, not <{root.tag}>",
            code="invalid_params",
        )
    params: dict[str, str] = {}
    for child in root:
        if child.tag != "param":
            continue
        name = child.get("name")
        if not name:
            raise BadRequest("additionalParams has a <param> without a name", code="invalid_params")
        if len(params) >= MAX_PARAMS:
            raise BadRequest(f"additionalParams has more than {MAX_PARAMS} params", code="invalid_params")
        params[name] = child.get("value", "")
    return params
