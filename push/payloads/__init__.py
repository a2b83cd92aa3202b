"""Payload encoding: a rendered message plus its ids -> the APNs request or the FCM message.

Pure functions, no I/O. Every push carries ``_mId`` (the broadLog id, a decimal string below
2^32) and ``_dId`` (the delivery id, a lower-case hex string) as top-level *string* values: in the
APNs payload beside ``aps`` (iOS reads them with ``as? String``) and in FCM ``data``. The Classic
SDKs turn them into ``/r/?id=h{hex _mId},{_dId},{tag}``; Campaign Standard apps send them back
unchanged; :mod:`domain.tracking` parses both.

Keys per SDK family (``subscription.sdk``), beyond ``_mId``/``_dId`` and the custom ``data``:

========================  ==================================================================
every family, iOS          ``aps``, ``adb_uri``, ``adb_media`` and ``mediaUrl``, ``adb_act``:
                           see :mod:`.apns`
every family, Android      FCM ``data`` with Adobe's ``adb_*`` keys, and for Campaign Standard
                           and native apps an ``android.notification`` block: see :mod:`.fcm`
edge (AJO Messaging)       ``_xdm``: ``{"cjm": {"_experience": {"customerJourneyManagement":
                           {"messageExecution": {"messageExecutionID": "<_mId>", "messageID":
                           "<_dId>", "messagePublicationID": "<_dId>"}}}}}`` -- a JSON *object*
                           in the APNs payload, a JSON *string* in FCM data. Without it the
                           SDK sends no open/click tracking; with it the ids come back in the
                           tracking event's xdm.
campaign-standard          ``uri`` (deeplink), ``media-attachment-url`` (image),
                           ``_acsDeliveryTracking: "on"``
========================  ==================================================================

APNs and FCM accept at most 4096 bytes: text too long is shortened to fit (:mod:`.size`), and
:func:`check_size`, run at creation, makes sure nothing else can be too large at send time
(:mod:`.check`). The ids and the keys both platforms share live in :mod:`.keys`.

The package is the encoding :class:`domain.deliveries.PayloadEncoding` describes, passed as a
module (``from push import payloads``); its names below are what callers use.
"""

from push.payloads.apns import apns_request, expiration
from push.payloads.check import check_size
from push.payloads.fcm import fcm_message
from push.payloads.keys import SDKS, xdm
from push.payloads.size import MAX_PAYLOAD_BYTES, PayloadTooLarge, encode, payload_size

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "SDKS",
    "PayloadTooLarge",
    "apns_request",
    "check_size",
    "encode",
    "expiration",
    "fcm_message",
    "payload_size",
    "xdm",
]
