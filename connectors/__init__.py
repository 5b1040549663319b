"""connectors package (see README)."""
