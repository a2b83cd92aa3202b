"""Data sync between the Experience Platform and the Campaign side.

Not built yet (issues 4 and 5). The store already holds its tables (audience, audience_member,
sync_run, sync_state).
"""
