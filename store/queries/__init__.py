"""The statements that know table layouts, one module per aggregate, for the layers above that
work on many rows at once (the send path, the sync jobs).

Domain functions keep their ORM queries beside the rules they serve; what lives here is SQL shaped
by speed (sent straight to the driver, set-based) or shared by several callers. Callers get ids,
rows or small dataclasses back, and never build SQL of their own.
"""
