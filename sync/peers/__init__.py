"""Local peers of the sync module's external systems, for development and tests."""
