"""nervenbahn: composition root (configuration, CLI, runtime wiring)."""
