"""A local FCM HTTP v1 peer: Google's OAuth token endpoint and ``messages:send``, over TLS.

It speaks what the real clients speak, so firebase-admin, google-auth and httpx run unchanged
against it: HTTP/2 (ALPN ``h2``, or the prior-knowledge preface) for sends and HTTP/1.1 for the
token endpoint (google-auth uses ``requests``) on the same port; either protocol serves every path.

``POST /token``
    The service-account flow: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and an
    RS256 ``assertion`` whose signature is checked against the account's public key (from the
    ``accounts`` callable), with ``iss`` = client email, ``aud`` = this URL or Google's
    ``https://oauth2.googleapis.com/token``, a short-lived ``iat``/``exp`` and a messaging scope
    (``firebase.messaging`` or ``cloud-platform``). Answers ``{"access_token", "expires_in": 3600,
    "token_type": "Bearer"}``, or Google's ``400 {"error": "invalid_grant", ...}``.

``POST /v1/projects/{project}/messages:send``
    Needs ``Authorization: Bearer <token issued here>`` for an account of that project (the
    project is read from ``...@{project}.iam.gserviceaccount.com``), else 401 UNAUTHENTICATED or
    403 PERMISSION_DENIED. Validates the message like FCM (exactly one of token/topic/condition/fid,
    string data values, the android/apns/webpush/notification shapes, at most 4096 bytes) and
    answers ``{"name": "projects/{project}/messages/{id}"}`` or Google's error body with the
    ``FcmError`` detail. ``validate_only`` answers ``.../messages/fake_message_id``.

Injected answers, by registration-token prefix (checked in this order; see ``TOKEN_PREFIXES``):

=====================  ======  ======================  ====================================
prefix                 status  errorCode               notes
=====================  ======  ======================  ====================================
``quota-once-``        429     QUOTA_EXCEEDED          fail the first request for that
``unavailable-once-``  503     UNAVAILABLE             exact token only, then succeed
``internal-once-``     500     INTERNAL                (Retry-After as below)
``unregistered-``      404     UNREGISTERED
``invalid-``           400     INVALID_ARGUMENT        "The registration token is not a
                                                       valid FCM registration token"
``mismatch-``          403     SENDER_ID_MISMATCH
``quota-``             429     QUOTA_EXCEEDED          with ``Retry-After``
``unavailable-``       503     UNAVAILABLE             with ``Retry-After``
``internal-``          500     INTERNAL
``thirdparty-``        401     THIRD_PARTY_AUTH_ERROR
``slow-``              200                             answers after ``slow_seconds``
=====================  ======  ======================  ====================================

Any other token is delivered (200).

:meth:`FcmEmulator.fail_token_endpoint` makes ``/token`` answer an error status (5xx looks like an
outage, 4xx like a refused grant); :meth:`FcmEmulator.forget_tokens` acts like a restart.

Every ``messages:send`` request is recorded in the :class:`~push.peers.inbox.Inbox` under
``"android"``: ``token``, ``payload`` (the message object as received), ``status``, ``reason``
(errorCode or status, None on success), ``project``, ``message_id``, ``validate_only``,
``headers``, ``received_at``. ``GET /_emulator/inbox`` returns them (``?limit=N``: the last N) and
``DELETE /_emulator/inbox`` clears them, for callers in another process.

Run it in-process with ``FcmEmulator(...).start()`` / ``.stop()`` (a thread with its own loop), on
a running loop with ``await open()`` / ``await close()``, or as a process::

    python -m push.peers.fcm --port 8444 --tls-dir instance/tls \\
        --new-service-account instance/fcm-service-account.json

Modules: :mod:`.common` (constants, token prefixes, replies), :mod:`.messages` (the Message
resource's validation), :mod:`.peer` (requests in, replies out, no I/O), :mod:`.transport` (HTTP/2
and HTTP/1.1 connections), :mod:`.server` (the listener and service accounts), ``__main__``.
"""

from push.peers.fcm.common import FCM_ERROR_TYPE, MAX_PAYLOAD_BYTES, TOKEN_PREFIXES, Injection, Reply
from push.peers.fcm.messages import payload_size, validate_message
from push.peers.fcm.peer import FcmPeer, google_error
from push.peers.fcm.server import FcmEmulator, accounts_from, new_service_account

__all__ = [
    "FCM_ERROR_TYPE",
    "MAX_PAYLOAD_BYTES",
    "TOKEN_PREFIXES",
    "FcmEmulator",
    "FcmPeer",
    "Injection",
    "Reply",
    "accounts_from",
    "google_error",
    "new_service_account",
    "payload_size",
    "validate_message",
]
