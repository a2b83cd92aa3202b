"""The creation-time size check: refuse a message whose push could exceed 4096 bytes at send time.

:func:`check_size` measures, for every compiled platform and SDK family, the part of the push no
shortening can reduce at its largest and the push rendered for a sample profile; see its
docstring for what it guarantees. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from domain.messages import PLATFORMS
from domain.templates.compiling import CompiledMessage, CompiledPlatform, data_limit
from domain.templates.rendering import RenderContext, RenderedMessage, RenderProblem, render
from domain.templates.sandbox import DATA_DYNAMIC_ALLOWANCE
from push.payloads.apns import build_payload
from push.payloads.fcm import build_message
from push.payloads.keys import SDKS, WORST_BROADLOG_ID, WORST_DELIVERY_ID, WORST_SIGNATURE, tracking_ids
from push.payloads.size import MAX_PAYLOAD_BYTES, PayloadTooLarge, payload_size

_PLATFORM_NAMES = {"ios": "iOS", "android": "Android"}


@dataclass(frozen=True, slots=True)
class SizeReport:
    """Sizes of one platform x SDK family's push, with the largest ids."""

    platform: str
    sdk: str
    sample_bytes: int  # the push for the sample context, text not shortened
    floor_bytes: int  # worst case of what cannot be shortened: every text empty, data at its limit


def _build_unfitted(rendered: RenderedMessage, sdk: str) -> dict[str, Any]:
    mid, did = tracking_ids(WORST_BROADLOG_ID, WORST_DELIVERY_ID, sdk, WORST_SIGNATURE)
    if rendered.platform == "ios":
        return build_payload(rendered, mid, did, sdk)
    return build_message(rendered, mid, did, sdk, None)


def _floor(part: CompiledPlatform) -> RenderedMessage:
    """The part of ``part``'s push no text shortening can reduce, at its largest."""
    data = []
    for key, template in part.data:
        if template.static is not None:
            data.append((key, template.static))
        else:  # an ASCII filler of the largest size the value may render to
            data.append((key, "x" * data_limit(template)))
    fields = part.fields()
    fields.update(title=None, subtitle=None, body=None, data=tuple(data))
    return RenderedMessage(**fields)


def check_size(
    compiled: CompiledMessage,
    sample_context: RenderContext | None = None,
    *,
    sdks: Iterable[str] = SDKS,
) -> list[SizeReport]:
    """Refuse, at creation, a message that could be too large at send time.

    For every compiled platform and every SDK family in ``sdks`` (all four by default: the
    audience can hold any), with the largest ids (``_mId`` 4294967295, ``_dId`` 7fffffff):

    1. the *floor* -- the push with every text field empty and every data value at the largest
       size its template can render to (static values exactly; templated ones at their literal
       text plus ``DATA_DYNAMIC_ALLOWANCE`` bytes, the limit :func:`domain.templates.rendering.render`
       enforces) -- must fit 4096 bytes;
    2. the push rendered for ``sample_context`` (the preview profile) must fit without
       shortening any text. Without a sample, an empty profile is used, which leaves the
       literal text every recipient gets (skipped if a template cannot render without data).

    Guarantee when it returns: for those platforms and SDK families,
    :func:`~push.payloads.apns.apns_request` and :func:`~push.payloads.fcm.fcm_message` never raise
    :class:`~push.payloads.size.PayloadTooLarge` at send time, whatever the profile (only text can
    grow beyond the floor, and text is shortened to fit); and the sample renders in full. A
    template failing for the given sample raises :class:`domain.templates.rendering.RenderProblem`.
    Returns the sizes (for the preview endpoint); raises ``PayloadTooLarge`` otherwise.
    """
    reports = []
    for platform in PLATFORMS:
        part = compiled.platforms.get(platform)
        if part is None:
            continue
        if sample_context is not None:
            rendered: RenderedMessage | None = render(compiled, sample_context, platform)
        else:
            try:  # the literal text every recipient gets; a template may fail without data
                rendered = render(compiled, RenderContext({}, {"platform": platform}), require_text=False)
            except RenderProblem:
                rendered = None
        floor_message = _floor(part)
        for sdk in sdks:
            floor = payload_size(_build_unfitted(floor_message, sdk))
            name = _PLATFORM_NAMES[platform]
            if floor > MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(
                    f"the {name} push can reach {floor} bytes for {sdk} apps before any title or body "
                    f"(ids, links, actions, SDK keys and data values at their largest: a personalised data value "
                    f"may add {DATA_DYNAMIC_ALLOWANCE} bytes to its text); at most {MAX_PAYLOAD_BYTES} are accepted",
                    size=floor,
                    platform=platform,
                    sdk=sdk,
                )
            sample = floor if rendered is None else payload_size(_build_unfitted(rendered, sdk))
            if sample > MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(
                    f"the {name} push is {sample} bytes for {sdk} apps (at most {MAX_PAYLOAD_BYTES}); "
                    f"shorten the title, subtitle or body by {sample - MAX_PAYLOAD_BYTES} bytes",
                    size=sample,
                    platform=platform,
                    sdk=sdk,
                )
            reports.append(SizeReport(platform, sdk, sample, floor))
    return reports
