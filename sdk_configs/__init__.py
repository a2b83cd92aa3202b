"""What an app team needs to point its app at pushgate, generated from the app itself.

:mod:`sdk_configs.generator` turns an app, a platform and an SDK family (Campaign Classic,
Campaign Standard, Edge, or pushgate's native API) into the Experience Platform Mobile SDK
configuration, the legacy Campaign SDK settings and Kotlin or Swift snippets;
:mod:`sdk_configs.keys` lists the configuration keys Adobe's extensions read;
:mod:`gateway.cli.sdk_config` is ``flask --app wsgi sdk-config``. The API route is
:mod:`gateway.api.sdk_config`.
"""
