"""Data sync between the Experience Platform and the Campaign side.

In: :mod:`sync.segments` (Platform segment exports from Azure Blob into audiences) and
:mod:`sync.profiles` (profile and personalisation files over sFTP), checked by
:mod:`sync.governance`. Out: :mod:`sync.provision` (XDM schemas and datasets) and :mod:`sync.export`
(broadLog, trackingLog, quarantine and preferences to the Platform, through :mod:`sync.platform`).
The sync configuration file they read (``PUSHGATE_SYNC_CONFIG``) is loaded once by :mod:`sync.config`.
Every job runs through :mod:`sync.runs` and :mod:`sync.service` (CLI, API, scheduler alike);
:mod:`sync.sources` are the one place each file source is talked to, :mod:`sync.peers` the local
servers that speak the same protocols for development and tests.
"""
