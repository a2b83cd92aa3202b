"""The Adobe Experience Platform side of sync out: IMS, Schema Registry, Catalog, ingestion,
Privacy Service.

- :mod:`~sync.platform.client`: :class:`~sync.platform.client.Platform`, the one HTTP client,
  IMS tokens (:mod:`~sync.platform.auth`) and retries;
- :mod:`~sync.platform.errors`: Adobe's answers as RetryableError / PermanentError;
- :mod:`~sync.platform.streaming`: the streaming batch endpoint (207 per-message results);
- :mod:`~sync.platform.batch`: batch ingestion of JSON-lines files;
- :mod:`~sync.platform.registry`: field groups, schemas, descriptors, datasets and labels;
- :mod:`~sync.platform.privacy`: Privacy Service delete jobs.

These modules return results and raise errors; they never touch the database. The jobs
(:mod:`sync.export`, :mod:`sync.provision`) decide what a result means.
"""
