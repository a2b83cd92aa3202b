"""Where sync files come from: one module per external system (Azure Blob, sFTP)."""
