"""The auditor toolkit: hash chains, signed checkpoints, verification, access log, reports."""
