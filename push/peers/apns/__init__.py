"""A faithful local APNs peer: HTTP/2 over TLS with exact frames, header and JWT checks, error injection.

It answers ``POST /3/device/{token}`` the way Apple does, frame for frame, so the real client
library (aioapns) runs unchanged against it:

- the first SETTINGS frame announces ``MAX_CONCURRENT_STREAMS`` (1000), so a burst never opens more
  streams than allowed;
- HTTP/2 with prior knowledge over TLS (aioapns offers no ALPN; ``h2`` is also accepted via ALPN);
- success is one HEADERS frame (``:status 200``, ``apns-id``) with END_STREAM and no DATA frame;
- an error is HEADERS (status, ``apns-id``, ``content-type: application/json``) plus exactly one
  DATA frame ``{"reason": ...}`` (and ``"timestamp"`` in milliseconds for 410) with END_STREAM;
- request bodies are acknowledged as they arrive; response bodies wait for the client's flow-control
  window like a real server's would.

Checks, in order, with Apple's reasons: method (405 MethodNotAllowed), path (404 BadPath, 400
MissingDeviceToken), duplicate headers (DuplicateHeaders), ``apns-id`` format (BadMessageId),
authentication (403 MissingProviderToken, InvalidProviderToken, ExpiredProviderToken), device token
format (BadDeviceToken: hex, 64 to 200 digits), topic (MissingTopic, TopicDisallowed), push type
(InvalidPushType), priority (BadPriority; background pushes must use 5), expiration
(BadExpirationDate), collapse id (BadCollapseId, over 64 bytes), payload (PayloadEmpty, 413
PayloadTooLarge over 4096 bytes or 5120 for VoIP, and 400 BadPayload for a body that is not a JSON
object: Apple documents no reason for that case, this name is the emulator's).

Authentication. Token: ``authorization: bearer <ES256 JWT>`` with ``kid`` and ``iss``, ``iat`` at
most one hour old; its signature is verified with the public key that ``key_lookup(key_id,
team_id)`` returns (None: unknown key). Without a ``key_lookup`` the emulator checks the token's
form and age only, so any developer key works against it. Certificate: a TLS client certificate
signed by the emulator's CA (see :meth:`LocalTLS.issue_client_cert`) and no bearer token; its topic
is the subject's UID or the part of its common name after ": ".

Error injection by device-token prefix (tokens are hex, so prefixes are hex, eight digits so random
tokens practically never hit one):

=========== ===================================================================================
prefix      answer
=========== ===================================================================================
e4000000    400 BadDeviceToken, always
e4000001    400 DeviceTokenNotForTopic, always
e4100000    410 Unregistered with a timestamp (ms), always
e4290000    429 TooManyRequests, always
e5000000    500 InternalServerError, always
e5030000    503 ServiceUnavailable, always
f4290000    429 TooManyRequests for the first request of that exact token, then success
f5000000    500 InternalServerError for the first request of that exact token, then success
f5030000    503 ServiceUnavailable for the first request of that exact token, then success
d0000000    success after ``slow_delay`` seconds (default 3): request timeouts
c0000000    GOAWAY (NO_ERROR, ``{"reason": "Shutdown"}``) and the connection is closed, always
fc000000    GOAWAY for the first request of that exact token, then success
=========== ===================================================================================

:data:`TOKEN_PREFIXES` holds the same table for generated documentation. A GOAWAY's
``last_stream_id`` is the last stream handled before the triggering one: that stream and any
later ones were not processed, so a client may safely send them again.

Every request, accepted or not, is recorded in an :class:`~push.peers.inbox.Inbox` under
``"ios"`` when its answer is decided (a slow request when its answer is sent): ``token``,
``headers`` (without ``authorization``), ``payload`` (parsed JSON or None), ``status`` (None for a
GOAWAY), ``reason``, ``received_at``, ``apns_id``, ``auth`` ("token" | "certificate"), ``topic``,
``key_id``/``team_id``, ``size``. Another process reads it over the same port:
``GET /_emulator/inbox[?limit=N]`` (the last N, oldest first) and ``DELETE /_emulator/inbox``
(no authentication; not an Apple path).

Run it alone (the benchmark does)::

    python -m push.peers.apns --port 8443 --tls-dir instance/emulators/tls [--topic com.example.app]

It prints ``APNs emulator listening on https://127.0.0.1:8443`` and the CA to trust.

Modules: :mod:`.common` (limits, token prefixes, the request as checked), :mod:`.emulator` (the
checks and answers, the server), :mod:`.connection` (one HTTP/2 connection), :mod:`.thread`
(running it in a thread), ``__main__`` (``python -m push.peers.apns``).
"""

from push.peers.apns.common import TOKEN_PREFIXES, Injection, KeyLookup, injection_for
from push.peers.apns.emulator import ApnsEmulator
from push.peers.apns.thread import EmulatorThread, key_lookup_from

__all__ = [
    "TOKEN_PREFIXES",
    "ApnsEmulator",
    "EmulatorThread",
    "Injection",
    "KeyLookup",
    "injection_for",
    "key_lookup_from",
]
