"""projections package (see README)."""
