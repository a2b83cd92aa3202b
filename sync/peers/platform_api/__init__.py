"""The Adobe APIs the local Platform peer answers, over one in-memory state.

Every handler takes the peer's :class:`~sync.peers.platform_api.state.PeerState` and a Werkzeug
request and returns a response in Adobe's shape; ``ApiError`` carries Adobe's error bodies.
:mod:`sync.peers.platform` serves them over HTTP and adds fault injection and the inspection API;
the module docstring there lists the endpoints and the Adobe documentation each one follows.

One module per API surface, all on :mod:`.state` (configuration, state, errors, shared helpers):
:mod:`.ims` (tokens), :mod:`.registry`, :mod:`.registry_changes` and :mod:`.registry_descriptors`
(Schema Registry reads, writes and descriptors), :mod:`.catalog` (Catalog and dataset labels),
:mod:`.batch` (batch ingestion), :mod:`.streaming` (streaming ingestion), :mod:`.privacy` (Privacy
Service jobs); :mod:`.routes` maps URLs to them.
"""
