"""bus package (see README)."""
