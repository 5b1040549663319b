"""nervenbahn: the composition root (`container`), settings, entrypoints (CLI, API, demo)."""
