"""Personalisation: a message's ``title``, ``subtitle``, ``body`` and ``data`` values are templates.

Templates are Jinja2, rendered in a sandbox with no HTML escaping, over three names:

- ``profile``: ``external_id``, ``email``, ``first_name``, ``last_name``, ``locale``, ``timezone``
  and ``attributes`` (the profile's free-form attributes, nested objects allowed);
- ``subscription``: ``platform``, ``sdk``, ``push_provider``, ``user_key``, ``device_name``,
  ``device_model``, ``device_brand``, ``device_manufacturer``, ``os_name``, ``os_version``,
  ``os_language`` and ``additional_params`` (no token, no device id);
- ``tables``: the personalisation lookup tables of the sync module, ``tables.offers["K123"].title``.

**What is refused when the delivery is created** (:func:`compile_message` raises
:class:`TemplateProblem` naming the field): syntax errors; a top-level name other than the three
above (``{{ frist_name }}`` is a typo, not an empty value); ``for`` loops, macros, ``call``
blocks, includes, imports and template inheritance; attribute or key names starting with ``_``
(``{{ ''.__class__ }}``); calling anything but a few harmless string methods (``upper()``,
``lower()``, ``strip()``, ...); filters outside a small list (:data:`FILTERS`); static text longer
than the rendered limits below.

**What happens with missing data at send time: it renders as empty.** A missing or null profile
attribute, table, table row or column is an "undefined" value that prints as ``""``, is false in
``{% if %}``, takes ``| default("there")``, chains (``tables.offers[k].title`` with no row ``k``
is empty, not an error), compares false with ``<``/``>``, and stays undefined through
arithmetic. We chose this over Jinja's ``StrictUndefined`` because profiles are imported from
files with uneven columns: one profile without ``first_name`` must not make the whole delivery
fail, and the marketer controls the fallback with ``default``. Names are still checked strictly
at creation, where a mistake can be fixed. Anything else that fails while rendering one profile
(``{{ profile.attributes.name + 1 }}`` on a string, a division by zero) raises
:class:`RenderProblem` for that one message; so does a visible push whose title and body both
render empty.

**Rendered length is bounded.** Text fields are cut (with ``…``) at :data:`TEXT_LIMITS`
characters and stripped of surrounding whitespace; a data value may add at most
:data:`DATA_DYNAMIC_ALLOWANCE` bytes (JSON-encoded) to the literal text of its template, else
:class:`RenderProblem`. Output is produced as a stream and abandoned past the limit, operators
that can build huge values (``*``, ``**``, ``%``, ``replace``, ``join``) are checked, and with no
loops the work per render is bounded by the size of the template and of the data. Control
characters (other than tab and newline) and lone surrogates are removed from the output.

:func:`render` is the send-time hot path: templates are parsed once (and cached by source), a
text without ``{{``, ``{%`` or ``{#`` skips Jinja entirely.

The package follows those two moments, over one sandbox: :mod:`domain.templates.sandbox` is the
Jinja sandbox and the names, filters, methods and limits a template may use;
:mod:`domain.templates.compiling` parses and checks templates with
:func:`~domain.templates.compiling.compile_message` (creation time,
:class:`~domain.templates.compiling.TemplateProblem`); :mod:`domain.templates.rendering` builds the
context from store rows and renders it (send time and preview,
:class:`~domain.templates.rendering.RenderProblem`).
"""
