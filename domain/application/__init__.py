"""The application services on top of the pure domain.

Command dispatch, bitemporal queries, the legacy importer, payment runs and the stores they
need (snapshots, transcodings). The pure domain (`domain.case`, `domain.events`,
`domain.commands`, …) never imports this package; projections, relays and entrypoints depend on
it, never the other way round.
"""
