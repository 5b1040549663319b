"""The payments sink: one ISO 20022 pain.001 file (Swiss Payment Standards) per payment run."""
