"""schemas package (see README)."""
